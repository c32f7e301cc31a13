"""The relay's only state on disk: one tombstone per package handled, and the pull cursor.

A tombstone holds 受付番号, the package's SHA-256, the channel it came by, the times it was received,
verified, scanned, forwarded and erased, the outcome and a reason code — nothing else. The schema
enforces the shapes (CHECK constraints), and :meth:`TombstoneStore.open` / :meth:`finish` check them
again in Python, so a name, an address, a My Number or a certificate subject has no column to go to
and no free-text column to hide in (tested in tests/dmz_relay/test_tombstones.py).

SQLite with ``synchronous=FULL``: a committed step survives a power cut. A failed write raises
:class:`TombstoneError`; the caller treats the step as not done (the pull cursor does not move).
"""

from __future__ import annotations

import enum
import re
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dmz_relay.errors import TombstoneError

__all__ = ["TOMBSTONE_COLUMNS", "Channel", "Outcome", "Tombstone", "TombstoneStore"]


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
    #: The relay shut down before forwarding it; not acknowledged upstream.
    ABANDONED = "abandoned"


#: Outcomes after which the pull channel does not fetch the same package again.
FINAL_FOR_SOURCE = frozenset({Outcome.STORED, Outcome.DUPLICATE, Outcome.REFUSED, Outcome.REJECTED})

#: The complete column list of the tombstones table (the allow-list the tests check).
TOMBSTONE_COLUMNS = ("id", "channel", "receipt_number", "sha256", "received_at", "verified_at", "scanned_at",
                     "forwarded_at", "erased_at", "outcome", "reason_code")

_RECEIPT = re.compile(r"[0-9]{8}-[0-9]{10}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")

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
        AND reason_code NOT GLOB '*[^A-Z0-9_]*'))
);
CREATE INDEX IF NOT EXISTS ix_tombstones_receipt ON tombstones (receipt_number, sha256);
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
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise TombstoneError(f"cannot open the tombstone store {path}: {type(exc).__name__}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        with self._lock:
            try:
                cur = self._db.execute(sql, params)
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

    def mark(self, tombstone_id: int, step: str, at: datetime, *, receipt_number: str | None = None) -> None:
        """Record the time of ``step`` (verified, scanned, forwarded); optionally the 受付番号 learnt."""
        if step not in ("verified", "scanned", "forwarded"):
            raise ValueError(f"unknown step {step!r}")
        if receipt_number is not None:
            self._write(f"UPDATE tombstones SET {step}_at = ?, receipt_number = COALESCE(receipt_number, ?) "  # noqa: S608 - step is from the fixed list above
                        "WHERE id = ?", (_iso(at), _receipt(receipt_number), tombstone_id))
        else:
            self._write(f"UPDATE tombstones SET {step}_at = ? WHERE id = ?",  # noqa: S608 - fixed step names
                        (_iso(at), tombstone_id))

    def finish(self, tombstone_id: int, outcome: Outcome, *, erased_at: datetime,
               reason_code: str | None = None) -> None:
        """The package's copy is gone: record the outcome, the reason and when it was erased."""
        if outcome is Outcome.RECEIVED:
            raise ValueError("finish needs a final outcome")
        self._write("UPDATE tombstones SET outcome = ?, reason_code = ?, erased_at = ? WHERE id = ?",
                    (Outcome(outcome).value, _code(reason_code), _iso(erased_at), tombstone_id))

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

    def _select(self, where: str, params: tuple[object, ...]) -> list[Tombstone]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(TOMBSTONE_COLUMNS)} FROM tombstones {where} "  # noqa: S608 - fixed columns
                                    "ORDER BY id", params).fetchall()
        return [Tombstone(r[0], Channel(r[1]), r[2], r[3], datetime.fromisoformat(r[4]), _dt(r[5]), _dt(r[6]),
                          _dt(r[7]), _dt(r[8]), Outcome(r[9]), r[10]) for r in rows]

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
