"""Package parsing and XML signature / X.509 validation for application packages.

The one entry point is :func:`verify_package`: bytes in, a frozen :class:`VerificationReport` out,
holding only what verified signatures covered. See docs/package-format.md and docs/decisions.md.
"""

__version__ = "0.1.0"  # the release; pyproject.toml says the same (tests/test_cli_conventions.py)

from signature.errors import SignatureError, TrustConfigError, UnreadablePackage, VerificationFailure
from signature.mynumber import is_valid_my_number
from signature.policy import RevocationMode, VerificationPolicy, ZipLimits
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
from signature.revocation import CrlRefusal, RevocationStore, RevocationStoreStatus
from signature.verify import TrustConfig, verify_package
from signature.xmlparse import parse_xml

__all__ = [
    "ArrivalRecord",
    "CrlRefusal",
    "FileEntry",
    "FileRole",
    "Indication",
    "Manifest",
    "ReasonCode",
    "RevocationMode",
    "RevocationStore",
    "RevocationStoreStatus",
    "SignatureError",
    "SignerIdentity",
    "SubIndication",
    "TimeSource",
    "TrustConfig",
    "TrustConfigError",
    "UnreadablePackage",
    "VerificationFailure",
    "VerificationPolicy",
    "VerificationReport",
    "ZipLimits",
    "is_valid_my_number",
    "parse_xml",
    "verify_package",
]
