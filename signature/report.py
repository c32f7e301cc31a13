"""The verification result: what was decided, why, and only what came from verified bytes.

Modelled on ETSI EN 319 102-1 (indication + sub-indication), so that "revocation status unknown"
(INDETERMINATE / TRY_LATER) is never confused with "revoked" (FAILED / REVOKED). Every refusal also
carries a stable machine-readable :class:`ReasonCode` that is safe to send across zones: it never
contains personal data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

__all__ = [
    "ArrivalRecord",
    "FileEntry",
    "FileRole",
    "Indication",
    "Manifest",
    "ReasonCode",
    "SignerIdentity",
    "SubIndication",
    "TimeSource",
    "VerificationReport",
]


class Indication(enum.StrEnum):
    PASSED = "PASSED"
    INDETERMINATE = "INDETERMINATE"
    FAILED = "FAILED"


class SubIndication(enum.StrEnum):
    """ETSI EN 319 102-1 sub-indications used by this verifier."""

    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    #: The signing certificate was revoked at or before the validation time, and nothing proves that
    #: the signature was made before the revocation (the arrival record only bounds it from above).
    REVOKED_NO_POE = "REVOKED_NO_POE"
    #: As REVOKED_NO_POE, for a CA certificate of the signer's path.
    REVOKED_CA_NO_POE = "REVOKED_CA_NO_POE"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    TRY_LATER = "TRY_LATER"


class ReasonCode(enum.StrEnum):
    """Why a package was not PASSED. Stable identifiers; safe for logs and for other zones."""

    # The container and its XML: the package cannot be read safely (hostile or malformed).
    EMPTY_INPUT = "EMPTY_INPUT"
    NOT_A_ZIP = "NOT_A_ZIP"
    ZIP_TOO_LARGE = "ZIP_TOO_LARGE"
    ZIP_TOO_MANY_ENTRIES = "ZIP_TOO_MANY_ENTRIES"
    ZIP_BOMB = "ZIP_BOMB"
    ZIP_UNSAFE_PATH = "ZIP_UNSAFE_PATH"
    ZIP_DUPLICATE_ENTRY = "ZIP_DUPLICATE_ENTRY"
    ZIP_ENCRYPTED = "ZIP_ENCRYPTED"
    ZIP_LINK = "ZIP_LINK"
    ZIP_UNSUPPORTED = "ZIP_UNSUPPORTED"
    ZIP_CORRUPT = "ZIP_CORRUPT"
    XML_DTD = "XML_DTD"
    XML_MALFORMED = "XML_MALFORMED"
    XML_TOO_LARGE = "XML_TOO_LARGE"
    # The package structure (package-format.md §1–§3).
    MISSING_FILE = "MISSING_FILE"
    UNREFERENCED_FILE = "UNREFERENCED_FILE"
    BAD_MANIFEST = "BAD_MANIFEST"
    SIGNATURE_STRUCTURE = "SIGNATURE_STRUCTURE"
    KEYINFO_NOT_X509DATA = "KEYINFO_NOT_X509DATA"
    DUPLICATE_ID = "DUPLICATE_ID"
    BAD_REFERENCE = "BAD_REFERENCE"
    # Cryptography.
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    WEAK_ALGORITHM = "WEAK_ALGORITHM"
    WEAK_KEY = "WEAK_KEY"
    NO_SIGNING_CERTIFICATE = "NO_SIGNING_CERTIFICATE"
    # Certificates.
    UNTRUSTED_CHAIN = "UNTRUSTED_CHAIN"
    CERT_EXPIRED = "CERT_EXPIRED"
    CERT_NOT_YET_VALID = "CERT_NOT_YET_VALID"
    CERT_REVOKED = "CERT_REVOKED"
    CA_REVOKED = "CA_REVOKED"
    CERT_USAGE = "CERT_USAGE"
    CERT_POLICY = "CERT_POLICY"
    REVOCATION_UNKNOWN = "REVOCATION_UNKNOWN"
    BAD_IDENTITY = "BAD_IDENTITY"
    # The portal's arrival record.
    ARRIVAL_MISMATCH = "ARRIVAL_MISMATCH"
    ARRIVAL_UNTRUSTED = "ARRIVAL_UNTRUSTED"
    ARRIVAL_TIME_IN_FUTURE = "ARRIVAL_TIME_IN_FUTURE"
    ARRIVAL_TIME_IMPLAUSIBLE = "ARRIVAL_TIME_IMPLAUSIBLE"


class TimeSource(enum.StrEnum):
    """Which moment :attr:`VerificationReport.validation_time` is."""

    #: The portal-signed 到達日時 of the verified arrival record: the proof that the applicant's
    #: signature existed then. The applicant's certificate path and its revocation are judged at it.
    ARRIVAL = "arrival"
    #: The ``at`` given to :func:`signature.verify_package` (the time of processing): used when no
    #: trustworthy 到達日時 was reached (the container, the arrival record or its time failed).
    PROCESSING = "processing"


@dataclass(frozen=True, slots=True)
class SignerIdentity:
    """The 基本4情報 from the JPKI signing certificate's subjectAltName (package-format.md §4)."""

    name: str
    name_alt: str | None
    sex: str
    birth_date: date
    address: str
    address_alt: str | None
    cert_serial: str
    issuer: str
    not_before: datetime
    not_after: datetime


