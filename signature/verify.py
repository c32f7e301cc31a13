"""verify_package(): the whole decision for one application package, as a frozen report.

Order (each stage keeps what earlier stages verified, so a FAILED report can still tell staff
which application it was): container → portal arrival record (signature, portal chain and its
revocation at ``at``, binding to kousei.xml's bytes: from here on the 受付番号 is known) → the
到達日時 guard → applicant signature (structure, digests, signature value) → form XML → 手続ID
consistency → signer certificate path → certificate policy → signer identity → revocation.

Two times (docs/package-format.md "Validation time"): the portal's certificate is validated at
``at``, the time of processing. The applicant's certificate path and its revocation are judged at
the portal-signed 到達日時 — the arrival record is the proof that the signature existed then — so
the relay and the intake, which verify the same bytes at different moments, reach the same answer
(given the same trust material). Nothing here reads the clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from cryptography import x509

from signature.certs import PORTAL_PATH_CACHE_SIZE, TrustStore, load_certificates
from signature.errors import SignatureError, UnreadablePackage, VerificationFailure
from signature.identity import signer_identity
from signature.media import sniff_media_type
from signature.package import (
    ARRIVAL_FILE,
    MANIFEST_FILE,
    VerifiedApplicant,
    check_procedure,
    verify_applicant,
    verify_arrival,
)
from signature.policy import EARLIEST_ARRIVAL, RevocationMode, VerificationPolicy
from signature.reasons import describe
from signature.report import (
    ArrivalRecord,
    FileEntry,
    FileRole,
    Indication,
    Manifest,
    ReasonCode,
    SignerIdentity,
    SubIndication,
    TimeSource,
    VerificationReport,
)
from signature.revocation import RevocationStatus, RevocationStore
from signature.xmlparse import parse_xml
from signature.zipreader import PackageFiles, read_package

__all__ = ["TrustConfig", "VerifiedContainer", "verify_and_read", "verify_package"]

_SIGNER_USAGE = ("digital_signature", "content_commitment")  # content_commitment = nonRepudiation
_PORTAL_USAGE = ("digital_signature",)


@dataclass(frozen=True)
class TrustConfig:
    """Trust anchors and revocation data, from configuration only — never from a package.

    ``jpki`` and ``portal`` hold the trust anchors. ``revocation`` holds the CRLs; a CRL is used
    for a certificate when the key of the issuer certificate that path validation used — an
    anchor, or a CA certificate carried in the package's ``KeyInfo/X509Data`` that chains to one —
    verifies it (:mod:`signature.revocation`). ``intermediates`` are optional CA certificates that
    are not anchors: a path-building aid for packages that do not carry their signing CA; nothing
    requires configuring them for revocation to work.
    """

    jpki: TrustStore
    portal: TrustStore
    intermediates: tuple[x509.Certificate, ...] = ()
    revocation: RevocationStore | None = None

    @classmethod
    def load(
        cls, *, jpki_roots: Sequence[Path], portal_roots: Sequence[Path], crls: Sequence[Path] = (),
        intermediates: Sequence[Path] = (),
    ) -> TrustConfig:
        jpki = load_certificates(jpki_roots)
        portal = load_certificates(portal_roots)
        extra = load_certificates(intermediates)
        store = RevocationStore(list(crls), [*jpki, *extra, *portal]) if crls else None
        return cls(TrustStore(jpki), TrustStore(portal, path_cache_size=PORTAL_PATH_CACHE_SIZE), extra, store)


@dataclass
class _Progress:
    """What has been verified so far; becomes the report."""

    at: datetime  # the time of processing
    validation_time: datetime  # what the applicant is judged at: ``at`` until 到達日時 is trusted
    time_source: TimeSource = TimeSource.PROCESSING
    checks: list[str] = field(default_factory=list)
    readable: bool = True
    manifest: Manifest | None = None
    arrival: ArrivalRecord | None = None
    signer: SignerIdentity | None = None
    files: tuple[FileEntry, ...] = ()
    signature_algorithm: str | None = None
    revocation_checked: bool = False
    signer_revoked_at: datetime | None = None
    crl_this_update: datetime | None = None
    container: PackageFiles | None = None  # every file read, kept for verify_and_read()


@dataclass(frozen=True, slots=True)
class VerifiedContainer:
    """What :func:`verify_and_read` returns: the report, and every file of the container it read.

    ``files`` holds every entry of the container — signed or not, in central-directory order — as
    inflated for the report, so a caller that must also look at every file (the relay's malware
    scan) does not read the ZIP a second time. ``None`` when the container itself could not be read
    (then ``report.readable`` is False). The report's ``package_sha256`` is the digest of exactly the
    bytes that were verified and read.
    """

    report: VerificationReport
    files: PackageFiles | None


def verify_package(
    data: bytes,
    trust: TrustConfig,
    *,
    at: datetime,
    policy: VerificationPolicy | None = None,
) -> VerificationReport:
    """Verify one package, processed at the moment ``at`` (timezone-aware), and report what was verified.

    ``at`` is the time of processing: the portal's certificate is validated at it, and a 到達日時
    later than ``at`` (beyond ``policy.max_arrival_skew``) is refused. The applicant's certificate
    path and revocation are judged at the verified 到達日時 (``report.validation_time``).
    Never raises for a bad package: every problem becomes a FAILED or INDETERMINATE report.
    Raises :class:`SignatureError` only for a programming or configuration error (naive ``at``).
    """
    return verify_and_read(data, trust, at=at, policy=policy).report


def verify_and_read(
    data: bytes,
    trust: TrustConfig,
    *,
    at: datetime,
    policy: VerificationPolicy | None = None,
) -> VerifiedContainer:
    """:func:`verify_package`, and the container's files it read (:class:`VerifiedContainer`).

    The same decision and the same report; one reading of the ZIP for a caller that needs the
    files too (the relay scans every file it forwards). The files are those of ``data``: whatever
    the caller does with them is about these bytes, whose digest is ``report.package_sha256``.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise SignatureError("the validation time must be timezone-aware")
    policy = policy or VerificationPolicy()
    digest = hashlib.sha256(data).hexdigest()
    progress = _Progress(at=at, validation_time=at)
    try:
        _verify(data, trust, at, policy, progress)
    except VerificationFailure as failure:
        if isinstance(failure, UnreadablePackage):
            progress.readable = False
        report = _report(progress, digest, failure.indication, failure.sub_indication, failure.code, failure.detail)
    else:
        report = _report(progress, digest, Indication.PASSED, None, None, "")
    return VerifiedContainer(report, progress.container)


