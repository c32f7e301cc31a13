"""Tests of signature.revocation: a verified, indexed CRL store.

The PKI is made here with cryptography: two roots with the SAME subject name and different keys (as
JPKI root generations are), leaves of the second root with and without CRLDistributionPoints, and
CRLs built with x509.CertificateRevocationListBuilder.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import RevokedError

from signature import revocation
from signature.errors import SignatureError, TrustConfigError
from signature.revocation import CrlRefusal, RevocationStatus, RevocationStore

UTC = dt.UTC
JST = dt.timezone(dt.timedelta(hours=9))
T0 = dt.datetime(2025, 4, 1, 0, 0, 0, tzinfo=UTC)  # thisUpdate of the CRLs
T_NEXT = T0 + dt.timedelta(days=2)  # nextUpdate
AT = T0 + dt.timedelta(hours=1)  # the usual validation time
REVOKED_AT = T0 - dt.timedelta(days=10)
LATE_REVOCATION = T0 + dt.timedelta(hours=3)  # listed, but revoked after AT

ROOT_NAME = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI-TEST"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for digital signature"),
])
DP_A = x509.UniformResourceIdentifier("http://crl.jpki-test.example/partition-a.crl")
DP_B = x509.UniformResourceIdentifier("http://crl.jpki-test.example/partition-b.crl")

# Serials of the second root's leaves.
S_REVOKED_CDP = 1001  # CDP partition A, listed
S_REVOKED_NO_CDP = 1002  # no CDP, listed
S_GOOD = 1003  # no CDP, not listed
S_LATE = 1004  # no CDP, listed with a revocation date after AT
S_PART_B = 1005  # CDP partition B, listed in the partition-A CRL only by mistake of the test
S_ROOT1_LEAF = 2001  # issued by the first root, listed in the first root's CRL


@dataclass(frozen=True)
class Pki:
    root1_key: rsa.RSAPrivateKey
    root1: x509.Certificate
    root2_key: rsa.RSAPrivateKey
    root2: x509.Certificate
    leaves: dict[str, x509.Certificate]


def _root(key: rsa.RSAPrivateKey) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(ROOT_NAME)
        .issuer_name(ROOT_NAME)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf(
    issuer_key: rsa.RSAPrivateKey,
    issuer: x509.Certificate,
    leaf_key: rsa.RSAPrivateKey,
    serial: int,
    cdp: x509.GeneralName | None,
    *,
    not_after: dt.datetime = dt.datetime(2029, 1, 1, tzinfo=UTC),
) -> x509.Certificate:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test signer {serial}")]))
        .issuer_name(issuer.subject)
        .public_key(leaf_key.public_key())
        .serial_number(serial)
        .not_valid_before(dt.datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    if cdp is not None:
        builder = builder.add_extension(
            x509.CRLDistributionPoints([x509.DistributionPoint([cdp], None, None, None)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki() -> Pki:
    root1_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root2_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root1, root2 = _root(root1_key), _root(root2_key)
    assert root1.subject == root2.subject
    leaves = {
        "revoked_cdp": _leaf(root2_key, root2, leaf_key, S_REVOKED_CDP, DP_A),
        "revoked_no_cdp": _leaf(root2_key, root2, leaf_key, S_REVOKED_NO_CDP, None),
        "good": _leaf(root2_key, root2, leaf_key, S_GOOD, None),
        "late": _leaf(root2_key, root2, leaf_key, S_LATE, None),
        "part_b": _leaf(root2_key, root2, leaf_key, S_PART_B, DP_B),
        "root1_leaf": _leaf(root1_key, root1, leaf_key, S_ROOT1_LEAF, None),
    }
    return Pki(root1_key, root1, root2_key, root2, leaves)


def make_crl(
    key: rsa.RSAPrivateKey,
    issuer: x509.Certificate,
    revoked: Sequence[tuple[int, dt.datetime]],
    *,
    this_update: dt.datetime = T0,
    next_update: dt.datetime = T_NEXT,
    idp: Sequence[x509.GeneralName] | None = None,
    delta: bool = False,
    aki_from: x509.Certificate | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> x509.CertificateRevocationList:
    aki_cert = aki_from if aki_from is not None else issuer
    ski = aki_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    if idp is not None:
        builder = builder.add_extension(
            x509.IssuingDistributionPoint(
                full_name=list(idp), relative_name=None, only_contains_user_certs=False,
                only_contains_ca_certs=False, only_some_reasons=None, indirect_crl=False,
                only_contains_attribute_certs=False,
            ),
            critical=True,
        )
    if delta:
        builder = builder.add_extension(x509.DeltaCRLIndicator(1), critical=True)
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(key, hashes.SHA256())


def idp(
    *,
    full_name: Sequence[x509.GeneralName] | None = None,
    relative_name: x509.RelativeDistinguishedName | None = None,
    user: bool = False,
    ca: bool = False,
    reasons: frozenset[x509.ReasonFlags] | None = None,
    indirect: bool = False,
) -> tuple[x509.ExtensionType, bool]:
    return x509.IssuingDistributionPoint(
        full_name=None if full_name is None else list(full_name), relative_name=relative_name,
        only_contains_user_certs=user, only_contains_ca_certs=ca, only_some_reasons=reasons,
        indirect_crl=indirect, only_contains_attribute_certs=False,
    ), True


def root2_crl(pki: Pki, **kwargs: object) -> x509.CertificateRevocationList:
    """The second root's complete CRL (no IssuingDistributionPoint)."""
    revoked = [
        (S_REVOKED_CDP, REVOKED_AT),
        (S_REVOKED_NO_CDP, REVOKED_AT),
        (S_LATE, LATE_REVOCATION),
    ]
    return make_crl(pki.root2_key, pki.root2, revoked, **kwargs)  # type: ignore[arg-type]


