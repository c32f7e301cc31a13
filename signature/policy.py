"""Verification policy: frozen, secure by default; lenient options are named as such."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = [
    "EARLIEST_ARRIVAL",
    "JPKI_SIGNING_POLICY_OID",
    "RevocationMode",
    "VerificationPolicy",
    "ZipLimits",
]

#: certificatePolicies OID of the JPKI signing certificate (署名用電子証明書), package-format.md §4.
JPKI_SIGNING_POLICY_OID = "1.2.392.200149.8.5.1.1"

#: An 到達日時 before this is refused as implausible (ARRIVAL_TIME_IMPLAUSIBLE): JPKI began in 2004,
#: and a year-0001 time would only overflow date arithmetic further down.
EARLIEST_ARRIVAL = datetime(2000, 1, 1, tzinfo=UTC)


class RevocationMode(enum.StrEnum):
    """How missing revocation data for the signing certificate is treated."""

    #: The signer's status must be known from a current, validly signed CRL (default).
    REQUIRE = "require"
    #: Lenient: when no current CRL is available the check is skipped and the report says so.
    #: A certificate listed in an available CRL is still REVOKED.
    SOFT_FAIL = "soft-fail"


@dataclass(frozen=True, slots=True)
class ZipLimits:
    """Container limits (package-format.md §1); checked from the central directory and while inflating."""

    max_package_bytes: int = 120 * 1024 * 1024
    max_entries: int = 1000
    max_total_uncompressed: int = 100 * 1024 * 1024
    max_ratio: int = 200
    ratio_applies_above: int = 1024 * 1024
    max_xml_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class VerificationPolicy:
    """What a package must satisfy to be PASSED."""

    limits: ZipLimits = field(default_factory=ZipLimits)
    min_rsa_bits: int = 2048
    revocation: RevocationMode = RevocationMode.REQUIRE
    signing_policy_oid: str = JPKI_SIGNING_POLICY_OID
    #: How far the portal-signed 到達日時 may lie after the time of processing (``at``) before the
    #: package is refused (ARRIVAL_TIME_IN_FUTURE): clocks of the portal and of this host differ a
    #: little; more than this means a wrong clock or a forged-looking record, not a package to judge.
    max_arrival_skew: timedelta = timedelta(minutes=5)
