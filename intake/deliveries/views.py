"""POST /api/v1/deliveries — the relay's only way in. Thin: reading, limits and answers; the
work is :func:`intake.deliveries.service.store_delivery`."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from intake.deliveries.service import Receipt, find_delivery, receipt_for, store_delivery
from intake.errors import InvalidRequest
from intake.web import AppState, error_response

__all__ = ["router"]

router = APIRouter()
_log = logging.getLogger(__name__)
_KEY = re.compile(r"sha256:[0-9a-f]{64}")
_MAX_REPORT_HEADER = 8192


@router.post("/api/v1/deliveries", status_code=201)
async def post_delivery(request: Request) -> JSONResponse:
    state: AppState = request.app.state.shinsei
    client_id = state.authenticate_relay(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/zip":
        return error_response(415, "UNSUPPORTED_MEDIA_TYPE", "the body must be application/zip")
    key = request.headers.get("idempotency-key", "")
    if not _KEY.fullmatch(key):
        return error_response(400, "BAD_IDEMPOTENCY_KEY", "Idempotency-Key must be sha256:<64 hex>")
    try:
        relay_report = _relay_report(request.headers.get("x-relay-report"))
    except InvalidRequest as exc:
        return error_response(400, exc.code, str(exc))
    limit = state.runtime.settings.max_package_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return error_response(413, "BODY_TOO_LARGE", f"the body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return error_response(413, "BODY_TOO_LARGE", f"the body is larger than {limit} bytes")
    if declared is not None and int(declared) != len(body):
        return error_response(400, "TRUNCATED_BODY", "the body is shorter than its Content-Length")
    if not body:
        return error_response(400, "EMPTY_BODY", "the body is empty")
    with state.inflight.claim(key) as owned:
        if not owned:
            return error_response(409, "IN_FLIGHT", "the same delivery is being stored", retry_after=1)
        try:
            receipt, created = await run_in_threadpool(_store, state, bytes(body), key, client_id, relay_report)
        except InvalidRequest as exc:
            return error_response(422, exc.code, str(exc))
    _log.info("delivery %s receipt=%s duplicate=%s", receipt.delivery_id, receipt.receipt_number, not created)
    return JSONResponse(receipt.to_json(), status_code=201 if created else 200)


def _store(state: AppState, body: bytes, key: str, client_id: str,
           relay_report: dict[str, Any] | None) -> tuple[Receipt, bool]:
    with state.session_factory() as session:
        existing = find_delivery(session, key)
        if existing is not None:
            return receipt_for(existing, duplicate=True), False
        try:
            receipt = store_delivery(session, state.runtime, body=body, key=key, client_id=client_id,
                                     relay_report=relay_report)
            session.commit()
            return receipt, True
        except IntegrityError:
            # Another process stored the same key first: answer with its receipt.
            session.rollback()
            existing = find_delivery(session, key)
            if existing is None:
                raise
            return receipt_for(existing, duplicate=True), False


def _relay_report(header: str | None) -> dict[str, Any] | None:
    """The relay's own findings (malware scan, its verification), base64url JSON, no personal data."""
    if header is None:
        return None
    if len(header) > _MAX_REPORT_HEADER:
        raise InvalidRequest("X-Relay-Report is too large", code="BAD_RELAY_REPORT")
    try:
        value = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("X-Relay-Report is not base64url JSON", code="BAD_RELAY_REPORT") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("X-Relay-Report must be a JSON object", code="BAD_RELAY_REPORT")
    return value
