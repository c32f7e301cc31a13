"""Verification vectors: whole packages through ``verify_package``, each with its exact outcome.

Every vector asserts the exact (indication, sub-indication, reason code). Negative vectors change one
thing of a valid package (``tamper.py``); when the change touches ``kousei.xml`` the portal's
到達情報 is re-issued and re-signed with the portal key, so that the vector isolates one check.

Time is the session's pinned moment (``NOW`` of ``tests/conftest.py``). Keys are generated once per
module; most certificates reuse ``world.signer``'s key.
"""

from __future__ import annotations

import copy
import hashlib
import io
import random
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, rsa
from lxml import etree

from signature.algorithms import CanonicalizationMethod, DigestMethod, SignatureMethod
from signature.errors import SignatureError
from signature.package import ARRIVAL_FILE, MANIFEST_FILE
from signature.policy import RevocationMode, VerificationPolicy, ZipLimits
from signature.report import FileRole, Indication, ReasonCode, SubIndication, TimeSource, VerificationReport
from signature.testing.builder import (
    DSA_SHA256,
    HMAC_SHA256,
    RSA_SHA1,
    SHA1_DIGEST,
    ApplicationSpec,
    SigningOptions,
    arrival_document,
    build_package,
    manifest_document,
    sign_arrival,
    sign_manifest,
    zip_package,
)
from signature.testing.pki import Issued, Resident, TestPKI
from signature.testing.samples import sample_pdf
from signature.verify import TrustConfig, verify_package
from signature.xmldsig import DSIG_NS
from tests.conftest import NOW

try:  # tests/signature as a package (if an __init__.py is ever added) …
    from . import tamper  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # … or, as now, rootdir-relative ("prepend") test modules
    import tamper  # type: ignore[no-redef,unused-ignore]

PASSED, FAILED, INDETERMINATE = Indication.PASSED, Indication.FAILED, Indication.INDETERMINATE
S, R = SubIndication, ReasonCode
EXC = CanonicalizationMethod.EXC_C14N.value
MiB = 1024 * 1024
FOLDER = "児童手当認定請求"
XMLSEC1 = shutil.which("xmlsec1")
needs_xmlsec1 = [
    pytest.mark.xmlsec1,
    pytest.mark.skipif(XMLSEC1 is None, reason="the xmlsec1 command line is not installed (Debian package "
                                               "xmlsec1; `make install` installs it)"),
]

Expected = tuple[Indication, SubIndication | None, ReasonCode | None]


# ------------------------------------------------------------------------------------ fixtures


@dataclass(frozen=True)
class Signers:
    """Signing certificates for the vectors; all but ``rsa1024``/``foreign`` share one key."""

    via_intermediate: Issued
    old_root: Issued
    old_root_revoked_serial: Issued
    name_alt: Issued
    name_alt_resident: Resident
    expired: Issued
    not_yet_valid: Issued
    no_cdp: Issued
    foreign: Issued
    no_non_repudiation: Issued
    no_policy: Issued
    rsa1024: Issued
    attacker_key: rsa.RSAPrivateKey = field(repr=False)


@pytest.fixture(scope="module")
def now(world: Any) -> datetime:
    assert world.pki.now == NOW  # the session PKI is pinned to the same moment
    return NOW


