"""Queue, list and acknowledge status notices. No personal data: 受付番号, status, time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from intake.models import StatusNotice

__all__ = ["acknowledge", "enqueue_status", "pending_notices"]


def enqueue_status(session: Session, *, receipt_number: str, status: str, at: datetime) -> StatusNotice:
    notice = StatusNotice(receipt_number=receipt_number, status=status, at=at)
    session.add(notice)
    return notice


def pending_notices(session: Session, *, after_id: int = 0, limit: int = 100) -> Sequence[StatusNotice]:
    return session.scalars(
        select(StatusNotice).where(StatusNotice.acked_at.is_(None), StatusNotice.id > after_id)
        .order_by(StatusNotice.id).limit(limit)
    ).all()


def acknowledge(session: Session, ids: Sequence[int], *, at: datetime) -> int:
    """Mark notices delivered to the portal; repeating an acknowledgement changes nothing."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(StatusNotice).where(StatusNotice.id.in_(list(ids)), StatusNotice.acked_at.is_(None))
        .values(acked_at=at)
    )
    return int(result.rowcount or 0)
