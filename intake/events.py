"""Append-only events. Kinds are constants here so that counting code and writers agree."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from intake.db import table_of
from intake.models import Event

__all__ = ["KIND_BY_APPLICATION_KIND", "events_batched", "record_event", "write_event"]

#: 申請種別 → event kind; the daily mail counts these.
KIND_BY_APPLICATION_KIND = {
    "新規申請": "application.new",
    "再申請": "application.reapplication",
    "補正": "application.correction",
    "取下げ": "application.withdrawal",
}


def record_event(
    session: Session, kind: str, *, at: datetime, receipt_number: str | None = None,
    first_receipt_number: str | None = None, procedure_id: str | None = None, **detail: Any,
) -> Event:
    """Add one event row (the caller's transaction commits it). ``detail`` must hold no personal data."""
    event = Event(at=at, kind=kind, receipt_number=receipt_number, first_receipt_number=first_receipt_number,
                  procedure_id=procedure_id, detail=detail)
    session.add(event)
    return event


_INSERT_EVENT = insert(table_of(Event))
#: ``Session.info`` key: the rows :func:`write_event` keeps for :func:`events_batched`.
_BATCH_INFO = "shinsei.events_batched"


def write_event(
    session: Session, kind: str, *, at: datetime, receipt_number: str | None = None,
    first_receipt_number: str | None = None, procedure_id: str | None = None, **detail: Any,
) -> None:
    """:func:`record_event` for the delivery path: a Core ``INSERT`` on the session's connection
    (its transaction and savepoint), no ORM object — nothing for the next flush to process — now,
    or inside :func:`events_batched` with the batch's others at its end (docs/decisions.md, "Core
    for a delivery's writes"). ``detail`` must hold no personal data."""
    row = {"at": at, "kind": kind, "receipt_number": receipt_number, "first_receipt_number": first_receipt_number,
           "procedure_id": procedure_id, "detail": detail}
    batch: list[dict[str, Any]] | None = session.info.get(_BATCH_INFO)
    if batch is not None:
        batch.append(row)
    else:
        session.connection().execute(_INSERT_EVENT, row)


@contextmanager
def events_batched(session: Session) -> Iterator[None]:
    """The events :func:`write_event` writes inside are inserted in one statement when the block
    ends without an exception (in the same transaction: nothing reads them before the commit).
    Raising discards them — the caller's savepoint or transaction takes back the rest. Nested:
    the outermost block writes. Inside, write every event with :func:`write_event`: a
    :func:`record_event` row is written by the unit of work at its next flush, which can come
    before the batch and give the events ids out of their order."""
    if _BATCH_INFO in session.info:
        yield
        return
    batch: list[dict[str, Any]] = []
    session.info[_BATCH_INFO] = batch
    try:
        yield
    finally:
        del session.info[_BATCH_INFO]
    if batch:
        session.connection().execute(_INSERT_EVENT, batch)
