"""Append-only events. Kinds are constants here so that counting code and writers agree."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from intake.models import Event

__all__ = ["KIND_BY_APPLICATION_KIND", "record_event"]

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
