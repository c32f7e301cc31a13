"""The tombstone store holds only 受付番号, SHA-256, channel, times, outcome and reason code."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from dmz_relay.errors import TombstoneError
from dmz_relay.tombstones import ITEM_COLUMNS, TOMBSTONE_COLUMNS, Channel, ItemState, Outcome, TombstoneStore
from tests.conftest import NOW

SHA = "ab" * 32


@pytest.fixture
def store(tmp_path: Path) -> TombstoneStore:
    return TombstoneStore(tmp_path / "relay" / "tombstones.db")


def test_schema_is_exactly_the_allow_list(store: TombstoneStore) -> None:
    db = sqlite3.connect(store.path)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"tombstones", "pull_cursor", "items", "rounds"}
    columns = tuple(r[1] for r in db.execute("PRAGMA table_info(tombstones)"))
    assert columns == TOMBSTONE_COLUMNS == (
        "id", "channel", "receipt_number", "sha256", "received_at", "verified_at", "scanned_at", "forwarded_at",
        "erased_at", "outcome", "reason_code", "closed_by")
    assert tuple(r[1] for r in db.execute("PRAGMA table_info(pull_cursor)")) == ("id", "cursor", "updated_at")
    assert tuple(r[1] for r in db.execute("PRAGMA table_info(items)")) == ITEM_COLUMNS == (
        "receipt_number", "sha256", "first_seen_at", "last_attempt_at", "attempts", "state", "reason_code",
        "settled_at", "portal_told_at", "intake_told_at")
    assert tuple(r[1] for r in db.execute("PRAGMA table_info(rounds)")) == (
        "id", "started_at", "finished_at", "stopped", "listed", "settled", "failed")
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_package_goes_from_received_to_erased(store: TombstoneStore) -> None:
    tid = store.open(channel=Channel.PUSH, received_at=NOW, sha256=SHA)
    store.mark(tid, "verified", NOW + timedelta(seconds=1), receipt_number="20261125-0000000001")
    store.mark(tid, "scanned", NOW + timedelta(seconds=2))
    store.mark(tid, "forwarded", NOW + timedelta(seconds=3))
    store.finish(tid, Outcome.STORED, erased_at=NOW + timedelta(seconds=4))
    stone = store.get(tid)
    assert (stone.receipt_number, stone.sha256, stone.outcome) == ("20261125-0000000001", SHA, Outcome.STORED)
    assert stone.erased_at == NOW + timedelta(seconds=4)
    assert store.done_for_source("20261125-0000000001", SHA)
    assert not store.done_for_source("20261125-0000000001", "cd" * 32)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"receipt_number": "山田太郎"}, "receipt_number", id="a-name-as-receipt-number"),
        pytest.param({"sha256": "123456789018"}, "sha256", id="a-my-number-as-digest"),
    ],
)
def test_the_api_refuses_anything_but_the_allowed_shapes(store: TombstoneStore, kwargs: dict[str, str],
                                                         match: str) -> None:
    with pytest.raises(ValueError, match=match):
        store.open(channel=Channel.PULL, received_at=NOW, **kwargs)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        pytest.param("receipt_number", "東京都港区芝公園1-5-10", id="address-in-receipt-number"),
        pytest.param("sha256", "123456789018", id="my-number-in-sha256"),
        pytest.param("reason_code", "山田 太郎", id="name-in-reason-code"),
        pytest.param("outcome", "stored by 山田", id="free-text-outcome"),
        pytest.param("channel", "mail", id="unknown-channel"),
    ],
)
def test_the_schema_refuses_anything_but_the_allowed_shapes(store: TombstoneStore, column: str, value: str) -> None:
    row = {"channel": "push", "receipt_number": None, "sha256": None, "received_at": NOW.isoformat(),
           "outcome": "received", "reason_code": None, column: value}
    db = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO tombstones (channel, receipt_number, sha256, received_at, outcome, reason_code) "
                    "VALUES (:channel, :receipt_number, :sha256, :received_at, :outcome, :reason_code)", row)


def test_naive_times_and_unknown_steps_are_programming_errors(store: TombstoneStore) -> None:
    tid = store.open(channel=Channel.PUSH, received_at=NOW)
    with pytest.raises(ValueError, match="naive"):
        store.mark(tid, "verified", NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="unknown step"):
        store.mark(tid, "received_at = 0, reason_code", NOW)
    with pytest.raises(ValueError, match="final outcome"):
        store.finish(tid, Outcome.RECEIVED, erased_at=NOW)


def test_cursor_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    first = TombstoneStore(path)
    assert first.cursor() is None
    first.save_cursor("eyJrIjoiYXBwbGljYXRpb25zIn0", NOW)
    first.close()
    assert TombstoneStore(path).cursor() == "eyJrIjoiYXBwbGljYXRpb25zIn0"


def test_an_unwritable_store_is_a_tombstone_error(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = TombstoneStore(path)
    store.close()
    with pytest.raises(TombstoneError):
        store.open(channel=Channel.PUSH, received_at=NOW)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        pytest.param("receipt_number", "山田 太郎", id="name-as-receipt-number"),
        pytest.param("reason_code", "住民票.pdf", id="file-name-as-reason"),
        pytest.param("state", "held by 山田", id="free-text-state"),
    ],
)
def test_items_refuse_anything_but_the_allowed_shapes(store: TombstoneStore, column: str, value: str) -> None:
    row = {"receipt_number": "20261125-0000000001", "first_seen_at": NOW.isoformat(), "state": "pending",
           "reason_code": None, column: value}
    db = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO items (receipt_number, first_seen_at, state, reason_code) "
                   "VALUES (:receipt_number, :first_seen_at, :state, :reason_code)", row)


def test_tombstones_a_crash_left_open_are_closed_and_linked(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    crashed = TombstoneStore(path)
    first = crashed.open(channel=Channel.PULL, received_at=NOW, receipt_number="20261125-0000000001", sha256=SHA)
    lost = crashed.open(channel=Channel.PUSH, received_at=NOW, sha256="cd" * 32)  # never seen again
    crashed.close()  # the process died here: no finish

    restarted = TombstoneStore(path)
    assert restarted.close_open(NOW + timedelta(minutes=1)) == 2
    for tid in (first, lost):
        stone = restarted.get(tid)
        assert (stone.outcome, stone.reason_code, stone.erased_at) == (
            Outcome.ABANDONED, "PROCESS_ENDED", NOW + timedelta(minutes=1))
        assert stone.closed_by is None
    again = restarted.open(channel=Channel.PULL, received_at=NOW + timedelta(minutes=2),
                           receipt_number="20261125-0000000001", sha256=SHA)
    restarted.finish(again, Outcome.STORED, erased_at=NOW + timedelta(minutes=3))
    assert restarted.get(first).closed_by == again  # linked to the row under which it was stored
    assert restarted.get(lost).closed_by is None
    assert restarted.close_open(NOW + timedelta(minutes=4)) == 0
    assert all(s.outcome is not Outcome.RECEIVED for s in restarted.all())


def test_a_store_from_before_items_gains_them_without_losing_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE tombstones (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, receipt_number TEXT, sha256 TEXT,
            received_at TEXT NOT NULL, verified_at TEXT, scanned_at TEXT, forwarded_at TEXT, erased_at TEXT,
            outcome TEXT NOT NULL, reason_code TEXT);
        CREATE TABLE pull_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), cursor TEXT NOT NULL,
            updated_at TEXT NOT NULL);
    """)
    old.execute("INSERT INTO tombstones (channel, receipt_number, sha256, received_at, erased_at, outcome) "
                "VALUES ('pull', '20261125-0000000001', ?, ?, ?, 'stored')", (SHA, NOW.isoformat(), NOW.isoformat()))
    old.commit()
    old.close()
    store = TombstoneStore(path)
    assert store.final_outcome("20261125-0000000001", SHA) is Outcome.STORED
    assert store.all()[0].closed_by is None
    assert store.reconciliation() == dict.fromkeys(ItemState, 0)