def der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


def write(path: Path, data: bytes) -> Path:
    """Replace ``path`` atomically, as a CRL downloader should (new inode: refresh sees it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def store_of(tmp_path: Path, pki: Pki, *crl_files: tuple[str, bytes]) -> RevocationStore:
    paths = [write(tmp_path / name, data) for name, data in crl_files]
    return RevocationStore(paths, [pki.root1, pki.root2])


# --- status --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("leaf", "at", "status"),
    [
        pytest.param("good", AT, RevocationStatus.GOOD, id="good"),
        pytest.param("revoked_cdp", AT, RevocationStatus.REVOKED, id="revoked"),
        pytest.param("revoked_no_cdp", AT, RevocationStatus.REVOKED, id="revoked-without-CDP"),
        pytest.param("revoked_no_cdp", AT.astimezone(JST), RevocationStatus.REVOKED, id="revoked-at-in-JST"),
        pytest.param("late", AT, RevocationStatus.GOOD, id="revoked-after-at"),
        pytest.param("late", LATE_REVOCATION, RevocationStatus.REVOKED, id="revoked-exactly-at"),
        pytest.param("good", T0, RevocationStatus.GOOD, id="at-equals-thisUpdate"),
        pytest.param("revoked_no_cdp", T_NEXT, RevocationStatus.UNKNOWN, id="crl-expired-at-nextUpdate"),
        pytest.param("good", T_NEXT + dt.timedelta(days=30), RevocationStatus.UNKNOWN, id="crl-expired"),
        # A CRL issued after the time speaks for it (package-format.md §4): it knows the most.
        pytest.param("revoked_no_cdp", T0 - dt.timedelta(seconds=1), RevocationStatus.REVOKED,
                     id="crl-issued-after-the-time"),
        pytest.param("revoked_no_cdp", REVOKED_AT - dt.timedelta(seconds=1), RevocationStatus.GOOD,
                     id="crl-issued-after-the-time-revoked-later"),
        pytest.param("root1_leaf", AT, RevocationStatus.UNKNOWN, id="other-root-has-no-crl"),
    ],
)
def test_status(tmp_path: Path, pki: Pki, leaf: str, at: dt.datetime, status: RevocationStatus) -> None:
    store = store_of(tmp_path, pki, ("root2.crl", der(root2_crl(pki))))
    assert store.crl_count == 1
    issuer = pki.root1 if leaf == "root1_leaf" else pki.root2
    result = store.check(pki.leaves[leaf], issuer, at)
    assert result.status is status, result.detail
    if status is RevocationStatus.UNKNOWN:
        assert result.crl_this_update is None
    else:
        assert (result.crl_this_update, result.crl_next_update) == (T0, T_NEXT)
    if status is RevocationStatus.REVOKED:
        assert result.revoked_at in (REVOKED_AT, LATE_REVOCATION)
    else:
        assert result.revoked_at is None
    listed_later = {"late": LATE_REVOCATION, "revoked_no_cdp": REVOKED_AT}
    if status is RevocationStatus.GOOD and leaf in listed_later:
        assert result.revoked_later == listed_later[leaf]  # revoked, but only after the time
    else:
        assert result.revoked_later is None
    assert "test signer" not in result.detail  # never a subject


def test_revoked_result_fields(tmp_path: Path, pki: Pki) -> None:
    store = store_of(tmp_path, pki, ("root2.crl", der(root2_crl(pki))))
    result = store.check(pki.leaves["revoked_cdp"], pki.root2, AT)
    assert result.status == "revoked"
    assert result.revoked_at == REVOKED_AT
    assert result.revoked_at.tzinfo is not None
    assert "root2.crl" in result.detail


def test_newest_crl_that_speaks_for_the_time_wins(tmp_path: Path, pki: Pki) -> None:
    """Of the CRLs current at the time or issued after it, the newest decides: it knows the most.

    (The CRLs here disagree on purpose — an entry that disappears is what a released
    certificateHold looks like — so that which CRL decided is visible in the answer.)
    """
    older = root2_crl(pki)
    newer = make_crl(pki.root2_key, pki.root2, [], this_update=T0 + dt.timedelta(minutes=30))
    later = make_crl(pki.root2_key, pki.root2, [(S_GOOD, REVOKED_AT)],
                     this_update=T0 + dt.timedelta(hours=2), next_update=T_NEXT + dt.timedelta(hours=2))
    store = store_of(tmp_path, pki, ("a.crl", der(older)), ("b.crl", der(newer)), ("c.crl", der(later)))
    assert store.crl_count == 3
    for at in (T0, AT, T0 + dt.timedelta(hours=3)):
        good = store.check(pki.leaves["good"], pki.root2, at)
        assert (good.status, good.crl_this_update) == (RevocationStatus.REVOKED, T0 + dt.timedelta(hours=2))
        assert store.check(pki.leaves["revoked_no_cdp"], pki.root2, at).status is RevocationStatus.GOOD
    # Once the later CRL has expired too, nothing speaks for the time: stale, not "good".
    expired = store.check(pki.leaves["good"], pki.root2, T_NEXT + dt.timedelta(hours=2))
    assert expired.status is RevocationStatus.UNKNOWN
    assert "stale" in expired.detail


def test_crl_issued_after_the_certificate_expired_is_not_used(tmp_path: Path, pki: Pki) -> None:
    """RFC 5280 §3.3 lets a CA drop expired certificates from later CRLs: such a CRL proves nothing."""
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    short = _leaf(pki.root2_key, pki.root2, leaf_key, 4001, None, not_after=T0 + dt.timedelta(hours=1))
    at = T0 + dt.timedelta(minutes=30)  # the certificate is valid then
    after_expiry = make_crl(pki.root2_key, pki.root2, [], this_update=T0 + dt.timedelta(hours=2))
    store = store_of(tmp_path, pki, ("after-expiry.crl", der(after_expiry)))
    assert store.check(short, pki.root2, at).status is RevocationStatus.UNKNOWN
    # The same CRL still speaks for a certificate that had not expired when it was issued.
    assert store.check(pki.leaves["good"], pki.root2, at).status is RevocationStatus.GOOD
    # A CRL issued after the time but before the expiry does.
    before_expiry = make_crl(pki.root2_key, pki.root2, [(4001, T0 - dt.timedelta(days=1))],
                             this_update=T0 + dt.timedelta(minutes=45))
    store = store_of(tmp_path, pki, ("after-expiry.crl", der(after_expiry)), ("before.crl", der(before_expiry)))
    assert store.check(short, pki.root2, at).status is RevocationStatus.REVOKED


def test_wrong_same_name_issuer_is_not_consulted(tmp_path: Path, pki: Pki) -> None:
    """Passing the other same-name root never borrows its CRLs: the key identifier differs."""
    crl1 = make_crl(pki.root1_key, pki.root1, [])
    store = store_of(tmp_path, pki, ("root1.crl", der(crl1)))
    result = store.check(pki.leaves["revoked_no_cdp"], pki.root1, AT)
    assert result.status is RevocationStatus.UNKNOWN
    assert "did not issue" in result.detail


def test_crl_of_an_issuer_not_configured_is_used_for_that_issuer(tmp_path: Path, pki: Pki) -> None:
    """A CRL whose issuer is not configured waits for the issuer certificate of a validated path
    (here root2, passed to check() as a verifier would pass a CA carried in the package); the
    same-name root1 configured meanwhile cannot claim it: its key did not sign it."""
    store = RevocationStore([write(tmp_path / "r.crl", der(root2_crl(pki)))], [pki.root1])
    assert (store.crl_count, store.status().awaiting_issuer) == (1, 1)
    assert store.check(pki.leaves["root1_leaf"], pki.root1, AT).status is RevocationStatus.UNKNOWN
    assert store.check(pki.leaves["good"], pki.root2, AT).status is RevocationStatus.GOOD
    assert store.check(pki.leaves["revoked_no_cdp"], pki.root2, AT).status is RevocationStatus.REVOKED
    assert store.status().awaiting_issuer == 0


def test_equal_issuer_object_is_recognised(tmp_path: Path, pki: Pki) -> None:
    """The issuer may be a different object with the same bytes (e.g. parsed from the package)."""
    store = store_of(tmp_path, pki, ("root2.crl", der(root2_crl(pki))))
    copy = x509.load_der_x509_certificate(pki.root2.public_bytes(serialization.Encoding.DER))
    assert copy is not pki.root2
    assert store.check(pki.leaves["revoked_no_cdp"], copy, AT).status is RevocationStatus.REVOKED


# --- which CRLs are accepted -------------------------------------------------------------------------


def test_crl_signed_by_other_same_name_root_is_not_used(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """The first root's CRL (same issuer name) says nothing about the second root's leaves."""
    crl1 = make_crl(pki.root1_key, pki.root1, [(S_ROOT1_LEAF, REVOKED_AT), (S_GOOD, REVOKED_AT)])
    store = store_of(tmp_path, pki, ("root1.crl", der(crl1)))
    assert store.crl_count == 1
    assert store.check(pki.leaves["good"], pki.root2, AT).status is RevocationStatus.UNKNOWN
    assert store.check(pki.leaves["root1_leaf"], pki.root1, AT).status is RevocationStatus.REVOKED
    assert not caplog.records


def test_crl_claiming_other_roots_key_id_is_ignored(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """Signed by the first root but carrying the second root's AuthorityKeyIdentifier: no signer."""
    crl = make_crl(pki.root1_key, pki.root1, [(S_GOOD, REVOKED_AT)], aki_from=pki.root2)
    with caplog.at_level(logging.WARNING, logger="signature.revocation"):
        store = store_of(tmp_path, pki, ("mixed.crl", der(crl)))
    assert store.crl_count == 0
    assert store.check(pki.leaves["good"], pki.root2, AT).status is RevocationStatus.UNKNOWN
    assert "mixed.crl" in caplog.text
    assert "does not verify with the issuer it names" in caplog.text
    assert store.status().refused == ((CrlRefusal.SIGNATURE_INVALID, 1),)


