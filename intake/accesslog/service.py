"""Append to and verify the hash-chained access log.

Each row's hash covers its own fields and the previous row's hash, so deleting or altering a row
breaks the chain at that point (:func:`verify_chain`). Appends are serialised per database
(PostgreSQL: a transaction-scoped advisory lock; SQLite: its single writer).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from intake.models import AccessLogRow

__all__ = ["GENESIS", "Actor", "append_access", "verify_chain"]

GENESIS = "0" * 64
_LOCK_ID = 0x5348494E  # "SHIN"


@dataclass(frozen=True)
class Actor:
    """Who does something, from where. ``permissions`` are checked by services, not templates."""

    staff_id: str
    department: str
    terminal: str
    permissions: frozenset[str] = frozenset()


def _digest(row: AccessLogRow) -> str:
    body = json.dumps(
        [row.at.astimezone(UTC).isoformat(), row.staff_id, row.department, row.terminal, row.action, row.reason,
         row.atena_number, row.subject, row.prev_hash],
        ensure_ascii=False, separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def append_access(
    session: Session, *, actor: Actor, at: datetime, action: str, subject: str,
    reason: str | None = None, atena_number: str | None = None,
) -> AccessLogRow:
    """Add one access-log row chained to the last one (committed with the caller's transaction)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
    last = session.scalar(select(AccessLogRow.hash).order_by(AccessLogRow.id.desc()).limit(1))
    row = AccessLogRow(at=at, staff_id=actor.staff_id, department=actor.department, terminal=actor.terminal,
                       action=action, reason=reason, atena_number=atena_number, subject=subject,
                       prev_hash=last or GENESIS)
    row.hash = _digest(row)
    session.add(row)
    session.flush()
    return row


def verify_chain(session: Session) -> list[int]:
    """Ids of rows where the chain breaks (altered row, or a row missing before it). Empty: intact."""
    broken: list[int] = []
    prev = GENESIS
    for row in session.scalars(select(AccessLogRow).order_by(AccessLogRow.id)):
        if row.prev_hash != prev or _digest(row) != row.hash:
            broken.append(row.id)
        prev = row.hash
    return broken
