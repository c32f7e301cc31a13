"""Key rotation: re-seal every blob under the active key, in resumable batches, while serving.

Every sealed blob names the key id that sealed it (:meth:`intake.crypto.Sealer.key_id_of`). To
rotate (docs/運用手順書.md §4): add the new key to the keys file, make it active, restart the
services (new blobs use it; old ones still open with the old key), then run
``python -m intake keys rotate``: it walks each table by id, re-seals the blobs whose key id is not
the active one and commits each batch, printing progress. Interrupted, it simply runs again (what
is done is skipped). ``keys status`` counts blobs per key id; ``keys retire-check OLD`` exits 0 only
when no blob is left under ``OLD`` — only then may the old key leave the keys file.

The associated data of each blob comes from :mod:`intake.sealing`, so a re-sealed blob still opens
only in its own row.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker, undefer

from intake.crypto import CryptoError, Sealer
from intake.models import Attachment, Delivery, MyNumberRow, StaffUser
from intake.sealing import (
    open_attachment,
    open_my_number,
    open_package,
    open_totp,
    seal_attachment,
    seal_my_number,
    seal_package,
    seal_totp,
)
from intake.settings import IntakeSettings

__all__ = ["TABLES", "key_counts", "rotate", "run_keys"]


@dataclass(frozen=True)
class _Table:
    name: str
    purpose: str  # "my_number" or "package": which key family seals it
    model: type
    column: str
    #: The row's new column values: the blob re-sealed under the active key (and what names the key).
    reseal: Callable[[Sealer, object, bytes], dict[str, object]]


def _reseal_package(sealer: Sealer, row: object, blob: bytes) -> dict[str, object]:
    assert isinstance(row, Delivery)  # noqa: S101 - narrows for mypy
    return {"package": seal_package(sealer, row.id, open_package(sealer, row.id, blob))}


def _reseal_attachment(sealer: Sealer, row: object, blob: bytes) -> dict[str, object]:
    assert isinstance(row, Attachment)  # noqa: S101
    return {"data": seal_attachment(sealer, row.id, open_attachment(sealer, row.id, blob))}


def _reseal_my_number(sealer: Sealer, row: object, blob: bytes) -> dict[str, object]:
    assert isinstance(row, MyNumberRow)  # noqa: S101
    value = open_my_number(sealer, row.version_id, row.position, blob)
    return {"ciphertext": seal_my_number(sealer, row.version_id, row.position, value),
            "key_id": sealer.active_key_id}


def _reseal_totp(sealer: Sealer, row: object, blob: bytes) -> dict[str, object]:
    assert isinstance(row, StaffUser)  # noqa: S101
    return {"totp_secret": seal_totp(sealer, row.id, open_totp(sealer, row.id, blob))}


TABLES = (
    _Table("my_numbers", "my_number", MyNumberRow, "ciphertext", _reseal_my_number),
    _Table("deliveries", "package", Delivery, "package", _reseal_package),
    _Table("attachments", "package", Attachment, "data", _reseal_attachment),
    _Table("staff_users.totp", "package", StaffUser, "totp_secret", _reseal_totp),
)


def sealers(settings: IntakeSettings) -> dict[str, Sealer]:
    return {
        "my_number": Sealer({k: v.get_secret_value() for k, v in settings.my_number_keys.items()},
                            settings.my_number_active_key),
        "package": Sealer({k: v.get_secret_value() for k, v in settings.package_keys.items()},
                          settings.package_active_key),
    }


#: Enough of a blob to read its key id: magic (2), id length (1), id (at most 255).
_HEADER = 3 + 255


def _headers(session: Session, table: _Table, after: int, batch: int) -> list[tuple[int, bytes | None]]:
    """(id, the blob's first bytes) of the next ``batch`` rows after ``after``: a key id is read
    without loading a (possibly large) package."""
    model: Any = table.model
    head = func.substr(getattr(model, table.column), 1, _HEADER)
    query = select(model.id, head).where(model.id > after).order_by(model.id).limit(batch)
    return [(int(row_id), bytes(value) if value is not None else None) for row_id, value in session.execute(query)]


def key_counts(sessions: sessionmaker[Session], batch: int = 2000) -> dict[str, dict[str, int]]:
    """Table → key id → blobs sealed with it."""
    counts: dict[str, dict[str, int]] = {}
    for table in TABLES:
        per: dict[str, int] = {}
        last = 0
        with sessions() as session:
            while heads := _headers(session, table, last, batch):
                for _row_id, head in heads:
                    if head:
                        kid = Sealer.key_id_of(head)
                        per[kid] = per.get(kid, 0) + 1
                last = heads[-1][0]
        counts[table.name] = per
    return counts


@dataclass
class RotationProgress:
    """After one batch: rows examined and blobs re-sealed **so far in this table** (running totals)."""

    table: str
    examined: int
    resealed: int


def rotate(sessions: sessionmaker[Session], keys: dict[str, Sealer], *, batch: int = 200,
           limit: int | None = None) -> Iterator[RotationProgress]:
    """Re-seal, table by table, every blob not under its family's active key; one committed
    transaction per batch (short: the services keep serving). Yields progress after each batch.

    Rows are found by their blobs' key ids (headers only), then the stale ones are loaded and
    locked (``SELECT … FOR UPDATE`` on PostgreSQL) and checked again; each is written back only
    if its blob is still the one that was re-sealed (``UPDATE … WHERE column = old blob``; SQLite
    has no row locks), so a row the service changes meanwhile (a staff member's new TOTP secret)
    is never overwritten with an old value: it is skipped, already under the active key. Killed at
    any point, a run loses at most its open batch (rolled back); the next run starts over and skips
    what is done."""
    budget = limit
    for table in TABLES:
        sealer = keys[table.purpose]
        model: Any = table.model
        column = getattr(model, table.column)
        last, examined, resealed = 0, 0, 0
        while budget is None or budget > 0:
            with sessions() as session:
                heads = _headers(session, table, last, batch)
                if not heads:
                    break
                last = heads[-1][0]
                stale = [row_id for row_id, head in heads if head and Sealer.key_id_of(head) != sealer.active_key_id]
                if budget is not None and len(stale) >= budget:
                    stale, last = stale[:budget], stale[budget - 1]  # the rest is examined by the next run
                examined += sum(1 for row_id, _head in heads if row_id <= last)
                if stale:
                    rows = list(session.scalars(select(model).where(model.id.in_(stale)).order_by(model.id)
                                                .options(undefer(column)).with_for_update()))
                    for row in rows:
                        blob = getattr(row, table.column)
                        if not blob or Sealer.key_id_of(blob) == sealer.active_key_id:
                            continue  # changed since the headers were read
                        written = session.execute(
                            update(model).where(model.id == row.id, column == blob)
                            .values(table.reseal(sealer, row, blob))
                            .execution_options(synchronize_session=False))
                        if not written.rowcount:  # type: ignore[attr-defined]
                            continue  # changed after it was loaded: the service's value stands
                        resealed += 1
                        if budget is not None:
                            budget -= 1
                session.commit()
            yield RotationProgress(table.name, examined, resealed)


def run_keys(args: argparse.Namespace, settings: IntakeSettings, sessions: sessionmaker[Session]) -> int:
    try:
        keys = sealers(settings)
    except CryptoError as exc:
        print(f"keys: {exc}")
        return 2
    if args.action == "status":
        for table, per in key_counts(sessions).items():
            active = keys[next(t.purpose for t in TABLES if t.name == table)].active_key_id
            shown = ", ".join(f"{kid}{' (active)' if kid == active else ''}: {n}" for kid, n in sorted(per.items()))
            print(f"{table}: {shown or 'no blobs'}")
        return 0
    if args.action == "rotate":
        resealed: dict[str, int] = {}
        with sessions() as session:
            rows = {t.name: session.scalar(select(func.count()).select_from(t.model)) or 0 for t in TABLES}
        try:
            for step in rotate(sessions, keys, batch=args.batch, limit=args.limit):
                resealed[step.table] = step.resealed  # a running total per table
                print(f"{step.table}: examined {step.examined} of {rows[step.table]}, re-sealed {step.resealed}",
                      flush=True)
        except CryptoError as exc:
            print(f"NG  a blob does not open with the configured keys ({exc}); nothing after it was changed")
            return 1
        remaining = sum(n for t, per in key_counts(sessions).items() for k, n in per.items()
                        if k != keys[_purpose(t)].active_key_id)
        print(f"OK  re-sealed {sum(resealed.values())} blob(s); {remaining} blob(s) not under the active keys")
        return 0 if remaining == 0 or args.limit is not None else 1
    counts = key_counts(sessions)
    actives = {keys["my_number"].active_key_id, keys["package"].active_key_id}
    if args.key_id in actives:
        print(f"NG  {args.key_id} is an active key: make another key active first")
        return 1
    left = {t: per.get(args.key_id, 0) for t, per in counts.items() if per.get(args.key_id, 0)}
    if left:
        print(f"NG  {sum(left.values())} blob(s) still sealed with {args.key_id}: "
              + ", ".join(f"{t} {n}" for t, n in left.items()) + " (run `python -m intake keys rotate`)")
        return 1
    print(f"OK  no blob is sealed with {args.key_id}: it may be removed from the keys file")
    return 0


def _purpose(table: str) -> str:
    return next(t.purpose for t in TABLES if t.name == table)