def _report(
    p: _Progress, digest: str, indication: Indication,
    sub: SubIndication | None, code: ReasonCode | None, detail: str,
) -> VerificationReport:
    if code is None:
        en, ja = "All checks passed", "すべての検証に合格しました"
        if not p.revocation_checked:
            en, ja = (en + " (revocation not checked: soft-fail, no current CRL)",
                      ja + "（失効確認なし：CRLが未提供）")
        if p.signer_revoked_at is not None:
            when = p.signer_revoked_at.isoformat()
            en += f" (the signing certificate was revoked after the arrival time, at {when})"
            ja += f"（署名用電子証明書は到達日時より後の {when} に失効しています）"
    else:
        en, ja = describe(code)
        en = f"{en}: {detail}" if detail else en
    return VerificationReport(
        indication=indication, sub_indication=sub, reason_code=code, reason_en=en, reason_ja=ja,
        validation_time=p.validation_time, checks=tuple(p.checks), readable=p.readable, package_sha256=digest,
        manifest=p.manifest, arrival=p.arrival, signer=p.signer, files=p.files,
        signature_algorithm=p.signature_algorithm, revocation_checked=p.revocation_checked,
        validation_time_source=p.time_source, processing_time=p.at, signer_revoked_at=p.signer_revoked_at,
        crl_this_update=p.crl_this_update,
    )


