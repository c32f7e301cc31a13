"""PUT /api/v1/crls/{name} — the relay hands over a CRL it fetched (mutual TLS, like deliveries).

Thin: authenticate, read the body (media type, size cap), call :meth:`CrlInbox.install`, answer
with its receipt. The contract is :mod:`handover.crls`.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from handover import CRL_MEDIA_TYPE, CRL_NAME_PATTERN
from intake.crls.errors import CrlRefused
from intake.crls.service import inbox_of
from intake.crls.watcher import watcher_of
from intake.web import CurrentRuntime, Relay

__all__ = ["router"]

router = APIRouter()
_NAME = re.compile(CRL_NAME_PATTERN)


@router.put("/api/v1/crls/{name}")
async def put_crl(name: str, request: Request, _relay: Relay, runtime: CurrentRuntime) -> JSONResponse:
    if not _NAME.fullmatch(name):
        raise CrlRefused(400, "BAD_CRL_NAME", "a CRL name is 1-64 of a-z 0-9 . _ - (a letter or digit first)")
    inbox = inbox_of(runtime)
    if inbox is None:
        raise CrlRefused(404, "CRL_INBOX_NOT_CONFIGURED", "this intake has no crl_inbox: it takes no CRLs")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != CRL_MEDIA_TYPE:
        raise CrlRefused(415, "UNSUPPORTED_MEDIA_TYPE", f"the body must be {CRL_MEDIA_TYPE}")
    body = await _read(request, runtime.settings.crl_max_bytes)
    receipt = await run_in_threadpool(inbox.install, name, body, at=runtime.clock())
    watcher_of(runtime).poke()  # this process's watcher notices the change at once
    return JSONResponse(receipt.model_dump(mode="json"))


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise CrlRefused(413, "BODY_TOO_LARGE", f"the body is larger than {limit} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise CrlRefused(413, "BODY_TOO_LARGE", f"the body is larger than {limit} bytes")
    except ClientDisconnect:
        raise CrlRefused(400, "TRUNCATED_BODY", "the client went away during the upload") from None
    if declared is not None and int(declared) != len(body):
        raise CrlRefused(400, "TRUNCATED_BODY", "the body is shorter than its Content-Length")
    if not body:
        raise CrlRefused(400, "EMPTY_BODY", "the body is empty")
    return bytes(body)
