"""The relay's HTTP API: the push channel (``POST /api/v1/packages``) and the operations endpoints.

The push body is the raw ZIP (``application/zip``), read chunk by chunk into one ``bytearray`` with
the size cap — never multipart, which Starlette spools to disk above 1 MiB. The answer is the
intake's own receipt (201, or 200 for a repeat), a refusal with its reason code (413 / 415 / 422),
or 503 with ``Retry-After`` when the intake or the scanner cannot take it now, the relay is at its
concurrency limit, or it is shutting down. A client may send the same bytes again after any answer
but 201/200; the intake's idempotency keeps one copy.

``create_app(relay, background=True)`` (what ``serve`` uses) also runs the pull loop and the status
relay in threads and, on shutdown, stops them cleanly: a package not yet forwarded is abandoned
(not acknowledged anywhere), one being forwarded ends with the intake's answer or as failed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from dmz_relay.logs import event
from dmz_relay.ops import add_ops_routes, monitor_of
from dmz_relay.pipeline import PackageResult, wipe
from dmz_relay.reasons import BUSY, SHUTTING_DOWN, describe_code
from dmz_relay.runtime import Relay
from dmz_relay.tombstones import Channel, Outcome
from signature.report import ReasonCode

__all__ = ["create_app"]

_log = logging.getLogger(__name__)


def _error(status: int, code: str, *, retry_after: int | None = None, **extra: Any) -> JSONResponse:
    en, ja = describe_code(code)
    body: dict[str, Any] = {"error": {"code": code, "message": en, "message_ja": ja, **extra}}
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(body, status_code=status, headers=headers)


def _answer(result: PackageResult, retry_after: int) -> JSONResponse:
    if result.outcome in (Outcome.STORED, Outcome.DUPLICATE) and result.receipt is not None:
        return JSONResponse(result.receipt.to_json(), status_code=201 if result.outcome is Outcome.STORED else 200)
    code = result.reason_code or "INTERNAL_ERROR"
    if result.outcome is Outcome.REFUSED:
        return _error(413 if code == ReasonCode.ZIP_TOO_LARGE.value else 422, code, sha256=result.sha256)
    if result.outcome is Outcome.REJECTED:
        status = result.intake_status if result.intake_status and 400 <= result.intake_status < 500 else 422
        return _error(status, code, sha256=result.sha256, refused_by="intake")
    return _error(503, code, retry_after=retry_after, sha256=result.sha256)


def create_app(relay: Relay, *, background: bool = False) -> FastAPI:
    """The relay's ASGI app over ``relay``; ``background`` runs the pull and status loops."""
    settings = relay.settings

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        threads: list[threading.Thread] = []
        if background:
            if relay.puller is not None:
                threads.append(threading.Thread(target=relay.run_loop, name="relay-pull", daemon=True,
                                                args=(relay.puller.poll_once, settings.poll_interval)))
            if relay.status_relay is not None:
                threads.append(threading.Thread(target=relay.run_loop, name="relay-status", daemon=True,
                                                args=(relay.status_relay.run_once, settings.status_interval)))
            if relay.trust.revocation is not None or relay.crl_fetcher is not None:
                # CRL files re-scanned, and CRL rounds (fetch, install, deliver): dmz_relay/crls.py
                threads.append(threading.Thread(target=relay.crl_loop, name="relay-crls", daemon=True,
                                                kwargs={"fetch": settings.crl_fetch_in_serve}))
            for thread in threads:
                thread.start()
        event("relay.started", detail="background loops" if threads else "push only", count=len(threads))
        monitor_of(relay).start()
        try:
            yield
        finally:
            relay.stop.set()
            for thread in threads:
                await run_in_threadpool(thread.join, settings.shutdown_grace)
            event("relay.stopped", count=len(threads))

    app = FastAPI(title="Shinsei relay (連携サーバ)", version="1", docs_url=None, redoc_url=None,
                  lifespan=lifespan)
    app.state.relay = relay

    @app.post("/api/v1/packages")
    async def push_package(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/zip":
            return _error(415, "UNSUPPORTED_MEDIA_TYPE")
        if relay.stop.is_set():
            return _error(503, SHUTTING_DOWN, retry_after=settings.retry_after)
        if not relay.slots.acquire(blocking=False):
            relay.metrics.push_busy.inc()
            return _error(503, BUSY, retry_after=settings.retry_after)
        try:
            return await _receive(request)
        finally:
            relay.slots.release()

    async def _receive(request: Request) -> Response:
        cap = settings.max_package_bytes
        declared = request.headers.get("content-length")
        if declared is not None and not declared.isdigit():
            return _error(400, "BAD_CONTENT_LENGTH")
        if declared is not None and int(declared) > cap:
            await run_in_threadpool(relay.pipeline.refuse_unread, channel=Channel.PUSH,
                                    reason_code=ReasonCode.ZIP_TOO_LARGE.value)
            return _error(413, ReasonCode.ZIP_TOO_LARGE.value)
        buffer = bytearray()
        try:
            async for chunk in request.stream():
                buffer += chunk
                if len(buffer) > cap:
                    wipe(buffer)
                    await run_in_threadpool(relay.pipeline.refuse_unread, channel=Channel.PUSH,
                                            reason_code=ReasonCode.ZIP_TOO_LARGE.value)
                    return _error(413, ReasonCode.ZIP_TOO_LARGE.value)
        except ClientDisconnect:
            wipe(buffer)
            event("push.disconnected", channel="push", detail="client went away during the upload")
            return Response(status_code=400)
        if declared is not None and int(declared) != len(buffer):
            wipe(buffer)
            return _error(400, "TRUNCATED_BODY")
        result = await run_in_threadpool(relay.pipeline.process, buffer, channel=Channel.PUSH)
        return _answer(result, settings.retry_after)

    # /healthz, /readyz (cached, scheduled checks) and /metrics (bearer token only): dmz_relay/ops.py.
    add_ops_routes(app, relay, open_metrics=False)

    return app