@pytest.fixture(scope="module")
def signers(world: Any, now: datetime) -> Signers:
    pki: TestPKI = world.pki
    resident = world.residents[0]
    key = world.signer.rsa_key
    # Explicit serials: the session PKI's serial generator stays untouched for other modules.
    serials = random.Random(4711)

    def issue(res: Resident = resident, **kw: Any) -> Issued:
        kw.setdefault("key", key)
        return pki.issue_signer(res, serial=serials.randrange(1 << 62, 1 << 63), **kw)

    name_alt_resident = next(r for r in world.residents if r.name_alt is not None)
    foreign_pki = TestPKI.generate(now=now, seed=99)  # same JPKI-TEST names, other keys
    return Signers(
        via_intermediate=issue(issuer=pki.jpki_intermediate),
        old_root=issue(issuer=pki.jpki_roots[0]),
        # Same issuer name and same serial as world.revoked_signer, which only the current root's CRL lists.
        old_root_revoked_serial=pki.issue_signer(resident, key=key, issuer=pki.jpki_roots[0],
                                                 serial=world.revoked_signer.cert.serial_number),
        name_alt=issue(name_alt_resident),
        name_alt_resident=name_alt_resident,
        expired=issue(not_before=now - timedelta(days=400), not_after=now - timedelta(days=10)),
        not_yet_valid=issue(not_before=now + timedelta(days=1), not_after=now + timedelta(days=400)),
        no_cdp=issue(with_cdp=False),
        foreign=foreign_pki.issue_signer(resident, key=key, serial=serials.randrange(1 << 62, 1 << 63)),
        no_non_repudiation=issue(key_usage=("digital_signature",)),
        no_policy=issue(policy_oid=None),
        rsa1024=issue(key=rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505 - the vector
        attacker_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@pytest.fixture(scope="module")
def no_cdp_trust(world: Any, signers: Signers, now: datetime, tmp_path_factory: pytest.TempPathFactory
                 ) -> TrustConfig:
    """The world's CRLs plus a newer CRL of the current root that also lists ``signers.no_cdp``."""
    crl_dir = tmp_path_factory.mktemp("crl-no-cdp")
    for source in Path(world.crl_dir).iterdir():
        shutil.copy(source, crl_dir / source.name)
    revoked = [(world.revoked_signer.cert.serial_number, now - timedelta(days=3)),
               (signers.no_cdp.cert.serial_number, now - timedelta(days=1))]
    (crl_dir / "jpki-g2-newer.crl").write_bytes(world.pki.issue_crl(
        world.pki.jpki_roots[1], revoked, this_update=now - timedelta(hours=1), next_update=now + timedelta(days=1)))
    return TrustConfig.load(jpki_roots=[world.jpki_roots], portal_roots=[world.portal_roots], crls=[crl_dir],
                            intermediates=[world.intermediates])


@pytest.fixture(scope="module")
def bomb_150mib() -> bytes:
    """kousei.xml plus 150 MiB of zeros, deflated (honest headers)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(MANIFEST_FILE, b"<DataRoot/>")
        zf.writestr("zeros.bin", bytes(150 * MiB))
    return buf.getvalue()


@dataclass(frozen=True)
class Ctx:
    """What a vector builder needs; ``build`` is the builder with the session's portal."""

    world: Any
    trust: TrustConfig
    spec: ApplicationSpec
    now: datetime
    signers: Signers
    no_cdp_trust: TrustConfig
    bomb_150mib: bytes

    @property
    def resident(self) -> Resident:
        return self.world.residents[0]  # type: ignore[no-any-return]

    @property
    def portal(self) -> Issued:
        return self.world.pki.portal_server  # type: ignore[no-any-return]

    def build(self, *, spec: ApplicationSpec | None = None, signer: Issued | None = None,
              options: SigningOptions | None = None, **kw: Any) -> bytes:
        return build_package(spec or self.spec, signer=signer or self.world.signer, portal=self.portal,
                             options=options or SigningOptions(), **kw)

    def rework(self, package: bytes, *, kousei: Callable[[etree._Element], None] | None = None,
               kousei_bytes: Callable[[bytes], bytes] | None = None, reissue: bool = True) -> bytes:
        """``package`` with kousei.xml changed (tree or bytes) and, by default, 到達情報 re-issued."""
        u = tamper.unpack(package)
        if kousei is not None:
            u.edit_xml(MANIFEST_FILE, kousei)
        if kousei_bytes is not None:
            u.edit(MANIFEST_FILE, kousei_bytes)
        if reissue:
            u.reissue_arrival(self.spec, self.portal)
        return u.zip()


@pytest.fixture
def ctx(world: Any, trust: TrustConfig, spec: ApplicationSpec, now: datetime, signers: Signers,
        no_cdp_trust: TrustConfig, bomb_150mib: bytes) -> Ctx:
    return Ctx(world, trust, spec, now, signers, no_cdp_trust, bomb_150mib)


@dataclass(frozen=True)
class Run:
    """A package and how to verify it (defaults: the session trust, at NOW, default policy)."""

    package: bytes
    trust: TrustConfig | None = None
    at: datetime | None = None
    policy: VerificationPolicy | None = None

    def verify(self, c: Ctx) -> VerificationReport:
        return verify_package(self.package, self.trust or c.trust, at=self.at or c.now, policy=self.policy)


def outcome(report: VerificationReport) -> Expected:
    return report.indication, report.sub_indication, report.reason_code


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------- valid packages


@dataclass(frozen=True)
class Valid:
    package: bytes
    spec: ApplicationSpec
    resident: Resident
    signer: Issued
    trust: TrustConfig | None = None
    algorithm: str = SignatureMethod.RSA_SHA256.value
    #: checks on the raw ZIP, proving the vector is what its id says
    zip_check: Callable[[list[zipfile.ZipInfo]], None] | None = None


def _default(c: Ctx, **kw: Any) -> Valid:
    return Valid(c.build(**kw), c.spec, c.resident, c.world.signer)


def _names_are_cp932(infos: list[zipfile.ZipInfo]) -> None:
    non_ascii = [i for i in infos if not i.orig_filename.isascii()]
    assert non_ascii
    assert all(not i.flag_bits & 0x800 for i in infos)


def _in_folder(infos: list[zipfile.ZipInfo]) -> None:
    assert {i.filename.split("/")[0] for i in infos} == {FOLDER}
    assert all("/" in i.filename for i in infos)


def _all_stored(infos: list[zipfile.ZipInfo]) -> None:
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}


MEDIA_TYPES = {"pdf": "application/pdf", "png": "image/png"}


def v_default(c: Ctx) -> Valid:
    return _default(c)


def v_percent_uri(c: Ctx) -> Valid:
    return _default(c, options=SigningOptions(uri_style="percent"))


def v_exclusive_c14n(c: Ctx) -> Valid:
    return _default(c, options=SigningOptions(canonicalization=EXC, manifest_transforms=(EXC,)))


def v_no_manifest_transform(c: Ctx) -> Valid:
    return _default(c, options=SigningOptions(manifest_transforms=()))


def v_rsa_sha384(c: Ctx) -> Valid:
    method = SignatureMethod.RSA_SHA384.value
    return replace(_default(c, options=SigningOptions(signature_method=method)), algorithm=method)


def v_rsa_sha512_sha512_digests(c: Ctx) -> Valid:
    method = SignatureMethod.RSA_SHA512.value
    options = SigningOptions(signature_method=method, digest_method=DigestMethod.SHA512.value)
    return replace(_default(c, options=options), algorithm=method)


def v_cp932_names(c: Ctx) -> Valid:
    return replace(_default(c, cp932_names=True), zip_check=_names_are_cp932)


def v_cp932_name_with_5c_trail_byte(c: Ctx) -> Valid:
    # "表" is 95 5C and "ソ" 83 5C in CP932: the second byte is an ASCII backslash.
    first, second = c.spec.attachments
    spec = replace(c.spec, attachments=(replace(first, file_name="ソフト利用申込表.pdf"), second))

    def check(infos: list[zipfile.ZipInfo]) -> None:
        _names_are_cp932(infos)
        assert any(b"\x5c" in i.orig_filename.encode("cp932") for i in infos)

    return Valid(c.build(spec=spec, cp932_names=True), spec, c.resident, c.world.signer, zip_check=check)


def v_japanese_folder(c: Ctx) -> Valid:
    return replace(_default(c, folder=FOLDER), zip_check=_in_folder)


def v_cp932_and_folder(c: Ctx) -> Valid:
    def check(infos: list[zipfile.ZipInfo]) -> None:
        _names_are_cp932(infos)
        _in_folder(infos)

    return replace(_default(c, folder=FOLDER, cp932_names=True), zip_check=check)


def v_stored(c: Ctx) -> Valid:
    package = tamper.unpack(c.build()).zip(compression=zipfile.ZIP_STORED)
    return Valid(package, c.spec, c.resident, c.world.signer, zip_check=_all_stored)


def v_via_intermediate(c: Ctx) -> Valid:
    signer = c.signers.via_intermediate
    options = SigningOptions(chain=(c.world.pki.jpki_intermediate.cert,))
    return Valid(c.build(signer=signer, options=options), c.spec, c.resident, signer)


def v_old_root_generation(c: Ctx) -> Valid:
    signer = c.signers.old_root
    return Valid(c.build(signer=signer), c.spec, c.resident, signer)


def v_old_root_serial_revoked_under_new_root(c: Ctx) -> Valid:
    signer = c.signers.old_root_revoked_serial
    assert signer.cert.issuer == c.world.revoked_signer.cert.issuer
    assert signer.cert.serial_number == c.world.revoked_signer.cert.serial_number
    return Valid(c.build(signer=signer), c.spec, c.resident, signer)


def v_xmlsec1_signed(c: Ctx) -> Valid:
    return _default(c, tool="xmlsec1")


def v_name_alt(c: Ctx) -> Valid:
    signer = c.signers.name_alt
    return Valid(c.build(signer=signer), c.spec, c.signers.name_alt_resident, signer)


def v_reapplication(c: Ctx) -> Valid:
    spec = replace(c.spec, kind="再申請", first_receipt_number="20261101-0000000042")
    return Valid(c.build(spec=spec), spec, c.resident, c.world.signer)


def v_via_intermediate_configured_only(c: Ctx) -> Valid:
    # KeyInfo holds the signer alone; the path is built with the configured intermediate.
    signer = c.signers.via_intermediate
    return Valid(c.build(signer=signer), c.spec, c.resident, signer)


def test_intermediate_only_in_keyinfo_gets_its_crl_without_configuring(ctx: Ctx) -> None:
    """An intermediate that arrives only in KeyInfo builds the path, and its CRL — verified with the
    key of that intermediate, the issuer the path validation used — decides revocation: operators
    configure anchors and CRLs, not intermediates (package-format.md §4)."""
    v = v_via_intermediate(ctx)
    roots_only = TrustConfig.load(jpki_roots=[ctx.world.jpki_roots], portal_roots=[ctx.world.portal_roots],
                                  crls=[ctx.world.crl_dir])
    assert roots_only.intermediates == ()
    report = verify_package(v.package, roots_only, at=ctx.now)
    assert outcome(report) == (PASSED, None, None), report.reason_en
    assert report.revocation_checked is True
    configured = verify_package(v.package, v.trust or ctx.trust, at=ctx.now)
    assert outcome(configured) == (PASSED, None, None)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(v_default, id="default"),
        pytest.param(v_percent_uri, id="percent-encoded-uris"),
        pytest.param(v_exclusive_c14n, id="exclusive-c14n"),
        pytest.param(v_no_manifest_transform, id="no-transform-on-manifest-reference"),
        pytest.param(v_rsa_sha384, id="rsa-sha384"),
        pytest.param(v_rsa_sha512_sha512_digests, id="rsa-sha512-sha512-digests"),
        pytest.param(v_cp932_names, id="cp932-entry-names"),
        pytest.param(v_cp932_name_with_5c_trail_byte, id="cp932-name-with-0x5c-trail-byte"),
        pytest.param(v_japanese_folder, id="japanese-top-level-folder"),
        pytest.param(v_cp932_and_folder, id="cp932-names-in-japanese-folder"),
        pytest.param(v_stored, id="stored-no-compression"),
        pytest.param(v_via_intermediate, id="signer-via-intermediate-ca"),
        pytest.param(v_via_intermediate_configured_only, id="signer-via-intermediate-ca-not-in-keyinfo"),
        pytest.param(v_old_root_generation, id="signer-from-old-root-generation"),
        pytest.param(v_old_root_serial_revoked_under_new_root,
                     id="old-root-signer-whose-serial-is-revoked-only-under-the-new-root"),
        pytest.param(v_xmlsec1_signed, id="signed-by-xmlsec1-command-line", marks=needs_xmlsec1),
        pytest.param(v_name_alt, id="resident-with-name-alt"),
        pytest.param(v_reapplication, id="reapplication-with-first-receipt-number"),
    ],
)
def test_valid_package_passes(ctx: Ctx, make: Callable[[Ctx], Valid]) -> None:
    v = make(ctx)
    # metadata_encoding applies only to names without the UTF-8 flag (zipfile's default is cp437).
    with zipfile.ZipFile(io.BytesIO(v.package), metadata_encoding="cp932") as zf:
        infos = zf.infolist()
    if v.zip_check is not None:
        v.zip_check(infos)
    files = tamper.unpack(v.package)

    report = verify_package(v.package, v.trust or ctx.trust, at=ctx.now)

    assert outcome(report) == (PASSED, None, None), report.reason_en
    assert report.readable is True
    assert report.revocation_checked is True
    assert report.signature_algorithm == v.algorithm
    # Judged at the portal-signed 到達日時, processed at ``at``.
    assert (report.validation_time, report.validation_time_source) == (v.spec.arrived_at, TimeSource.ARRIVAL)
    assert report.processing_time == ctx.now
    assert (report.signer_revoked_at, report.revoked_after_validation_time) == (None, False)
    assert report.crl_this_update is not None
    assert report.arrival is not None
    assert report.arrival.receipt_number == v.spec.receipt_number
    assert report.arrival.procedure_id == v.spec.procedure_id
    assert report.arrival.user_cert_serial == v.spec.user_cert_serial
    assert report.arrival.arrived_at == v.spec.arrived_at
    m = report.manifest
    assert m is not None
    assert m.procedure_id == v.spec.procedure_id
    assert m.procedure_name == v.spec.procedure_name
    assert m.organisation_code == v.spec.organisation_code
    assert m.application_kind == v.spec.kind
    assert m.first_receipt_number == v.spec.first_receipt_number
    assert m.form_file == v.spec.form_file
    assert m.attachments == tuple((a.title, a.file_name) for a in v.spec.attachments)
    assert dict(m.applicant)["氏名"] == v.spec.applicant.name
    assert report.signer is not None
    assert report.signer.name == v.resident.name
    assert report.signer.name_alt == v.resident.name_alt
    assert report.signer.address == v.resident.address
    assert report.signer.birth_date == v.resident.birth_date
    assert report.signer.cert_serial == v.signer.serial_hex
    got = [(f.role, f.name, f.sha256, f.media_type, f.size) for f in report.files]
    assert got == [
        (FileRole.MANIFEST, MANIFEST_FILE, sha256(files[MANIFEST_FILE]), "application/xml",
         len(files[MANIFEST_FILE])),
        (FileRole.ARRIVAL, ARRIVAL_FILE, sha256(files[ARRIVAL_FILE]), "application/xml", len(files[ARRIVAL_FILE])),
        (FileRole.FORM, v.spec.form_file, sha256(v.spec.form_xml), "application/xml", len(v.spec.form_xml)),
        *((FileRole.ATTACHMENT, a.file_name, sha256(a.data), MEDIA_TYPES[a.file_name.rsplit(".", 1)[1]], len(a.data))
          for a in v.spec.attachments),
    ]
    assert {f.media_type for f in report.files if f.role is FileRole.ATTACHMENT} == {"application/pdf", "image/png"}
    assert report.file(FileRole.FORM).data == v.spec.form_xml


