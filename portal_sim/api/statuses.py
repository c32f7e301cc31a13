"""Processing status (処理状況) per application: transition rules, history, and its persistence.

The portal sets 到達 itself when a package arrives; the municipality moves the application on from
there. The history is what the resident sees on the portal: each status with its time and an
optional message. Updates are appended to ``DIR/status/<受付番号>.json`` with an atomic write
(temp file, fsync, rename, fsync of the directory), so a restart keeps every acknowledged update.
Every update gets a global sequence number, which orders the processing-status list.

This module is deliberately independent of our own ``status/`` package: the simulator is the
portal, an outside peer, and must not share code with the systems it talks to.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from portal_sim.api.catalogue import ApplicationRecordLike, Page
from portal_sim.api.clock import Clock
from portal_sim.api.cursor import decode_cursor, encode_cursor
from portal_sim.api.errors import (
    ConfigurationError,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidCursor,
    StatusNotSettable,
)
from portal_sim.datadir import RECEIPT_NUMBER_RE

__all__ = ["FINAL", "TRANSITIONS", "Status", "StatusChange", "StatusEntry", "StatusStore"]

FORMAT = 1


class Status(StrEnum):
    ARRIVED = "到達"
    ACCEPTED = "受付"
    UNDER_REVIEW = "審査中"
    CORRECTION_REQUESTED = "補正依頼"
    COMPLETED = "完了"
    REJECTED = "却下"
    WITHDRAWN = "取下げ"


FINAL = frozenset({Status.COMPLETED, Status.REJECTED, Status.WITHDRAWN})

# Which status may follow which (modelled; docs/portal-api.md). Final statuses have no successor;
# 到達 is never a successor because only the portal sets it, on arrival.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.ARRIVED: frozenset({Status.ACCEPTED, Status.REJECTED, Status.WITHDRAWN}),
    Status.ACCEPTED: frozenset({Status.UNDER_REVIEW, Status.CORRECTION_REQUESTED, Status.COMPLETED,
                                Status.REJECTED, Status.WITHDRAWN}),
    Status.UNDER_REVIEW: frozenset({Status.CORRECTION_REQUESTED, Status.COMPLETED, Status.REJECTED,
                                    Status.WITHDRAWN}),
    Status.CORRECTION_REQUESTED: frozenset({Status.UNDER_REVIEW, Status.COMPLETED, Status.REJECTED,
                                            Status.WITHDRAWN}),
    Status.COMPLETED: frozenset(),
    Status.REJECTED: frozenset(),
    Status.WITHDRAWN: frozenset(),
}


@dataclass(frozen=True)
class StatusEntry:
    """One line of the history. ``seq`` is None for the portal's own 到達 line."""

    status: Status
    at: datetime
    comment: str | None = None
    seq: int | None = None
    idempotency_keys: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "status": self.status.value, "at": self.at.isoformat(),
                "comment": self.comment, "idempotency_keys": list(self.idempotency_keys)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatusEntry:
        at = datetime.fromisoformat(data["at"])
        if at.tzinfo is None or not isinstance(data["seq"], int):
            raise ValueError("entry without offset or sequence number")
        comment = data.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise ValueError("comment is not a string")
        return cls(status=Status(data["status"]), at=at, comment=comment, seq=data["seq"],
                   idempotency_keys=tuple(str(k) for k in data.get("idempotency_keys", [])))


@dataclass(frozen=True)
class StatusChange:
    """One entry of the processing-status list (no comments: the list is for systems, not people)."""

    receipt_number: str
    entry: StatusEntry


