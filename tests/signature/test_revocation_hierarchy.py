"""The CRL store over a real hierarchy: CRLs of a signing CA that reaches the verifier only inside
packages, several key generations of that CA under one name, forged CRLs, and the signature of a
CRL verified once per issuer key. Store level; whole packages are in test_vectors.py.

The hierarchy comes from the session's test PKI (``world``): its current root is configured, the
signing CA "JPKI-TEST signing CA G3" (two key generations) is configured nowhere.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from signature import revocation
from signature.revocation import CrlRefusal, RevocationStatus, RevocationStore
from signature.testing.pki import JPKI_SIGNING_CA_SUBJECT, Issued, TestPKI
from tests.conftest import NOW, World

T = NOW - timedelta(minutes=30)  # the validation time (到達日時 in the package tests)
TU, NU = NOW - timedelta(hours=6), NOW + timedelta(days=1)  # the CRLs' thisUpdate and nextUpdate
GOOD, REVOKED, UNKNOWN = RevocationStatus.GOOD, RevocationStatus.REVOKED, RevocationStatus.UNKNOWN


@dataclass(frozen=True)
class Hierarchy:
    pki: TestPKI
    ca1: Issued  # signing CA, key generation 1
    ca2: Issued  # signing CA, key generation 2, same name
    good1: Issued
    revoked1: Issued
    good2: Issued
    revoked2: Issued
    crl1: bytes  # by ca1: lists revoked1, and good2's serial (another generation's certificate)
    crl2: bytes  # by ca2: lists revoked2
    forged1: bytes  # names ca1 (name and key identifier), signed by another key

    @property
    def roots(self) -> list[x509.Certificate]:
        return [r.cert for r in self.pki.jpki_roots]


def fresh(cert: x509.Certificate) -> x509.Certificate:
    """The certificate as a new object, as a verifier parses it from each package's KeyInfo."""
    return x509.load_der_x509_certificate(cert.public_bytes(serialization.Encoding.DER))


