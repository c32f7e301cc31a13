"""GET /api/v1/status-outbox and POST /api/v1/status-outbox/ack — for the relay only (the wire form
is :mod:`handover.status`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from handover import StatusAck, StatusNoticeItem, StatusOutboxPage
from intake.statusoutbox.service import acknowledge, pending_notices
from intake.web import CurrentRuntime, Relay, UnitOfWork

__all__ = ["router"]

router = APIRouter()


@router.get("/api/v1/status-outbox")
def list_outbox(_relay: Relay, session: UnitOfWork, after_id: int = Query(0, ge=0),
                limit: int = Query(100, ge=1, le=500)) -> dict[str, Any]:
    items = pending_notices(session, after_id=after_id, limit=limit)
    page = StatusOutboxPage(items=tuple(
        StatusNoticeItem(id=n.id, receipt_number=n.receipt_number, status=n.status, at=n.at, comment=n.comment)
        for n in items))
    return page.model_dump(mode="json")


@router.post("/api/v1/status-outbox/ack")
def ack_outbox(_relay: Relay, session: UnitOfWork, runtime: CurrentRuntime, body: StatusAck) -> dict[str, Any]:
    return {"acknowledged": acknowledge(session, body.ids, refused=body.refused, at=runtime.clock())}
