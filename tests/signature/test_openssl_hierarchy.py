"""Interop, not self-consistency: a JPKI-shaped hierarchy made with the ``openssl`` command line (as
the independent conformance kit makes it), packages signed by the ``xmlsec1`` command line.

* A root, and a signing CA in two key generations under one name, each with its own ``openssl ca``
  database: serial numbers start at 1001 in both, so generation 1's revoked certificate and
  generation 2's good one have the *same issuer name and serial* — only the key tells them apart.
* The signing CA is configured nowhere: the packages carry it in ``KeyInfo/X509Data`` (xmlsec1
  writes it there from ``--privkey-pem key,cert,ca``). Only the root is a trust anchor.
* CRLs from ``openssl ca -gencrl`` with pinned ``-crl_lastupdate``/``-crl_nextupdate``; revocations
  are written into the CA database (``index.txt``, the format ``openssl ca -revoke`` writes) with
  pinned dates, because ``-revoke`` would take the wall clock.
* 基本4情報 as UTF8String otherNames, with ``FORMAT:UTF8`` (pitfalls.md: without it openssl
  double-encodes them); the report must read them back exactly.

Time is pinned: NOW = 2026-11-25 12:00 JST, 到達日時 = NOW - 30 min (tests/conftest.py).
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from signature.report import Indication, ReasonCode, SubIndication
from signature.testing import builder
from signature.testing.builder import ApplicationSpec
from signature.testing.pki import Issued
from signature.verify import TrustConfig, verify_package
from tests.conftest import NOW, World

pytestmark = [
    pytest.mark.xmlsec1,
    pytest.mark.skipif(shutil.which("xmlsec1") is None or shutil.which("openssl") is None,
                       reason="needs the openssl and xmlsec1 command lines"),
]

ARRIVAL = NOW - timedelta(minutes=30)
PASSED = (Indication.PASSED, None, None)
REVOKED = (Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE, ReasonCode.CERT_REVOKED)
TRY_LATER = (Indication.INDETERMINATE, SubIndication.TRY_LATER, ReasonCode.REVOCATION_UNKNOWN)
NAME, ADDRESS = "港　花子", "東京都港区芝公園一丁目5番25号"


def _time(moment: datetime) -> str:
    """openssl's YYYYMMDDHHMMSSZ."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def _index_time(moment: datetime) -> str:
    """index.txt's UTCTime, YYMMDDHHMMSSZ."""
    return moment.astimezone(UTC).strftime("%y%m%d%H%M%SZ")


class OpensslCA:
    """One ``openssl ca`` database in a directory of its own."""

    def __init__(self, base: Path, name: str, subject: str) -> None:
        self.dir = base / name
        (self.dir / "newcerts").mkdir(parents=True)
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text("1001\n")
        (self.dir / "crlnumber").write_text("01\n")
        (self.dir / "ca.cnf").write_text(textwrap.dedent(f"""\
            [ca]
            default_ca = ca_default
            [ca_default]
            dir = {self.dir}
            database = $dir/index.txt
            new_certs_dir = $dir/newcerts
            serial = $dir/serial
            crlnumber = $dir/crlnumber
            default_md = sha256
            policy = policy_any
            unique_subject = no
            email_in_dn = no
            [policy_any]
            countryName = optional
            organizationName = optional
            organizationalUnitName = optional
            localityName = optional
            commonName = optional
            [crl_ext]
            authorityKeyIdentifier = keyid:always
            """))
        self.subject = subject
        self.key = self.dir / "key.pem"
        self.cert = self.dir / "cert.pem"
        openssl("genrsa", "-out", self.key, "2048")

    def issue(self, req: Path, out: Path, extensions: str, start: datetime, end: datetime,
              *, selfsign: bool = False) -> Path:
        ext = out.with_suffix(".ext.cnf")
        ext.write_text("[v3]\n" + textwrap.dedent(extensions), encoding="utf-8")
        args = ["ca", "-batch", "-notext", "-config", self.dir / "ca.cnf", "-keyfile", self.key, "-in", req,
                "-out", out, "-extfile", ext, "-extensions", "v3", "-startdate", _time(start),
                "-enddate", _time(end)]
        openssl(*args, *(["-selfsign"] if selfsign else ["-cert", self.cert]))
        return out

    def revoke(self, serial: int, at: datetime) -> None:
        """Mark ``serial`` revoked in the database, as ``openssl ca -revoke`` would at ``at``."""
        lines = (self.dir / "index.txt").read_text().splitlines()
        for i, line in enumerate(lines):
            _status, expiry, _revoked, hex_serial, file, subject = line.split("\t")
            if int(hex_serial, 16) == serial:
                lines[i] = "\t".join(("R", expiry, _index_time(at), hex_serial, file, subject))
        (self.dir / "index.txt").write_text("\n".join(lines) + "\n")

    def crl(self, out: Path, this_update: datetime, next_update: datetime) -> bytes:
        openssl("ca", "-gencrl", "-config", self.dir / "ca.cnf", "-keyfile", self.key, "-cert", self.cert,
                "-crlexts", "crl_ext", "-out", out, "-crl_lastupdate", _time(this_update),
                "-crl_nextupdate", _time(next_update))
        return out.read_bytes()


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def request(base: Path, key: Path, subject: str, name: str) -> Path:
    out = base / f"{name}.req.pem"
    openssl("req", "-new", "-key", key, "-subj", subject, "-out", out)
    return out


