"""Checking a CRL before it replaces an installed copy (:func:`signature.revocation.inspect_crl`):
the store's own acceptance rules, the signature when its issuer is known, and never backwards in
time — a replayed old CRL is refused. Time is passed in; nothing here sleeps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from signature.errors import SignatureError
from signature.revocation import CrlRefusal, RevocationStore, inspect_crl
from signature.testing.pki import JPKI_SIGNING_CA_SUBJECT, Issued, TestPKI
from tests.conftest import NOW, World


@dataclass(frozen=True)
class K:
    pki: TestPKI
    root: Issued  # the current root generation (configured)
    ca: Issued  # a signing CA under it, reaching the verifier only in packages
    older: bytes  # root CRL, thisUpdate NOW-6h, number 10
    newer: bytes  # root CRL, thisUpdate NOW-1h, number 11


@pytest.fixture(scope="module")
def k(world: World) -> K:
    pki, root = world.pki, world.pki.jpki_roots[1]

    def crl(hours: float, number: int) -> bytes:
        return pki.issue_crl(root, [], this_update=NOW - timedelta(hours=hours), next_update=NOW + timedelta(days=1),
                             crl_number=number)

    return K(pki, root, pki.issue_ca(JPKI_SIGNING_CA_SUBJECT), crl(6, 10), crl(1, 11))


def roots(k: K) -> list[x509.Certificate]:
    return [r.cert for r in k.pki.jpki_roots]


def pem(der: bytes) -> bytes:
    return x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)


def test_a_newer_genuine_crl_is_accepted_and_described(k: K) -> None:
    found = inspect_crl(k.newer, at=NOW, issuers=roots(k), installed=k.older)
    assert found.accepted
    assert found.refusal is None
    assert found.signature_verified is True
    assert found.unchanged is False
    assert found.der == k.newer
    assert (found.this_update, found.next_update, found.crl_number) == (
        NOW - timedelta(hours=1), NOW + timedelta(days=1), 11)
    assert found.issuer_key_id == k.root.cert.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value.digest.hex()
    with pytest.raises(AttributeError):
        found.refusal = CrlRefusal.MALFORMED  # type: ignore[misc]  # frozen


def test_nothing_installed_yet_is_fine(k: K) -> None:
    assert inspect_crl(k.older, at=NOW, issuers=roots(k)).accepted


def test_the_installed_crl_again_is_unchanged_whatever_its_encoding(k: K) -> None:
    same = inspect_crl(pem(k.newer), at=NOW, issuers=roots(k), installed=k.newer)
    assert (same.accepted, same.unchanged, same.der) == (True, True, k.newer)  # PEM in, DER out


@pytest.mark.parametrize("encoding", ["der", "pem"])
def test_a_replayed_older_crl_is_refused(k: K, encoding: str) -> None:
    old = k.older if encoding == "der" else pem(k.older)
    found = inspect_crl(old, at=NOW, issuers=roots(k), installed=k.newer)
    assert found.refusal is CrlRefusal.OLDER_THAN_INSTALLED
    assert "thisUpdate" in found.detail
    assert found.signature_verified is True  # genuine, just old: the signature alone cannot tell


def test_a_lower_crl_number_is_refused_even_with_a_later_this_update(k: K) -> None:
    lower = k.pki.issue_crl(k.root, [], this_update=NOW - timedelta(minutes=10), next_update=NOW + timedelta(days=1),
                            crl_number=9)
    found = inspect_crl(lower, at=NOW, issuers=roots(k), installed=k.newer)
    assert found.refusal is CrlRefusal.OLDER_THAN_INSTALLED
    assert "CRL number" in found.detail


def test_a_forged_crl_is_refused(k: K) -> None:
    """Signed with another key but naming the root (name and key identifier): the root did not sign it."""
    forged = k.pki.issue_crl(Issued(k.root.cert, k.pki.portal_root.key), [], this_update=NOW,
                             next_update=NOW + timedelta(days=2), crl_number=99)
    found = inspect_crl(forged, at=NOW, issuers=roots(k), installed=k.newer)
    assert found.refusal is CrlRefusal.SIGNATURE_INVALID
    assert found.der == b""


@pytest.mark.parametrize("cut", [1, 2, 10])
def test_a_truncated_download_is_malformed(k: K, cut: int) -> None:
    found = inspect_crl(k.newer[: len(k.newer) // cut - 1], at=NOW, issuers=roots(k), installed=k.older)
    assert found.refusal is CrlRefusal.MALFORMED


def test_other_bytes_are_malformed(k: K) -> None:
    assert inspect_crl(b"<html>404</html>", at=NOW).refusal is CrlRefusal.MALFORMED
    assert inspect_crl(b"", at=NOW).refusal is CrlRefusal.MALFORMED


def test_two_crls_where_one_is_expected(k: K) -> None:
    assert inspect_crl(pem(k.older) + pem(k.newer), at=NOW, issuers=roots(k)).refusal is CrlRefusal.NOT_ONE_CRL


def test_the_stores_own_rules_apply(k: K) -> None:
    """Not a second copy of the rules: the store's acceptance decides (two examples)."""
    no_next = k.pki.issue_crl(k.root, [], this_update=NOW, next_update=None)
    assert inspect_crl(no_next, at=NOW, issuers=roots(k)).refusal is CrlRefusal.NO_NEXT_UPDATE
    delta = (x509.CertificateRevocationListBuilder().issuer_name(k.root.cert.subject).last_update(NOW)
             .next_update(NOW + timedelta(days=1))
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(k.root.cert.public_key()),  # type: ignore[arg-type]
                            critical=False)
             .add_extension(x509.DeltaCRLIndicator(10), critical=True)
             .sign(k.root.key, hashes.SHA256()))  # type: ignore[arg-type]
    found = inspect_crl(delta.public_bytes(serialization.Encoding.DER), at=NOW, issuers=roots(k))
    assert found.refusal is CrlRefusal.DELTA_CRL


