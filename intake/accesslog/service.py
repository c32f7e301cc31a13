"""Append to and verify the hash-chained access log.

Each row's hash covers its own fields and the previous row's hash, so deleting or altering a row
breaks the chain at that point (:func:`check_chain`). The hash is an HMAC under a key the database
does not hold (:mod:`intake.auditkeys`, the row's ``key_id``): someone with write access to the
database alone cannot recompute a chain that verifies. Rows from before the keys (``key_id`` NULL,
plain SHA-256) are accepted only up to ``access_log_unkeyed_through``, a setting outside the
database (:data:`ChainProblem.UNKEYED_ROW`).

**Appends wait for the commit.** :func:`append_access` only notes the row in the session; the rows
are chained and inserted in the session's ``before_commit`` (:func:`_write_pending`), under the lock
that serialises appends (PostgreSQL: a transaction-scoped advisory lock; SQLite: its single writer).
So the lock is held for the append and the commit alone, never while a page's long query runs
(issue 15 §7). A rolled-back transaction (or savepoint) takes its noted rows with it, as it would
have taken inserted ones.

A retention purge (:mod:`intake.accesslog.retention`) deletes the oldest rows and leaves an
:class:`~intake.models.AccessLogRetention` record holding the hash of the last deleted row: the check
starts there instead of at :data:`GENESIS`, so it reads only the rows that remain, and a deletion
without such a record still shows as a break. The check streams rows; it never loads the table.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session, SessionTransaction

from intake.atena import is_atena_number
from intake.auditkeys import AccessLogKeyError, AccessLogKeys
from intake.authz import Actor
from intake.db import ACCESS_LOG_KEYS_INFO
from intake.freetext import check_no_my_number
from intake.jst import require_aware
from intake.models import AccessLogRetention, AccessLogRow

__all__ = [
    "CHAIN_COLUMNS",
    "GENESIS",
    "KEYS_INFO",
    "MAX_REPORTED",
    "PURGE_ACTION",
    "ChainCheck",
    "ChainProblem",
    "ChainWalker",
    "access_log_keys",
    "append_access",
    "chain_rows",
    "check_chain",
    "newest_retention",
    "pending_rows",
    "verify_chain",
    "witness_subject",
]

GENESIS = "0" * 64
_LOCK_ID = 0x5348494E  # "SHIN"
#: At most this many broken ids are kept in a result (a wholesale rewrite must not exhaust memory).
MAX_REPORTED = 1000
#: Action of the access-log row every purge writes: the purge's witness inside the chain.
PURGE_ACTION = "audit.purge"
#: The columns the hash covers, selected as plain rows: no ORM objects for a whole-table walk.
CHAIN_COLUMNS = (AccessLogRow.id, AccessLogRow.at, AccessLogRow.staff_id, AccessLogRow.department,
                  AccessLogRow.terminal, AccessLogRow.action, AccessLogRow.reason, AccessLogRow.atena_number,
                  AccessLogRow.subject, AccessLogRow.prev_hash, AccessLogRow.key_id, AccessLogRow.hash)
#: ``Session.info`` key of the :class:`AccessLogKeys` (set by :func:`intake.db.make_session_factory`).
KEYS_INFO = ACCESS_LOG_KEYS_INFO
_PENDING_INFO = "shinsei.access_log_pending"


class ChainProblem(enum.StrEnum):
    """Why a check is not clean, beyond rows whose own link is wrong."""

    #: A row at or below the newest purge's ``purged_through_id`` exists (left behind or put back).
    ROW_BELOW_ANCHOR = "row_below_anchor"
    #: The newest retention record has no matching ``audit.purge`` row in the chain: not a real purge.
    ANCHOR_UNWITNESSED = "anchor_unwitnessed"
    #: The last row the previous recorded check saw is gone (rows cut off the end of the chain).
    HEAD_MISSING = "head_missing"
    #: The last row the previous recorded check saw now has another hash (rewritten).
    HEAD_CHANGED = "head_changed"
    #: A row without a key (plain SHA-256) beyond ``access_log_unkeyed_through`` (the rows written
    #: before the keys, a setting outside the database): a rewrite by someone without the key.
    UNKEYED_ROW = "unkeyed_row"
    #: A row names a key id that is not configured: its hash cannot be checked.
    UNKNOWN_KEY = "unknown_key"


@dataclass(frozen=True)
class ChainCheck:
    """The result of one walk over the chain. ``broken``: ids where it breaks (at most
    :data:`MAX_REPORTED`; ``broken_count`` counts them all)."""

    rows: int
    broken: tuple[int, ...]
    broken_count: int
    problems: tuple[ChainProblem, ...]
    #: ``purged_through_id`` of the retention record the walk started from (``None``: from GENESIS).
    anchor_through_id: int | None
    first_id: int | None
    last_id: int | None
    #: Stored hash of the last row walked: the next check confirms that row is still there.
    last_hash: str | None

    @property
    def intact(self) -> bool:
        return self.broken_count == 0 and not self.problems


def witness_subject(record: AccessLogRetention) -> str:
    """The subject of the ``audit.purge`` row that vouches for ``record`` (fits in 128 characters)."""
    return f"retention:{record.id}:{record.purged_through_id}:{record.last_hash}"


def _body(at: datetime, staff_id: str, department: str, terminal: str, action: str, reason: str | None,
          atena_number: str | None, subject: str, prev_hash: str) -> bytes:
    return json.dumps(
        [at.astimezone(UTC).isoformat(), staff_id, department, terminal, action, reason, atena_number, subject,
         prev_hash],
        ensure_ascii=False, separators=(",", ":"),
    ).encode()


def _digest(row: Any, keys: AccessLogKeys) -> str:
    """The hash of an :class:`AccessLogRow` or of a row of :data:`CHAIN_COLUMNS`: the HMAC under the
    row's key, or plain SHA-256 for a row from before the keys (``key_id`` NULL)."""
    body = _body(row.at, row.staff_id, row.department, row.terminal, row.action, row.reason, row.atena_number,
                 row.subject, row.prev_hash)
    if row.key_id is None:
        return hashlib.sha256(body).hexdigest()
    return keys.mac(row.key_id, body)