def test_items_count_attempts_settle_and_reopen(store: TombstoneStore) -> None:
    item = store.note_listed("20261125-0000000001", SHA, NOW)
    assert (item.state, item.attempts) == (ItemState.PENDING, 0)
    assert store.note_listed("20261125-0000000001", SHA, NOW + timedelta(hours=1)).first_seen_at == NOW
    store.count_attempt("20261125-0000000001", NOW, "HTTP_500")
    store.count_attempt("20261125-0000000001", NOW, "HTTP_500")
    store.settle("20261125-0000000001", ItemState.SET_ASIDE, NOW)
    item = store.item("20261125-0000000001")
    assert item is not None
    assert (item.state, item.attempts, item.reason_code) == (ItemState.SET_ASIDE, 2, "HTTP_500")
    assert [i.receipt_number for i in store.untold_portal()] == ["20261125-0000000001"]
    assert [i.receipt_number for i in store.untold_intake()] == ["20261125-0000000001"]
    store.mark_portal_told("20261125-0000000001", NOW)
    store.mark_intake_told("20261125-0000000001", NOW)
    assert store.untold_portal() == store.untold_intake() == []
    reopened = store.reopen("20261125-0000000001", NOW)
    assert reopened is not None
    assert (reopened.state, reopened.attempts, reopened.reason_code) == (ItemState.PENDING, 0, "OPERATOR_RETRY")
    assert [i.receipt_number for i in store.untold_intake()] == ["20261125-0000000001"]  # the intake hears of it
    with pytest.raises(ValueError, match="final state"):
        store.settle("20261125-0000000001", ItemState.PENDING, NOW)


