"""The tombstone store holds only 受付番号, SHA-256, channel, times, outcome and reason code."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from dmz_relay.errors import TombstoneError
from dmz_relay.tombstones import TOMBSTONE_COLUMNS, Channel, Outcome, TombstoneStore
from tests.conftest import NOW

SHA = "ab" * 32


@pytest.fixture
def store(tmp_path: Path) -> TombstoneStore:
    return TombstoneStore(tmp_path / "relay" / "tombstones.db")


def test_schema_is_exactly_the_allow_list(store: TombstoneStore) -> None:
    db = sqlite3.connect(store.path)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"tombstones", "pull_cursor"}
    columns = tuple(r[1] for r in db.execute("PRAGMA table_info(tombstones)"))
    assert columns == TOMBSTONE_COLUMNS == (
        "id", "channel", "receipt_number", "sha256", "received_at", "verified_at", "scanned_at", "forwarded_at",
        "erased_at", "outcome", "reason_code")
    assert tuple(r[1] for r in db.execute("PRAGMA table_info(pull_cursor)")) == ("id", "cursor", "updated_at")
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