class FileRole(enum.StrEnum):
    MANIFEST = "manifest"
    ARRIVAL = "arrival"
    FORM = "form"
    ATTACHMENT = "attachment"


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of the package whose bytes were covered by a verified signature."""

    name: str
    role: FileRole
    size: int
    sha256: str
    media_type: str
    data: bytes = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Manifest:
    """The verified 構成情報 (package-format.md §2)."""

    organisation_code: str
    procedure_id: str
    procedure_name: str
    application_kind: str
    first_receipt_number: str | None
    form_file: str
    attachments: tuple[tuple[str, str], ...]  # (添付書類名称, 添付書類ファイル名称)
    applicant: tuple[tuple[str, str], ...]  # 申請者情報 fields in document order; personal data


@dataclass(frozen=True, slots=True)
class ArrivalRecord:
    """The verified 到達情報 (package-format.md §3)."""

    receipt_number: str
    arrived_at: datetime
    procedure_id: str
    user_cert_serial: str
    portal_cert_subject: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """Frozen outcome of :func:`signature.verify_package`.

    For anything but PASSED, the content fields hold only what was verified before the failure
    (for example the manifest of a package whose certificate is revoked), or ``None``.
    ``readable`` is False when the package could not be read safely at all (hostile or malformed
    container or XML); the relay refuses such packages instead of forwarding them.

    Times: ``validation_time`` is the moment the applicant's signature was judged at, and
    ``validation_time_source`` says which one it is — the portal-signed 到達日時 once the arrival
    record verified (:attr:`TimeSource.ARRIVAL`), else the ``at`` given to
    :func:`~signature.verify_package` (:attr:`TimeSource.PROCESSING`). ``processing_time`` is always
    that ``at``: the portal's certificate is validated at it.

    ``signer_revoked_at`` is the revocation date a CRL lists for the signing certificate, if it
    lists it: at or before ``validation_time`` the result is INDETERMINATE / REVOKED_NO_POE; after
    it the signature stays valid and :attr:`revoked_after_validation_time` is True.
    ``crl_this_update`` is the thisUpdate of the CRL that established the signer's status.
    """

    indication: Indication
    sub_indication: SubIndication | None
    reason_code: ReasonCode | None
    reason_en: str
    reason_ja: str
    validation_time: datetime
    checks: tuple[str, ...]
    readable: bool
    package_sha256: str
    manifest: Manifest | None = None
    arrival: ArrivalRecord | None = None
    signer: SignerIdentity | None = None
    files: tuple[FileEntry, ...] = ()
    signature_algorithm: str | None = None
    revocation_checked: bool = False
    validation_time_source: TimeSource = TimeSource.PROCESSING
    processing_time: datetime | None = None
    signer_revoked_at: datetime | None = None
    crl_this_update: datetime | None = None

    @property
    def passed(self) -> bool:
        return self.indication is Indication.PASSED

    @property
    def revoked_after_validation_time(self) -> bool:
        """The signing certificate is revoked, but only after the moment it was judged at."""
        return self.signer_revoked_at is not None and self.signer_revoked_at > self.validation_time

    def file(self, role: FileRole) -> FileEntry:
        """The single file with ``role`` (manifest, arrival or form)."""
        matches = [f for f in self.files if f.role is role]
        if len(matches) != 1:
            raise LookupError(f"{len(matches)} files with role {role}")
        return matches[0]

    def to_json(self) -> dict[str, Any]:
        """The CLI's JSON contract (issue 2, §9). Contains personal data (signer): not for logs."""
        out: dict[str, Any] = {
            "indication": self.indication.value,
            "sub_indication": self.sub_indication.value if self.sub_indication else None,
            "reason_code": self.reason_code.value if self.reason_code else None,
            "reason": self.reason_en,
            "reason_ja": self.reason_ja,
            "validation_time": self.validation_time.isoformat(),
            "validation_time_source": self.validation_time_source.value,
            "processing_time": self.processing_time.isoformat() if self.processing_time else None,
            "checks": list(self.checks),
            "readable": self.readable,
            "package_sha256": self.package_sha256,
            "revocation_checked": self.revocation_checked,
            "signer_revoked_at": self.signer_revoked_at.isoformat() if self.signer_revoked_at else None,
            "revoked_after_validation_time": self.revoked_after_validation_time,
            "crl_this_update": self.crl_this_update.isoformat() if self.crl_this_update else None,
            "signature_algorithm": self.signature_algorithm,
        }
        if self.manifest is not None:
            out["procedure_id"] = self.manifest.procedure_id
            out["procedure_name"] = self.manifest.procedure_name
            out["application_kind"] = self.manifest.application_kind
            out["first_receipt_number"] = self.manifest.first_receipt_number
        if self.arrival is not None:
            out["receipt_number"] = self.arrival.receipt_number
            out["arrived_at"] = self.arrival.arrived_at.isoformat()
            out["user_cert_serial"] = self.arrival.user_cert_serial
        if self.signer is not None:
            s = self.signer
            out["signer"] = {
                "name": s.name,
                "name_alt": s.name_alt,
                "address": s.address,
                "address_alt": s.address_alt,
                "birth_date": s.birth_date.isoformat(),
                "sex": s.sex,
                "cert_serial": s.cert_serial,
                "issuer": s.issuer,
                "not_before": s.not_before.isoformat(),
                "not_after": s.not_after.isoformat(),
            }
        out["files"] = [
            {"name": f.name, "size": f.size, "sha256": f.sha256, "role": f.role.value,
             "media_type": f.media_type}
            for f in self.files
        ]
        return out