def test_a_crl_from_the_future_is_refused(k: K) -> None:
    """It would make every genuine CRL after it look older."""
    ahead = k.pki.issue_crl(k.root, [], this_update=NOW + timedelta(hours=1), next_update=NOW + timedelta(days=2))
    assert inspect_crl(ahead, at=NOW, issuers=roots(k)).refusal is CrlRefusal.THIS_UPDATE_IN_FUTURE
    assert inspect_crl(ahead, at=NOW + timedelta(minutes=56), issuers=roots(k)).accepted  # within the skew


def test_another_issuer_than_the_installed_copy_is_refused(k: K) -> None:
    ca_crl = k.pki.issue_crl(k.ca, [], this_update=NOW, next_update=NOW + timedelta(days=1))
    found = inspect_crl(ca_crl, at=NOW, issuers=[*roots(k), k.ca.cert], installed=k.newer)
    assert found.refusal is CrlRefusal.ISSUER_CHANGED


def test_a_package_carried_cas_crl_is_accepted_unverified_unless_its_issuer_is_required(k: K) -> None:
    ca_crl = k.pki.issue_crl(k.ca, [], this_update=NOW, next_update=NOW + timedelta(days=1))
    found = inspect_crl(ca_crl, at=NOW, issuers=roots(k))
    assert (found.accepted, found.signature_verified) == (True, False)
    assert inspect_crl(ca_crl, at=NOW, issuers=roots(k), require_signature=True).refusal \
        is CrlRefusal.UNVERIFIED_ISSUER
    # The operator configured the CA's certificate for this source: verified, and a forgery is caught.
    assert inspect_crl(ca_crl, at=NOW, issuers=[k.ca.cert], require_signature=True).signature_verified
    forged = k.pki.issue_crl(Issued(k.ca.cert, k.pki.portal_root.key), [], this_update=NOW,
                             next_update=NOW + timedelta(days=1))
    assert inspect_crl(forged, at=NOW, issuers=[k.ca.cert]).refusal is CrlRefusal.SIGNATURE_INVALID


def test_an_installed_copy_no_issuer_verifies_does_not_lock_out_the_genuine_one(k: K) -> None:
    """A forged copy with a huge CRL number (installed while its issuer was unknown) is not
    evidence of order against a CRL whose signature verifies."""
    forged = k.pki.issue_crl(Issued(k.ca.cert, k.pki.portal_root.key), [], this_update=NOW,
                             next_update=NOW + timedelta(days=30), crl_number=10**9)
    genuine = k.pki.issue_crl(k.ca, [], this_update=NOW - timedelta(hours=1), next_update=NOW + timedelta(days=1))
    assert inspect_crl(genuine, at=NOW, issuers=[k.ca.cert], installed=forged).accepted
    # Without the CA's certificate neither can be verified: order decides, and the genuine one waits.
    assert inspect_crl(genuine, at=NOW, installed=forged).refusal is CrlRefusal.OLDER_THAN_INSTALLED


def test_an_installed_copy_that_does_not_parse_is_replaced(k: K) -> None:
    assert inspect_crl(k.older, at=NOW, issuers=roots(k), installed=b"junk").accepted


def test_known_issuers_include_those_met_in_validated_paths(world: World, k: K) -> None:
    """So the services can verify a package-carried CA's next CRL before installing it."""
    ca_crl = k.pki.issue_crl(k.ca, [], this_update=NOW, next_update=NOW + timedelta(days=1))
    store = RevocationStore([], roots(k))
    store.replace({"ca.crl": ca_crl}, at=NOW)
    assert k.ca.cert not in store.known_issuers()
    signer = k.pki.issue_signer(world.residents[0], issuer=k.ca)
    store.check(signer.cert, k.ca.cert, NOW)  # a validated path used the CA
    assert k.ca.cert in store.known_issuers()
    assert inspect_crl(ca_crl, at=NOW, issuers=store.known_issuers(), require_signature=True).signature_verified


def test_naive_time_is_refused(k: K) -> None:
    with pytest.raises(SignatureError, match="naive"):
        inspect_crl(k.newer, at=NOW.replace(tzinfo=None))
