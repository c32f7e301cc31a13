"""GET /api/v1/status-outbox and POST /api/v1/status-outbox/ack — for the relay only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from intake.statusoutbox.service import acknowledge, pending_notices
from intake.web import AppState

__all__ = ["router"]

router = APIRouter()


class AckRequest(BaseModel):
    ids: list[int] = Field(max_length=1000)


@router.get("/api/v1/status-outbox")
def list_outbox(request: Request, after_id: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=500)
                ) -> dict[str, Any]:
    state: AppState = request.app.state.shinsei
    state.authenticate_relay(request)
    with state.session_factory() as session:
        items = pending_notices(session, after_id=after_id, limit=limit)
        return {"items": [{"id": n.id, "receipt_number": n.receipt_number, "status": n.status,
                           "at": n.at.isoformat()} for n in items]}


@router.post("/api/v1/status-outbox/ack")
def ack_outbox(request: Request, body: AckRequest) -> dict[str, Any]:
    state: AppState = request.app.state.shinsei
    state.authenticate_relay(request)
    with state.session_factory() as session:
        count = acknowledge(session, body.ids, at=state.runtime.clock())
        session.commit()
    return {"acknowledged": count}