def test_valid_name_alt_is_really_set(ctx: Ctx) -> None:
    """The 代替文字 vector is only a vector if the resident has a name outside JIS and its substitute."""
    r = ctx.signers.name_alt_resident
    assert r.name_alt is not None
    assert r.name_alt != r.name
    report = verify_package(ctx.build(signer=ctx.signers.name_alt), ctx.trust, at=ctx.now)
    assert report.signer is not None
    assert (report.signer.name, report.signer.name_alt) == (r.name, r.name_alt)


def test_comment_inside_signed_name_is_ignored_and_name_is_whole(ctx: Ctx) -> None:
    """A comment added after signing is not signed (c14n without comments): still PASSED, and the
    reported 氏名 is the full signed name, not the text before the comment."""
    name = ctx.spec.applicant.name
    family, given = name.split("\u3000")
    package = ctx.rework(ctx.build(), kousei_bytes=lambda k: tamper.replace_once(
        k, f"<氏名>{name}</氏名>", f"<氏名>{family}<!-- 注記 -->\u3000{given}</氏名>"))
    assert "<!-- 注記 -->".encode() in tamper.unpack(package)[MANIFEST_FILE]

    report = verify_package(package, ctx.trust, at=ctx.now)

    assert outcome(report) == (PASSED, None, None), report.reason_en
    assert report.manifest is not None
    assert dict(report.manifest.applicant)["氏名"] == name


