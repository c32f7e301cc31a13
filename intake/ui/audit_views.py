"""The auditor's pages: the access log (P13), searched and checked."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from intake.applications import service as apps
from intake.ui.common import Staff, parse_date, parse_int

__all__ = ["router"]

router = APIRouter()


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, ctx: Staff) -> HTMLResponse:
    q = request.query_params
    result = apps.access_log_page(ctx.session, ctx.principal, at=ctx.now(), staff_id=(q.get("staff") or "")[:64],
                                  atena_number=(q.get("atena") or "")[:32], day=parse_date(q.get("day")),
                                  page=parse_int(q.get("page")), page_size=ctx.state.settings.page_size)
    ctx.session.commit()
    return ctx.page("audit.html", result=result, q=q)



