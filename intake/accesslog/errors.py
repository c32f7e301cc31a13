"""Errors of the access log's search, export and retention, with typed fields for their callers."""

from __future__ import annotations

from intake.errors import Conflict, IntakeError, InvalidRequest

__all__ = ["AtenaSearchInvalid", "PurgeRefused", "PurgeRunning"]


class AtenaSearchInvalid(InvalidRequest):
    """The access log is searched by a 宛名番号 (10 digits) only: anything else — a My Number typed in
    the box — is refused before it is kept or logged (the message omits the value)."""

    code = "ATENA_SEARCH_INVALID"

    def __init__(self) -> None:
        super().__init__("the access log is searched by a 宛名番号 (10 digits) only")


class PurgeRefused(IntakeError):
    """The rows a purge would delete do not chain intact: they are evidence and stay."""

    code = "CHAIN_BROKEN"

    def __init__(self, broken: tuple[int, ...], *, why: str = "the chain of the rows to purge is broken") -> None:
        super().__init__(f"{why} at row id(s): " + " ".join(map(str, broken)))
        self.broken = broken
        self.why = why


class PurgeRunning(Conflict):
    """Another purge holds the purge lock (PostgreSQL), or the rows changed while purging."""

    code = "PURGE_RUNNING"