def _verify(data: bytes, trust: TrustConfig, at: datetime, policy: VerificationPolicy, p: _Progress) -> None:
    files = read_package(data, policy.limits)
    p.container = files
    p.checks.append("container")

    arrival = verify_arrival(files, policy)
    p.checks.append("arrival-signature")
    portal_path = trust.portal.validate(
        arrival.signature.signer, arrival.signature.certificates[1:], at=at, untrusted=ReasonCode.ARRIVAL_UNTRUSTED
    )
    _check_key_usage(arrival.signature.signer, _PORTAL_USAGE, ReasonCode.ARRIVAL_UNTRUSTED)
    _check_portal_revocation(portal_path, trust.revocation, at)
    p.checks.append("portal-chain")
    p.arrival = arrival.record
    p.validation_time = _arrival_time(arrival.record.arrived_at, at, policy)
    p.time_source = TimeSource.ARRIVAL
    p.checks.append("arrival-time")
    t = p.validation_time

    applicant = verify_applicant(files, policy)
    p.checks.append("applicant-signature")
    p.signature_algorithm = applicant.signature.signature_method.value
    # The form is XML too: no DOCTYPE anywhere in any XML file of the package (§2).
    parse_xml(applicant.files[applicant.manifest.form_file], max_bytes=policy.limits.max_xml_bytes)
    p.checks.append("form-xml")
    check_procedure(arrival.record, applicant.manifest)
    p.checks.append("arrival-binding")
    p.manifest = applicant.manifest
    p.files = _file_entries(applicant, files.get(MANIFEST_FILE) or b"", files.get(ARRIVAL_FILE))

    signer = applicant.signature.signer
    path = trust.jpki.validate(signer, [*applicant.signature.certificates[1:], *trust.intermediates], at=t)
    p.checks.append("signer-chain")
    _check_key_usage(signer, _SIGNER_USAGE, ReasonCode.CERT_USAGE)
    p.checks.append("signer-key-usage")
    _check_policy(signer, policy.signing_policy_oid)
    p.checks.append("signer-policy")
    p.signer = signer_identity(signer)
    p.checks.append("signer-identity")
    _check_revocation(path, trust.revocation, t, policy.revocation, p)


def _arrival_time(arrived_at: datetime, at: datetime, policy: VerificationPolicy) -> datetime:
    """The verified 到達日時, if it can serve as the validation time; else FAILED / FORMAT_FAILURE."""
    try:
        if arrived_at < EARLIEST_ARRIVAL:
            raise VerificationFailure(ReasonCode.ARRIVAL_TIME_IMPLAUSIBLE, "到達日時 is before 2000")
        if arrived_at - policy.max_arrival_skew > at:
            raise VerificationFailure(
                ReasonCode.ARRIVAL_TIME_IN_FUTURE,
                f"到達日時 is more than {policy.max_arrival_skew} after the time of processing",
            )
    except (OverflowError, ValueError) as exc:  # a time at the edge of datetime's range
        raise VerificationFailure(ReasonCode.ARRIVAL_TIME_IMPLAUSIBLE, "到達日時 is out of range") from exc
    return arrived_at


def _file_entries(applicant: VerifiedApplicant, kousei: bytes, arrival: bytes | None) -> tuple[FileEntry, ...]:
    def entry(name: str, role: FileRole, data: bytes) -> FileEntry:
        return FileEntry(name, role, len(data), hashlib.sha256(data).hexdigest(), sniff_media_type(data), data)

    m = applicant.manifest
    entries = [entry(MANIFEST_FILE, FileRole.MANIFEST, kousei)]
    if arrival is not None:
        entries.append(entry(ARRIVAL_FILE, FileRole.ARRIVAL, arrival))
    entries.append(entry(m.form_file, FileRole.FORM, applicant.files[m.form_file]))
    entries.extend(entry(name, FileRole.ATTACHMENT, applicant.files[name]) for _, name in m.attachments)
    return tuple(entries)


def _check_key_usage(cert: x509.Certificate, required: tuple[str, ...], code: ReasonCode) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not all(getattr(usage, name) for name in required):
        raise VerificationFailure(
            code, f"keyUsage lacks one of {list(required)}",
            indication=Indication.INDETERMINATE, sub_indication=SubIndication.CHAIN_CONSTRAINTS_FAILURE,
        )


