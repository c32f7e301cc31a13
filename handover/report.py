"""``X-Relay-Report``: the relay's own findings on a package it forwards.

base64url (unpadded) of compact UTF-8 JSON, at most :data:`REPORT_MAX_CHARS` characters — the one
budget both sides use: the relay fits its report to it (:meth:`RelayReport.fitted`) and the intake
refuses anything longer. File names travel only here, to the My Number zone: never into the relay's
logs or tombstones (a name can hold personal data).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints, ValidationError

__all__ = ["REPORT_HEADER", "REPORT_MAX_CHARS", "MalwareFindings", "RelayReport", "RelayVerdict", "ReportRefused"]

REPORT_HEADER = "X-Relay-Report"
#: The encoded header's size budget (characters); well below common 8 KiB header limits.
REPORT_MAX_CHARS = 6000
#: What stands in for the names when not even one fits the budget.
NAMES_OMITTED = "(file names omitted)"

_Code = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9_]{1,64}$")]
_Name = Annotated[str, StringConstraints(min_length=1, max_length=512)]
_Token = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ReportRefused(ValueError):
    """A header that is not a report of this contract (the intake answers 400 BAD_RELAY_REPORT)."""

    code = "BAD_RELAY_REPORT"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class RelayVerdict(_Model):
    """The relay's own verification of the package (the intake verifies again itself)."""

    indication: Literal["PASSED", "FAILED", "INDETERMINATE"]
    reason_code: _Code | None = None
    validation_time: AwareDatetime


class MalwareFindings(_Model):
    """The relay's scan. ``flagged_entries`` is the complete answer, however many files: a bitmap
    over the package's ZIP entries in central-directory order (as :func:`signature.zipreader.read_package`
    lists them), bit *i* (least significant first within each byte) set for each entry flagged
    (infected, or unscannable), base64url without padding — 1 000 entries take 167 characters.
    ``infected_files`` are the same entries' names for people, and may be cut to fit the budget
    (``truncated``)."""

    scanner: _Token
    infected_files: tuple[_Name, ...] = ()
    signatures: tuple[_Token, ...] = ()
    unscannable_files: tuple[_Name, ...] = ()
    truncated: bool = False
    flagged_entries: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{0,1400}$")] | None = None

    @staticmethod
    def bitmap(indexes: Iterable[int]) -> str:
        """``flagged_entries`` for these entry indexes."""
        chosen = sorted(set(indexes))
        if chosen and chosen[0] < 0:
            raise ValueError("entry indexes are not negative")
        raw = bytearray((chosen[-1] // 8 + 1) if chosen else 0)
        for i in chosen:
            raw[i // 8] |= 1 << (i % 8)
        return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")

    def flagged_indexes(self) -> frozenset[int] | None:
        """The entry indexes ``flagged_entries`` names (None: no bitmap was sent)."""
        if self.flagged_entries is None:
            return None
        text = self.flagged_entries
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return frozenset(8 * byte + bit for byte, value in enumerate(raw) for bit in range(8) if value >> bit & 1)


class RelayReport(_Model):
    """Version 1 of the report. A report without ``version`` is version 1."""

    version: Literal[1] = 1
    relay: RelayVerdict
    malware: MalwareFindings

    def to_json(self) -> dict[str, Any]:
        """The JSON object the header carries (and the intake stores)."""
        return self.model_dump(mode="json")

    def encode(self) -> str:
        """The header value; :class:`ReportRefused` if it does not fit (call :meth:`fitted` first)."""
        value = base64.urlsafe_b64encode(self.model_dump_json().encode()).decode().rstrip("=")
        if len(value) > REPORT_MAX_CHARS:
            raise ReportRefused(f"the report needs {len(value)} characters, more than {REPORT_MAX_CHARS}")
        return value

    def fits(self) -> bool:
        try:
            self.encode()
        except ReportRefused:
            return False
        return True

    def fitted(self) -> RelayReport:
        """This report, shortened to the budget if needed (``truncated`` set): first the unscannable
        names go, then the infected names are halved (down to :data:`NAMES_OMITTED`), then the
        signature names. The flag itself always stays: an infected package is never sent as clean."""
        report = self
        while not report.fits():
            m = report.malware
            if m.unscannable_files:
                change: dict[str, Any] = {"unscannable_files": ()}
            elif m.infected_files and m.infected_files != (NAMES_OMITTED,):
                change = {"infected_files": m.infected_files[: len(m.infected_files) // 2] or (NAMES_OMITTED,)}
            elif len(m.signatures) > 1:
                change = {"signatures": m.signatures[: len(m.signatures) // 2]}
            else:
                raise ReportRefused("the report does not fit even without file and signature names")
            report = report.model_copy(update={"malware": m.model_copy(update={**change, "truncated": True})})
        return report

    @property
    def flagged_files(self) -> frozenset[str]:
        """Entry names the relay flagged: infected, and those it could not scan (the relay lists
        them among the infected too: a file no scanner read is treated as infected)."""
        return frozenset(self.malware.infected_files)

    @classmethod
    def decode(cls, header: str) -> RelayReport:
        """Parse a header value; :class:`ReportRefused` for anything but a report of this contract."""
        if len(header) > REPORT_MAX_CHARS:
            raise ReportRefused(f"{REPORT_HEADER} is longer than {REPORT_MAX_CHARS} characters")
        try:
            raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ReportRefused(f"{REPORT_HEADER} is not base64url") from exc
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            # The error's text can echo values (file names): say only which fields are wrong.
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()} - {""})[:5]
            where = f" (fields: {', '.join(fields)})" if fields else ""
            raise ReportRefused(f"{REPORT_HEADER} is not a relay report{where}") from None

