"""Recorded chain checks: the auditor's page shows the latest one instead of re-hashing the whole
log on every view (that is O(rows), and the log holds 7 years).

A check is an :class:`~intake.models.Event` (append-only history, ``detail`` holds ids and hashes,
no personal data), not a table of its own: an event already has what a check needs (when, what
kind, a JSON detail), and the events table is append-only. Each check also remembers the last row it
saw, so the next one notices rows cut off the end of the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.accesslog.service import ChainCheck, ChainProblem, check_chain
from intake.events import record_event
from intake.models import AccessLogRow, Event

__all__ = ["CHECK_EVENT", "SYSTEM", "CheckRecord", "latest_check", "run_check", "unchecked_rows"]

CHECK_EVENT = "audit.chain_checked"
#: ``by`` of a check run by the command line or a timer (a staff check names the login).
SYSTEM = "system"
_PROBLEMS = frozenset(p.value for p in ChainProblem)
_HEAD_PROBLEMS = frozenset({ChainProblem.HEAD_MISSING, ChainProblem.HEAD_CHANGED})


@dataclass(frozen=True)
class CheckRecord:
    """One recorded check, as the page and the command line show it."""

    event_id: int
    at: datetime
    #: ``system`` (command line, timer) or the login of the auditor who pressed 「今すぐ検証」
    by: str
    by_system: bool
    rows: int
    broken: tuple[int, ...]
    broken_count: int
    problems: tuple[ChainProblem, ...]
    anchor_through_id: int | None
    first_id: int | None
    last_id: int | None
    last_hash: str | None
    #: The ``(id, hash)`` of an earlier head this check compared against.
    expected_head: tuple[int, str] | None

    @property
    def intact(self) -> bool:
        return self.broken_count == 0 and not self.problems

    @classmethod
    def from_event(cls, event: Event) -> CheckRecord:
        d: dict[str, Any] = event.detail
        expected = d.get("expected_head")
        return cls(event_id=event.id, at=event.at, by=str(d.get("by", "")), by_system=bool(d.get("system")),
                   rows=int(d.get("rows", 0)),
                   broken=tuple(int(i) for i in d.get("broken", [])), broken_count=int(d.get("broken_count", 0)),
                   problems=tuple(ChainProblem(p) for p in d.get("problems", []) if p in _PROBLEMS),
                   anchor_through_id=d.get("anchor_through_id"), first_id=d.get("first_id"),
                   last_id=d.get("last_id"), last_hash=d.get("last_hash"),
                   expected_head=(int(expected[0]), str(expected[1])) if expected else None)


def latest_check(session: Session) -> CheckRecord | None:
    """The newest recorded check (one indexed lookup)."""
    event = session.scalars(select(Event).where(Event.kind == CHECK_EVENT).order_by(Event.id.desc()).limit(1)).first()
    return None if event is None else CheckRecord.from_event(event)


def unchecked_rows(session: Session, check: CheckRecord | None) -> int:
    """Rows appended since ``check`` (a primary-key range count)."""
    stmt = select(func.count()).select_from(AccessLogRow)
    if check is not None and check.last_id is not None:
        stmt = stmt.where(AccessLogRow.id > check.last_id)
    return session.scalar(stmt) or 0


def run_check(session: Session, *, at: datetime, by: str | None = None, batch_size: int = 1000) -> CheckRecord:
    """Walk the whole chain (:func:`check_chain`) and record the result (the caller commits);
    ``by``: the staff login, ``None`` for the system.

    The previous check's last row is handed in, so a truncated end is caught; once a head was found
    missing or changed, every later check compares against that same head again, so the finding
    stays on the page instead of vanishing at the next check.
    """
    previous = latest_check(session)
    head = None
    if previous is not None:
        if set(previous.problems) & _HEAD_PROBLEMS:
            head = previous.expected_head
        elif previous.last_id is not None and previous.last_hash is not None:
            head = (previous.last_id, previous.last_hash)
    result: ChainCheck = check_chain(session, expected_head=head, batch_size=batch_size)
    event = record_event(session, CHECK_EVENT, at=at, by=by or SYSTEM, system=by is None, rows=result.rows,
                         broken=list(result.broken), broken_count=result.broken_count,
                         problems=[p.value for p in result.problems],
                         anchor_through_id=result.anchor_through_id, first_id=result.first_id,
                         last_id=result.last_id, last_hash=result.last_hash,
                         expected_head=list(head) if head is not None else None)
    session.flush()
    return CheckRecord.from_event(event)
