"""What the verification shortcuts of issue 19 must not change.

Each shortcut reuses work — a validated certificate path, a parsed tree — and each test here
shows an input where reusing it naively would give a different answer from doing the work again.
Time is pinned: NOW (tests/conftest.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509

from signature.certs import TrustStore
from signature.errors import VerificationFailure
from signature.report import ReasonCode
from tests.conftest import NOW, World


def _refusal(store: TrustStore, leaf: x509.Certificate, chain: list[x509.Certificate], at: object) -> ReasonCode:
    with pytest.raises(VerificationFailure) as caught:
        store.validate(leaf, chain, at=at)  # type: ignore[arg-type]
    return caught.value.code


def test_a_cached_path_is_not_reused_outside_its_certificates_validity(world: World) -> None:
    pki = world.pki
    store = TrustStore([r.cert for r in pki.jpki_roots])
    leaf = world.signer.cert
    assert store.validate(leaf, [], at=NOW)[-1] == leaf  # now cached
    assert _refusal(store, leaf, [], leaf.not_valid_after_utc + timedelta(seconds=1)) is ReasonCode.CERT_EXPIRED
    assert _refusal(store, leaf, [], leaf.not_valid_before_utc - timedelta(seconds=1)) is ReasonCode.CERT_NOT_YET_VALID
    assert store.validate(leaf, [], at=NOW)[-1] == leaf


def test_a_cached_path_through_a_ca_that_has_expired_since_is_refused(world: World) -> None:
    # The leaf is still valid; only the CA of the cached path is not: the whole path counts.
    pki = world.pki
    ca = pki.issue_ca(not_before=NOW - timedelta(days=30), not_after=NOW + timedelta(days=1))
    leaf = pki.issue_signer(world.residents[2], issuer=ca, not_after=NOW + timedelta(days=300))
    store = TrustStore([r.cert for r in pki.jpki_roots])
    assert store.validate(leaf.cert, [ca.cert], at=NOW) == (pki.jpki_roots[1].cert, ca.cert, leaf.cert)
    later = NOW + timedelta(days=2)
    assert leaf.cert.not_valid_after_utc > later
    assert _refusal(store, leaf.cert, [ca.cert], later) is ReasonCode.UNTRUSTED_CHAIN
    # … and a path found without the CA is not the one found with it.
    assert _refusal(store, leaf.cert, [], NOW) is ReasonCode.UNTRUSTED_CHAIN


def test_the_path_cache_is_bounded(world: World) -> None:
    pki = world.pki
    store = TrustStore([r.cert for r in pki.jpki_roots], path_cache_size=2)
    leaves = [world.signer.cert, world.revoked_signer.cert, pki.issue_signer(world.residents[3]).cert]
    for leaf in leaves:
        store.validate(leaf, [], at=NOW)
    assert list(store._paths) == [(leaf, ()) for leaf in leaves[1:]]  # the least recently used went
    with pytest.raises(VerificationFailure):
        store.validate(pki.portal_server.cert, [], at=NOW)  # another hierarchy: refused, not cached
    assert len(store._paths) == 2