@pytest.mark.parametrize("forgery", ["tampered-signature", "tampered-entries", "unknown-key"])
def test_forged_crl_is_ignored(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture, forgery: str
) -> None:
    if forgery == "unknown-key":
        # Right name, right key identifier, wrong key.
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        data = der(make_crl(other, pki.root2, [(S_GOOD, REVOKED_AT)]))
    else:
        raw = bytearray(der(root2_crl(pki)))
        if forgery == "tampered-signature":
            raw[-1] ^= 0x01
        else:  # make serial 1002 read 1003 in the signed part: a good certificate "revoked"
            listed = b"\x02\x02" + S_REVOKED_NO_CDP.to_bytes(2, "big")  # INTEGER 1002
            where = raw.index(listed)
            raw[where:where + 4] = b"\x02\x02" + S_GOOD.to_bytes(2, "big")
        data = bytes(raw)
    with caplog.at_level(logging.WARNING, logger="signature.revocation"):
        store = store_of(tmp_path, pki, ("forged.crl", data))
    assert store.crl_count == 0
    assert store.check(pki.leaves["good"], pki.root2, AT).status is RevocationStatus.UNKNOWN
    assert "forged.crl" in caplog.text
    assert "JPKI-TEST" not in caplog.text  # the warning names the file, not the issuer