CA_EXTENSIONS = """\
    basicConstraints = critical,CA:true{pathlen}
    keyUsage = critical,keyCertSign,cRLSign
    subjectKeyIdentifier = hash
    authorityKeyIdentifier = keyid:always
    """
SIGNER_EXTENSIONS = f"""\
    basicConstraints = critical,CA:false
    keyUsage = critical,digitalSignature,nonRepudiation
    subjectKeyIdentifier = hash
    authorityKeyIdentifier = keyid:always
    certificatePolicies = 1.2.392.200149.8.5.1.1
    subjectAltName = @san
    [san]
    otherName.0 = 1.2.392.200149.8.5.5.1;FORMAT:UTF8,UTF8:{NAME}
    otherName.1 = 1.2.392.200149.8.5.5.3;FORMAT:UTF8,UTF8:2
    otherName.2 = 1.2.392.200149.8.5.5.4;FORMAT:UTF8,UTF8:419900123
    otherName.3 = 1.2.392.200149.8.5.5.5;FORMAT:UTF8,UTF8:{ADDRESS}
    """


@dataclass(frozen=True)
class OpensslPki:
    root: Path
    ca1: Issued  # signing CA generation 1 (certificate; its key is not needed by the tests)
    ca2: Issued
    revoked1: Issued  # gen 1, serial 1001, revoked before 到達日時
    later1: Issued  # gen 1, serial 1002, revoked after 到達日時 (before processing)
    good2: Issued  # gen 2, serial 1001 — the same issuer name and serial as revoked1
    crl_sets: dict[str, Path]