def test_a_pull_rounds_queries_read_the_items_still_to_report_not_every_item(store: TombstoneStore) -> None:
    """``items`` keeps every 受付番号 the portal ever listed, and every pull round asks it what the
    portal and the intake have not been told yet: after a year of a ward's applications that must
    be an index lookup of the few still to report, not a scan of the whole table (a backlog would
    make every round slower). The statements are taken as the store runs them (SQLite's trace) and
    planned by SQLite itself."""
    for n in range(1, 401):
        number = f"20261125-{n:010d}"
        store.note_listed(number, SHA, NOW)
        store.settle(number, ItemState.STORED if n % 100 else ItemState.SET_ASIDE, NOW + timedelta(seconds=n))
        if n % 100:
            store.mark_portal_told(number, NOW + timedelta(seconds=n))
            store.mark_intake_told(number, NOW + timedelta(seconds=n))
    store.note_listed("20261125-0000009999", SHA, NOW)  # listed, not handled yet: nobody to tell
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    try:
        portal = store.untold_portal()
        intake = store.untold_intake()
        counts = store.reconciliation()
    finally:
        store._db.set_trace_callback(None)
    set_aside = [f"20261125-{n:010d}" for n in (100, 200, 300, 400)]
    assert [i.receipt_number for i in portal] == set_aside  # in settlement order
    assert [i.receipt_number for i in intake] == set_aside
    assert counts[ItemState.STORED] == 396
    assert counts[ItemState.SET_ASIDE] == 4
    assert counts[ItemState.PENDING] == 1
    plans = {sql: " | ".join(row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}"))
             for sql in statements if " FROM items" in sql}
    assert len(plans) == 3, statements

    def plan_of(clause: str) -> str:
        (plan,) = [p for sql, p in plans.items() if clause in sql]
        return plan

    # "SCAN items" alone is the whole table; "SCAN items USING … INDEX" walks an index
    assert all("SCAN items" not in p or "USING" in p for p in plans.values()), plans
    assert "USING INDEX ix_items_untold_portal" in plan_of("portal_told_at IS NULL"), plans
    assert "SEARCH items USING INDEX ix_items_state (state=?)" in plan_of("intake_told_at IS NULL"), plans
    assert "USING COVERING INDEX ix_items_state" in plan_of("GROUP BY"), plans


class _SickDisk:
    """The store's connection, but COMMIT and ROLLBACK fail while ``failing`` (a disk going bad)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db, self.failing = db, set[str]()

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        if sql.strip().upper() in self.failing:
            raise sqlite3.OperationalError("disk I/O error")
        return self.db.execute(sql, params)


def test_a_failed_commit_and_rollback_never_make_a_later_write_look_done(store: TombstoneStore) -> None:
    """If a commit fails and so does the rollback, the transaction stays open; a later write would
    join it and be reported done without ever being committed. The store rolls it back first, or
    refuses the write with a TombstoneError (the caller then treats the step as not done)."""
    tid = store.open(channel=Channel.PUSH, received_at=NOW, sha256=SHA)
    sick = _SickDisk(store._db)
    store._db = sick  # type: ignore[assignment]
    sick.failing = {"COMMIT", "ROLLBACK"}
    with pytest.raises(TombstoneError):
        store.finish(tid, Outcome.STORED, erased_at=NOW)
    assert sick.in_transaction  # left open by the sick disk
    with pytest.raises(TombstoneError, match="unusable"):  # the rollback still fails: refused, not faked
        store.mark(tid, "scanned", NOW)
    sick.failing = set()
    store.mark(tid, "scanned", NOW + timedelta(seconds=1))  # rolls the old transaction back, then writes
    assert not sick.in_transaction
    other = sqlite3.connect(store.path)  # what is really committed
    row = other.execute("SELECT scanned_at, outcome, erased_at FROM tombstones WHERE id = ?", (tid,)).fetchone()
    other.close()
    assert row[0] is not None
    assert row[1:] == ("received", None)  # the finish that failed left nothing behind


def test_a_relay_database_from_before_the_item_indexes_gets_them_when_opened(tmp_path: Path) -> None:
    """An operator upgrades a relay whose tombstones.db was made before ``ix_items_untold_portal``
    and ``ix_items_state`` existed: opening it adds them, keeps every row, and a round's query uses
    them at once (no migration step to forget)."""
    path = tmp_path / "tombstones.db"
    old = TombstoneStore(path)
    old.note_listed("20261125-0000000001", SHA, NOW)
    old.settle("20261125-0000000001", ItemState.SET_ASIDE, NOW)
    old.close()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX ix_items_untold_portal")
    db.execute("DROP INDEX ix_items_state")
    db.commit()
    db.close()

    store = TombstoneStore(path)
    indexes = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"ix_items_untold_portal", "ix_items_state"} <= indexes
    assert [i.receipt_number for i in store.untold_portal()] == ["20261125-0000000001"]
    assert store.reconciliation()[ItemState.SET_ASIDE] == 1
