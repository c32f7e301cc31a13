"""verify_package(): the whole decision for one application package, as a frozen report.

Order (each stage keeps what earlier stages verified, so a FAILED report can still tell staff
which application it was): container → portal arrival record (signature, portal chain, binding to
kousei.xml's bytes: from here on the 受付番号 is known) → applicant signature (structure, digests,
signature value) → form XML → 手続ID consistency → signer certificate path → certificate policy →
signer identity → revocation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509

from signature.certs import TrustStore, load_certificates
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
from signature.policy import RevocationMode, VerificationPolicy
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
    VerificationReport,
)
from signature.revocation import RevocationStatus, RevocationStore
from signature.xmlparse import parse_xml
from signature.zipreader import read_package

__all__ = ["TrustConfig", "verify_package"]

_SIGNER_USAGE = ("digital_signature", "content_commitment")  # content_commitment = nonRepudiation
_PORTAL_USAGE = ("digital_signature",)


@dataclass(frozen=True)
class TrustConfig:
    """Trust anchors and revocation data, from configuration only — never from a package.

    ``intermediates`` are CA certificates that are not anchors: they help build paths, and their
    CRLs can be verified and used. An intermediate that only arrives in a package's KeyInfo is
    used for the path, but no CRL is attributed to it, so its leaves are TRY_LATER under
    ``require`` (production JPKI issues signing certificates directly from the root).
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
        return cls(TrustStore(jpki), TrustStore(portal), extra, store)


@dataclass
class _Progress:
    """What has been verified so far; becomes the report."""

    checks: list[str] = field(default_factory=list)
    readable: bool = True
    manifest: Manifest | None = None
    arrival: ArrivalRecord | None = None
    signer: SignerIdentity | None = None
    files: tuple[FileEntry, ...] = ()
    signature_algorithm: str | None = None
    revocation_checked: bool = False


def verify_package(
    data: bytes,
    trust: TrustConfig,
    *,
    at: datetime,
    policy: VerificationPolicy | None = None,
) -> VerificationReport:
    """Verify one package at the moment ``at`` (timezone-aware) and report what was verified.

    Never raises for a bad package: every problem becomes a FAILED or INDETERMINATE report.
    Raises :class:`SignatureError` only for a programming or configuration error (naive ``at``).
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise SignatureError("the validation time must be timezone-aware")
    policy = policy or VerificationPolicy()
    digest = hashlib.sha256(data).hexdigest()
    progress = _Progress()
    try:
        _verify(data, trust, at, policy, progress)
    except VerificationFailure as failure:
        if isinstance(failure, UnreadablePackage):
            progress.readable = False
        return _report(progress, at, digest, failure.indication, failure.sub_indication,
                       failure.code, failure.detail)
    return _report(progress, at, digest, Indication.PASSED, None, None, "")


def _report(
    p: _Progress, at: datetime, digest: str, indication: Indication,
    sub: SubIndication | None, code: ReasonCode | None, detail: str,
) -> VerificationReport:
    if code is None:
        en, ja = "All checks passed", "すべての検証に合格しました"
        if not p.revocation_checked:
            en, ja = (en + " (revocation not checked: soft-fail, no current CRL)",
                      ja + "（失効確認なし：CRLが未提供）")
    else:
        en, ja = describe(code)
        en = f"{en}: {detail}" if detail else en
    return VerificationReport(
        indication=indication, sub_indication=sub, reason_code=code, reason_en=en, reason_ja=ja,
        validation_time=at, checks=tuple(p.checks), readable=p.readable, package_sha256=digest,
        manifest=p.manifest, arrival=p.arrival, signer=p.signer, files=p.files,
        signature_algorithm=p.signature_algorithm, revocation_checked=p.revocation_checked,
    )


def _verify(data: bytes, trust: TrustConfig, at: datetime, policy: VerificationPolicy, p: _Progress) -> None:
    files = read_package(data, policy.limits)
    p.checks.append("container")

    arrival = verify_arrival(files, policy)
    p.checks.append("arrival-signature")
    trust.portal.validate(
        arrival.signature.signer, arrival.signature.certificates[1:], at=at, untrusted=ReasonCode.ARRIVAL_UNTRUSTED
    )
    _check_key_usage(arrival.signature.signer, _PORTAL_USAGE, ReasonCode.ARRIVAL_UNTRUSTED)
    p.checks.append("portal-chain")
    p.arrival = arrival.record

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
    path = trust.jpki.validate(signer, [*applicant.signature.certificates[1:], *trust.intermediates], at=at)
    p.checks.append("signer-chain")
    _check_key_usage(signer, _SIGNER_USAGE, ReasonCode.CERT_USAGE)
    p.checks.append("signer-key-usage")
    _check_policy(signer, policy.signing_policy_oid)
    p.checks.append("signer-policy")
    p.signer = signer_identity(signer)
    p.checks.append("signer-identity")
    _check_revocation(path, trust.revocation, at, policy.revocation, p)


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


def _check_revocation(
    path: tuple[x509.Certificate, ...], store: RevocationStore | None, at: datetime,
    mode: RevocationMode, p: _Progress,
) -> None:
    """Leaf: status must be known (``require``) or is skipped with a note (``soft-fail``).
    CA certificates: checked where a CRL of their issuer is configured."""
    for depth in range(len(path) - 1, 0, -1):
        cert, issuer = path[depth], path[depth - 1]
        is_leaf = depth == len(path) - 1
        result = store.check(cert, issuer, at) if store is not None else None
        if result is not None and result.status is RevocationStatus.REVOKED:
            raise VerificationFailure(
                ReasonCode.CERT_REVOKED,
                "the signing certificate is revoked" if is_leaf else "a CA certificate of the path is revoked",
                indication=Indication.FAILED, sub_indication=SubIndication.REVOKED,
            )
        if is_leaf:
            if result is not None and result.status is RevocationStatus.GOOD:
                p.revocation_checked = True
            elif mode is RevocationMode.REQUIRE:
                raise VerificationFailure(
                    ReasonCode.REVOCATION_UNKNOWN, "no current CRL from the signing certificate's issuer",
                    indication=Indication.INDETERMINATE, sub_indication=SubIndication.TRY_LATER,
                )
    p.checks.append("signer-revocation")