@pytest.mark.filterwarnings("ignore:DSA is deprecated:cryptography.utils.CryptographyDeprecationWarning")
def test_dsa_signed_crl_is_ignored(tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    """A CRL signed with DSA is refused as DSA signatures are, even by a configured DSA issuer."""
    from cryptography.hazmat.primitives.asymmetric import dsa  # deprecated (cryptography >= 51): here only

    key = dsa.generate_private_key(key_size=2048)
    root = _root(key)  # type: ignore[arg-type]  # _root signs with any issuer key
    crl = make_crl(key, root, [(S_GOOD, REVOKED_AT)])  # type: ignore[arg-type]
    assert crl.is_signature_valid(key.public_key())  # a genuine DSA signature, not a broken one
    write(tmp_path / "dsa.crl", der(crl))
    with caplog.at_level(logging.WARNING, logger="signature.revocation"):
        store = RevocationStore([tmp_path / "dsa.crl"], [root])
    assert store.crl_count == 0
    assert "dsa.crl" in caplog.text
    assert "DSA signatures are refused" in caplog.text


def test_malformed_file_is_ignored(tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="signature.revocation"):
        store = store_of(tmp_path, pki, ("junk.crl", b"\x30\x03\x02\x01"), ("good.der", der(root2_crl(pki))),
                         ("empty.pem", b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
    assert store.crl_count == 1
    assert "junk.crl" in caplog.text
    assert "empty.pem" in caplog.text


def test_delta_crl_is_ignored(tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    delta = make_crl(pki.root2_key, pki.root2, [(S_GOOD, REVOKED_AT)], delta=True)
    with caplog.at_level(logging.WARNING, logger="signature.revocation"):
        store = store_of(tmp_path, pki, ("delta.crl", der(delta)))
    assert store.crl_count == 0
    assert store.check(pki.leaves["good"], pki.root2, AT).status is RevocationStatus.UNKNOWN
    assert "delta.crl" in caplog.text
    assert "delta CRLs are not supported" in caplog.text


@pytest.mark.parametrize(
    ("extension", "reason"),
    [
        pytest.param((x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"),
                      True), "unknown critical extension", id="unknown-critical-extension"),
        pytest.param(idp(indirect=True), "indirect CRLs", id="indirect-crl"),
        pytest.param(idp(reasons=frozenset({x509.ReasonFlags.key_compromise})), "some revocation reasons",
                     id="only-some-reasons"),
    ],
)
def test_unsupported_crl_is_ignored(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture,
    extension: tuple[x509.ExtensionType, bool], reason: str,
) -> None:
    crl = make_crl(pki.root2_key, pki.root2, [(S_GOOD, REVOKED_AT)], extensions=[extension])
    with caplog.at_level(logging.WARNING, logger="signature.revocation"):
        store = store_of(tmp_path, pki, ("odd.crl", der(crl)))
    assert store.crl_count == 0
    assert store.check(pki.leaves["good"], pki.root2, AT).status is RevocationStatus.UNKNOWN
    assert "odd.crl" in caplog.text
    assert reason in caplog.text


def test_unknown_noncritical_extension_is_fine(tmp_path: Path, pki: Pki) -> None:
    ext = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    crl = make_crl(pki.root2_key, pki.root2, [(S_GOOD, REVOKED_AT)], extensions=[(ext, False)])
    store = store_of(tmp_path, pki, ("fine.crl", der(crl)))
    assert store.check(pki.leaves["good"], pki.root2, AT).status is RevocationStatus.REVOKED


# --- files and sources -----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["DER", "PEM"])
def test_der_and_pem_files(tmp_path: Path, pki: Pki, encoding: str) -> None:
    crl = root2_crl(pki)
    data = der(crl) if encoding == "DER" else pem(crl)
    store = store_of(tmp_path, pki, (f"root2.{encoding.lower()}", data))
    assert store.crl_count == 1
    assert store.check(pki.leaves["revoked_cdp"], pki.root2, AT).status is RevocationStatus.REVOKED


def test_pem_with_two_crls(tmp_path: Path, pki: Pki) -> None:
    crl1 = make_crl(pki.root1_key, pki.root1, [(S_ROOT1_LEAF, REVOKED_AT)])
    bundle = pem(crl1) + b"\n" + pem(root2_crl(pki))
    store = store_of(tmp_path, pki, ("bundle.pem", bundle))
    assert store.crl_count == 2
    assert store.check(pki.leaves["root1_leaf"], pki.root1, AT).status is RevocationStatus.REVOKED
    result = store.check(pki.leaves["revoked_no_cdp"], pki.root2, AT)
    assert result.status is RevocationStatus.REVOKED
    assert "bundle.pem#2" in result.detail


def test_directory_source(tmp_path: Path, pki: Pki) -> None:
    crl_dir = tmp_path / "crls"
    (crl_dir / "sub").mkdir(parents=True)
    crl1 = make_crl(pki.root1_key, pki.root1, [(S_ROOT1_LEAF, REVOKED_AT)])
    write(crl_dir / "root1.CRL", der(crl1))
    write(crl_dir / "root2.pem", pem(root2_crl(pki)))
    # Neither a CRL suffix nor a top-level file: not read.
    write(crl_dir / "notes.txt", der(make_crl(pki.root2_key, pki.root2, [(S_GOOD, REVOKED_AT)])))
    write(crl_dir / "sub" / "nested.crl", der(make_crl(pki.root2_key, pki.root2, [(S_GOOD, REVOKED_AT)],
                                                       this_update=T0 + dt.timedelta(minutes=1))))
    store = RevocationStore([crl_dir], [pki.root1, pki.root2])
    assert store.crl_count == 2
    assert store.check(pki.leaves["root1_leaf"], pki.root1, AT).status is RevocationStatus.REVOKED
    assert store.check(pki.leaves["revoked_no_cdp"], pki.root2, AT).status is RevocationStatus.REVOKED
    assert store.check(pki.leaves["good"], pki.root2, AT).status is RevocationStatus.GOOD


def test_refresh(tmp_path: Path, pki: Pki) -> None:
    path = write(tmp_path / "root2.crl", der(root2_crl(pki)))
    store = RevocationStore([tmp_path], [pki.root2])
    assert store.check(pki.leaves["good"], pki.root2, AT).status is RevocationStatus.GOOD
    assert store.refresh() is False  # nothing changed

    # Same bytes, new mtime: re-hashed, not re-loaded, and not a change.
    os.utime(path, ns=(1, 1))
    assert store.refresh() is False

    newer = make_crl(pki.root2_key, pki.root2, [(S_GOOD, REVOKED_AT)],
                     this_update=T0 + dt.timedelta(minutes=5))
    write(path, der(newer))
    assert store.refresh() is True
    assert store.crl_count == 1
    assert store.check(pki.leaves["good"], pki.root2, AT).status is RevocationStatus.REVOKED
    assert store.check(pki.leaves["revoked_no_cdp"], pki.root2, AT).status is RevocationStatus.GOOD
    assert store.refresh() is False

    # A second file appears, then disappears.
    extra = write(tmp_path / "root2-old.der", der(root2_crl(pki)))
    assert store.refresh() is True
    assert store.crl_count == 2
    extra.unlink()
    assert store.refresh() is True
    assert store.crl_count == 1


def test_refresh_in_place_rewrite_same_size(tmp_path: Path, pki: Pki) -> None:
    """An in-place rewrite with the same size is seen through mtime_ns."""
    path = tmp_path / "root2.crl"
    path.write_bytes(der(make_crl(pki.root2_key, pki.root2, [(S_GOOD, T0 - dt.timedelta(days=1))])))
    store = RevocationStore([path], [pki.root2])
    assert store.check(pki.leaves["good"], pki.root2, AT).status is RevocationStatus.REVOKED
    newer = der(make_crl(pki.root2_key, pki.root2, [(S_LATE, T0 - dt.timedelta(days=1))]))
    assert len(newer) == path.stat().st_size
    before = path.stat().st_mtime_ns
    path.write_bytes(newer)
    os.utime(path, ns=(before + 1_000_000, before + 1_000_000))
    assert store.refresh() is True
    assert store.check(pki.leaves["good"], pki.root2, AT).status is RevocationStatus.GOOD


def test_renamed_file_is_not_verified_again(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "a.crl", der(root2_crl(pki)))
    store = RevocationStore([tmp_path], [pki.root2])
    generation = store.generation
    calls: list[object] = []

    def counting(*args: object) -> bool:
        calls.append(args)
        return True

    monkeypatch.setattr(revocation._Signature, "verifies_with", counting)
    monkeypatch.setattr(x509, "load_der_x509_crl", counting)
    os.replace(path, tmp_path / "b.crl")
    assert store.refresh() is False  # the same revocation data under another name: no change ...
    assert store.generation == generation
    assert calls == []  # ... and the same bytes were not parsed and verified again
    result = store.check(pki.leaves["revoked_no_cdp"], pki.root2, AT)
    assert result.status is RevocationStatus.REVOKED
    assert "b.crl" in result.detail


def test_lookups_during_refresh_see_a_whole_index(tmp_path: Path, pki: Pki) -> None:
    """Every answer comes from either the old or the new CRL, never from a half-built index."""
    first = der(root2_crl(pki))
    second = der(make_crl(pki.root2_key, pki.root2, [(S_GOOD, REVOKED_AT)],
                          this_update=T0 + dt.timedelta(minutes=1)))
    path = write(tmp_path / "root2.crl", first)
    store = RevocationStore([path], [pki.root2])
    expected = {
        T0: (RevocationStatus.GOOD, RevocationStatus.REVOKED),
        T0 + dt.timedelta(minutes=1): (RevocationStatus.REVOKED, RevocationStatus.GOOD),
    }
    stop = threading.Event()
    seen: list[tuple[object, ...]] = []

    def reader() -> None:
        while not stop.is_set():
            good = store.check(pki.leaves["good"], pki.root2, AT)
            bad = store.check(pki.leaves["revoked_no_cdp"], pki.root2, AT)
            assert good.crl_this_update is not None
            # Two checks may straddle a swap, but each one is internally consistent.
            assert good.status is expected[good.crl_this_update][0]
            assert bad.crl_this_update is not None
            assert bad.status is expected[bad.crl_this_update][1]
            seen.append((good.crl_this_update, bad.crl_this_update))

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        readers = [pool.submit(reader) for _ in range(2)]
        try:
            for i in range(40):
                write(path, second if i % 2 == 0 else first)
                assert store.refresh() is True
        finally:
            stop.set()
        for r in readers:
            r.result()  # re-raises an assertion failure from a reader
    assert seen


def test_missing_source_is_a_configuration_error(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(TrustConfigError):
        RevocationStore([tmp_path / "no-such-dir"], [pki.root2])


def test_source_vanishing_keeps_previous_index(tmp_path: Path, pki: Pki) -> None:
    path = write(tmp_path / "root2.crl", der(root2_crl(pki)))
    store = RevocationStore([path], [pki.root2])
    path.unlink()
    with pytest.raises(TrustConfigError):
        store.refresh()
    assert store.check(pki.leaves["revoked_no_cdp"], pki.root2, AT).status is RevocationStatus.REVOKED


# --- IssuingDistributionPoint partitions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("leaf", "status"),
    [
        pytest.param("revoked_cdp", RevocationStatus.REVOKED, id="cert-in-partition"),
        pytest.param("part_b", RevocationStatus.UNKNOWN, id="cert-in-other-partition"),
        pytest.param("revoked_no_cdp", RevocationStatus.UNKNOWN, id="cert-without-CDP"),
    ],
)
def test_idp_partition(tmp_path: Path, pki: Pki, leaf: str, status: RevocationStatus) -> None:
    # The partition-A CRL even lists the partition-B certificate: it must not be believed for it.
    revoked = [(S_REVOKED_CDP, REVOKED_AT), (S_PART_B, REVOKED_AT), (S_REVOKED_NO_CDP, REVOKED_AT)]
    part_a = make_crl(pki.root2_key, pki.root2, revoked, idp=[DP_A])
    store = store_of(tmp_path, pki, ("partition-a.crl", der(part_a)))
    assert store.check(pki.leaves[leaf], pki.root2, AT).status is status


def test_idp_partition_and_complete_crl(tmp_path: Path, pki: Pki) -> None:
    """A complete CRL still covers every certificate; the later current CRL decides."""
    part_a = make_crl(pki.root2_key, pki.root2, [], idp=[DP_A], this_update=T0 + dt.timedelta(minutes=10))
    store = store_of(tmp_path, pki, ("partition-a.crl", der(part_a)), ("full.crl", der(root2_crl(pki))))
    assert store.check(pki.leaves["revoked_cdp"], pki.root2, AT).status is RevocationStatus.GOOD
    # Also at T0, before the partition CRL was issued: issued later, it speaks for T0 and is newer.
    assert store.check(pki.leaves["revoked_cdp"], pki.root2, T0).status is RevocationStatus.GOOD
    (tmp_path / "full").mkdir()
    only_full = store_of(tmp_path / "full", pki, ("full.crl", der(root2_crl(pki))))
    assert only_full.check(pki.leaves["revoked_cdp"], pki.root2, T0).status is RevocationStatus.REVOKED
    assert store.check(pki.leaves["part_b"], pki.root2, AT).status is RevocationStatus.GOOD
    assert store.check(pki.leaves["revoked_no_cdp"], pki.root2, AT).status is RevocationStatus.REVOKED


@pytest.mark.parametrize(
    ("only_ca", "leaf_status", "ca_status"),
    [
        pytest.param(False, RevocationStatus.REVOKED, RevocationStatus.UNKNOWN, id="only-user-certs"),
        pytest.param(True, RevocationStatus.UNKNOWN, RevocationStatus.GOOD, id="only-ca-certs"),
    ],
)
def test_idp_certificate_kind(
    tmp_path: Path, pki: Pki, only_ca: bool, leaf_status: RevocationStatus,
    ca_status: RevocationStatus,
) -> None:
    scope = idp(user=not only_ca, ca=only_ca)
    crl = make_crl(pki.root2_key, pki.root2, [(S_REVOKED_NO_CDP, REVOKED_AT)], extensions=[scope])
    store = store_of(tmp_path, pki, ("scoped.crl", der(crl)))
    assert store.check(pki.leaves["revoked_no_cdp"], pki.root2, AT).status is leaf_status
    # The root is a CA certificate issued by itself.
    assert store.check(pki.root2, pki.root2, AT).status is ca_status


def test_idp_relative_name(tmp_path: Path, pki: Pki) -> None:
    """nameRelativeToCRLIssuer in the IDP matches the equivalent full DirectoryName in the CDP."""
    rdn = x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "CRL partition 7")])
    full = x509.DirectoryName(x509.Name([*ROOT_NAME.rdns, rdn]))
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = _leaf(pki.root2_key, pki.root2, leaf_key, 3001, full)
    crl = make_crl(pki.root2_key, pki.root2, [(3001, REVOKED_AT)], extensions=[idp(relative_name=rdn)])
    store = store_of(tmp_path, pki, ("p7.crl", der(crl)))
    assert store.check(leaf, pki.root2, AT).status is RevocationStatus.REVOKED
    assert store.check(pki.leaves["part_b"], pki.root2, AT).status is RevocationStatus.UNKNOWN


# --- arguments ---------------------------------------------------------------------------------------


def test_naive_datetime_is_refused(tmp_path: Path, pki: Pki) -> None:
    store = store_of(tmp_path, pki, ("root2.crl", der(root2_crl(pki))))
    with pytest.raises(SignatureError, match="naive datetime"):
        store.check(pki.leaves["good"], pki.root2, AT.replace(tzinfo=None))


# --- why this store exists -----------------------------------------------------------------------


def test_pyhanko_soft_fail_accepts_revoked_certificate_without_cdp(tmp_path: Path, pki: Pki) -> None:
    """pyhanko-certvalidator in soft-fail mode accepts a revoked certificate that has no CDP.

    The CRL is supplied, is current and lists the certificate; pyhanko still validates it, because
    without a CRLDistributionPoints extension it finds no revocation source it must honour. The
    store answers REVOKED for the same inputs.
    """
    crl = root2_crl(pki)
    leaf = pki.leaves["revoked_no_cdp"]

    def as_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))

    context = ValidationContext(
        trust_roots=[as_asn1(pki.root2)],
        moment=AT,
        crls=[der(crl)],
        revocation_mode="soft-fail",
    )
    def validate(cert: x509.Certificate) -> None:
        validator = CertificateValidator(as_asn1(cert), validation_context=context)
        asyncio.run(validator.async_validate_usage(set()))  # type: ignore[no-untyped-call]

    # No exception: pyhanko considers the revoked certificate valid.
    validate(leaf)

    # The same CRL does work for pyhanko when the certificate names a distribution point.
    with pytest.raises(RevokedError):
        validate(pki.leaves["revoked_cdp"])

    store = store_of(tmp_path, pki, ("root2.crl", der(crl)))
    assert store.check(leaf, pki.root2, AT).status is RevocationStatus.REVOKED