def _check_policy(cert: x509.Certificate, oid: str) -> None:
    # Checked on the signing certificate itself: JPKI CA certificates carry no policy chain that
    # RFC 5280 policy processing could follow, and the question is "is this a signing certificate".
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
        identifiers = {p.policy_identifier.dotted_string for p in policies}
    except x509.ExtensionNotFound:
        identifiers = set()  # (cryptography >= 51 refuses to build an empty CertificatePolicies)
    if oid not in identifiers:
        raise VerificationFailure(
            ReasonCode.CERT_POLICY, f"certificatePolicies lacks {oid}",
            indication=Indication.INDETERMINATE, sub_indication=SubIndication.CHAIN_CONSTRAINTS_FAILURE,
        )


def _check_portal_revocation(
    path: tuple[x509.Certificate, ...], store: RevocationStore | None, at: datetime
) -> None:
    """The portal's path at the time of processing, where a CRL of an issuer is loaded.

    Not required (package-format.md §4: used when configured); a portal certificate listed as
    revoked at ``at`` makes the arrival record untrustworthy, whenever it was signed.
    """
    if store is None:
        return
    for depth in range(len(path) - 1, 0, -1):
        result = store.check(path[depth], path[depth - 1], at)
        if result.status is RevocationStatus.REVOKED:
            raise VerificationFailure(
                ReasonCode.ARRIVAL_UNTRUSTED,
                "the portal certificate is revoked" if depth == len(path) - 1
                else "a CA certificate of the portal's path is revoked",
                indication=Indication.INDETERMINATE, sub_indication=SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
            )


def _check_revocation(
    path: tuple[x509.Certificate, ...], store: RevocationStore | None, t: datetime,
    mode: RevocationMode, p: _Progress,
) -> None:
    """Revocation at the validation time ``t`` (the 到達日時), each certificate against the issuer
    certificate of the validated path (anchor, configured or package-carried CA).

    Signing certificate: its status must be known (``require``) or is skipped with a note
    (``soft-fail``). CA certificates: checked where a CRL of their issuer is loaded. Revoked at or
    before ``t`` is INDETERMINATE / REVOKED_NO_POE (REVOKED_CA_NO_POE for a CA): the arrival record
    proves the signature existed at ``t``, nothing proves it was made before the revocation — and
    nothing proves it was made after it, which FAILED / REVOKED would claim (ETSI EN 319 102-1).
    """
    results = [(store.check(path[d], path[d - 1], t) if store is not None else None, d == len(path) - 1)
               for d in range(len(path) - 1, 0, -1)]
    leaf = results[0][0]
    if leaf is not None and leaf.status is not RevocationStatus.UNKNOWN:
        p.crl_this_update = leaf.crl_this_update
        p.signer_revoked_at = leaf.revoked_at or leaf.revoked_later
    for result, is_leaf in results:
        if result is not None and result.status is RevocationStatus.REVOKED:
            _revoked(result.revoked_at, is_leaf)
    if leaf is not None and leaf.status is RevocationStatus.GOOD:
        p.revocation_checked = True
    elif mode is RevocationMode.REQUIRE:
        raise VerificationFailure(
            ReasonCode.REVOCATION_UNKNOWN,
            "no CRL of the signing certificate's issuer that was current at 到達日時 or issued after it "
            "(stale or missing CRL)",
            indication=Indication.INDETERMINATE, sub_indication=SubIndication.TRY_LATER,
        )
    p.checks.append("signer-revocation")


def _revoked(revoked_at: datetime | None, is_leaf: bool) -> NoReturn:
    when = revoked_at.isoformat() if revoked_at is not None else "an unknown time"
    if is_leaf:
        raise VerificationFailure(
            ReasonCode.CERT_REVOKED, f"the signing certificate was revoked at {when}",
            indication=Indication.INDETERMINATE, sub_indication=SubIndication.REVOKED_NO_POE,
        )
    raise VerificationFailure(
        ReasonCode.CA_REVOKED, f"a CA certificate of the signer's path was revoked at {when}",
        indication=Indication.INDETERMINATE, sub_indication=SubIndication.REVOKED_CA_NO_POE,
    )
