"""GET /api/v1/status-outbox and POST /api/v1/status-outbox/ack — for the relay only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from intake.statusoutbox.service import acknowledge, pending_notices
from intake.web import CurrentRuntime, Relay, UnitOfWork

__all__ = ["router"]

router = APIRouter()


class AckRequest(BaseModel):
    ids: list[int] = Field(max_length=1000)


@router.get("/api/v1/status-outbox")
def list_outbox(_relay: Relay, session: UnitOfWork, after_id: int = Query(0, ge=0),
                limit: int = Query(100, ge=1, le=500)) -> dict[str, Any]:
    items = pending_notices(session, after_id=after_id, limit=limit)
    return {"items": [{"id": n.id, "receipt_number": n.receipt_number, "status": n.status,
                       "at": n.at.isoformat()} for n in items]}


@router.post("/api/v1/status-outbox/ack")
def ack_outbox(_relay: Relay, session: UnitOfWork, runtime: CurrentRuntime, body: AckRequest) -> dict[str, Any]:
    return {"acknowledged": acknowledge(session, body.ids, at=runtime.clock())}
