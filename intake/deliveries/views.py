"""POST /api/v1/deliveries — the relay's only way in. Thin: authenticate, read, call, answer.

:func:`read_delivery` reads and checks the request (relay identity, media type, idempotency key,
relay report, body size) and claims its key in this process until the transaction has committed;
:func:`intake.deliveries.service.store_once` does the work in the request's unit of work.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from handover import REPORT_HEADER, RelayReport, ReportRefused
from intake.deliveries.errors import DeliveryRefused
from intake.deliveries.inflight import InFlight
from intake.deliveries.service import DeliveryRequest, store_once
from intake.web import CurrentRuntime, UnitOfWork, app_state, relay_client

__all__ = ["router"]

router = APIRouter()
_log = logging.getLogger(__name__)
_KEY = re.compile(r"sha256:[0-9a-f]{64}")


def _too_large(limit: int) -> DeliveryRefused:
    return DeliveryRefused(413, "BODY_TOO_LARGE", f"the body is larger than {limit} bytes")


async def read_delivery(request: Request) -> AsyncIterator[DeliveryRequest]:
    """The checked request, its key claimed until the response (409 IN_FLIGHT for a twin meanwhile).

    Declared before the unit of work in the route, so it is released after the commit.
    """
    client_id = relay_client(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/zip":
        raise DeliveryRefused(415, "UNSUPPORTED_MEDIA_TYPE", "the body must be application/zip")
    key = request.headers.get("idempotency-key", "")
    if not _KEY.fullmatch(key):
        raise DeliveryRefused(400, "BAD_IDEMPOTENCY_KEY", "Idempotency-Key must be sha256:<64 hex>")
    header = request.headers.get(REPORT_HEADER)
    try:
        relay_report = RelayReport.decode(header) if header is not None else None
    except ReportRefused as exc:
        raise DeliveryRefused(400, ReportRefused.code, str(exc)) from None
    limit = app_state(request).runtime.settings.max_package_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _too_large(limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _too_large(limit)
    except ClientDisconnect:
        # An aborted upload: nothing to answer (the client is gone), nothing stored, no traceback.
        raise DeliveryRefused(400, "TRUNCATED_BODY", "the client went away during the upload") from None
    if declared is not None and int(declared) != len(body):
        raise DeliveryRefused(400, "TRUNCATED_BODY", "the body is shorter than its Content-Length")
    if not body:
        raise DeliveryRefused(400, "EMPTY_BODY", "the body is empty")
    inflight: InFlight = request.app.state.inflight
    with inflight.claim(key) as owned:
        if not owned:
            raise DeliveryRefused(409, "IN_FLIGHT", "the same delivery is being stored", retry_after=1)
        yield DeliveryRequest(body=bytes(body), key=key, client_id=client_id, relay_report=relay_report)


@router.post("/api/v1/deliveries", status_code=201)
async def post_delivery(
    delivery: Annotated[DeliveryRequest, Depends(read_delivery, scope="function")],
    session: UnitOfWork, runtime: CurrentRuntime,
) -> JSONResponse:
    receipt = await run_in_threadpool(store_once, session, runtime, delivery)
    _log.info("delivery %s receipt=%s duplicate=%s", receipt.delivery_id, receipt.receipt_number, receipt.duplicate)
    return JSONResponse(receipt.to_json(), status_code=200 if receipt.duplicate else 201)