def _issued(cert: Path, key: Path) -> Issued:
    loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    return Issued(x509.load_pem_x509_certificate(cert.read_bytes()), loaded)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ossl(tmp_path_factory: pytest.TempPathFactory) -> OpensslPki:
    base = tmp_path_factory.mktemp("openssl-pki")
    root = OpensslCA(base, "root", "/C=JP/O=OSSL-JPKI/OU=OSSL JPKI for digital signature/CN=OSSL Root")
    root_req = request(base, root.key, root.subject, "root")
    root.issue(root_req, root.cert, CA_EXTENSIONS.format(pathlen=""), NOW - timedelta(days=730),
               NOW + timedelta(days=3650), selfsign=True)
    signing = "/C=JP/O=OSSL-JPKI/OU=OSSL JPKI for digital signature/CN=OSSL Signing CA"
    cas = []
    for gen in (1, 2):
        ca = OpensslCA(base, f"signing-ca-g{gen}", signing)
        root.issue(request(base, ca.key, signing, f"ca{gen}"), ca.cert, CA_EXTENSIONS.format(pathlen=",pathlen:0"),
                   NOW - timedelta(days=365 // gen), NOW + timedelta(days=2000))
        cas.append(ca)
    ca1, ca2 = cas
    leaf_key = base / "signer.key.pem"
    openssl("genrsa", "-out", leaf_key, "2048")

    def signer(ca: OpensslCA, name: str) -> Issued:
        req = request(base, leaf_key, f"/C=JP/L=Tokyo/CN=OSSL-{name}", name)
        cert = ca.issue(req, base / f"{name}.pem", SIGNER_EXTENSIONS, NOW - timedelta(days=5),
                        NOW + timedelta(days=1500))
        return _issued(cert, leaf_key)

    revoked1, later1, good2 = signer(ca1, "revoked1"), signer(ca1, "later1"), signer(ca2, "good2")
    assert (revoked1.cert.serial_number, later1.cert.serial_number, good2.cert.serial_number) == (0x1001, 0x1002,
                                                                                                  0x1001)
    ca1.revoke(0x1001, NOW - timedelta(days=2))
    ca1.revoke(0x1002, ARRIVAL + timedelta(minutes=20))
    crl_sets = {}
    for name, this_update, next_update in (
        ("current", ARRIVAL + timedelta(minutes=25), NOW + timedelta(days=1)),  # issued after 到達日時
        ("stale", NOW - timedelta(days=5), NOW - timedelta(days=4)),
    ):
        crl_dir = base / f"crl-{name}"
        crl_dir.mkdir()
        root.crl(crl_dir / "root.crl", NOW - timedelta(hours=6), NOW + timedelta(days=1))
        for gen, ca in ((1, ca1), (2, ca2)):
            ca.crl(crl_dir / f"signing-ca-g{gen}.crl", this_update, next_update)
        crl_sets[name] = crl_dir
    forged = base / "crl-forged"
    shutil.copytree(crl_sets["current"], forged)
    pem = (forged / "signing-ca-g1.crl").read_bytes()
    der = bytearray(x509.load_pem_x509_crl(pem).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # a damaged signature: ignored, never read as "nothing is revoked"
    (forged / "signing-ca-g1.crl").write_bytes(bytes(der))
    crl_sets["forged"] = forged
    return OpensslPki(root.cert, _issued(ca1.cert, ca1.key), _issued(ca2.cert, ca2.key), revoked1, later1, good2,
                      crl_sets)


def package(world: World, spec: ApplicationSpec, signer: Issued, chain: Issued) -> bytes:
    files = {spec.form_file: spec.form_xml, **{a.file_name: a.data for a in spec.attachments}}
    kousei = builder.sign_manifest_xmlsec1(builder.manifest_document(spec), files, signer, chain=(chain.cert,))
    arrival = builder.sign_arrival(builder.arrival_document(spec, kousei), world.pki.portal_server)
    return builder.zip_package([("kousei.xml", kousei), ("到達情報.xml", arrival), *files.items()])


def trust(world: World, ossl: OpensslPki, crls: str) -> TrustConfig:
    return TrustConfig.load(jpki_roots=[ossl.root], portal_roots=[world.portal_roots], crls=[ossl.crl_sets[crls]])


@pytest.mark.parametrize(
    ("signer", "carried", "crls", "expected", "revoked_at"),
    [
        pytest.param("good2", "ca2", "current", PASSED, None, id="genuine-gen2-same-serial-as-a-revoked-gen1"),
        pytest.param("revoked1", "ca1", "current", REVOKED, NOW - timedelta(days=2), id="revoked-before-arrival"),
        pytest.param("later1", "ca1", "current", PASSED, ARRIVAL + timedelta(minutes=20),
                     id="revoked-after-arrival-passes-and-says-when"),
        pytest.param("good2", "ca2", "stale", TRY_LATER, None, id="stale-crls"),
        pytest.param("later1", "ca1", "forged", TRY_LATER, None, id="damaged-crl-of-the-carried-ca"),
        pytest.param("good2", "ca2", "forged", PASSED, None, id="damaged-crl-of-the-other-generation"),
    ],
)
def test_openssl_hierarchy_xmlsec1_packages(
    world: World, spec: ApplicationSpec, ossl: OpensslPki, signer: str, carried: str, crls: str,
    expected: tuple[object, ...], revoked_at: datetime | None,
) -> None:
    data = package(world, spec, getattr(ossl, signer), getattr(ossl, carried))
    report = verify_package(data, trust(world, ossl, crls), at=NOW)
    assert (report.indication, report.sub_indication, report.reason_code) == expected, report.reason_en
    assert report.validation_time == ARRIVAL
    assert report.signer_revoked_at == revoked_at
    assert report.signer is not None
    # The 基本4情報 that openssl wrote with FORMAT:UTF8 read back exactly.
    assert (report.signer.name, report.signer.address, report.signer.sex) == (NAME, ADDRESS, "2")
    assert report.signer.birth_date == date(1990, 1, 23)
    assert report.signer.cert_serial == format(getattr(ossl, signer).cert.serial_number, "X")


def test_the_openssl_hierarchy_is_what_the_vectors_claim(ossl: OpensslPki) -> None:
    ski = x509.SubjectKeyIdentifier
    assert ossl.ca1.cert.subject == ossl.ca2.cert.subject
    assert (ossl.ca1.cert.extensions.get_extension_for_class(ski).value
            != ossl.ca2.cert.extensions.get_extension_for_class(ski).value)
    assert (ossl.revoked1.cert.issuer, ossl.revoked1.cert.serial_number) == (
        ossl.good2.cert.issuer, ossl.good2.cert.serial_number)
    crl = x509.load_pem_x509_crl((ossl.crl_sets["current"] / "signing-ca-g1.crl").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(0x1001) is not None
    assert crl.last_update_utc == ARRIVAL + timedelta(minutes=25)


def test_intermediate_configured_instead_of_carried_also_works(
    world: World, spec: ApplicationSpec, ossl: OpensslPki
) -> None:
    """TrustConfig.intermediates stays an optional path-building aid for packages that do not carry
    their signing CA; the CRLs are the same either way."""
    files = {spec.form_file: spec.form_xml, **{a.file_name: a.data for a in spec.attachments}}
    kousei = builder.sign_manifest_xmlsec1(builder.manifest_document(spec), files, ossl.good2)
    arrival = builder.sign_arrival(builder.arrival_document(spec, kousei), world.pki.portal_server)
    data = builder.zip_package([("kousei.xml", kousei), ("到達情報.xml", arrival), *files.items()])
    roots_only = trust(world, ossl, "current")
    assert verify_package(data, roots_only, at=NOW).reason_code is ReasonCode.UNTRUSTED_CHAIN
    configured = replace(roots_only, intermediates=(ossl.ca2.cert,))
    report = verify_package(data, configured, at=NOW)
    assert (report.indication, report.sub_indication) == (Indication.PASSED, None), report.reason_en
