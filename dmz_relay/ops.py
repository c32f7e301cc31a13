"""The operations endpoints: ``/healthz``, ``/readyz`` (cached) and ``/metrics`` (credentials).

On the push API listener (reachable from LGWAN terminals) ``/metrics`` answers only with
``Authorization: Bearer <metrics_token>``; without a configured token it is not served there at all
(401). The operations listener (:func:`create_ops_app`, bound to 127.0.0.1 by ``serve`` when
``OPS_PORT`` is set) serves the same three endpoints for the local health check and a local scraper.
``/readyz`` answers the last result of :class:`~probes.ReadinessMonitor`, which runs
:meth:`Relay.readiness` every ``READINESS_INTERVAL`` seconds: a request never opens a connection to
the intake, the portal or clamd, nor re-reads a CRL.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from dmz_relay.metrics import CONTENT_TYPE
from dmz_relay.runtime import Relay
from probes import ReadinessMonitor

__all__ = ["add_ops_routes", "create_ops_app", "monitor_of"]

_GOOD = ("ok", "skipped", "disabled")


def monitor_of(relay: Relay) -> ReadinessMonitor:
    """The relay's one readiness schedule (made on first use)."""
    if relay.monitor is None:
        def check() -> tuple[bool, dict[str, Any]]:
            checks = relay.readiness()
            ready = all(v in _GOOD for v in checks.values())
            return ready, {"status": "ready" if ready else "not ready", "checks": checks}

        relay.monitor = ReadinessMonitor(check, interval=relay.settings.readiness_interval, clock=relay.clock)
    return relay.monitor


def _authorised(header: str | None, token: str | None) -> bool:
    if not token or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def add_ops_routes(app: FastAPI, relay: Relay, *, open_metrics: bool) -> None:
    token = relay.settings.metrics_token.get_secret_value() if relay.settings.metrics_token else None
    monitor = monitor_of(relay)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        monitor.start()  # idempotent
        ready, body = monitor.snapshot(wait=15.0)
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        if not (open_metrics or _authorised(request.headers.get("authorization"), token)):
            return JSONResponse({"error": {"code": "METRICS_CREDENTIALS_REQUIRED",
                                           "message": "metrics need Authorization: Bearer <metrics_token>"}},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return Response(relay.metrics.render(), media_type=CONTENT_TYPE)


def create_ops_app(relay: Relay) -> FastAPI:
    """The loopback operations listener; metrics still need the token when one is configured."""
    app = FastAPI(title="Shinsei relay (operations)", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    add_ops_routes(app, relay, open_metrics=relay.settings.metrics_token is None)
    return app
