"""The 7-year retention of the access log (P13: 記録は7年間保存): delete the oldest rows, never a
broken chain, and leave a record from which the rest of the chain still verifies.

Only a contiguous prefix by id is deleted (stopping at the first row not older than the cutoff, and
never the newest row), so what remains is still one chain; the prefix is checked first, because a
break in it is evidence and must not be purged away. The purge writes an
:class:`AccessLogRetention` record (the hash of the last deleted row) and an ``audit.purge`` row in
the chain that names that record, in the caller's transaction. Run it daily from a timer:
``python -m intake audit purge``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from intake.accesslog.errors import PurgeRefused, PurgeRunning
from intake.accesslog.service import (
    CHAIN_COLUMNS,
    GENESIS,
    MAX_REPORTED,
    PURGE_ACTION,
    ChainWalker,
    access_log_keys,
    append_access,
    newest_retention,
    witness_subject,
)
from intake.authz import Actor
from intake.errors import InvalidRequest
from intake.jst import day_start, jst_day
from intake.models import AccessLogRetention, AccessLogRow

__all__ = ["MIN_RETENTION_YEARS", "PurgeResult", "purge_expired", "retention_cutoff"]

#: The ward's rule; the settings refuse less, and so does this module.
MIN_RETENTION_YEARS = 7
#: ``actor`` of the retention record and ``staff_id`` of the ``audit.purge`` row of a scheduled purge.
SYSTEM_ACTOR = "system"
_PURGE_LOCK_ID = 0x53484950  # "SHIP": one purge at a time (appends keep their own lock)


@dataclass(frozen=True)
class PurgeResult:
    """What a purge deleted (or, with ``dry_run``, would delete)."""

    cutoff: datetime
    rows: int
    first_id: int | None
    through_id: int | None
    last_hash: str | None
    dry_run: bool
    retention_id: int | None


def retention_cutoff(now: datetime, years: int) -> datetime:
    """Midnight (Asia/Tokyo) of the JST calendar day ``years`` years before ``now``'s JST day: rows
    before it are older than the retention. 29 February falls back to the 28th (keeps a day more)."""
    today = jst_day(now)
    try:
        day = today.replace(year=today.year - years)
    except ValueError:
        day = date(today.year - years, today.month, 28)
    return day_start(day)


def purge_expired(
    session: Session, *, at: datetime, retention_years: int, terminal: str, actor: str = SYSTEM_ACTOR,
    dry_run: bool = False, batch_size: int = 1000,
) -> PurgeResult:
    """Delete the rows older than the retention, as one prefix, after checking its chain.

    Raises :class:`PurgeRefused` (nothing deleted) when the prefix does not chain from the newest
    retention record, when a row is left at or below that record, or when the first kept row does
    not chain to the prefix. The caller commits (or rolls back); ``dry_run`` writes nothing.
    """
    if retention_years < MIN_RETENTION_YEARS:
        raise InvalidRequest(f"retention below {MIN_RETENTION_YEARS} years refused", code="RETENTION_TOO_SHORT")
    cutoff = retention_cutoff(at, retention_years)
    if (not dry_run and session.get_bind().dialect.name == "postgresql"
            and not session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _PURGE_LOCK_ID})):
        raise PurgeRunning("another access-log purge is running")
    anchor = newest_retention(session)
    after = anchor.purged_through_id if anchor is not None else 0
    left_behind = tuple(session.scalars(select(AccessLogRow.id).where(AccessLogRow.id <= after)
                                        .order_by(AccessLogRow.id).limit(MAX_REPORTED)))
    if left_behind:
        raise PurgeRefused(left_behind, why="rows are left at or below the last purge")
    if anchor is not None and not _witnessed(session, anchor):
        # Purging on from a record nobody vouches for would bury it under a genuine one.
        raise PurgeRefused((after,), why="the last retention record has no audit.purge row")
    # The newest row is never purged: SQLite would hand its id out again to the next row.
    newest = session.scalar(select(func.max(AccessLogRow.id))) or 0
    walker = ChainWalker(anchor.last_hash if anchor is not None else GENESIS, access_log_keys(session))
    first_id: int | None = None
    through_id: int | None = None
    last_hash: str | None = None
    cursor = after
    done = False
    while not done:
        # Keyset batches: each a short query, nothing held open while the next one runs.
        batch = session.execute(select(*CHAIN_COLUMNS).where(AccessLogRow.id > cursor).order_by(AccessLogRow.id)
                                .limit(batch_size)).all()
        if not batch:
            break
        for row in batch:
            walker.step(row)  # the first kept row too: it must chain to the last deleted one
            if row.at >= cutoff or row.id >= newest:
                done = True
                break
            if first_id is None:
                first_id = row.id
            through_id, last_hash = row.id, row.hash
        cursor = batch[-1].id
    if walker.broken_count:
        raise PurgeRefused(tuple(walker.broken))
    rows = walker.rows - (1 if done else 0)
    if through_id is None or last_hash is None or dry_run:
        return PurgeResult(cutoff, rows, first_id, through_id, last_hash, dry_run, None)
    deleted = 0
    low = after
    while low < through_id:
        high = session.scalar(select(AccessLogRow.id).where(AccessLogRow.id > low, AccessLogRow.id <= through_id)
                              .order_by(AccessLogRow.id).offset(batch_size - 1).limit(1)) or through_id
        result = session.execute(delete(AccessLogRow).where(AccessLogRow.id > low, AccessLogRow.id <= high,
                                                            AccessLogRow.at < cutoff)
                                 .execution_options(synchronize_session=False))
        deleted += result.rowcount  # type: ignore[attr-defined]
        low = high
    if deleted != rows:  # the prefix changed under us: the caller rolls back, nothing is lost
        raise PurgeRunning(f"{deleted} rows deleted, {rows} checked: the log changed during the purge")
    record = AccessLogRetention(at=at, cutoff=cutoff, purged_through_id=through_id, purged_rows=rows,
                                last_hash=last_hash, actor=actor)
    session.add(record)
    session.flush()
    append_access(session, actor=Actor(staff_id=actor, department="system", terminal=terminal), at=at,
                  action=PURGE_ACTION, subject=witness_subject(record),
                  reason=(f"保存期間（{retention_years}年）経過: {cutoff:%Y-%m-%d %H:%M} JST より前の "
                          f"{rows} 件（ID {first_id}〜{through_id}）を削除"))
    return PurgeResult(cutoff, rows, first_id, through_id, last_hash, dry_run, record.id)


def _witnessed(session: Session, anchor: AccessLogRetention) -> bool:
    """Whether the ``audit.purge`` row of ``anchor`` is in the log (found by its time: indexed)."""
    found = session.scalar(select(AccessLogRow.id).where(
        AccessLogRow.at == anchor.at, AccessLogRow.action == PURGE_ACTION,
        AccessLogRow.subject == witness_subject(anchor), AccessLogRow.id > anchor.purged_through_id).limit(1))
    return found is not None
