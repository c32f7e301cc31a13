"""POST /api/v1/relay/set-aside — for the relay only (mutual TLS, like deliveries)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from handover import SetAsideBatch
from intake.relayreports.service import record_set_aside
from intake.web import CurrentRuntime, Relay, UnitOfWork

__all__ = ["router"]

router = APIRouter()


@router.post("/api/v1/relay/set-aside")
def post_set_aside(_relay: Relay, session: UnitOfWork, runtime: CurrentRuntime, batch: SetAsideBatch
                   ) -> dict[str, Any]:
    return {"recorded": record_set_aside(session, batch, at=runtime.clock())}
