"""Malware at the intake (P11): what the relay flagged, and the intake's own scan of every file.

The ward promises scanning on the relay *and* on the management system, so the intake scans every
entry of every readable package itself with clamd (:mod:`malware`) and flags what either side found:

* the relay's complete answer is the ``flagged_entries`` bitmap of its report (entry indexes in the
  ZIP's central-directory order, however many files); a report without it (an older relay) counts by
  its names, and a cut list without a bitmap flags every entry;
* the intake's scan flags infected entries and those it cannot scan (too long for clamd, or clamd
  said ERROR for them); a scanner that does not answer refuses the delivery with 503 (the relay
  retries later: nothing is stored unscanned).

Flagged attachments are stored sealed but never served to staff and never forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handover import RelayReport
from intake.deliveries.errors import DeliveryRefused
from malware import ScanLimitExceeded, Scanner, ScannerUnavailable
from signature.policy import ZipLimits
from signature.report import VerificationReport
from signature.zipreader import read_package

__all__ = ["Scanned", "scan_delivery"]


@dataclass(frozen=True)
class Scanned:
    """The entry names flagged by either side, and the intake's own findings for the record."""

    flagged: frozenset[str]
    report: dict[str, Any]


def scan_delivery(body: bytes, report: VerificationReport, relay_report: RelayReport | None, *,
                  scanner: Scanner, scanner_name: str, limits: ZipLimits) -> Scanned:
    if not report.readable:
        return Scanned(frozenset(), {"scanner": scanner_name, "skipped": "unreadable"})
    entries = read_package(body, limits).entries
    flagged = _relay_flags(relay_report, [name for name, _ in entries])
    infected: list[str] = []
    unscannable: list[str] = []
    signatures: set[str] = set()
    for name, data in entries:
        try:
            verdict = scanner.scan(name, data)
        except ScannerUnavailable as exc:
            if isinstance(exc, ScanLimitExceeded) or not exc.retryable:
                unscannable.append(name)
                continue
            raise DeliveryRefused(503, "SCANNER_UNAVAILABLE", "the intake's malware scanner is not answering",
                                  retry_after=30) from None
        if verdict.infected:
            infected.append(name)
            signatures.add(verdict.signature or "unknown")
    flagged.update(infected, unscannable)
    return Scanned(frozenset(flagged), {"scanner": scanner_name, "infected_files": infected,
                                        "unscannable_files": unscannable, "signatures": sorted(signatures)})


def _relay_flags(relay_report: RelayReport | None, names: list[str]) -> set[str]:
    if relay_report is None:
        return set()
    malware = relay_report.malware
    indexes = malware.flagged_indexes()
    if indexes is None:  # an older relay: names only; a cut list flags everything
        return set(names) if malware.truncated else set(malware.infected_files)
    if indexes and max(indexes) >= len(names):  # relay and intake read the ZIP differently: fail safe
        return set(names)
    return {names[i] for i in indexes}
