"""signature.testing.pki: the JPKI-shaped test PKI the other tests, the demo and the simulator rely on."""

from __future__ import annotations

import json
import random
import stat
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from signature.identity import encode_era_date, signer_identity
from signature.policy import JPKI_SIGNING_POLICY_OID
from signature.testing import (
    CRL_BASE_URL,
    JPKI_ROOT_SUBJECT,
    MANIFEST_NAME,
    Issued,
    Resident,
    TestPKI,
    generate_cli,
    sample_residents,
)

E = TypeVar("E", bound=x509.ExtensionType)
JST = timezone(timedelta(hours=9))
NOW = datetime(2026, 4, 1, 9, 0, 0, tzinfo=JST)
NOW_UTC = NOW.astimezone(UTC)
RESIDENT = Resident(
    name="𠮷田　花子",
    name_kana="ヨシダ　ハナコ",
    sex="2",
    birth_date=date(1985, 7, 14),
    address="東京都港区芝公園一丁目5番25号",
    name_alt="吉田　花子",
)


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI.generate(now=NOW, seed=42)


@pytest.fixture(scope="module")
def signer(pki: TestPKI) -> Issued:
    return pki.issue_signer(RESIDENT)


@pytest.fixture(scope="module")
def subject_key() -> rsa.RSAPrivateKey:
    """Shared by certificates whose own key does not matter: key generation dominates run time."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _ext(cert: x509.Certificate, cls: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(cls)


# -- the hierarchies --------------------------------------------------------------------------------


def test_root_generations_share_a_name_but_not_a_key(pki: TestPKI) -> None:
    g1, g2 = pki.jpki_roots
    assert g1.cert.subject == g2.cert.subject == JPKI_ROOT_SUBJECT
    assert g1.cert.subject.rfc4514_string() == (
        "OU=Japan Agency for Local Authority Information Systems,OU=JPKI for digital signature,"
        "O=JPKI-TEST,C=JP"
    )
    assert _spki(g1.cert) != _spki(g2.cert)
    assert _ext(g1.cert, x509.SubjectKeyIdentifier).value != _ext(g2.cert, x509.SubjectKeyIdentifier).value
    assert g1.cert.serial_number != g2.cert.serial_number


def test_root_generations_overlap_and_are_valid_now(pki: TestPKI) -> None:
    g1, g2 = (r.cert for r in pki.jpki_roots)
    assert g1.not_valid_before_utc < g2.not_valid_before_utc < NOW_UTC < g1.not_valid_after_utc
    assert g1.not_valid_after_utc < g2.not_valid_after_utc


@pytest.mark.parametrize("generation", [0, 1], ids=["g1", "g2"])
def test_roots_are_self_signed_cas(pki: TestPKI, generation: int) -> None:
    root = pki.jpki_roots[generation].cert
    root.verify_directly_issued_by(root)
    bc = _ext(root, x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    ku = _ext(root, x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign
    assert ku.value.crl_sign


def test_intermediate_under_second_generation(pki: TestPKI) -> None:
    inter = pki.jpki_intermediate.cert
    assert inter.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "JPKI-TEST signing CA G2"
    assert inter.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "JPKI-TEST"
    inter.verify_directly_issued_by(pki.jpki_roots[1].cert)
    with pytest.raises(InvalidSignature):
        inter.verify_directly_issued_by(pki.jpki_roots[0].cert)
    bc = _ext(inter, x509.BasicConstraints).value
    assert bc.ca
    assert bc.path_length == 0
    aki = _ext(inter, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(pki.jpki_roots[1].cert, x509.SubjectKeyIdentifier).value.digest


def test_portal_hierarchy(pki: TestPKI) -> None:
    root, server = pki.portal_root.cert, pki.portal_server.cert
    assert root.subject.rfc4514_string() == "CN=Portal Test Root CA,O=PORTAL-TEST,C=JP"
    assert server.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "portal-sim.test"
    root.verify_directly_issued_by(root)
    server.verify_directly_issued_by(root)
    ku = _ext(server, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert not ku.value.key_cert_sign
    assert not _ext(server, x509.BasicConstraints).value.ca


# -- signing certificates -------------------------------------------------------------------------


def test_signer_is_issued_directly_by_current_root(pki: TestPKI, signer: Issued) -> None:
    signer.cert.verify_directly_issued_by(pki.jpki_roots[1].cert)
    with pytest.raises(InvalidSignature):  # same issuer name, other key
        signer.cert.verify_directly_issued_by(pki.jpki_roots[0].cert)
    assert signer.cert.issuer == JPKI_ROOT_SUBJECT
    aki = _ext(signer.cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(pki.jpki_roots[1].cert, x509.SubjectKeyIdentifier).value.digest
    assert _ext(signer.cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        signer.rsa_key.public_key()
    )


def test_signer_profile(pki: TestPKI, signer: Issued) -> None:
    cert = signer.cert
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert signer.rsa_key.key_size == 2048
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical
    assert not bc.value.ca
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert ku.value.content_commitment
    assert not ku.value.key_encipherment
    policies = _ext(cert, x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [JPKI_SIGNING_POLICY_OID]
    cdp = _ext(cert, x509.CRLDistributionPoints).value
    urls = [n.value for dp in cdp for n in (dp.full_name or [])]
    assert urls == [f"{CRL_BASE_URL}jpki-root-g2.crl"] == [pki.crl_url(pki.jpki_roots[1])]
    # No personal data in the subject: that lives in the subjectAltName only.
    assert RESIDENT.name not in cert.subject.rfc4514_string()


def test_signer_validity_until_fifth_birthday(signer: Issued) -> None:
    cert = signer.cert
    assert cert.not_valid_before_utc == NOW_UTC - timedelta(days=1)
    # Issued 2026-04-01, born 14 July: 1st birthday after issue 2026-07-14, 5th 2030-07-14 (end of day JST).
    assert cert.not_valid_after_utc == datetime(2030, 7, 14, 23, 59, 59, tzinfo=JST).astimezone(UTC)


def test_signer_identity_round_trip(signer: Issued) -> None:
    ident = signer_identity(signer.cert)
    assert (ident.name, ident.name_alt, ident.sex, ident.birth_date, ident.address, ident.address_alt) == (
        RESIDENT.name, RESIDENT.name_alt, RESIDENT.sex, RESIDENT.birth_date, RESIDENT.address, None,
    )
    assert ident.cert_serial == signer.serial_hex


def test_signer_under_intermediate(pki: TestPKI, subject_key: rsa.RSAPrivateKey) -> None:
    issued = pki.issue_signer(RESIDENT, issuer=pki.jpki_intermediate, key=subject_key)
    issued.cert.verify_directly_issued_by(pki.jpki_intermediate.cert)
    cdp = _ext(issued.cert, x509.CRLDistributionPoints).value
    assert [n.value for dp in cdp for n in (dp.full_name or [])] == [f"{CRL_BASE_URL}jpki-intermediate.crl"]


def test_signer_knobs_for_negative_tests(pki: TestPKI) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    issued = pki.issue_signer(
        RESIDENT,
        issuer=pki.jpki_roots[0],
        not_before=NOW - timedelta(days=400),
        not_after=NOW - timedelta(days=10),
        key_usage=("key_encipherment",),
        policy_oid=None,
        with_cdp=False,
        serial=0x1234,
        key=ec_key,
        hash_alg=hashes.SHA1(),  # noqa: S303 - a weak-algorithm certificate on purpose
    )
    cert = issued.cert
    # cryptography re-parses it, and the SHA-1 signature is genuine (checked by hand: its verifier
    # refuses SHA-1 too).
    assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA1
    pki.jpki_roots[0].rsa_key.public_key().verify(
        cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA1()  # noqa: S303
    )
    assert cert.serial_number == 0x1234
    assert issued.key is ec_key
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha1"
    assert cert.not_valid_after_utc == (NOW - timedelta(days=10)).astimezone(UTC)
    ku = _ext(cert, x509.KeyUsage).value
    assert ku.key_encipherment
    assert not ku.digital_signature
    present = {e.oid for e in cert.extensions}
    assert ExtensionOID.CERTIFICATE_POLICIES not in present
    assert ExtensionOID.CRL_DISTRIBUTION_POINTS not in present
    with pytest.raises(TypeError):
        _ = issued.rsa_key


def test_signer_without_key_usage_and_with_critical_policy(
    pki: TestPKI, subject_key: rsa.RSAPrivateKey
) -> None:
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.392.200149.8.5.99"), b"\x05\x00")
    issued = pki.issue_signer(
        RESIDENT, key=subject_key, key_usage=(), policy_critical=True, extra_extensions=[(unknown, True)]
    )
    present = {e.oid: e.critical for e in issued.cert.extensions}
    assert ExtensionOID.KEY_USAGE not in present
    assert present[ExtensionOID.CERTIFICATE_POLICIES] is True
    assert present[unknown.oid] is True


def test_unknown_key_usage_refused(pki: TestPKI) -> None:
    with pytest.raises(ValueError, match="unknown key usage"):
        pki.issue_signer(RESIDENT, key_usage=("non_repudiation",))


def test_naive_now_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TestPKI.generate(now=datetime(2026, 4, 1))  # noqa: DTZ001 - the point of the test


# -- CRLs -----------------------------------------------------------------------------------------


def test_crl_lists_revoked_serials_and_is_signed_by_issuer(pki: TestPKI, signer: Issued) -> None:
    root = pki.jpki_roots[1]
    revoked_at = NOW - timedelta(days=3)
    der = pki.issue_crl(
        root,
        [(signer.cert.serial_number, revoked_at), (0xABCDEF, revoked_at - timedelta(days=1))],
        this_update=NOW - timedelta(hours=6),
        next_update=NOW + timedelta(days=1),
    )
    crl = x509.load_der_x509_crl(der)
    assert crl.issuer == root.cert.subject
    assert crl.is_signature_valid(root.rsa_key.public_key())
    assert not crl.is_signature_valid(pki.jpki_roots[0].rsa_key.public_key())  # same name, other key
    assert {r.serial_number for r in crl} == {signer.cert.serial_number, 0xABCDEF}
    entry = crl.get_revoked_certificate_by_serial_number(signer.cert.serial_number)
    assert entry is not None
    assert entry.revocation_date_utc == revoked_at.astimezone(UTC)
    assert crl.last_update_utc == (NOW - timedelta(hours=6)).astimezone(UTC)
    assert crl.next_update_utc == (NOW + timedelta(days=1)).astimezone(UTC)
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(root.cert, x509.SubjectKeyIdentifier).value.digest
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == int((NOW - timedelta(hours=6)).timestamp())


def test_crl_signed_with_sha1(pki: TestPKI) -> None:
    root = pki.jpki_roots[1]
    crl = x509.load_der_x509_crl(
        pki.issue_crl(root, [(7, NOW)], this_update=NOW, next_update=NOW + timedelta(days=1),
                      hash_alg=hashes.SHA1())  # noqa: S303 - a weak-algorithm CRL on purpose
    )
    assert crl.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA1
    # Checked by hand: cryptography's is_signature_valid() refuses SHA-1 and answers False.
    root.rsa_key.public_key().verify(
        crl.signature, crl.tbs_certlist_bytes, padding.PKCS1v15(), hashes.SHA1()  # noqa: S303
    )


def test_crl_without_next_update(pki: TestPKI) -> None:
    root = pki.jpki_roots[1]
    crl = x509.load_der_x509_crl(pki.issue_crl(root, [(7, NOW)], this_update=NOW, next_update=None))
    assert crl.next_update_utc is None
    assert crl.is_signature_valid(root.rsa_key.public_key())
    assert [r.serial_number for r in crl] == [7]


def test_empty_crl_of_intermediate(pki: TestPKI) -> None:
    inter = pki.jpki_intermediate
    crl = x509.load_der_x509_crl(
        pki.issue_crl(inter, [], this_update=NOW, next_update=NOW + timedelta(days=1))
    )
    assert len(crl) == 0
    assert crl.is_signature_valid(inter.rsa_key.public_key())


# -- persistence ----------------------------------------------------------------------------------


def _certs(p: TestPKI) -> list[x509.Certificate]:
    return [i.cert for i in (*p.jpki_roots, p.jpki_intermediate, p.portal_root, p.portal_server)]


def test_save_load_round_trip(pki: TestPKI, subject_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    pki.save(tmp_path)
    roots = sorted(p.name for p in (tmp_path / "jpki-roots").iterdir())
    assert roots == ["jpki-root-g1.pem", "jpki-root-g2.pem"]
    assert [p.name for p in (tmp_path / "portal-roots").iterdir()] == ["portal-root.pem"]
    for name in ("jpki-intermediate.pem", "portal-server.pem", "portal-server.key.pem", MANIFEST_NAME):
        assert (tmp_path / name).is_file()
    keys = [tmp_path / "portal-server.key.pem", *(tmp_path / "ca-keys").iterdir()]
    assert len(keys) == 5
    for key_file in keys:
        assert b"BEGIN PRIVATE KEY" in key_file.read_bytes()  # PKCS#8, unencrypted
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["seed"] == 42
    assert manifest["certificates"]["jpki_roots[1]"]["cert"] == "jpki-roots/jpki-root-g2.pem"

    loaded = TestPKI.load(tmp_path)
    assert _certs(loaded) == _certs(pki)
    assert loaded.now == pki.now
    assert loaded.seed == pki.seed
    for a, b in zip(
        (*pki.jpki_roots, pki.jpki_intermediate, pki.portal_root, pki.portal_server),
        (*loaded.jpki_roots, loaded.jpki_intermediate, loaded.portal_root, loaded.portal_server),
        strict=True,
    ):
        assert a.key_pem() == b.key_pem()
    # The loaded PKI still issues: a certificate it signs chains to the original root.
    issued = loaded.issue_signer(RESIDENT, key=subject_key)
    issued.cert.verify_directly_issued_by(pki.jpki_roots[1].cert)


def test_load_continues_the_serial_sequence(
    pki: TestPKI, tmp_path: Path, subject_key: rsa.RSAPrivateKey
) -> None:
    original = pki
    original.save(tmp_path)
    loaded = TestPKI.load(tmp_path)
    reseeded = TestPKI.load(tmp_path, seed=10)
    first, again, other = (
        p.issue_signer(RESIDENT, key=subject_key).cert.serial_number for p in (original, loaded, reseeded)
    )
    assert first == again
    assert other != first


def test_load_refuses_a_key_that_does_not_match(pki: TestPKI, tmp_path: Path) -> None:
    pki.save(tmp_path)
    (tmp_path / "portal-server.key.pem").write_bytes(pki.portal_root.key_pem())
    with pytest.raises(ValueError, match="does not belong"):
        TestPKI.load(tmp_path)


# -- determinism ----------------------------------------------------------------------------------


def _serials(p: TestPKI) -> list[int]:
    return [c.serial_number for c in _certs(p)]


def test_generate_cli_with_same_seed_gives_same_serials(pki: TestPKI, tmp_path: Path) -> None:
    out = tmp_path / "out"
    again = generate_cli(out, NOW, 42)  # the module's PKI has seed 42 too
    assert (out / MANIFEST_NAME).is_file()
    assert _certs(TestPKI.load(out)) == _certs(again)
    assert _serials(again) == _serials(pki)
    assert [c.subject for c in _certs(again)] == [c.subject for c in _certs(pki)]
    assert [c.not_valid_after_utc for c in _certs(again)] == [c.not_valid_after_utc for c in _certs(pki)]
    assert _spki(again.jpki_roots[1].cert) != _spki(pki.jpki_roots[1].cert)  # keys are really random


def test_other_seed_other_serials(pki: TestPKI) -> None:
    other = TestPKI.generate(now=NOW, seed=43)
    assert set(_serials(other)).isdisjoint(_serials(pki))


def test_same_rng_same_residents() -> None:
    assert sample_residents(_rng(1), 20) == sample_residents(_rng(1), 20)
    assert sample_residents(_rng(1), 20) != sample_residents(_rng(2), 20)


# -- sample residents -----------------------------------------------------------------------------


def _is_katakana(text: str) -> bool:
    return all(ch == "　" or unicodedata.name(ch).startswith("KATAKANA") for ch in text)


def test_sample_residents_look_like_minato_residents() -> None:
    residents = sample_residents(_rng(7), 30)
    assert len(residents) == 30
    for r in residents:
        family, given = r.name.split("　")
        assert family
        assert given
        assert r.name_kana.count("　") == 1
        assert _is_katakana(r.name_kana)
        assert r.address.startswith("東京都港区")
        assert "丁目" in r.address
        assert r.sex in {"1", "2"}
    eras = {encode_era_date(r.birth_date)[0] for r in residents}
    assert eras == {"3", "4", "5"}  # 昭和, 平成, 令和


def test_sample_residents_have_substitute_characters() -> None:
    residents = sample_residents(_rng(7), 14)
    with_name_alt = [r for r in residents if r.name_alt is not None]
    with_address_alt = [r for r in residents if r.address_alt is not None]
    assert with_name_alt
    assert with_address_alt
    variants: dict[str, str | int | None] = {"髙": "高", "𠮷": "吉", "﨑": "崎", "濵": "浜"}
    for r in with_name_alt:
        assert any(v in r.name for v in variants)
        assert r.name_alt == r.name.translate(str.maketrans(variants))
    for r in with_address_alt:
        assert any(v in r.address for v in variants)
        assert r.address_alt == r.address.translate(str.maketrans(variants))
    for r in residents:
        if r.name_alt is None:
            assert not any(v in r.name for v in variants)