def _write_atomically(path: Path, data: bytes) -> None:
    """temp → fsync → rename → fsync(dir): after return, the file is either old or new, never torn."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StatusStore:
    """History of municipality-set statuses per 受付番号, loaded at start-up and written through."""

    CURSOR_KIND = "statuses"

    def __init__(self, directory: Path, *, clock: Clock) -> None:
        self._dir = directory
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, list[StatusEntry]] = {}
        self._log: list[StatusChange] = []  # every entry, in seq order
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError("cannot create the status directory") from exc
        self._load()

    def _load(self) -> None:
        for path in sorted(self._dir.glob("*.json")):
            number = path.stem
            try:
                data = json.loads(path.read_bytes())
                if data.get("format") != FORMAT or data.get("receipt_number") != number:
                    raise ValueError("format or 受付番号 does not match the file")
                if not RECEIPT_NUMBER_RE.fullmatch(number):
                    raise ValueError("malformed 受付番号")
                entries = [StatusEntry.from_json(e) for e in data["entries"]]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigurationError(f"status file {path.name} is unreadable") from exc
            self._entries[number] = entries
            self._log.extend(StatusChange(number, e) for e in entries)
        self._log.sort(key=lambda c: c.entry.seq or 0)

    @property
    def _next_seq(self) -> int:
        return (self._log[-1].entry.seq or 0) + 1 if self._log else 1

    def history(self, record: ApplicationRecordLike) -> list[StatusEntry]:
        """The resident's view: 到達 at the arrival time, then every update in order."""
        with self._lock:
            explicit = list(self._entries.get(record.receipt_number, []))
        return [StatusEntry(Status.ARRIVED, record.arrived_at), *explicit]

    def update(
        self, record: ApplicationRecordLike, status: Status, comment: str | None, idempotency_key: str | None,
    ) -> tuple[StatusEntry, bool]:
        """Apply one update; returns the entry and whether it is new (False: an idempotent repeat).

        Same Idempotency-Key and same request → the entry it created; same key, other request →
        :class:`IdempotencyKeyReused`. Without a key, asking for the current status with the same
        comment is a repeat too. Anything else must be an allowed transition.
        """
        number = record.receipt_number
        with self._lock:
            entries = self._entries.get(number, [])
            if idempotency_key is not None:
                for entry in entries:
                    if idempotency_key in entry.idempotency_keys:
                        if (entry.status, entry.comment) != (status, comment):
                            raise IdempotencyKeyReused("this Idempotency-Key was used for a different update")
                        return entry, False
            if status is Status.ARRIVED:
                raise StatusNotSettable(status.value)
            current = entries[-1] if entries else None
            if current is not None and (current.status, current.comment) == (status, comment):
                if idempotency_key is not None:
                    # Remember the key, so its repeat stays a repeat after later updates.
                    self._replace_last(number, entries, current, idempotency_key)
                return current, False
            current_status = current.status if current is not None else Status.ARRIVED
            if status not in TRANSITIONS[current_status]:
                raise IllegalTransition(current_status.value, status.value)
            entry = StatusEntry(status=status, at=self._clock.now(), comment=comment, seq=self._next_seq,
                                idempotency_keys=(idempotency_key,) if idempotency_key else ())
            self._persist(number, [*entries, entry])
            self._log.append(StatusChange(number, entry))
            return entry, True

    def _replace_last(self, number: str, entries: list[StatusEntry], last: StatusEntry, key: str) -> None:
        updated = StatusEntry(last.status, last.at, last.comment, last.seq, (*last.idempotency_keys, key))
        self._persist(number, [*entries[:-1], updated])
        self._log = [StatusChange(number, updated) if c.entry.seq == last.seq else c for c in self._log]

    def _persist(self, number: str, entries: list[StatusEntry]) -> None:
        document = {"format": FORMAT, "receipt_number": number, "entries": [e.to_json() for e in entries]}
        payload = json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
        _write_atomically(self._dir / f"{number}.json", payload)
        self._entries[number] = entries  # only after the write succeeded

    def changes(
        self, *, since: datetime | None, cursor: str | None, limit: int,
    ) -> Page[StatusChange]:
        """Updates in sequence order, at or after ``since``, after ``cursor``."""
        after = 0
        if cursor is not None:
            position = decode_cursor(self.CURSOR_KIND, cursor)
            if len(position) != 1 or not isinstance(position[0], int) or isinstance(position[0], bool):
                raise InvalidCursor("cursor is not one this server issued")
            after = position[0]
        with self._lock:
            log = list(self._log)
        selected = [c for c in log if (c.entry.seq or 0) > after and (since is None or c.entry.at >= since)]
        items = selected[:limit]
        next_cursor = encode_cursor(self.CURSOR_KIND, [items[-1].entry.seq]) if items else cursor
        return Page(items=items, next_cursor=next_cursor, has_more=len(selected) > len(items))
