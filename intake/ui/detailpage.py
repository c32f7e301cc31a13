"""The application's detail page: one renderer for every route that shows it (the page itself, and
each POST on it that is refused and shows it again with the message)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse
from sqlalchemy import select

from handover import COMMENT_MAX_CHARS
from intake.applications import casework
from intake.applications import service as apps
from intake.applications.deadlines import business_days_left
from intake.applications.service import ApplicationDetail
from intake.authz import CHANGE_ROLES
from intake.jst import jst_day
from intake.models import StatusTransitionRow
from intake.statusoutbox.service import notices_for
from intake.ui.deps import Ctx

__all__ = ["render_detail", "transition_rows"]


def render_detail(ctx: Ctx, app_id: int, *, status_code: int = 200, version: int | None = None,
                  compare: int | None = None, error: str | None = None,
                  revealed: dict[tuple[int, int], str] | None = None) -> HTMLResponse:
    detail = apps.application_detail(ctx.session, ctx.principal, app_id, at=ctx.now(), version_id=version,
                                     compare_id=compare)
    return ctx.page("detail.html", status_code, d=detail, error=error, revealed=revealed or {},
                    **_extras(ctx, detail))


def transition_rows(ctx: Ctx, detail: ApplicationDetail) -> list[StatusTransitionRow]:
    """The chain's status changes, oldest first (the page and the print view list them with their notices)."""
    return list(ctx.session.scalars(select(StatusTransitionRow).where(
        StatusTransitionRow.application_id == detail.app.id).order_by(StatusTransitionRow.id)))


def _extras(ctx: Ctx, detail: ApplicationDetail) -> dict[str, Any]:
    """Notes, colleagues for the hand-over, the portal notice of each status change, the due date."""
    rows = transition_rows(ctx, detail)
    notices = notices_for(ctx.session, [r.id for r in rows])
    today = jst_day(ctx.now())
    works = ctx.principal.has_any(CHANGE_ROLES)
    return {
        "notes": casework.notes_of(ctx.session, detail.app.id),
        "colleagues": [u for u in casework.colleagues_for(ctx.session, ctx.principal, detail.app)
                       if u.login != detail.app.assigned_to] if works else [],
        "transition_notices": [notices.get(r.id) for r in rows],
        "days_left": business_days_left(detail.app.due_on, today, ctx.state.runtime.procedures.calendar),
        "comment_max": COMMENT_MAX_CHARS,
        "note_max": casework.NOTE_MAX_CHARS,
    }