@pytest.fixture(scope="module")
def h(world: World) -> Hierarchy:
    pki = world.pki
    serials = random.Random(5501)

    def serial() -> int:
        return serials.randrange(1 << 62, 1 << 63)

    ca1, ca2 = pki.issue_ca(serial=serial()), pki.issue_ca(serial=serial())
    assert ca1.cert.subject == ca2.cert.subject == JPKI_SIGNING_CA_SUBJECT
    key = world.signer.rsa_key
    resident = world.residents[0]
    good1, revoked1, good2, revoked2 = (pki.issue_signer(resident, issuer=ca, key=key, serial=serial())
                                        for ca in (ca1, ca1, ca2, ca2))
    crl1 = pki.issue_crl(ca1, [(revoked1.cert.serial_number, NOW - timedelta(days=3)),
                               (good2.cert.serial_number, NOW - timedelta(days=3))], this_update=TU, next_update=NU)
    crl2 = pki.issue_crl(ca2, [(revoked2.cert.serial_number, NOW - timedelta(days=2))], this_update=TU, next_update=NU)
    impostor = Issued(ca1.cert, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    forged1 = pki.issue_crl(impostor, [], this_update=TU, next_update=NU)  # "nothing is revoked", says the forger
    return Hierarchy(pki, ca1, ca2, good1, revoked1, good2, revoked2, crl1, crl2, forged1)


def store(h: Hierarchy, crls: dict[str, bytes]) -> RevocationStore:
    s = RevocationStore([], h.roots)  # only the roots are configured
    s.replace(crls, at=NOW)
    return s


def status_of(s: RevocationStore, leaf: Issued, issuer: Issued) -> RevocationStatus:
    return s.check(leaf.cert, fresh(issuer.cert), T).status


def test_crls_of_a_package_carried_ca_are_used_once_a_path_names_it(h: Hierarchy) -> None:
    s = store(h, {"ca1.crl": h.crl1, "ca2.crl": h.crl2})
    before = s.status()
    assert (before.crl_count, before.awaiting_issuer, before.refused) == (2, 2, ())
    assert status_of(s, h.revoked1, h.ca1) is REVOKED
    assert status_of(s, h.good1, h.ca1) is GOOD
    assert s.status().awaiting_issuer == 1
    assert status_of(s, h.revoked2, h.ca2) is REVOKED
    assert status_of(s, h.good2, h.ca2) is GOOD
    assert s.status().awaiting_issuer == 0


def test_two_key_generations_under_one_name_are_chosen_by_key(h: Hierarchy) -> None:
    """crl1 lists good2's serial; good2 was issued by the other key generation, whose CRL does not."""
    assert h.ca1.cert.subject == h.ca2.cert.subject
    assert h.good2.cert.issuer == h.good1.cert.issuer
    s = store(h, {"ca1.crl": h.crl1, "ca2.crl": h.crl2})
    assert status_of(s, h.good2, h.ca2) is GOOD
    result = s.check(h.good2.cert, fresh(h.ca1.cert), T)  # the wrong generation, passed by mistake
    assert result.status is UNKNOWN
    assert "did not issue" in result.detail
    # Only the other generation's CRL loaded: nothing speaks for generation 2.
    only1 = store(h, {"ca1.crl": h.crl1})
    assert status_of(only1, h.good2, h.ca2) is UNKNOWN
    assert status_of(only1, h.revoked1, h.ca1) is REVOKED


def test_crl_without_key_identifier_is_matched_by_its_signature(h: Hierarchy) -> None:
    """Without an AuthorityKeyIdentifier both generations are candidates; the signature decides."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(h.ca1.cert.subject)
        .last_update(TU)
        .next_update(NU)
        .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(h.revoked1.cert.serial_number)
                                 .revocation_date(NOW - timedelta(days=3)).build())
    )
    no_aki = builder.sign(h.ca1.rsa_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    s = store(h, {"no-aki.crl": no_aki})
    assert status_of(s, h.revoked1, h.ca1) is REVOKED
    assert status_of(s, h.good2, h.ca2) is UNKNOWN


def test_each_crl_is_verified_once_per_issuer_key(h: Hierarchy, monkeypatch: pytest.MonkeyPatch) -> None:
    """100 packages, each with its own parsed copy of the CA certificate: one verification per CRL
    and key, never a re-parse or re-hash of the CRL per package."""
    s = store(h, {"ca1.crl": h.crl1, "ca2.crl": h.crl2})
    calls: list[object] = []
    real = revocation._Signature.verifies_with

    def counting(self: revocation._Signature, key: object) -> bool:
        calls.append(key)
        return real(self, key)

    monkeypatch.setattr(revocation._Signature, "verifies_with", counting)
    parsed: list[bytes] = []
    monkeypatch.setattr(x509, "load_der_x509_crl", lambda data: parsed.append(data))
    for _ in range(100):
        assert status_of(s, h.revoked1, h.ca1) is REVOKED
        assert status_of(s, h.good2, h.ca2) is GOOD
    assert len(calls) == 2  # crl1 with ca1's key, crl2 with ca2's key
    assert parsed == []


def test_forged_crl_of_a_package_carried_ca_is_ignored_with_a_log_line(
    h: Hierarchy, caplog: pytest.LogCaptureFixture
) -> None:
    s = store(h, {"forged.crl": h.forged1})
    assert s.status().refused == ()  # its issuer is unknown yet: it cannot be judged at load
    with caplog.at_level(logging.WARNING, logger="signature.revocation"):
        first = s.check(h.good1.cert, fresh(h.ca1.cert), T)
        again = s.check(h.revoked1.cert, fresh(h.ca1.cert), T)
    assert (first.status, again.status) == (UNKNOWN, UNKNOWN)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines  # once per CRL and key, not per package
    assert "forged.crl" in lines[0]
    assert "forged or damaged" in lines[0]
    assert "JPKI-TEST" not in lines[0]  # names the file and a key identifier, not the issuer
    status = s.status()
    assert (status.crl_count, status.refused) == (0, ((CrlRefusal.SIGNATURE_INVALID, 1),))
    # The genuine CRL beside it is used.
    both = store(h, {"forged.crl": h.forged1, "ca1.crl": h.crl1})
    assert status_of(both, h.revoked1, h.ca1) is REVOKED


def test_issuer_seen_in_a_path_lets_a_forged_replacement_be_refused_at_load(
    h: Hierarchy, caplog: pytest.LogCaptureFixture
) -> None:
    """Once ca1 was the issuer of a validated path, its next CRLs are verified when loaded: a forged
    replacement is refused then, and the previously accepted CRL stays in use."""
    s = store(h, {"ca1.crl": h.crl1})
    assert status_of(s, h.revoked1, h.ca1) is REVOKED
    generation = s.generation
    with caplog.at_level(logging.WARNING, logger="signature.revocation"):
        assert s.replace({"ca1.crl": h.forged1}, at=NOW + timedelta(hours=1)) is False
    assert "forged or damaged" in caplog.text
    status = s.status()
    assert status.refused == ((CrlRefusal.SIGNATURE_INVALID, 1),)
    assert (status.kept_previous, status.crl_count, status.generation) == (1, 1, generation)
    assert status.loaded_at == NOW + timedelta(hours=1)
    assert status_of(s, h.revoked1, h.ca1) is REVOKED


def test_ca_without_crl_sign_cannot_vouch_for_a_crl(h: Hierarchy) -> None:
    ku = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                       encipher_only=False, decipher_only=False)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no cRLSign CA")])
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = Issued(_self_signed(name, key, extensions=[(ku, True)]), key)
    crl = h.pki.issue_crl(ca, [], this_update=TU, next_update=NU)
    configured = RevocationStore([], [ca.cert])
    configured.replace({"x.crl": crl})
    assert configured.status().refused == ((CrlRefusal.ISSUER_NOT_CRL_SIGNER, 1),)
    carried = RevocationStore([], h.roots)
    carried.replace({"x.crl": crl})
    assert "may not sign CRLs" in carried.check(h.good1.cert, ca.cert, T).detail


# --- the signature check on a digest, against cryptography's own ---------------------------------


def _self_signed(
    name: x509.Name, key: CertificateIssuerPrivateKeyTypes,
    extensions: list[tuple[x509.ExtensionType, bool]] | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    for ext, critical in extensions or []:
        builder = builder.add_extension(ext, critical=critical)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def _crl(name: x509.Name, key: CertificateIssuerPrivateKeyTypes, cert: x509.Certificate,
         sign: Callable[[x509.CertificateRevocationListBuilder], x509.CertificateRevocationList],
         ) -> x509.CertificateRevocationList:
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder().issuer_name(name)
        .last_update(TU).next_update(NU)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(7)
                                 .revocation_date(NOW - timedelta(days=1)).build())
    )
    return sign(builder)


PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
KINDS: dict[str, tuple[Callable[[], CertificateIssuerPrivateKeyTypes],
                       Callable[[CertificateIssuerPrivateKeyTypes], Callable[..., x509.CertificateRevocationList]]]] = {
    "rsa-pkcs1v15": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
                     lambda k: lambda b: b.sign(k, hashes.SHA256())),
    "rsa-pss": (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
                lambda k: lambda b: b.sign(k, hashes.SHA256(), rsa_padding=PSS)),
    "ecdsa-p256": (lambda: ec.generate_private_key(ec.SECP256R1()),
                   lambda k: lambda b: b.sign(k, hashes.SHA384())),
    "ed25519": (ed25519.Ed25519PrivateKey.generate, lambda k: lambda b: b.sign(k, None)),
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("case", ["genuine", "other-key", "tampered-tbs", "tampered-signature"])
def test_digest_signature_check_agrees_with_cryptography(kind: str, case: str) -> None:
    """The store verifies a CRL against the digest it took at load time (Prehashed); for every key
    type and for broken CRLs it must agree with cryptography's own is_signature_valid()."""
    new_key, signer = KINDS[kind]
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{kind} CA")])
    cert = _self_signed(name, key)
    der = _crl(name, key, cert, signer(key)).public_bytes(serialization.Encoding.DER)
    verifying_key = key.public_key()
    if case == "other-key":
        verifying_key = new_key().public_key()
    elif case == "tampered-tbs":
        raw = bytearray(der)
        where = raw.index(b"\x02\x01\x07")  # the listed serial 7 in the signed part
        raw[where + 2] = 8
        der = bytes(raw)
    elif case == "tampered-signature":
        der = der[:-1] + bytes([der[-1] ^ 1])
    crl = x509.load_der_x509_crl(der)
    expected = crl.is_signature_valid(verifying_key)
    assert expected is (case == "genuine")
    loaded = revocation._accept(crl, "x.crl", "", "x.crl", b"", ())
    assert isinstance(loaded, revocation._Crl)  # no known issuer: loaded, awaiting one
    assert loaded.signature.verifies_with(verifying_key) is expected
