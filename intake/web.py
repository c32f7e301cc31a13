"""Shared web plumbing: the per-app state object and one JSON error shape for machine clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from intake.auth import relay_identity
from intake.deliveries.inflight import InFlight
from intake.runtime import Runtime

__all__ = ["AppState", "error_response"]


@dataclass
class AppState:
    runtime: Runtime
    session_factory: sessionmaker[Session]
    inflight: InFlight = field(default_factory=InFlight)

    def authenticate_relay(self, request: Request) -> str:
        return relay_identity(request, self.runtime.settings)


def error_response(status: int, code: str, message: str, *, retry_after: int | None = None) -> JSONResponse:
    """``{"error": {"code", "message"}}`` — codes are stable; messages never carry personal data."""
    headers: dict[str, Any] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)