def test_comment_inside_signed_receipt_number_is_ignored(ctx: Ctx) -> None:
    """The same for the portal's enveloped signature: the 受付番号 is the whole signed value."""
    receipt = ctx.spec.receipt_number
    u = tamper.unpack(ctx.build())
    u.edit(ARRIVAL_FILE, lambda a: tamper.replace_once(
        a, f"<受付番号>{receipt}<", f"<受付番号>{receipt[:9]}<!-- 注記 -->{receipt[9:]}<"))

    report = verify_package(u.zip(), ctx.trust, at=ctx.now)

    assert outcome(report) == (PASSED, None, None), report.reason_en
    assert report.arrival is not None
    assert report.arrival.receipt_number == receipt


def test_soft_fail_without_crls_passes_and_says_revocation_was_not_checked(ctx: Ctx) -> None:
    policy = VerificationPolicy(revocation=RevocationMode.SOFT_FAIL)
    report = verify_package(ctx.build(), ctx.world.trust(crls=False), at=ctx.now, policy=policy)
    assert outcome(report) == (PASSED, None, None)
    assert report.revocation_checked is False
    assert "revocation not checked" in report.reason_en


def test_naive_validation_time_raises(ctx: Ctx) -> None:
    naive = ctx.now.replace(tzinfo=None)
    with pytest.raises(SignatureError, match="timezone-aware"):
        verify_package(ctx.build(), ctx.trust, at=naive)


# ------------------------------------------------------------------- python-xmlsec's plain verify()


def test_xmlsec_plain_verify_accepts_our_raw_uri_package(ctx: Ctx) -> None:
    """An independent check of our signer: libxmlsec1 verifies what the builder writes."""
    u = tamper.unpack(ctx.build())
    assert tamper.xmlsec_plain_verify(u[MANIFEST_FILE], u.files(), ctx.world.signer.cert) is True


def test_xmlsec_plain_verify_fails_on_percent_uris_that_we_pass(ctx: Ctx) -> None:
    """libxmlsec1 does not decode ``#%E6%A7%8B…`` (pitfalls.md); the format requires it. This is why
    signature/xmldsig.py dereferences references itself."""
    package = ctx.build(options=SigningOptions(uri_style="percent"))
    u = tamper.unpack(package)
    assert b'URI="#%E6%A7%8B%E6%88%90%E6%83%85%E5%A0%B1"' in u[MANIFEST_FILE]
    assert tamper.xmlsec_plain_verify(u[MANIFEST_FILE], u.files(), ctx.world.signer.cert) is False
    assert outcome(verify_package(package, ctx.trust, at=ctx.now)) == (PASSED, None, None)


# ----------------------------------------------------------------------------------- tampering


def t_form_byte(c: Ctx) -> Run:
    u = tamper.unpack(c.build())
    u.edit(c.spec.form_file, lambda d: tamper.replace_once(d, "<様式バージョン>0001<", "<様式バージョン>0002<"))
    return Run(u.zip())


def t_attachment_byte(c: Ctx) -> Run:
    u = tamper.unpack(c.build())
    u.edit("保険証.pdf", lambda d: tamper.flip_byte(d, len(d) // 2))
    return Run(u.zip())


def t_manifest_text(c: Ctx) -> Run:
    return Run(c.rework(c.build(), kousei=lambda root: _set(root, "構成情報/管理情報/手続名称", "児童手当 額改定請求")))


def t_signature_value(c: Ctx) -> Run:
    return Run(c.rework(c.build(), kousei=tamper.flip_signature_value))


def t_digest_value(c: Ctx) -> Run:
    def change(root: etree._Element) -> None:
        ref = next(r for r in root.iter(tamper.ds("Reference")) if r.get("URI") == c.spec.form_file)
        value = ref.find(tamper.ds("DigestValue"))
        assert value is not None
        value.text = tamper.b64_flip(value.text or "")

    return Run(c.rework(c.build(), kousei=change))


def t_extra_file(c: Ctx) -> Run:
    u = tamper.unpack(c.build())
    u.add("追加資料.pdf", sample_pdf("not signed"))
    return Run(u.zip())


def t_attachment_removed(c: Ctx) -> Run:
    u = tamper.unpack(c.build())
    u.remove("口座確認.png")
    return Run(u.zip())


def t_arrival_removed(c: Ctx) -> Run:
    u = tamper.unpack(c.build())
    u.remove(ARRIVAL_FILE)
    return Run(u.zip())


def _signed_package(c: Ctx, manifest_spec: ApplicationSpec, signed: dict[str, bytes],
                    zipped: dict[str, bytes]) -> bytes:
    """kousei.xml for ``manifest_spec`` with a signature over ``signed``; the ZIP holds ``zipped``."""
    kousei = sign_manifest(manifest_document(manifest_spec), signed, c.world.signer)
    arrival = sign_arrival(arrival_document(c.spec, kousei), c.portal)
    return zip_package([(MANIFEST_FILE, kousei), (ARRIVAL_FILE, arrival), *zipped.items()])


def _all_files(spec: ApplicationSpec) -> dict[str, bytes]:
    return {spec.form_file: spec.form_xml, **{a.file_name: a.data for a in spec.attachments}}


def t_signed_file_not_named(c: Ctx) -> Run:
    files = _all_files(c.spec)
    return Run(_signed_package(c, replace(c.spec, attachments=c.spec.attachments[:1]), files, files))


def t_named_file_not_signed(c: Ctx) -> Run:
    files = _all_files(c.spec)
    signed = {n: d for n, d in files.items() if n != "口座確認.png"}
    return Run(_signed_package(c, c.spec, signed, files))


def _set(root: etree._Element, path: str, text: str) -> None:
    el = root.find(path)
    assert el is not None, path
    assert el.text != text
    el.text = text


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(t_form_byte, (FAILED, S.HASH_FAILURE, R.DIGEST_MISMATCH), id="form-byte-changed"),
        pytest.param(t_attachment_byte, (FAILED, S.HASH_FAILURE, R.DIGEST_MISMATCH), id="attachment-byte-changed"),
        pytest.param(t_manifest_text, (FAILED, S.HASH_FAILURE, R.DIGEST_MISMATCH),
                     id="manifest-text-changed-arrival-reissued"),
        pytest.param(t_signature_value, (FAILED, S.SIG_CRYPTO_FAILURE, R.SIGNATURE_INVALID),
                     id="signature-value-altered"),
        pytest.param(t_digest_value, (FAILED, S.SIG_CRYPTO_FAILURE, R.SIGNATURE_INVALID),
                     id="digest-value-in-signed-info-altered"),
        pytest.param(t_extra_file, (FAILED, S.FORMAT_FAILURE, R.UNREFERENCED_FILE), id="extra-unreferenced-file"),
        pytest.param(t_attachment_removed, (FAILED, S.FORMAT_FAILURE, R.MISSING_FILE), id="attachment-removed"),
        pytest.param(t_signed_file_not_named, (FAILED, S.FORMAT_FAILURE, R.BAD_MANIFEST),
                     id="signed-file-not-named-in-manifest"),
        pytest.param(t_named_file_not_signed, (FAILED, S.FORMAT_FAILURE, R.UNREFERENCED_FILE),
                     id="named-file-present-but-not-signed"),
        pytest.param(t_arrival_removed, (FAILED, S.FORMAT_FAILURE, R.MISSING_FILE), id="arrival-record-removed"),
    ],
)
def test_tampering_fails(ctx: Ctx, make: Callable[[Ctx], Run], expected: Expected) -> None:
    report = make(ctx).verify(ctx)
    assert outcome(report) == expected, report.reason_en
    assert report.readable is True
    # Nothing of the applicant's part is reported when it does not verify.
    assert report.manifest is None
    assert report.signer is None
    assert report.files == ()


