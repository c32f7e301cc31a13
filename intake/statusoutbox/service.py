"""Queue, list and acknowledge status notices: 受付番号, status, time, and the comment to the resident.

The comment is what staff wrote *for the resident* with the status change (補正依頼's "what to
correct"); it leaves the My Number zone only through the relay, in memory, to the portal
(:mod:`handover.status`). Internal notes are never queued here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from handover import COMMENT_MAX_CHARS, NoticeRefused
from intake.models import StatusNotice

__all__ = ["OUTCOME_DELIVERED", "OUTCOME_REFUSED", "acknowledge", "enqueue_status", "notices_for",
           "pending_notices"]

OUTCOME_DELIVERED = "delivered"
OUTCOME_REFUSED = "refused"


def enqueue_status(session: Session, *, receipt_number: str, status: str, at: datetime, comment: str | None = None,
                   transition_id: int | None = None) -> StatusNotice:
    """Queue a notice. ``comment`` (stripped; blank is none) must fit the portal's limit: the staff
    form refuses a longer one first (:class:`intake.applications.errors.CommentTooLong`)."""
    text = (comment or "").strip() or None
    if text is not None and len(text) > COMMENT_MAX_CHARS:
        raise ValueError("a comment for the portal is at most COMMENT_MAX_CHARS characters")
    notice = StatusNotice(receipt_number=receipt_number, status=status, at=at, comment=text,
                          transition_id=transition_id)
    session.add(notice)
    return notice


def pending_notices(session: Session, *, after_id: int = 0, limit: int = 100) -> Sequence[StatusNotice]:
    return session.scalars(
        select(StatusNotice).where(StatusNotice.acked_at.is_(None), StatusNotice.id > after_id)
        .order_by(StatusNotice.id).limit(limit)
    ).all()


def notices_for(session: Session, transition_ids: Sequence[int]) -> dict[int, StatusNotice]:
    """The notice of each status change (for the staff UI's 「申請者への通知」 column)."""
    if not transition_ids:
        return {}
    rows = session.scalars(select(StatusNotice).where(StatusNotice.transition_id.in_(list(transition_ids))))
    return {n.transition_id: n for n in rows if n.transition_id is not None}


def acknowledge(session: Session, ids: Sequence[int], *, at: datetime,
                refused: Sequence[NoticeRefused] = ()) -> int:
    """Mark notices done: ``ids`` delivered to the portal, ``refused`` refused by it for good (with
    the portal's code). Repeating an acknowledgement changes nothing."""
    done = _ack(session, list(ids), outcome=OUTCOME_DELIVERED, code=None, at=at)
    for item in refused:
        done += _ack(session, [item.id], outcome=OUTCOME_REFUSED, code=item.code, at=at)
    return done


def _ack(session: Session, ids: list[int], *, outcome: str, code: str | None, at: datetime) -> int:
    if not ids:
        return 0
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(StatusNotice).where(StatusNotice.id.in_(ids), StatusNotice.acked_at.is_(None))
        .values(acked_at=at, outcome=outcome, portal_code=code)
    )
    return int(result.rowcount or 0)