def access_log_keys(session: Session) -> AccessLogKeys:
    """The keys this session's rows are made and checked with (``Session.info``, set by the session
    factory from the settings); the public development key when the factory was given none."""
    keys = session.info.get(KEYS_INFO)
    return keys if isinstance(keys, AccessLogKeys) else AccessLogKeys.for_development()


@dataclass(frozen=True)
class _Pending:
    at: datetime
    actor: Actor
    action: str
    subject: str
    reason: str | None
    atena_number: str | None
    #: the innermost transaction it was noted in: rolled back with it
    transaction: SessionTransaction | None


def append_access(
    session: Session, *, actor: Actor, at: datetime, action: str, subject: str,
    reason: str | None = None, atena_number: str | None = None,
) -> None:
    """Note one access-log row; it is chained and inserted when the session commits (with the
    caller's transaction, never without it). ``atena_number`` is a 宛名番号 or nothing: any other
    value (a My Number typed into a search box, a fragment) is a bug of the caller and refused here,
    before it can be kept for years."""
    require_aware(at)
    if atena_number is not None and not is_atena_number(atena_number):
        raise ValueError("the access log's 宛名番号 column takes a 宛名番号 (10 digits) or nothing")
    if reason:
        check_no_my_number(reason)  # a 処理事由, a status comment: kept for years, read by auditors
    if session.get_transaction() is None:
        session.begin()
    innermost = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING_INFO, []).append(
        _Pending(at, actor, action, subject, reason, atena_number, innermost))