# ---------------------------------------------------------------------------- signature wrapping


def _evil_copy(root: etree._Element, *, keep_id: bool) -> tuple[etree._Element, etree._Element]:
    """(the signed 構成情報, an attacker's copy with another 手続名称 and applicant)."""
    signed = tamper.manifest_element(root)
    evil = copy.deepcopy(signed)
    _set(evil, "管理情報/手続名称", "EVIL 手続")
    _set(evil, "管理情報/申請者連絡先情報/申請者情報/氏名", "悪意　太郎")
    _set(evil, "管理情報/申請者連絡先情報/申請者情報/住所", "東京都千代田区永田町一丁目7番1号")
    if not keep_id:
        del evil.attrib["ID"]
    return signed, evil


def _signature(root: etree._Element) -> etree._Element:
    (sig,) = root.iter(tamper.ds("Signature"))
    return sig


def w_evil_before(root: etree._Element) -> None:
    signed, evil = _evil_copy(root, keep_id=False)
    signed.addprevious(evil)


def w_evil_before_same_id(root: etree._Element) -> None:
    signed, evil = _evil_copy(root, keep_id=True)
    signed.addprevious(evil)


def w_evil_after(root: etree._Element) -> None:
    signed, evil = _evil_copy(root, keep_id=False)
    signed.addnext(evil)


def w_signed_in_object_evil_same_id(root: etree._Element) -> None:
    signed, evil = _evil_copy(root, keep_id=True)
    signed.addnext(evil)
    etree.SubElement(_signature(root), tamper.ds("Object")).append(signed)


def w_signed_in_object_evil_same_id_signature_first(root: etree._Element) -> None:
    # As above, with 署名情報 moved before 構成情報: the signed copy now comes first in document order.
    signed, evil = _evil_copy(root, keep_id=True)
    holder = root.find("署名情報")
    assert holder is not None
    signed.addnext(evil)
    signed.addprevious(holder)
    etree.SubElement(_signature(root), tamper.ds("Object")).append(signed)


def w_signed_in_object_evil_without_id(root: etree._Element) -> None:
    signed, evil = _evil_copy(root, keep_id=False)
    signed.addnext(evil)
    etree.SubElement(_signature(root), tamper.ds("Object")).append(signed)


def w_duplicate_id_elsewhere(root: etree._Element) -> None:
    holder = root.find("署名情報")
    assert holder is not None
    holder.set("ID", "構成情報")


def w_second_signature(root: etree._Element) -> None:
    sig = _signature(root)
    sig.addnext(copy.deepcopy(sig))


def w_nested_deeper(root: etree._Element) -> None:
    signed = tamper.manifest_element(root)
    wrapper = etree.Element("申請データ")
    signed.addprevious(wrapper)
    wrapper.append(signed)


@dataclass(frozen=True)
class Wrap:
    edit: Callable[[etree._Element], None]
    #: the signed package's c14n: moving 構成情報 under ds:Signature changes its inclusive-c14n form
    #: (it inherits xmlns:ds), so those cases use an exclusive-c14n package, as an attacker would pick
    exclusive: bool
    reason: ReasonCode
    #: what python-xmlsec's plain verify() says about the wrapped document
    xmlsec_passes: bool


# xmlsec_passes=False: libxmlsec1 registers the *first* element carrying a given ID in document
# order (xmlSecAddIDs), so an evil copy with the same ID placed before the signed one is what it
# digests, and verify() fails; every other wrapping here verifies there.
WRAPPING = [
    ("evil-manifest-before-signed", Wrap(w_evil_before, False, R.SIGNATURE_STRUCTURE, True)),
    ("evil-manifest-with-same-id-before-signed", Wrap(w_evil_before_same_id, False, R.DUPLICATE_ID, False)),
    ("evil-manifest-after-signed", Wrap(w_evil_after, False, R.SIGNATURE_STRUCTURE, True)),
    ("signed-in-ds-object-evil-in-place-same-id",
     Wrap(w_signed_in_object_evil_same_id, True, R.DUPLICATE_ID, False)),
    ("signed-in-ds-object-evil-in-place-same-id-signature-first",
     Wrap(w_signed_in_object_evil_same_id_signature_first, True, R.DUPLICATE_ID, True)),
    ("signed-in-ds-object-evil-in-place-without-id",
     Wrap(w_signed_in_object_evil_without_id, True, R.SIGNATURE_STRUCTURE, True)),
    ("duplicate-id-on-another-element", Wrap(w_duplicate_id_elsewhere, False, R.DUPLICATE_ID, True)),
    ("second-ds-signature", Wrap(w_second_signature, False, R.SIGNATURE_STRUCTURE, True)),
    ("manifest-nested-one-level-deeper", Wrap(w_nested_deeper, False, R.BAD_MANIFEST, True)),
]


def _wrapped(c: Ctx, w: Wrap) -> bytes:
    options = SigningOptions(canonicalization=EXC, manifest_transforms=(EXC,)) if w.exclusive else SigningOptions()
    return c.rework(c.build(options=options), kousei=w.edit)


@pytest.mark.parametrize("w", [pytest.param(w, id=i) for i, w in WRAPPING])
def test_signature_wrapping_fails_and_returns_nothing(ctx: Ctx, w: Wrap) -> None:
    report = verify_package(_wrapped(ctx, w), ctx.trust, at=ctx.now)
    assert outcome(report) == (FAILED, S.FORMAT_FAILURE, w.reason), report.reason_en
    assert report.readable is True
    assert report.manifest is None
    assert report.signer is None
    assert report.files == ()


