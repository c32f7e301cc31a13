"""The relay's only state on disk: one tombstone per package handled, the pull cursor, and for the
pull channel one row per listed 受付番号 (reconciliation and the attempt budget) and per round.

A tombstone holds 受付番号, the package's SHA-256, the channel it came by, the times it was received,
verified, scanned, forwarded and erased, the outcome, a reason code and — for a tombstone a crash
left open — the tombstone under which the package was finally stored. An item holds 受付番号,
SHA-256, times, an attempt count, a state and a reason code. Nothing else: the schema enforces the
shapes (CHECK constraints), and the methods check them again in Python, so a name, an address, a My
Number or a certificate subject has no column to go to and no free-text column to hide in (tested in
tests/dmz_relay/test_tombstones.py).

SQLite in WAL mode with ``synchronous=FULL``: a write that comes before anything another party can
see — the tombstone opened before a package is handled, ``scanned`` before it is forwarded, the
outcome before the source is answered, an item settled before the portal is told, the cursor — is
committed with an fsync, and survives a power cut. So is ``verified``, which is where a pushed
package's tombstone learns its 受付番号 and SHA-256: lost to a power cut during the scan, the
tombstone a crash leaves behind could not be linked to the outcome of the package sent again
(``closed_by``). A step followed only by work in memory (the ``forwarded`` time, an item first
listed, "the portal was told") is committed without an fsync of its own (``synchronous=NORMAL``):
it survives the process dying at once, and a power cut once the next fsync'd commit is done, which
always comes before the next thing another party sees. The write-ahead log is replayed in order,
so after a power cut the store shows the steps as they stood at some earlier moment: never a later
step without an earlier one, never a forward without the durable ``scanned`` time before it. (An
fsync'd commit costs the relay ~0.05–0.15 ms more CPU than one without: issue 19.) A failed write
raises :class:`TombstoneError`; the caller treats the step as not done (the pull cursor does not
move).
"""

from __future__ import annotations

import contextlib
import enum
import re
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dmz_relay.errors import TombstoneError

__all__ = ["ITEM_COLUMNS", "TOMBSTONE_COLUMNS", "Channel", "Item", "ItemState", "Outcome", "Round", "Tombstone",
           "TombstoneStore"]


class Channel(enum.StrEnum):
    PUSH = "push"
    PULL = "pull"


class Outcome(enum.StrEnum):
    """What became of one package. Every outcome but RECEIVED comes with ``erased_at``."""

    #: In memory now (or the process died while it was: the source still holds it).
    RECEIVED = "received"
    #: The intake stored it (201) and the relay dropped its copy.
    STORED = "stored"
    #: The intake already had it (200, same receipt) and the relay dropped its copy.
    DUPLICATE = "duplicate"
    #: The relay refused it (unreadable, hostile, too large); never forwarded.
    REFUSED = "refused"
    #: The intake refused it (4xx); the source was told.
    REJECTED = "rejected"
    #: No receipt (intake or scanner unavailable after the capped attempts); the source was told.
    FAILED = "failed"
    #: The relay shut down before forwarding it, or died while it held it (closed at the next
    #: start, ``PROCESS_ENDED``); not acknowledged upstream.
    ABANDONED = "abandoned"


class ItemState(enum.StrEnum):
    """Where a 受付番号 the portal listed stands (the pull channel's reconciliation)."""

    #: listed, not yet with a final outcome (not yet seen, or failed and to be tried again)
    PENDING = "pending"
    #: the intake holds it (stored or duplicate)
    STORED = "stored"
    #: refused for good, by the relay (unreadable, too large) or by the intake (a documented refusal)
    REFUSED = "refused"
    #: it kept failing (attempts or age over the budget): set aside so the ones behind it go on
    SET_ASIDE = "set_aside"


#: Outcomes after which the pull channel does not fetch the same package again.
FINAL_FOR_SOURCE = frozenset({Outcome.STORED, Outcome.DUPLICATE, Outcome.REFUSED, Outcome.REJECTED})

