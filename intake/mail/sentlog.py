"""The sent-log: one ``mail_sent_log`` row per (day, department), CLAIMED → SENT, nothing else.

- **Claim** — the first instance to commit the row owns the content: the row carries the finished
  message, so whoever sends it later (this process after a retry, a restarted one, another instance)
  sends the same bytes with the same ``Message-ID``. A second instance's INSERT fails on the unique
  (day, department) and it uses the row that is there.
- **Attempt** — each send attempt runs in one transaction that holds the row: on PostgreSQL
  ``SELECT … FOR UPDATE SKIP LOCKED`` (another instance's attempt in progress → we skip it; a crashed
  one's lock dies with its connection); on SQLite the ``UPDATE … WHERE state = 'claimed'`` that
  counts the attempt takes the database's single writer lock, held until the result is committed,
  and re-checks the state after waiting for it. So two instances never send one mail concurrently.
- **Sent** — committed after the transport accepted. A crash or a lost reply between the two leaves
  the row CLAIMED: the mail is sent again, identical — at-least-once with a recognisable duplicate.

Functions take the session; they flush but never commit (the caller's transaction decides).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from intake.errors import IllegalStateChange
from intake.mail.render import ComposedMail
from intake.models import MailSentLog, MailState

__all__ = ["claim_row", "find", "lock_for_attempt", "mark_sent", "note_failure"]

_MAX_ERROR_CHARS = 500


def find(session: Session, day: date, department: str) -> MailSentLog | None:
    return session.scalar(select(MailSentLog).where(MailSentLog.day == day, MailSentLog.department == department))


def claim_row(session: Session, mail: ComposedMail, *, at: datetime, instance: str) -> MailSentLog:
    """Add the CLAIMED row for ``mail``; the caller commits (a twin's commit fails on the unique key)."""
    row = MailSentLog(day=mail.day, first_day=mail.first_day, department=mail.department, state=MailState.CLAIMED,
                      message_id=mail.message_id,
                      recipients=list(mail.recipients), message=mail.data, total=mail.total, claimed_at=at,
                      claimed_by=instance, attempts=0)
    session.add(row)
    session.flush()
    return row


def lock_for_attempt(session: Session, row_id: int, *, at: datetime, instance: str) -> MailSentLog | None:
    """The row, held for one attempt and counted, or None when it is sent already or another instance
    is attempting it right now."""
    row = session.scalar(
        select(MailSentLog).where(MailSentLog.id == row_id, MailSentLog.state == MailState.CLAIMED)
        # PostgreSQL: hold the row for this attempt, pass it by while someone else holds it.
        .with_for_update(skip_locked=True)
    )
    if row is None:
        return None
    # SQLite: this write takes the single writer lock (waiting for another attempt to finish) and
    # re-checks the state under it.
    counted = session.execute(
        update(MailSentLog)
        .where(MailSentLog.id == row_id, MailSentLog.state == MailState.CLAIMED)
        .values(attempts=MailSentLog.attempts + 1, last_attempt_at=at, claimed_by=instance)
        .execution_options(synchronize_session=False)
    )
    if counted.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.refresh(row)
    return row


def mark_sent(session: Session, row: MailSentLog, *, at: datetime) -> None:
    if row.state is not MailState.CLAIMED:
        raise IllegalStateChange(f"daily mail {row.day.isoformat()}/{row.department}", row.state.value,
                                MailState.SENT.value)
    row.state = MailState.SENT
    row.sent_at = at
    row.last_error = None
    session.flush()


def note_failure(session: Session, row: MailSentLog, *, error: str) -> None:
    row.last_error = error[:_MAX_ERROR_CHARS]
    session.flush()
