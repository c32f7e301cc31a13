"""The CRL store's lifecycle side, for the services: a new CRL set from bytes swapped in atomically
(:meth:`RevocationStore.replace`), refused CRLs keeping what their issuer had, the frozen status
summary for metrics and readiness, and the generation number that tells the intake to re-verify
its TRY_LATER deliveries. Time is passed in everywhere; nothing here sleeps.
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from signature import revocation
from signature.errors import SignatureError, TrustConfigError
from signature.revocation import CrlRefusal, RevocationStatus, RevocationStore
from signature.testing.pki import Issued, TestPKI
from tests.conftest import NOW, World

T = NOW - timedelta(minutes=30)
GOOD, REVOKED, UNKNOWN = RevocationStatus.GOOD, RevocationStatus.REVOKED, RevocationStatus.UNKNOWN


@dataclass(frozen=True)
class Crls:
    pki: TestPKI
    root: Issued  # the current root (configured)
    good: Issued  # issued by the root
    revoked: Issued  # issued by the root, revoked
    old: bytes  # root CRL, thisUpdate NOW-6h, nextUpdate NOW+1d, lists ``revoked``
    new: bytes  # root CRL, thisUpdate NOW-1h, nextUpdate NOW+2d, also lists ``good``
    old_root_crl: bytes  # the other root generation's CRL, nextUpdate NOW+12h


@pytest.fixture(scope="module")
def c(world: World) -> Crls:
    pki = world.pki
    serials = random.Random(5601)
    good, revoked = (pki.issue_signer(world.residents[0], key=world.signer.rsa_key,
                                      serial=serials.randrange(1 << 62, 1 << 63)) for _ in range(2))
    root = pki.jpki_roots[1]

    def crl(*listed: Issued, hours: float, days: float) -> bytes:
        return pki.issue_crl(root, [(r.cert.serial_number, NOW - timedelta(days=2)) for r in listed],
                             this_update=NOW - timedelta(hours=hours), next_update=NOW + timedelta(days=days))

    old_root_crl = pki.issue_crl(pki.jpki_roots[0], [], this_update=NOW - timedelta(hours=6),
                                 next_update=NOW + timedelta(hours=12))
    return Crls(pki, root, good, revoked, crl(revoked, hours=6, days=1), crl(revoked, good, hours=1, days=2),
                old_root_crl)


def empty_store(c: Crls) -> RevocationStore:
    return RevocationStore([], [r.cert for r in c.pki.jpki_roots])


def status(store: RevocationStore, c: Crls, leaf: Issued) -> RevocationStatus:
    return store.check(leaf.cert, c.root.cert, T).status


def test_replace_swaps_in_a_new_set_and_counts_generations(c: Crls) -> None:
    store = empty_store(c)
    assert (store.generation, store.status().loaded_at) == (0, None)
    assert status(store, c, c.good) is UNKNOWN

    assert store.replace({"g2.crl": c.old}, at=NOW) is True
    assert store.generation == 1
    assert (status(store, c, c.good), status(store, c, c.revoked)) == (GOOD, REVOKED)

    assert store.replace({"g2.crl": c.new}, at=NOW + timedelta(minutes=5)) is True
    assert store.generation == 2
    assert status(store, c, c.good) is REVOKED

    # The same bytes again (under another label, even): no change, no new generation.
    assert store.replace({"renamed.crl": c.new}, at=NOW + timedelta(minutes=10)) is False
    assert store.generation == 2
    assert store.status().loaded_at == NOW + timedelta(minutes=10)  # but it was a successful load

    assert store.replace([], at=NOW + timedelta(minutes=15)) is True  # nothing: everything goes
    assert (store.generation, store.crl_count) == (3, 0)
    assert status(store, c, c.revoked) is UNKNOWN


def test_same_bytes_are_not_parsed_or_verified_again(c: Crls, monkeypatch: pytest.MonkeyPatch) -> None:
    store = empty_store(c)
    store.replace({"a.crl": c.old, "b.crl": c.old_root_crl})
    calls: list[object] = []
    monkeypatch.setattr(x509, "load_der_x509_crl", lambda data: calls.append(data))
    monkeypatch.setattr(revocation._Signature, "verifies_with", lambda *a: calls.append(a))
    assert store.replace({"a.crl": c.old, "b.crl": c.old_root_crl}) is False
    assert calls == []


@pytest.mark.parametrize("mapping", [True, False], ids=["labelled", "unlabelled"])
def test_a_forged_replacement_keeps_the_issuers_previous_crl(
    c: Crls, caplog: pytest.LogCaptureFixture, mapping: bool
) -> None:
    """Refused because its issuer (known by name and key identifier) did not sign it: the CRLs
    accepted before for that issuer stay in use, labelled or not."""
    forged = c.pki.issue_crl(Issued(c.root.cert, c.pki.portal_root.rsa_key), [], this_update=NOW - timedelta(hours=1),
                             next_update=NOW + timedelta(days=2))
    store = empty_store(c)
    store.replace({"g2.crl": c.old, "g1.crl": c.old_root_crl} if mapping else [c.old, c.old_root_crl], at=NOW)
    generation = store.generation
    with caplog.at_level(logging.WARNING, logger="signature.revocation"):
        changed = store.replace({"g2.crl": forged, "g1.crl": c.old_root_crl} if mapping
                                else [forged, c.old_root_crl], at=NOW)
    assert changed is False  # the usable data did not change ...
    s = store.status()
    assert (s.generation, s.crl_count, s.kept_previous) == (generation, 2, 1)
    assert s.refused == ((CrlRefusal.SIGNATURE_INVALID, 1),)
    assert status(store, c, c.revoked) is REVOKED  # ... the previous CRL still speaks
    assert "keeping 1 previously accepted CRL" in caplog.text
    # A genuine newer CRL replaces both the kept one and the refusal.
    assert store.replace({"g2.crl": c.new, "g1.crl": c.old_root_crl} if mapping else [c.new, c.old_root_crl],
                         at=NOW) is True
    s = store.status()
    assert (s.kept_previous, s.refused, s.crl_count) == (0, (), 2)
    assert status(store, c, c.good) is REVOKED


def test_unreadable_bytes_keep_what_their_label_gave(c: Crls) -> None:
    """A truncated download names no issuer; with a label, what that label gave stays in use."""
    store = empty_store(c)
    store.replace({"g2.crl": c.old, "g1.crl": c.old_root_crl})
    assert store.replace({"g2.crl": c.new[: len(c.new) // 2], "g1.crl": c.old_root_crl}) is False
    s = store.status()
    assert (s.refused, s.kept_previous, s.crl_count) == (((CrlRefusal.MALFORMED, 1),), 1, 2)
    assert status(store, c, c.revoked) is REVOKED
    # Unlabelled (a plain sequence), the truncated bytes cannot be attributed: that CRL is gone.
    anonymous = empty_store(c)
    anonymous.replace([c.old, c.old_root_crl])
    assert anonymous.replace([c.new[: len(c.new) // 2], c.old_root_crl]) is True
    assert (anonymous.crl_count, status(anonymous, c, c.revoked)) == (1, UNKNOWN)


def test_a_refused_file_keeps_what_it_gave_before(c: Crls, tmp_path: Path) -> None:
    """The same rule for file sources: a CRL file overwritten with junk keeps its previous CRL."""
    path = tmp_path / "g2.crl"
    path.write_bytes(c.old)
    store = RevocationStore([tmp_path], [c.root.cert], at=NOW)
    path.write_bytes(b"-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n")
    assert store.refresh(at=NOW + timedelta(minutes=1)) is False
    assert (store.crl_count, store.status().kept_previous) == (1, 1)
    assert status(store, c, c.revoked) is REVOKED
    path.unlink()  # removed on purpose: nothing refused, so nothing is kept
    assert store.refresh(at=NOW + timedelta(minutes=2)) is True
    assert store.crl_count == 0


def test_status_summary(c: Crls) -> None:
    """earliest_next_update is per issuer key and scope the latest nextUpdate, then the earliest of
    those: an old CRL superseded by a newer one of the same issuer does not make it earlier."""
    store = empty_store(c)
    store.replace({"old.crl": c.old, "new.crl": c.new, "g1.crl": c.old_root_crl, "junk.crl": b"junk"},
                  at=NOW)
    s = store.status()
    assert s.crl_count == 3
    assert s.awaiting_issuer == 0  # both roots are configured: verified at load
    assert s.earliest_next_update == NOW + timedelta(hours=12)  # the old root's; g2's latest is NOW+2d
    assert s.loaded_at == NOW
    assert s.refused == ((CrlRefusal.MALFORMED, 1),)
    assert s.refused_total == 1
    assert s.seconds_until_earliest_next_update(NOW) == 12 * 3600
    assert s.seconds_until_earliest_next_update(NOW + timedelta(days=1)) == -12 * 3600
    with pytest.raises(SignatureError, match="naive"):
        s.seconds_until_earliest_next_update(NOW.replace(tzinfo=None))
    with pytest.raises(AttributeError):
        s.generation = 9  # type: ignore[misc]  # frozen
    assert empty_store(c).status().earliest_next_update is None


@pytest.mark.parametrize(
    ("crls", "error"),
    [
        pytest.param(b"one CRL's bytes", "not one CRL's bytes", id="bytes-instead-of-a-sequence"),
        pytest.param(["text"], "not bytes", id="text-in-the-sequence"),
    ],
)
def test_replace_refuses_wrong_arguments(c: Crls, crls: object, error: str) -> None:
    with pytest.raises(TrustConfigError, match=error):
        empty_store(c).replace(crls)  # type: ignore[arg-type]


def test_one_feed_per_store(c: Crls, tmp_path: Path) -> None:
    """replace() on a file-fed store would be undone by the next refresh(): refused. refresh() on a
    bytes-fed store (the relay's readiness probe calls it) leaves the set alone."""
    (tmp_path / "g2.crl").write_bytes(c.old)
    with pytest.raises(TrustConfigError, match="refresh"):
        RevocationStore([tmp_path], [c.root.cert]).replace([c.new])
    fed = empty_store(c)
    fed.replace([c.new], at=NOW)
    assert fed.refresh(at=NOW + timedelta(minutes=1)) is False
    assert (fed.crl_count, fed.status().loaded_at) == (1, NOW)


def test_naive_times_are_refused(c: Crls, tmp_path: Path) -> None:
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(SignatureError, match="naive"):
        empty_store(c).replace([c.old], at=naive)
    with pytest.raises(SignatureError, match="naive"):
        RevocationStore([], [c.root.cert], at=naive)


def test_lookups_during_replace_see_a_whole_set(c: Crls) -> None:
    """Every answer comes from either the old or the new set, never from a half-built index."""
    store = empty_store(c)
    store.replace([c.old])
    old_tu, new_tu = NOW - timedelta(hours=6), NOW - timedelta(hours=1)
    expected = {old_tu: (GOOD, REVOKED), new_tu: (REVOKED, REVOKED)}
    stop = threading.Event()
    seen: set[datetime] = set()

    def reader() -> None:
        issuer = x509.load_der_x509_certificate(c.root.cert.public_bytes(serialization.Encoding.DER))
        while not stop.is_set():
            good = store.check(c.good.cert, issuer, T)
            revoked = store.check(c.revoked.cert, issuer, T)
            assert good.crl_this_update is not None
            assert revoked.crl_this_update is not None
            assert good.status is expected[good.crl_this_update][0]
            assert revoked.status is expected[revoked.crl_this_update][1]
            seen.add(good.crl_this_update)

    generations = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        readers = [pool.submit(reader) for _ in range(2)]
        try:
            for i in range(40):
                assert store.replace([c.new] if i % 2 == 0 else [c.old]) is True
                generations.append(store.generation)
        finally:
            stop.set()
        for r in readers:
            r.result()  # re-raises an assertion failure from a reader
    assert seen
    assert generations == sorted(set(generations))  # strictly increasing


def test_digest_names_the_crl_set_whatever_the_feed(c: Crls, tmp_path: Path) -> None:
    """Two stores holding the same CRLs — one fed from files in another order, one from bytes, one
    with a refused extra — have one digest; another set has another; no CRLs: empty."""
    (tmp_path / "b.crl").write_bytes(c.old)
    (tmp_path / "a.crl").write_bytes(c.new)
    from_files = RevocationStore([tmp_path], [c.root.cert], at=NOW)
    from_bytes = empty_store(c)
    from_bytes.replace({"x": c.new, "y": c.old, "junk": b"junk"}, at=NOW)
    assert from_files.status().digest == from_bytes.status().digest
    assert len(from_files.status().digest) == 64
    other = empty_store(c)
    other.replace([c.new], at=NOW)
    assert other.status().digest not in {"", from_files.status().digest}
    assert empty_store(c).status().digest == ""