#: The complete column list of the tombstones table (the allow-list the tests check).
TOMBSTONE_COLUMNS = ("id", "channel", "receipt_number", "sha256", "received_at", "verified_at", "scanned_at",
                     "forwarded_at", "erased_at", "outcome", "reason_code", "closed_by")
#: The complete column list of the items table.
ITEM_COLUMNS = ("receipt_number", "sha256", "first_seen_at", "last_attempt_at", "attempts", "state", "reason_code",
                "settled_at", "portal_told_at", "intake_told_at")

#: The reason of a tombstone closed at start-up: the process that held the package is gone.
PROCESS_ENDED = "PROCESS_ENDED"
#: The reason of an item an operator put back in the queue (``dmz_relay retry``).
OPERATOR_RETRY = "OPERATOR_RETRY"

#: The steps :meth:`TombstoneStore.mark` records, and whether each is fsync'd (module docstring).
_STEP_FSYNC = {"verified": True, "scanned": True, "forwarded": False}

_RECEIPT = re.compile(r"[0-9]{8}-[0-9]{10}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")

#: The settled items the portal has not been told about, as literal SQL: the partial index
#: ``ix_items_untold_portal`` covers exactly this predicate (SQLite uses a partial index only for a
#: query that states its WHERE terms, and a bound parameter does not). With it and ``ix_items_state``
#: every pull round reads the few items still to report, not every item the portal ever listed —
#: the table is kept for good and grows with every package.
_UNTOLD_PORTAL = f"portal_told_at IS NULL AND state <> '{ItemState.PENDING.value}'"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS tombstones (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL CHECK (channel IN ('push', 'pull')),
    receipt_number TEXT CHECK (receipt_number IS NULL OR (length(receipt_number) = 19
        AND receipt_number GLOB '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9]*'
        AND substr(receipt_number, 10) NOT GLOB '*[^0-9]*')),
    sha256 TEXT CHECK (sha256 IS NULL OR (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*')),
    received_at TEXT NOT NULL,
    verified_at TEXT,
    scanned_at TEXT,
    forwarded_at TEXT,
    erased_at TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ({", ".join(f"'{o.value}'" for o in Outcome)})),
    reason_code TEXT CHECK (reason_code IS NULL OR (length(reason_code) <= 64
        AND reason_code NOT GLOB '*[^A-Z0-9_]*')),
    closed_by INTEGER REFERENCES tombstones (id)
);
CREATE INDEX IF NOT EXISTS ix_tombstones_receipt ON tombstones (receipt_number, sha256);
CREATE TABLE IF NOT EXISTS items (
    receipt_number TEXT PRIMARY KEY CHECK (length(receipt_number) = 19
        AND receipt_number GLOB '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9]*'
        AND substr(receipt_number, 10) NOT GLOB '*[^0-9]*'),
    sha256 TEXT CHECK (sha256 IS NULL OR (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*')),
    first_seen_at TEXT NOT NULL,
    last_attempt_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    state TEXT NOT NULL CHECK (state IN ({", ".join(f"'{s.value}'" for s in ItemState)})),
    reason_code TEXT CHECK (reason_code IS NULL OR (length(reason_code) <= 64
        AND reason_code NOT GLOB '*[^A-Z0-9_]*')),
    settled_at TEXT,
    portal_told_at TEXT,
    intake_told_at TEXT
);
CREATE INDEX IF NOT EXISTS ix_items_untold_portal ON items (settled_at) WHERE {_UNTOLD_PORTAL};
CREATE INDEX IF NOT EXISTS ix_items_state ON items (state, settled_at);
CREATE TABLE IF NOT EXISTS rounds (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    stopped TEXT CHECK (stopped IS NULL OR (length(stopped) <= 64 AND stopped NOT GLOB '*[^A-Z0-9_]*')),
    listed INTEGER NOT NULL DEFAULT 0,
    settled INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pull_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cursor TEXT NOT NULL CHECK (length(cursor) <= 2048),
    updated_at TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Tombstone:
    id: int
    channel: Channel
    receipt_number: str | None
    sha256: str | None
    received_at: datetime
    verified_at: datetime | None
    scanned_at: datetime | None
    forwarded_at: datetime | None
    erased_at: datetime | None
    outcome: Outcome
    reason_code: str | None
    closed_by: int | None = None


@dataclass(frozen=True, slots=True)
class Item:
    receipt_number: str
    sha256: str | None
    first_seen_at: datetime
    last_attempt_at: datetime | None
    attempts: int
    state: ItemState
    reason_code: str | None
    settled_at: datetime | None
    portal_told_at: datetime | None
    intake_told_at: datetime | None


@dataclass(frozen=True, slots=True)
class Round:
    id: int
    started_at: datetime
    finished_at: datetime | None
    stopped: str | None
    listed: int
    settled: int
    failed: int


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime refused: pass an aware datetime")
    return moment.astimezone(UTC).isoformat()


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _receipt(value: str | None) -> str | None:
    if value is not None and not _RECEIPT.fullmatch(value):
        raise ValueError("receipt_number must be YYYYMMDD-NNNNNNNNNN")
    return value


def _sha(value: str | None) -> str | None:
    if value is not None and not _SHA256.fullmatch(value):
        raise ValueError("sha256 must be 64 lower-case hex digits")
    return value


def _code(value: str | None) -> str | None:
    if value is not None and not _CODE.fullmatch(value):
        raise ValueError("reason_code must be an upper-case code")
    return value


class TombstoneStore:
    """The SQLite file at ``path`` (created with its directory, mode 0700). Thread-safe."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'tombstones'").fetchone() and not any(
                    r[1] == "closed_by" for r in self._db.execute("PRAGMA table_info(tombstones)")):
                # A store from before crash-closing (2026-12): the new column, then the rest.
                self._db.execute("ALTER TABLE tombstones ADD COLUMN closed_by INTEGER REFERENCES tombstones (id)")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise TombstoneError(f"cannot open the tombstone store {path}: {type(exc).__name__}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, params: tuple[object, ...], *, fsync: bool = True) -> int:
        """One statement in its own transaction; ``fsync=False``: committed without an fsync of its
        own (durable with the next fsync'd commit; see the module docstring)."""
        with self._lock:
            self._no_dangling_transaction()
            try:
                if not fsync:
                    self._db.execute("PRAGMA synchronous=NORMAL")
                try:
                    cur = self._db.execute(sql, params)
                finally:
                    if not fsync:
                        self._db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise TombstoneError(f"tombstone write failed: {type(exc).__name__}") from exc
            return int(cur.lastrowid or 0) if sql.lstrip().upper().startswith("INSERT") else cur.rowcount

    # --- package steps -------------------------------------------------------------------------

    def open(self, *, channel: Channel, received_at: datetime, receipt_number: str | None = None,
             sha256: str | None = None) -> int:
        """A new tombstone in state RECEIVED; returns its id."""
        return self._write(
            "INSERT INTO tombstones (channel, receipt_number, sha256, received_at, outcome) VALUES (?, ?, ?, ?, ?)",
            (Channel(channel).value, _receipt(receipt_number), _sha(sha256), _iso(received_at),
             Outcome.RECEIVED.value),
        )

    def mark(self, tombstone_id: int, step: str, at: datetime, *, receipt_number: str | None = None,
             sha256: str | None = None) -> None:
        """Record the time of ``step`` (verified, scanned, forwarded); optionally the 受付番号 and the
        SHA-256 learnt (each kept if the tombstone has one already). ``verified`` (it records what
        links the tombstone to its package) and ``scanned`` (the forward comes next) are fsync'd;
        ``forwarded`` is made durable by :meth:`finish`, before the source is answered."""
        if step not in _STEP_FSYNC:
            raise ValueError(f"unknown step {step!r}")
        self._write(f"UPDATE tombstones SET {step}_at = ?, receipt_number = COALESCE(receipt_number, ?), "  # noqa: S608 - step is from the fixed list
                    "sha256 = COALESCE(sha256, ?) WHERE id = ?",
                    (_iso(at), _receipt(receipt_number), _sha(sha256), tombstone_id), fsync=_STEP_FSYNC[step])

    def learn_sha256(self, tombstone_id: int, sha256: str) -> None:
        """The package's SHA-256, learnt before any step (kept if the tombstone has one already)."""
        self._write("UPDATE tombstones SET sha256 = COALESCE(sha256, ?) WHERE id = ?", (_sha(sha256), tombstone_id))

    def finish(self, tombstone_id: int, outcome: Outcome, *, erased_at: datetime,
               reason_code: str | None = None) -> None:
        """The package's copy is gone: record the outcome, the reason and when it was erased."""
        if outcome is Outcome.RECEIVED:
            raise ValueError("finish needs a final outcome")
        statements: list[tuple[str, tuple[object, ...]]] = [
            ("UPDATE tombstones SET outcome = ?, reason_code = ?, erased_at = ? WHERE id = ?",
             (Outcome(outcome).value, _code(reason_code), _iso(erased_at), tombstone_id))]
        if outcome in FINAL_FOR_SOURCE:
            # Point the tombstones a crash left behind for the same package at the one that settled
            # it — in the same transaction: one fsync, and never an outcome without its links.
            statements.append(
                ("UPDATE tombstones SET closed_by = ? WHERE closed_by IS NULL AND id <> ? AND outcome = ? "
                 "AND reason_code = ? AND receipt_number IS NOT NULL AND (receipt_number, sha256) = "
                 "(SELECT receipt_number, sha256 FROM tombstones WHERE id = ?)",
                 (tombstone_id, tombstone_id, Outcome.ABANDONED.value, PROCESS_ENDED, tombstone_id)))
        self._transaction(statements)

    def _transaction(self, statements: list[tuple[str, tuple[object, ...]]]) -> None:
        """Several statements in one transaction (one fsync'd commit), or none of them."""
        with self._lock:
            self._no_dangling_transaction()
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        self._db.execute(sql, params)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # the next write checks again
                        self._db.execute("ROLLBACK")
                raise TombstoneError(f"tombstone write failed: {type(exc).__name__}") from exc

    def _no_dangling_transaction(self) -> None:
        """A transaction a failed commit and a failed rollback left open (a sick disk) would make the
        next single-statement write part of it — reported done, never committed. Roll it back first,
        or refuse the write. Called with the lock held."""
        try:
            if self._db.in_transaction:  # a closed connection raises here: the write is refused
                self._db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise TombstoneError(f"tombstone store unusable: {type(exc).__name__}") from exc

    def close_open(self, at: datetime) -> int:
        """At start-up: every tombstone still RECEIVED belongs to a process that died holding the
        package — that memory is gone. Close each (ABANDONED, ``PROCESS_ENDED``, erased at ``at``) and
        link it to the tombstone under which the same package was settled, if there is one."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM tombstones WHERE outcome = ?", (Outcome.RECEIVED.value,)).fetchall()
        self._write("UPDATE tombstones SET outcome = ?, reason_code = ?, erased_at = ? WHERE outcome = ?",
                    (Outcome.ABANDONED.value, PROCESS_ENDED, _iso(at), Outcome.RECEIVED.value))
        finals = ", ".join(f"'{o.value}'" for o in FINAL_FOR_SOURCE)
        self._write(f"UPDATE tombstones SET closed_by = (SELECT f.id FROM tombstones f WHERE f.outcome IN ({finals}) "  # noqa: S608 - fixed values
                    "AND f.receipt_number = tombstones.receipt_number AND f.sha256 = tombstones.sha256 "
                    "ORDER BY f.id LIMIT 1) WHERE closed_by IS NULL AND outcome = ? AND reason_code = ?",
                    (Outcome.ABANDONED.value, PROCESS_ENDED))
        return len(rows)

    # --- queries -------------------------------------------------------------------------------

    def get(self, tombstone_id: int) -> Tombstone:
        rows = self._select("WHERE id = ?", (tombstone_id,))
        if not rows:
            raise LookupError(f"no tombstone {tombstone_id}")
        return rows[0]

    def all(self) -> list[Tombstone]:
        return self._select("", ())

    def done_for_source(self, receipt_number: str, sha256: str) -> bool:
        """True if this 受付番号 with these bytes was already stored, or refused for good."""
        finals = ", ".join(f"'{o.value}'" for o in FINAL_FOR_SOURCE)
        with self._lock:
            row = self._db.execute(
                f"SELECT 1 FROM tombstones WHERE receipt_number = ? AND sha256 = ? AND outcome IN ({finals}) "  # noqa: S608 - fixed values
                "LIMIT 1", (_receipt(receipt_number), _sha(sha256))).fetchone()
        return row is not None

    def final_outcome(self, receipt_number: str, sha256: str) -> Outcome | None:
        """The final outcome of this 受付番号 with these bytes, if it has one (else None)."""
        finals = ", ".join(f"'{o.value}'" for o in FINAL_FOR_SOURCE)
        with self._lock:
            row = self._db.execute(
                f"SELECT outcome FROM tombstones WHERE receipt_number = ? AND sha256 = ? AND outcome IN ({finals}) "  # noqa: S608 - fixed values
                "ORDER BY id LIMIT 1", (_receipt(receipt_number), _sha(sha256))).fetchone()
        return None if row is None else Outcome(row[0])

    def _select(self, where: str, params: tuple[object, ...]) -> list[Tombstone]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(TOMBSTONE_COLUMNS)} FROM tombstones {where} "  # noqa: S608 - fixed columns
                                    "ORDER BY id", params).fetchall()
        return [Tombstone(r[0], Channel(r[1]), r[2], r[3], datetime.fromisoformat(r[4]), _dt(r[5]), _dt(r[6]),
                          _dt(r[7]), _dt(r[8]), Outcome(r[9]), r[10], r[11]) for r in rows]

    # --- the pull cursor -----------------------------------------------------------------------

    def cursor(self) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT cursor FROM pull_cursor WHERE id = 1").fetchone()
        return None if row is None else str(row[0])

    def save_cursor(self, cursor: str, at: datetime) -> None:
        """Durably move the pull cursor (only after every package before it has a final outcome)."""
        self._write("INSERT INTO pull_cursor (id, cursor, updated_at) VALUES (1, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                    (cursor, _iso(at)))

    # --- listed items: reconciliation and the attempt budget (pull channel) ---------------------

    def note_listed(self, receipt_number: str, sha256: str, at: datetime) -> Item:
        """The portal listed this 受付番号: remember it (first time only) and return its item."""
        # No fsync of its own: what follows (a download, or a settled item or tombstone, which are
        # fsync'd) tells nobody anything before a commit that is.
        self._write("INSERT INTO items (receipt_number, sha256, first_seen_at, state) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (receipt_number) DO NOTHING",
                    (_receipt(receipt_number), _sha(sha256), _iso(at), ItemState.PENDING.value), fsync=False)
        item = self.item(receipt_number)
        assert item is not None  # noqa: S101 - inserted just now or before
        return item

    def item(self, receipt_number: str) -> Item | None:
        rows = self._items("WHERE receipt_number = ?", (_receipt(receipt_number),))
        return rows[0] if rows else None

    def count_attempt(self, receipt_number: str, at: datetime, reason_code: str) -> None:
        """One failed attempt (an item-level failure: it counts against the budget)."""
        self._write("UPDATE items SET attempts = attempts + 1, last_attempt_at = ?, reason_code = ? "
                    "WHERE receipt_number = ?", (_iso(at), _code(reason_code), _receipt(receipt_number)))

    def settle(self, receipt_number: str, state: ItemState, at: datetime, reason_code: str | None = None) -> None:
        """A final state for the item: stored, refused or set aside (the portal is told next)."""
        if state is ItemState.PENDING:
            raise ValueError("settle needs a final state")
        self._write("UPDATE items SET state = ?, reason_code = COALESCE(?, reason_code), settled_at = ?, "
                    "portal_told_at = NULL, intake_told_at = NULL WHERE receipt_number = ?",
                    (ItemState(state).value, _code(reason_code), _iso(at), _receipt(receipt_number)))

    def reopen(self, receipt_number: str, at: datetime) -> Item | None:
        """An operator's retry of a set-aside item: pending again, the attempt count reset."""
        self._write("UPDATE items SET state = ?, attempts = 0, settled_at = NULL, last_attempt_at = ?, "
                    "reason_code = ?, intake_told_at = NULL WHERE receipt_number = ? AND state = ?",
                    (ItemState.PENDING.value, _iso(at), OPERATOR_RETRY, _receipt(receipt_number),
                     ItemState.SET_ASIDE.value))
        return self.item(receipt_number)

    def untold_portal(self, limit: int = 500) -> list[Item]:
        """Settled items the portal has not been told about yet."""
        return self._items(f"WHERE {_UNTOLD_PORTAL} ORDER BY settled_at LIMIT ?", (limit,))

    def mark_portal_told(self, receipt_number: str, at: datetime) -> None:
        """The portal took the report. No fsync of its own: lost to a power cut, the report is sent
        again, and a repeat changes nothing at the portal."""
        self._write("UPDATE items SET portal_told_at = ? WHERE receipt_number = ?",
                    (_iso(at), _receipt(receipt_number)), fsync=False)

    def untold_intake(self, limit: int = 500) -> list[Item]:
        """Set-aside (or retried) items the intake has not been told about yet."""
        return self._items("WHERE intake_told_at IS NULL AND (state = ? OR (state = ? AND reason_code = ?)) "
                           "ORDER BY receipt_number LIMIT ?",
                           (ItemState.SET_ASIDE.value, ItemState.PENDING.value, OPERATOR_RETRY, limit))

    def mark_intake_told(self, receipt_number: str, at: datetime) -> None:
        self._write("UPDATE items SET intake_told_at = ? WHERE receipt_number = ?",
                    (_iso(at), _receipt(receipt_number)))

    def reconciliation(self) -> dict[ItemState, int]:
        """How many listed items are in each state (every state present, 0 if none)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall()
        counts = dict.fromkeys(ItemState, 0)
        counts.update({ItemState(state): n for state, n in rows})
        return counts

    def set_aside_items(self) -> list[Item]:
        return self._items("WHERE state = ? ORDER BY settled_at", (ItemState.SET_ASIDE.value,))

    def _items(self, where: str, params: tuple[object, ...]) -> list[Item]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(ITEM_COLUMNS)} FROM items {where}", params).fetchall()  # noqa: S608 - fixed columns
        return [Item(r[0], r[1], datetime.fromisoformat(r[2]), _dt(r[3]), r[4], ItemState(r[5]), r[6], _dt(r[7]),
                     _dt(r[8]), _dt(r[9])) for r in rows]

    # --- rounds -------------------------------------------------------------------------------

    def start_round(self, at: datetime) -> int:
        return self._write("INSERT INTO rounds (started_at) VALUES (?)", (_iso(at),))

    def finish_round(self, round_id: int, at: datetime, *, stopped: str | None, listed: int, settled: int,
                     failed: int) -> None:
        self._write("UPDATE rounds SET finished_at = ?, stopped = ?, listed = ?, settled = ?, failed = ? WHERE id = ?",
                    (_iso(at), _code(stopped), listed, settled, failed, round_id))

    def last_round(self, *, completed: bool = False) -> Round | None:
        """The newest finished round, or the newest one that ran to the end (``completed``)."""
        where = "WHERE finished_at IS NOT NULL" + (" AND stopped IS NULL" if completed else "")
        with self._lock:
            row = self._db.execute(f"SELECT id, started_at, finished_at, stopped, listed, settled, failed "  # noqa: S608 - fixed SQL
                                   f"FROM rounds {where} ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        return Round(row[0], datetime.fromisoformat(row[1]), _dt(row[2]), row[3], row[4], row[5], row[6])