@pytest.mark.parametrize(
    ("make", "passes"),
    [
        pytest.param(lambda c: c.build(), True, id="control-untouched"),
        pytest.param(lambda c: t_attachment_byte(c).package, False, id="control-attachment-byte-changed"),
        pytest.param(lambda c: t_manifest_text(c).package, False, id="control-manifest-text-changed"),
        *(pytest.param(lambda c, w=w: _wrapped(c, w), w.xmlsec_passes, id=i) for i, w in WRAPPING),
    ],
)
def test_xmlsec_plain_verify_on_wrapping(ctx: Ctx, make: Callable[[Ctx], bytes], passes: bool) -> None:
    """The pitfall we defend against: python-xmlsec's verify() accepts the wrapped documents that
    verify_package refuses (except where libxmlsec1's first-ID-wins registration finds the evil copy)."""
    u = tamper.unpack(make(ctx))
    assert tamper.xmlsec_plain_verify(u[MANIFEST_FILE], u.files(), ctx.world.signer.cert) is passes


# ------------------------------------------------------------------------------------- DTD/XXE

XXE = b'<!DOCTYPE DataRoot [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
LAUGHS = (
    b'<!DOCTYPE DataRoot [<!ENTITY lol "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
               for i in range(1, 10))
    + b"]>"
)
EMPTY_DOCTYPE = b"<!DOCTYPE DataRoot>"


def d_kousei(doctype: bytes, use: bytes | None) -> Callable[[Ctx], Run]:
    def make(c: Ctx) -> Run:
        def change(k: bytes) -> bytes:
            k = tamper.with_doctype(k, doctype)
            if use is not None:
                k = tamper.replace_once(k, "<手続名称>", "<手続名称>".encode() + use)
            return k

        return Run(c.rework(c.build(), kousei_bytes=change))

    return make


def d_form(c: Ctx) -> Run:
    spec = replace(c.spec, form_xml=tamper.with_doctype(c.spec.form_xml, XXE))
    return Run(c.build(spec=spec))


def d_arrival(c: Ctx) -> Run:
    u = tamper.unpack(c.build())
    u.edit(ARRIVAL_FILE, lambda a: tamper.with_doctype(a, EMPTY_DOCTYPE))
    return Run(u.zip())


def d_malformed(c: Ctx) -> Run:
    return Run(c.rework(c.build(), kousei_bytes=lambda k: k[: len(k) // 2]))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(d_kousei(XXE, b"&xxe;"), R.XML_DTD, id="kousei-external-entity-file-etc-passwd"),
        pytest.param(d_kousei(LAUGHS, b"&lol9;"), R.XML_DTD, id="kousei-billion-laughs"),
        pytest.param(d_kousei(EMPTY_DOCTYPE, None), R.XML_DTD, id="kousei-empty-doctype"),
        pytest.param(d_form, R.XML_DTD, id="form-with-doctype-signed"),
        pytest.param(d_arrival, R.XML_DTD, id="arrival-record-with-doctype"),
        pytest.param(d_malformed, R.XML_MALFORMED, id="kousei-malformed"),
    ],
)
def test_dtd_and_malformed_xml_are_unreadable(ctx: Ctx, make: Callable[[Ctx], Run], reason: ReasonCode) -> None:
    report = make(ctx).verify(ctx)
    assert outcome(report) == (FAILED, S.FORMAT_FAILURE, reason), report.reason_en
    assert report.readable is False
    assert report.manifest is None
    assert report.signer is None
    assert report.files == ()


def test_form_with_doctype_is_refused_after_its_digest_verified(ctx: Ctx) -> None:
    """The form vector is about the DTD, not the digest: the applicant's signature over it verified."""
    report = d_form(ctx).verify(ctx)
    assert "applicant-signature" in report.checks
    assert "form-xml" not in report.checks


# ------------------------------------------------------------------------- weak algorithms, keys


def k_options(**options: Any) -> Callable[[Ctx], Run]:
    return lambda c: Run(c.build(options=SigningOptions(**options)))


def k_signer(name: str, **options: Any) -> Callable[[Ctx], Run]:
    return lambda c: Run(c.build(signer=getattr(c.signers, name), options=SigningOptions(**options)))


def k_key_value_only(c: Ctx) -> Run:
    attacker = Issued(c.world.signer.cert, c.signers.attacker_key)
    return Run(c.rework(c.build(signer=attacker), kousei=lambda root: tamper.key_value_only(root, attacker.rsa_key)))


CRYPTO = (INDETERMINATE, S.CRYPTO_CONSTRAINTS_FAILURE)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(k_options(signature_method=RSA_SHA1), (*CRYPTO, R.WEAK_ALGORITHM), id="rsa-sha1"),
        pytest.param(k_options(digest_method=SHA1_DIGEST), (*CRYPTO, R.WEAK_ALGORITHM), id="sha1-digests"),
        pytest.param(k_options(signature_method=HMAC_SHA256), (*CRYPTO, R.WEAK_ALGORITHM), id="hmac-sha256"),
        pytest.param(k_signer("rsa1024"), (*CRYPTO, R.WEAK_KEY), id="rsa-1024-signer"),
    ],
)
def test_weak_algorithms_and_keys(ctx: Ctx, make: Callable[[Ctx], Run], expected: Expected) -> None:
    report = make(ctx).verify(ctx)
    assert outcome(report) == expected, report.reason_en
    assert report.manifest is None
    assert report.signer is None


# cryptography >= 51 deprecates DSA. Only these tests build DSA material (to prove it is refused), so
# the warning is silenced here and nowhere else; the verifier itself never touches the DSA classes.
DSA_DEPRECATION = "ignore:DSA is deprecated:cryptography.utils.CryptographyDeprecationWarning"


@pytest.fixture(scope="module")
def dsa_signer(world: Any) -> Issued:
    """A JPKI-TEST signing certificate for a DSA key; only DSA_DEPRECATION-marked tests request it."""
    key = dsa.generate_private_key(key_size=2048)
    return world.pki.issue_signer(world.residents[0], key=key, serial=random.Random(4712).randrange(1 << 62, 1 << 63))


@pytest.mark.filterwarnings(DSA_DEPRECATION)
@pytest.mark.parametrize(
    ("signature_method", "expected"),
    [
        pytest.param(DSA_SHA256, (*CRYPTO, R.WEAK_ALGORITHM), id="dsa-sha256"),
        pytest.param(None, (*CRYPTO, R.WEAK_KEY), id="dsa-key-under-rsa-sha256-method"),
    ],
)
def test_dsa_is_refused(ctx: Ctx, dsa_signer: Issued, signature_method: str | None, expected: Expected) -> None:
    options = SigningOptions() if signature_method is None else SigningOptions(signature_method=signature_method)
    report = Run(ctx.build(signer=dsa_signer, options=options)).verify(ctx)
    assert outcome(report) == expected, report.reason_en
    assert report.manifest is None
    assert report.signer is None


