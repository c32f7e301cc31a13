"""The HTTP surface: thin handlers over the catalogue, the token store and the status store."""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import AwareDatetime

from portal_sim.api.catalogue import ApplicationRecordLike
from portal_sim.api.cursor import MAX_CURSOR_LENGTH
from portal_sim.api.deps import CurrentSession, PortalDep, ReceiptNumber, inject_faults
from portal_sim.api.errors import PackageUnavailable
from portal_sim.api.schemas import (
    ApplicationDetail,
    ApplicationPage,
    ApplicationSummary,
    ErrorBody,
    LoginRequest,
    StatusChangeOut,
    StatusEntryOut,
    StatusHistory,
    StatusPage,
    StatusUpdate,
    TokenResponse,
)
from portal_sim.api.settings import MAX_PAGE_SIZE
from portal_sim.api.statuses import StatusEntry

__all__ = ["api", "health"]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


api = APIRouter(prefix="/api/v1", dependencies=[Depends(inject_faults)])
health = APIRouter()


Since = Annotated[AwareDatetime | None, Query(description="only items at or after this time (ISO 8601 with offset)")]
Cursor = Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH, description="next_cursor of a previous page")]
Limit = Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE, description="page size, 1-100")]


@api.post("/login", response_model=TokenResponse, tags=["auth"], responses=_errors(401, 422, 503))
def login(body: LoginRequest, portal: PortalDep) -> TokenResponse:
    """Exchange the municipality code and API key for a bearer token."""
    issued = portal.tokens.login(body.municipality_code, body.api_key.get_secret_value())
    return TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in)


def _summary(record: ApplicationRecordLike) -> ApplicationSummary:
    return ApplicationSummary(
        receipt_number=record.receipt_number, arrived_at=record.arrived_at, procedure_id=record.procedure_id,
        procedure_name=record.procedure_name, kind=record.kind, first_receipt_number=record.first_receipt_number,
        sha256=record.sha256, size=record.size,
    )


@api.get("/applications", response_model=ApplicationPage, tags=["applications"],
         responses=_errors(400, 401, 422, 429, 503))
def list_applications(
    session: CurrentSession, portal: PortalDep, since: Since = None, cursor: Cursor = None, limit: Limit = None,
) -> ApplicationPage:
    """Applications that have arrived, oldest first (by 到達日時, then 受付番号). No personal data."""
    page = portal.catalogue.page(since=since, cursor=cursor, limit=limit or portal.settings.default_page_size)
    return ApplicationPage(items=[_summary(r) for r in page.items], next_cursor=page.next_cursor,
                           has_more=page.has_more)


@api.get("/applications/{receipt_number}", response_model=ApplicationDetail, tags=["applications"],
         responses=_errors(400, 401, 404, 429, 503))
def get_application(session: CurrentSession, portal: PortalDep, number: ReceiptNumber) -> ApplicationDetail:
    """One application's metadata and current status."""
    record = portal.catalogue.get(number)
    current = portal.statuses.history(record)[-1]
    return ApplicationDetail(**_summary(record).model_dump(), status=current.status, status_at=current.at)


@api.get("/applications/{receipt_number}/package", tags=["applications"],
         responses={200: {"content": {"application/zip": {}}, "description": "the package (ZIP)"},
                    **_errors(400, 401, 404, 429, 503)})
def get_package(session: CurrentSession, portal: PortalDep, number: ReceiptNumber) -> Response:
    """The package exactly as the portal holds it, with its SHA-256 in ``Repr-Digest`` (RFC 9530)."""
    record = portal.catalogue.get(number)
    data = portal.catalogue.package(number)
    digest = hashlib.sha256(data)
    if digest.hexdigest() != record.sha256.lower() or len(data) != record.size:
        raise PackageUnavailable("the package is damaged on the portal side")
    b64 = base64.b64encode(digest.digest()).decode("ascii")
    return Response(content=data, media_type="application/zip", headers={
        "Repr-Digest": f"sha-256=:{b64}:",
        "Digest": f"SHA-256={b64}",  # RFC 3230, obsoleted by RFC 9530; older clients still read it
        "ETag": f'"{digest.hexdigest()}"',
        "Content-Disposition": f'attachment; filename="{record.receipt_number}.zip"',
    })


def _entry_out(entry: StatusEntry) -> StatusEntryOut:
    return StatusEntryOut(seq=entry.seq, status=entry.status, at=entry.at, comment=entry.comment)


@api.get("/applications/{receipt_number}/status", response_model=StatusHistory, tags=["status"],
         responses=_errors(400, 401, 404, 429, 503))
def get_status(session: CurrentSession, portal: PortalDep, number: ReceiptNumber) -> StatusHistory:
    """The status history as the resident sees it on the portal: 到達, then every update."""
    record = portal.catalogue.get(number)
    history = portal.statuses.history(record)
    return StatusHistory(receipt_number=record.receipt_number, current=history[-1].status,
                         history=[_entry_out(e) for e in history])


@api.post("/applications/{receipt_number}/status", response_model=StatusEntryOut, status_code=201, tags=["status"],
          responses={200: {"model": StatusEntryOut, "description": "an identical repeat; nothing changed"},
                     **_errors(400, 401, 404, 409, 422, 429, 503)})
def update_status(
    session: CurrentSession, portal: PortalDep, number: ReceiptNumber, body: StatusUpdate, response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=128,
                                                  pattern=r"^[\x21-\x7e]+$")] = None,
) -> StatusEntryOut:
    """Append a status to the history (201), or recognise a repeat (200)."""
    record = portal.catalogue.get(number)
    entry, created = portal.statuses.update(record, body.status, body.comment, idempotency_key)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/applications/{record.receipt_number}/status"
    return _entry_out(entry)


@api.get("/statuses", response_model=StatusPage, tags=["status"], responses=_errors(400, 401, 422, 429, 503))
def list_statuses(
    session: CurrentSession, portal: PortalDep, since: Since = None, cursor: Cursor = None, limit: Limit = None,
) -> StatusPage:
    """Every status update the municipality made, in the order they were made (処理状況一覧)."""
    page = portal.statuses.changes(since=since, cursor=cursor, limit=limit or portal.settings.default_page_size)
    return StatusPage(
        items=[StatusChangeOut(seq=c.entry.seq or 0, receipt_number=c.receipt_number, status=c.entry.status,
                               at=c.entry.at) for c in page.items],
        next_cursor=page.next_cursor, has_more=page.has_more)


@health.get("/healthz", tags=["operations"])
def healthz() -> dict[str, str]:
    """Liveness for orchestration; no authentication, no fault injection."""
    return {"status": "ok"}
