"""What the relay reports besides deliveries: the 受付番号 it set aside (``handover.SetAsideBatch``).

Only the intake has a staff UI, so a package that never reached it must still be visible here: the
relay tells the intake which 受付番号 it set aside after their attempt budget, and which an operator
retried. A set-aside 受付番号 that is later stored is marked resolved by the delivery itself
(:func:`resolve_stored`). Services never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from handover import SetAsideBatch
from intake.authz import OUTBOX_ROLES, Principal
from intake.models import RelaySetAside

__all__ = ["SetAsideRow", "record_set_aside", "resolve_stored", "set_aside_items"]


def record_set_aside(session: Session, batch: SetAsideBatch, *, at: datetime) -> int:
    """Upsert each notice by 受付番号 (a repeat of the same notice changes nothing); returns the count."""
    for notice in batch.items:
        row = session.scalar(select(RelaySetAside).where(RelaySetAside.receipt_number == notice.receipt_number))
        if row is None:
            row = RelaySetAside(receipt_number=notice.receipt_number, recorded_at=at)
            session.add(row)
        row.sha256, row.state, row.reason_code = notice.sha256, notice.state, notice.reason_code
        row.attempts, row.first_seen_at, row.at = notice.attempts, notice.first_seen_at, notice.at
        if notice.state == "set_aside":
            row.resolved_at = None
    return len(batch.items)


def resolve_stored(session: Session, receipt_number: str, *, at: datetime) -> None:
    """A delivery of this 受付番号 was stored: a set-aside notice for it is resolved."""
    row = session.scalar(select(RelaySetAside).where(RelaySetAside.receipt_number == receipt_number,
                                                     RelaySetAside.resolved_at.is_(None)))
    if row is not None:
        row.resolved_at = at


@dataclass(frozen=True)
class SetAsideRow:
    receipt_number: str
    state: str
    reason_code: str
    attempts: int
    first_seen_at: datetime
    at: datetime


def set_aside_items(session: Session, principal: Principal, *, limit: int = 500) -> list[SetAsideRow]:
    """The unresolved set-aside 受付番号, oldest first, for those who follow up forwarding failures
    (department_admin, system_admin: no personal data is shown; the procedure is not known until the
    package arrives)."""
    principal.require(OUTBOX_ROLES, "follow up packages the relay set aside")
    rows = session.scalars(select(RelaySetAside).where(RelaySetAside.resolved_at.is_(None))
                           .order_by(RelaySetAside.first_seen_at).limit(limit))
    return [SetAsideRow(r.receipt_number, r.state, r.reason_code, r.attempts, r.first_seen_at, r.at) for r in rows]