# ------------------------------------------------------------------------------------- KeyInfo


def _key_info(root: etree._Element) -> etree._Element:
    (key_info,) = root.iter(tamper.ds("KeyInfo"))
    return key_info


def ki_beside(make: Callable[[], etree._Element], *, first: bool = False) -> Callable[[Ctx], Run]:
    """KeyInfo with ``make()`` beside the genuine X509Data (KeyInfo is not signed: only this changes)."""
    def edit(root: etree._Element) -> None:
        key_info = _key_info(root)
        if first:
            key_info.insert(0, make())
        else:
            key_info.append(make())

    return lambda c: Run(c.rework(c.build(), kousei=edit))


def ki_edit(edit: Callable[[etree._Element], None]) -> Callable[[Ctx], Run]:
    return lambda c: Run(c.rework(c.build(), kousei=lambda root: edit(_key_info(root))))


def _ds_element(local: str, text: str | None = None, **attrs: str) -> Callable[[], etree._Element]:
    def make() -> etree._Element:
        el = etree.Element(tamper.ds(local), nsmap={"ds": DSIG_NS}, **attrs)
        el.text = text
        return el
    return make


def _key_value_of_signer(c: Ctx) -> Run:
    def edit(root: etree._Element) -> None:
        key_info = _key_info(root)
        x509_data = key_info[0]
        tamper.key_value_only(root, c.world.signer.rsa_key)  # the signer's own key, as a KeyValue
        key_info.insert(0, x509_data)
    return Run(c.rework(c.build(), kousei=edit))


def _only_issuer_serial(key_info: etree._Element) -> None:
    (x509_data,) = key_info
    for child in list(x509_data):
        x509_data.remove(child)
    serial = etree.SubElement(x509_data, tamper.ds("X509IssuerSerial"))
    etree.SubElement(serial, tamper.ds("X509IssuerName")).text = "CN=issuer"
    etree.SubElement(serial, tamper.ds("X509SerialNumber")).text = "1"


def _arrival_key_name(c: Ctx) -> Run:
    u = tamper.unpack(c.build())
    u.edit_xml(ARRIVAL_FILE, lambda root: _key_info(root).append(_ds_element("KeyName", "portal")()))
    return Run(u.zip())


NOT_X509DATA = (FAILED, S.FORMAT_FAILURE, R.KEYINFO_NOT_X509DATA)
NO_CERT = (INDETERMINATE, S.NO_SIGNING_CERTIFICATE_FOUND, R.NO_SIGNING_CERTIFICATE)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        # The format allows X509Data only (package-format.md §2): anything else is a format failure,
        # whether it replaces X509Data (an attacker's own key) or sits beside it.
        pytest.param(k_key_value_only, NOT_X509DATA, id="key-value-only-attacker-key"),
        pytest.param(_key_value_of_signer, NOT_X509DATA, id="key-value-of-the-signer-beside-x509data"),
        pytest.param(ki_beside(_ds_element("KeyName", "signer")), NOT_X509DATA, id="key-name-after-x509data"),
        pytest.param(ki_beside(_ds_element("KeyName", "signer"), first=True), NOT_X509DATA,
                     id="key-name-before-x509data"),
        pytest.param(ki_beside(_ds_element("RetrievalMethod", URI="https://key.example/cert.der")), NOT_X509DATA,
                     id="retrieval-method-beside-x509data"),
        pytest.param(ki_beside(lambda: etree.Element("{urn:example:keys}Hint")), NOT_X509DATA,
                     id="foreign-element-beside-x509data"),
        pytest.param(ki_beside(lambda: etree.Comment(" a note ")), (PASSED, None, None),
                     id="comment-beside-x509data-is-not-a-key"),
        # X509Data without a certificate, or no X509Data: the signing certificate cannot be found.
        pytest.param(ki_edit(_only_issuer_serial), NO_CERT, id="x509data-with-issuer-serial-only"),
        pytest.param(ki_edit(lambda ki: ki.remove(ki[0])), NO_CERT, id="empty-key-info"),
    ],
)
def test_key_info_other_than_x509data(ctx: Ctx, make: Callable[[Ctx], Run], expected: Expected) -> None:
    report = make(ctx).verify(ctx)
    assert outcome(report) == expected, report.reason_en
    if expected is NOT_X509DATA:
        assert report.readable is True
        assert "only X509Data" in report.reason_en
        assert report.manifest is None
        assert report.signer is None


def test_key_info_of_the_arrival_record_is_held_to_the_same_rule(ctx: Ctx) -> None:
    report = _arrival_key_name(ctx).verify(ctx)
    assert outcome(report) == NOT_X509DATA
    assert report.arrival is None  # nothing of an arrival record that failed is reported


def test_key_value_package_really_verifies_with_the_attacker_key(ctx: Ctx) -> None:
    """The KeyValue vector is refused for the missing certificate, not for a broken signature."""
    attacker = Issued(ctx.world.signer.cert, ctx.signers.attacker_key)
    u = tamper.unpack(ctx.build(signer=attacker))
    assert tamper.xmlsec_plain_verify(u[MANIFEST_FILE], u.files(), ctx.world.signer.cert) is False
    assert tamper.xmlsec_plain_verify(u[MANIFEST_FILE], u.files(), attacker.rsa_key.public_key()) is True


# --------------------------------------------------------------------------------- certificates


def c_signer(name: str) -> Callable[[Ctx], Run]:
    return lambda c: Run(c.build(signer=getattr(c.signers, name)))


def c_revoked(c: Ctx) -> Run:
    return Run(c.build(signer=c.world.revoked_signer))


def c_revoked_no_cdp(mode: RevocationMode) -> Callable[[Ctx], Run]:
    return lambda c: Run(c.build(signer=c.signers.no_cdp), trust=c.no_cdp_trust,
                         policy=VerificationPolicy(revocation=mode))


