"""Errors of the access log's search, export and retention, with typed fields for their callers."""

from __future__ import annotations

from intake.errors import Conflict, IntakeError

__all__ = ["PurgeRefused", "PurgeRunning"]


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
