"""The intake's ASGI application: machine API for the relay, health endpoints, and the staff UI
(:mod:`intake.ui`, mounted at ``/staff`` with its own middleware and error pages).

``role`` picks what one listener serves: ``api`` (the relay's machine API: deliveries and the status
outbox), ``ui`` (the staff UI, behind its TLS front proxy) or ``all`` (both: development, tests).
Every role serves ``/healthz``, ``/readyz`` (the cached result of :class:`~probes.ReadinessMonitor`,
never a check per request) and ``/metrics`` (only with ``Authorization: Bearer <metrics_token>``).
:func:`create_ops_app` is the loopback operations listener (health and metrics only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from intake.crls.health import CrlCollector, crl_check
from intake.crls.views import router as crls_router
from intake.deliveries.inflight import InFlight
from intake.deliveries.views import router as deliveries_router
from intake.errors import IntakeError
from intake.mail.health import mail_health
from intake.metrics import CONTENT_TYPE, DatabaseCollector, IntakeMetrics, authorised, outcome_of
from intake.relayreports.views import router as relay_reports_router
from intake.runtime import Runtime
from intake.statusoutbox.views import router as status_router
from intake.ui.app import create_ui_app
from intake.web import AppState, ContainErrors, error_response, http_status
from probes import ReadinessMonitor

__all__ = ["Role", "create_app", "create_ops_app", "make_metrics", "make_readiness"]

_log = logging.getLogger(__name__)

Role = Literal["api", "ui", "all"]


def make_readiness(runtime: Runtime, session_factory: sessionmaker[Session]) -> ReadinessMonitor:
    """The scheduled readiness check: the database answers and the CRLs in use are fresh
    (:func:`intake.crls.health.crl_check`); the daily mail's state is reported (a mail problem never
    makes the intake "not ready": deliveries go on when SMTP is down)."""

    def check() -> tuple[bool, dict[str, Any]]:
        crls = crl_check(runtime, runtime.clock())
        try:
            with session_factory() as session:
                session.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any database failure means "not ready"
            return False, {"status": "database unavailable", "crls": crls}
        ready = crls in ("ok", "skipped")
        store = runtime.trust.revocation
        # The CRL set in use (status().digest, shortened): the same in every process holding the same CRLs.
        crl_set = store.status().digest[:16] if store is not None else ""
        return ready, {"status": "ready" if ready else "not ready", "crls": crls, "crl_set": crl_set,
                       "mail": mail_health(session_factory, runtime)}

    return ReadinessMonitor(check, interval=runtime.settings.readiness_interval, clock=runtime.clock)


def make_metrics(runtime: Runtime, session_factory: sessionmaker[Session]) -> IntakeMetrics:
    metrics = IntakeMetrics()
    metrics.add_database(DatabaseCollector(session_factory, runtime.clock))
    metrics.registry.register(CrlCollector(runtime, runtime.clock))
    return metrics


def _health_routes(app: FastAPI, runtime: Runtime, readiness: ReadinessMonitor, metrics: IntakeMetrics,
                   *, open_metrics: bool) -> None:
    token = runtime.settings.metrics_token.get_secret_value() if runtime.settings.metrics_token else None

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        readiness.start()  # idempotent; a server's lifespan normally started it
        ready, body = readiness.snapshot(wait=10.0)
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    def metrics_endpoint(request: Request) -> Response:
        if not (open_metrics or authorised(request.headers.get("authorization"), token)):
            # Not served without credentials: the same answer whether a token is configured or not.
            return JSONResponse({"error": {"code": "METRICS_CREDENTIALS_REQUIRED",
                                           "message": "metrics need Authorization: Bearer <metrics_token>"}},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return Response(metrics.render(), media_type=CONTENT_TYPE)


def create_app(runtime: Runtime, session_factory: sessionmaker[Session], *, role: Role = "all",
               readiness: ReadinessMonitor | None = None, metrics: IntakeMetrics | None = None) -> FastAPI:
    if runtime.settings.client_auth == "none" and role != "ui":
        _log.warning("client authentication is OFF (development): any client may deliver packages")
    app = FastAPI(title="Shinsei intake", version="1", docs_url=None, redoc_url=None)
    readiness = readiness or make_readiness(runtime, session_factory)
    metrics = metrics or make_metrics(runtime, session_factory)
    runtime = replace(runtime, observe_verification=metrics.verification_seconds.observe)
    app.state.shinsei = AppState(runtime=runtime, session_factory=session_factory)
    app.state.inflight = InFlight()  # idempotency keys being stored by this process
    app.state.readiness, app.state.metrics = readiness, metrics
    if role in ("api", "all"):
        app.include_router(deliveries_router)
        app.include_router(status_router)
        app.include_router(relay_reports_router)
        app.include_router(crls_router)
    if role in ("ui", "all"):
        app.mount("/staff", create_ui_app(runtime, session_factory))  # the staff UI (職員画面)
    app.add_middleware(ContainErrors)  # inside the counter: a contained failure is counted as a 500
    if role in ("api", "all"):
        _count_deliveries(app, metrics)

    @app.exception_handler(IntakeError)
    async def _intake_error(_request: Request, exc: IntakeError) -> JSONResponse:
        return error_response(http_status(exc), exc.code, str(exc), retry_after=getattr(exc, "retry_after", None))

    _health_routes(app, runtime, readiness, metrics, open_metrics=False)
    return app


def create_ops_app(runtime: Runtime, readiness: ReadinessMonitor, metrics: IntakeMetrics) -> FastAPI:
    """The operations listener (bound to loopback only by ``serve --ops-port``): ``/healthz``,
    ``/readyz`` and ``/metrics`` for the local health check and a local scraper. Metrics still need
    the token when one is configured."""
    app = FastAPI(title="Shinsei intake (operations)", version="1", docs_url=None, redoc_url=None,
                  openapi_url=None)
    has_token = runtime.settings.metrics_token is not None
    _health_routes(app, runtime, readiness, metrics, open_metrics=not has_token)
    return app


def _count_deliveries(app: FastAPI, metrics: IntakeMetrics) -> None:
    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method != "POST" or request.url.path != "/api/v1/deliveries":
            return await call_next(request)
        started = time.perf_counter()
        response = await call_next(request)
        metrics.deliveries.labels(outcome_of(response.status_code)).inc()
        metrics.delivery_seconds.observe(time.perf_counter() - started)
        return response