def c_no_crls(c: Ctx) -> Run:
    return Run(c.build(), trust=c.world.trust(crls=False))


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(c_signer("expired"), (INDETERMINATE, S.OUT_OF_BOUNDS_NO_POE, R.CERT_EXPIRED), id="expired"),
        pytest.param(c_signer("not_yet_valid"), (FAILED, S.NOT_YET_VALID, R.CERT_NOT_YET_VALID), id="not-yet-valid"),
        # Revoked before 到達日時: nothing proves the signature was made before the revocation
        # (ETSI EN 319 102-1: INDETERMINATE / REVOKED_NO_POE; FAILED / REVOKED would need proof
        # that it was made after it).
        pytest.param(c_revoked, (INDETERMINATE, S.REVOKED_NO_POE, R.CERT_REVOKED), id="revoked"),
        pytest.param(c_revoked_no_cdp(RevocationMode.REQUIRE), (INDETERMINATE, S.REVOKED_NO_POE, R.CERT_REVOKED),
                     id="revoked-without-cdp-require"),
        pytest.param(c_revoked_no_cdp(RevocationMode.SOFT_FAIL), (INDETERMINATE, S.REVOKED_NO_POE, R.CERT_REVOKED),
                     id="revoked-without-cdp-soft-fail"),
        pytest.param(c_signer("foreign"), (INDETERMINATE, S.NO_CERTIFICATE_CHAIN_FOUND, R.UNTRUSTED_CHAIN),
                     id="untrusted-ca-with-the-same-name"),
        pytest.param(c_signer("no_non_repudiation"), (INDETERMINATE, S.CHAIN_CONSTRAINTS_FAILURE, R.CERT_USAGE),
                     id="key-usage-without-non-repudiation"),
        pytest.param(c_signer("no_policy"), (INDETERMINATE, S.CHAIN_CONSTRAINTS_FAILURE, R.CERT_POLICY),
                     id="no-certificate-policies"),
        pytest.param(c_no_crls, (INDETERMINATE, S.TRY_LATER, R.REVOCATION_UNKNOWN), id="no-crls-configured"),
    ],
)
def test_certificate_problems(ctx: Ctx, make: Callable[[Ctx], Run], expected: Expected) -> None:
    report = make(ctx).verify(ctx)
    assert outcome(report) == expected, report.reason_en
    # The package itself is intact: what was verified before the certificate check is reported.
    assert report.manifest is not None
    assert report.manifest.procedure_id == ctx.spec.procedure_id
    assert report.arrival is not None
    assert report.arrival.receipt_number == ctx.spec.receipt_number
    assert report.revocation_checked is False


def test_no_cdp_vector_really_has_no_distribution_point(ctx: Ctx) -> None:
    with pytest.raises(x509.ExtensionNotFound):
        ctx.signers.no_cdp.cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    ctx.world.signer.cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)


def test_untrusted_vector_really_has_the_trusted_issuer_name(ctx: Ctx) -> None:
    foreign, ours = ctx.signers.foreign.cert, ctx.world.signer.cert
    assert foreign.issuer == ours.issuer
    aki = x509.AuthorityKeyIdentifier
    assert (foreign.extensions.get_extension_for_class(aki).value.key_identifier
            != ours.extensions.get_extension_for_class(aki).value.key_identifier)


# ------------------------------------------------------------------------------- arrival record


def a_non_portal_signer(c: Ctx) -> Run:
    u = tamper.unpack(c.build())
    u[ARRIVAL_FILE] = sign_arrival(arrival_document(c.spec, u[MANIFEST_FILE]), c.world.signer)
    return Run(u.zip())


def a_other_kousei(c: Ctx) -> Run:
    u = tamper.unpack(c.build())
    other = tamper.unpack(c.build(spec=replace(c.spec, procedure_name="児童手当 額改定認定請求")))[MANIFEST_FILE]
    u.reissue_arrival(c.spec, c.portal, for_kousei=other)
    return Run(u.zip())


def a_other_procedure_id(c: Ctx) -> Run:
    u = tamper.unpack(c.build())
    u.reissue_arrival(c.spec, c.portal, procedure_id="KOSODATE-JIDOTEATE-GAKUKAITEI")
    return Run(u.zip())


def a_receipt_changed(c: Ctx) -> Run:
    u = tamper.unpack(c.build())
    u.edit(ARRIVAL_FILE, lambda a: tamper.replace_once(
        a, f"<受付番号>{c.spec.receipt_number}<", "<受付番号>20261125-0000009999<"))
    return Run(u.zip())


@pytest.mark.parametrize(
    ("make", "expected", "record_verified"),
    [
        pytest.param(a_non_portal_signer, (INDETERMINATE, S.NO_CERTIFICATE_CHAIN_FOUND, R.ARRIVAL_UNTRUSTED),
                     False, id="signed-by-a-non-portal-key"),
        pytest.param(a_other_kousei, (FAILED, S.FORMAT_FAILURE, R.ARRIVAL_MISMATCH), False,
                     id="issued-for-another-kousei-xml"),
        # Portal-signed and bound to these kousei.xml bytes; only its 手続ID disagrees with the manifest.
        pytest.param(a_other_procedure_id, (FAILED, S.FORMAT_FAILURE, R.ARRIVAL_MISMATCH), None,
                     id="procedure-id-differs"),
        pytest.param(a_receipt_changed, (FAILED, S.HASH_FAILURE, R.DIGEST_MISMATCH), False,
                     id="receipt-number-changed-after-signing"),
    ],
)
def test_arrival_record_problems(
    ctx: Ctx, make: Callable[[Ctx], Run], expected: Expected, record_verified: bool | None
) -> None:
    report = make(ctx).verify(ctx)
    assert outcome(report) == expected, report.reason_en
    if record_verified is False:
        assert report.arrival is None  # no 受付番号 / serial from an unverified arrival record
    assert report.manifest is None
    assert report.signer is None


# ------------------------------------------------------------------------------------------ ZIP


def z_lying_header(c: Ctx) -> Run:
    zeros = zip_package([(MANIFEST_FILE, b"<DataRoot/>"), ("zeros.bin", bytes(16 * MiB))])
    limits = ZipLimits(max_total_uncompressed=4 * MiB)
    return Run(tamper.declare_size(zeros, "zeros.bin", 1000), policy=VerificationPolicy(limits=limits))


def z_slip(c: Ctx) -> Run:
    u = tamper.unpack(c.build())
    return Run(zip_package([*u.entries, ("../evil.txt", b"owned")]))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(lambda c: Run(c.bomb_150mib), R.ZIP_BOMB, id="zip-bomb-150mib-of-zeros"),
        pytest.param(z_lying_header, R.ZIP_BOMB, id="zip-bomb-header-lies-about-size"),
        pytest.param(z_slip, R.ZIP_UNSAFE_PATH, id="zip-slip-dot-dot-entry"),
        pytest.param(lambda c: Run(sample_pdf("not a zip")), R.NOT_A_ZIP, id="not-a-zip"),
        pytest.param(lambda c: Run(b""), R.EMPTY_INPUT, id="empty-bytes"),
    ],
)
def test_container_problems_are_unreadable(ctx: Ctx, make: Callable[[Ctx], Run], reason: ReasonCode) -> None:
    report = make(ctx).verify(ctx)
    assert outcome(report) == (FAILED, S.FORMAT_FAILURE, reason), report.reason_en
    assert report.readable is False
    assert report.checks == ()
    assert report.manifest is None