def pending_rows(session: Session) -> int:
    """How many noted rows this session will write at its commit."""
    return len(session.info.get(_PENDING_INFO, ()))


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """Chain and insert the noted rows: the only place an access-log row is written."""
    if session.in_nested_transaction():
        return  # a savepoint's rows belong to the enclosing transaction now
    pending: list[_Pending] = session.info.pop(_PENDING_INFO, [])
    if not pending:
        return
    keys = access_log_keys(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
    last = session.scalar(select(AccessLogRow.hash).order_by(AccessLogRow.id.desc()).limit(1))
    if last is None:  # empty: a purge may have taken every row; the chain goes on from its record
        anchor = newest_retention(session)
        last = anchor.last_hash if anchor is not None else GENESIS
    for p in pending:
        row = AccessLogRow(at=p.at, staff_id=p.actor.staff_id[:64], department=p.actor.department[:128],
                           terminal=p.actor.terminal[:128], action=p.action[:64], reason=p.reason,
                           atena_number=p.atena_number, subject=p.subject[:128], prev_hash=last, key_id=keys.active)
        row.hash = _digest(row, keys)
        session.add(row)
        last = row.hash
    session.flush()


def _within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    pending: list[_Pending] | None = session.info.get(_PENDING_INFO)
    if pending:
        session.info[_PENDING_INFO] = [p for p in pending if not _within(p.transaction, previous_transaction)]


@event.listens_for(Session, "after_transaction_end")
def _drop_at_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the whole transaction is over: whatever was not written is void
        session.info.pop(_PENDING_INFO, None)


class ChainWalker:
    """Follows the chain row by row from a starting hash; shared by the check and the purge."""

    def __init__(self, start_hash: str, keys: AccessLogKeys) -> None:
        self.prev = start_hash
        self.keys = keys
        self.rows = 0
        self.broken: list[int] = []
        self.broken_count = 0
        self.unkeyed_beyond = False
        self.unknown_key = False

    def mark(self, row_id: int) -> None:
        self.broken_count += 1
        if len(self.broken) < MAX_REPORTED:
            self.broken.append(row_id)

    def step(self, row: Any) -> bool:
        """Take the next row (by id); ``False`` when the chain breaks at it."""
        self.rows += 1
        if row.key_id is None and row.id > self.keys.unkeyed_through:
            self.unkeyed_beyond = True
            ok = False
        elif row.key_id is not None and not self.keys.knows(row.key_id):
            self.unknown_key = True
            ok = False
        else:
            try:
                ok = bool(row.prev_hash == self.prev and _digest(row, self.keys) == row.hash)
            except AccessLogKeyError:  # pragma: no cover - knows() was checked
                ok = False
        if not ok:
            self.mark(row.id)
        self.prev = row.hash  # a single altered row is reported once, not every row after it
        return ok


def chain_rows(session: Session, *, after_id: int, batch_size: int) -> Any:
    """Rows with ``id > after_id`` in id order, streamed (``yield_per``: a server-side cursor on
    PostgreSQL), as plain rows of the hashed columns."""
    stmt = (select(*CHAIN_COLUMNS).where(AccessLogRow.id > after_id).order_by(AccessLogRow.id)
            .execution_options(yield_per=batch_size))
    return session.execute(stmt)


def newest_retention(session: Session) -> AccessLogRetention | None:
    """The retention record the chain now starts from (the purge that reached furthest)."""
    return session.scalars(select(AccessLogRetention).order_by(AccessLogRetention.purged_through_id.desc())
                           .limit(1)).first()


def check_chain(
    session: Session, *, expected_head: tuple[int, str] | None = None, batch_size: int = 1000,
) -> ChainCheck:
    """Walk the chain from the newest retention record (or GENESIS) to the newest row.

    ``expected_head`` is the last ``(id, hash)`` an earlier check saw: rows cut off the end of a
    chain leave a chain that is itself intact, so only a remembered head reveals them.
    """
    anchor = newest_retention(session)
    result = _walk(session, anchor, expected_head, batch_size)
    if not result.intact and _anchor_id(newest_retention(session)) != _anchor_id(anchor):
        # A purge committed while we walked (PostgreSQL, READ COMMITTED): walk again from its record.
        result = _walk(session, newest_retention(session), expected_head, batch_size)
    return result


def _anchor_id(anchor: AccessLogRetention | None) -> int | None:
    return None if anchor is None else anchor.id


def _walk(session: Session, anchor: AccessLogRetention | None, expected_head: tuple[int, str] | None,
          batch_size: int) -> ChainCheck:
    through = anchor.purged_through_id if anchor is not None else 0
    walker = ChainWalker(anchor.last_hash if anchor is not None else GENESIS, access_log_keys(session))
    problems: list[ChainProblem] = []
    left_behind = list(session.scalars(select(AccessLogRow.id).where(AccessLogRow.id <= through)
                                       .order_by(AccessLogRow.id).limit(MAX_REPORTED)))
    if left_behind:
        problems.append(ChainProblem.ROW_BELOW_ANCHOR)
        for row_id in left_behind:
            walker.mark(row_id)
    witness = witness_subject(anchor) if anchor is not None else None
    witnessed = False
    first_id: int | None = None
    last_id: int | None = None
    head_hash: str | None = None
    for row in chain_rows(session, after_id=through, batch_size=batch_size):
        walker.step(row)
        if first_id is None:
            first_id = row.id
        last_id, head_hash = row.id, row.hash
        if witness is not None and not witnessed and row.action == PURGE_ACTION and row.subject == witness:
            witnessed = True
    if walker.unkeyed_beyond:
        problems.append(ChainProblem.UNKEYED_ROW)
    if walker.unknown_key:
        problems.append(ChainProblem.UNKNOWN_KEY)
    if anchor is not None and not witnessed:
        # A retention record anyone could insert; only the purge's own chained row vouches for it.
        problems.append(ChainProblem.ANCHOR_UNWITNESSED)
        walker.mark(first_id if first_id is not None else through)
    if expected_head is not None and expected_head[0] > through:
        head_id, head = expected_head
        stored = session.scalar(select(AccessLogRow.hash).where(AccessLogRow.id == head_id))
        if stored is None:
            problems.append(ChainProblem.HEAD_MISSING)
            walker.mark(head_id)
        elif stored != head:
            problems.append(ChainProblem.HEAD_CHANGED)
            if head_id not in walker.broken:
                walker.mark(head_id)
    return ChainCheck(rows=walker.rows, broken=tuple(walker.broken), broken_count=walker.broken_count,
                      problems=tuple(problems), anchor_through_id=anchor.purged_through_id if anchor else None,
                      first_id=first_id, last_id=last_id, last_hash=head_hash)


def verify_chain(session: Session) -> list[int]:
    """Ids of rows where the chain breaks (altered row, a row missing before it, a row left at or
    below the purge anchor, an unwitnessed anchor). Empty: intact. See :func:`check_chain`."""
    return list(check_chain(session).broken)
