"""The intake's ASGI application: machine API for the relay, health endpoints, and the staff UI
(:mod:`intake.ui`, mounted at ``/staff`` with its own middleware and error pages)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from intake.deliveries.inflight import InFlight
from intake.deliveries.views import router as deliveries_router
from intake.errors import IntakeError
from intake.mail.health import mail_health
from intake.relayreports.views import router as relay_reports_router
from intake.runtime import Runtime
from intake.statusoutbox.views import router as status_router
from intake.ui.app import create_ui_app
from intake.web import AppState, ContainErrors, error_response, http_status

__all__ = ["create_app"]

_log = logging.getLogger(__name__)


def create_app(runtime: Runtime, session_factory: sessionmaker[Session]) -> FastAPI:
    if runtime.settings.client_auth == "none":
        _log.warning("client authentication is OFF (development): any client may deliver packages")
    app = FastAPI(title="Shinsei intake", version="1", docs_url=None, redoc_url=None)
    app.state.shinsei = AppState(runtime=runtime, session_factory=session_factory)
    app.state.inflight = InFlight()  # idempotency keys being stored by this process
    app.include_router(deliveries_router)
    app.include_router(status_router)
    app.include_router(relay_reports_router)
    app.mount("/staff", create_ui_app(runtime, session_factory))  # the staff UI (職員画面)
    app.add_middleware(ContainErrors)

    @app.exception_handler(IntakeError)
    async def _intake_error(_request: Request, exc: IntakeError) -> JSONResponse:
        return error_response(http_status(exc), exc.code, str(exc), retry_after=getattr(exc, "retry_after", None))


    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        try:
            with session_factory() as session:
                session.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any database failure means "not ready"
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ready", "mail": mail_health(session_factory, runtime)})

    return app
