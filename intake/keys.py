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

from sqlalchemy import select
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
    reseal: Callable[[Sealer, object, bytes], bytes]


def _reseal_package(sealer: Sealer, row: object, blob: bytes) -> bytes:
    assert isinstance(row, Delivery)  # noqa: S101 - narrows for mypy
    return seal_package(sealer, row.id, open_package(sealer, row.id, blob))


def _reseal_attachment(sealer: Sealer, row: object, blob: bytes) -> bytes:
    assert isinstance(row, Attachment)  # noqa: S101
    return seal_attachment(sealer, row.id, open_attachment(sealer, row.id, blob))


def _reseal_my_number(sealer: Sealer, row: object, blob: bytes) -> bytes:
    assert isinstance(row, MyNumberRow)  # noqa: S101
    value = open_my_number(sealer, row.version_id, row.position, blob)
    row.key_id = sealer.active_key_id
    return seal_my_number(sealer, row.version_id, row.position, value)


def _reseal_totp(sealer: Sealer, row: object, blob: bytes) -> bytes:
    assert isinstance(row, StaffUser)  # noqa: S101
    return seal_totp(sealer, row.id, open_totp(sealer, row.id, blob))


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


def _rows(session: Session, table: _Table, after: int, batch: int) -> list[object]:
    model = table.model
    query: Any = (select(model).where(model.id > after).order_by(model.id).limit(batch)  # type: ignore[attr-defined]
             .options(undefer(getattr(model, table.column))))
    return list(session.scalars(query))


def key_counts(sessions: sessionmaker[Session], batch: int = 500) -> dict[str, dict[str, int]]:
    """Table → key id → blobs sealed with it."""
    counts: dict[str, dict[str, int]] = {}
    for table in TABLES:
        per: dict[str, int] = {}
        last = 0
        with sessions() as session:
            while rows := _rows(session, table, last, batch):
                for row in rows:
                    blob = getattr(row, table.column)
                    if blob:
                        kid = Sealer.key_id_of(blob)
                        per[kid] = per.get(kid, 0) + 1
                last = rows[-1].id  # type: ignore[attr-defined]
                session.expunge_all()
        counts[table.name] = per
    return counts


@dataclass
class RotationProgress:
    table: str
    examined: int
    resealed: int


def rotate(sessions: sessionmaker[Session], keys: dict[str, Sealer], *, batch: int = 200,
           limit: int | None = None) -> Iterator[RotationProgress]:
    """Re-seal, table by table, every blob not under its family's active key; one committed
    transaction per batch (short: the services keep serving). Yields progress after each batch."""
    budget = limit
    for table in TABLES:
        sealer = keys[table.purpose]
        last, examined, resealed = 0, 0, 0
        while budget is None or budget > 0:
            with sessions() as session:
                rows = _rows(session, table, last, batch)
                if not rows:
                    break
                for row in rows:
                    examined += 1
                    blob = getattr(row, table.column)
                    if not blob or Sealer.key_id_of(blob) == sealer.active_key_id:
                        continue
                    setattr(row, table.column, table.reseal(sealer, row, blob))
                    resealed += 1
                    if budget is not None:
                        budget -= 1
                        if budget == 0:
                            break
                last = rows[-1].id  # type: ignore[attr-defined]
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
        total = 0
        try:
            for step in rotate(sessions, keys, batch=args.batch, limit=args.limit):
                total += step.resealed
                print(f"{step.table}: examined {step.examined}, re-sealed {step.resealed}", flush=True)
        except CryptoError as exc:
            print(f"NG  a blob does not open with the configured keys ({exc}); nothing after it was changed")
            return 1
        remaining = sum(n for t, per in key_counts(sessions).items() for k, n in per.items()
                        if k != keys[_purpose(t)].active_key_id)
        print(f"OK  re-sealed {total} blob(s); {remaining} blob(s) not under the active keys")
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
