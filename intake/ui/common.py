"""What every staff UI route shares: the database session, the terminal check, the live staff
session (:data:`Staff`), the CSRF check, the small form reader and query-parameter parsing.

Route modules (:mod:`intake.ui.views`, :mod:`intake.ui.admin_views`, :mod:`intake.ui.linkage_views`,
:mod:`intake.ui.audit_views`) stay thin: parse, call a service (which checks roles, scope and logs),
render.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from intake.authz import Principal
from intake.errors import IntakeError, PermissionDenied
from intake.models import LinkageState, StaffSession, StaffUser
from intake.staff.errors import SessionEnded
from intake.staff.service import principal_for, resume_session
from intake.ui.web import COOKIE_PATH, SESSION_COOKIE, UIState, is_secure, read_form, terminal_of
from status import Action

__all__ = [
    "DB",
    "LABELS",
    "LINKAGE_LABELS",
    "Ctx",
    "Form",
    "LoginRequired",
    "Staff",
    "Terminal",
    "check_csrf",
    "parse_date",
    "parse_enum",
    "parse_int",
    "set_cookie",
    "ui_state",
]

ACTION_LABELS = {
    Action.ACCEPT: "受付する", Action.START_REVIEW: "審査を開始する", Action.REQUEST_CORRECTION: "補正を依頼する",
    Action.NEW_VERSION: "新しい版の到着", Action.COMPLETE: "完了にする", Action.REJECT: "却下する",
    Action.WITHDRAW: "取下げを記録する",
}
LINKAGE_LABELS = {LinkageState.UNRESOLVED: "未設定", LinkageState.AUTO: "自動", LinkageState.MANUAL: "手動",
                  LinkageState.CONFLICT: "競合"}
INDICATION_LABELS = {"PASSED": "有効", "FAILED": "無効", "INDETERMINATE": "判定不能"}


class LoginRequired(IntakeError):
    """No live session: the handler sends the browser to the login page."""

    code = "LOGIN_REQUIRED"


def ui_state(request: Request) -> UIState:
    state: UIState = request.app.state.ui
    return state


def _db(request: Request) -> Iterator[Session]:
    with ui_state(request).session_factory() as session:
        yield session


def _terminal(request: Request) -> str:
    return terminal_of(request, ui_state(request).settings)


async def _form(request: Request) -> dict[str, str]:
    return await read_form(request, ui_state(request).settings)


DB = Annotated[Session, Depends(_db)]
Terminal = Annotated[str, Depends(_terminal)]
Form = Annotated[dict[str, str], Depends(_form)]


@dataclass
class Ctx:
    state: UIState
    session: Session
    principal: Principal
    user: StaffUser
    row: StaffSession

    def now(self) -> Any:
        return self.state.runtime.clock()

    def page(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return self.state.render(name, status_code, me=self.principal, csrf=self.row.csrf_token,
                                 labels=LABELS, **context)


def _staff(request: Request, session: DB, terminal: Terminal) -> Ctx:
    state = ui_state(request)
    now = state.runtime.clock()
    try:
        row, user = resume_session(session, token=request.cookies.get(SESSION_COOKIE, ""), at=now,
                                   settings=state.settings)
        if row.terminal != terminal:  # a session is bound to the terminal it was opened on
            row.ended_at, row.end_reason = now, "terminal"
            raise SessionEnded("terminal")
    except SessionEnded as exc:
        session.commit()
        raise LoginRequired("login required") from exc
    session.commit()
    return Ctx(state, session, principal_for(user, terminal=terminal, catalogue=state.runtime.procedures),
               user, row)


Staff = Annotated[Ctx, Depends(_staff)]

LABELS = {"action": ACTION_LABELS, "linkage": LINKAGE_LABELS, "indication": INDICATION_LABELS}


def check_csrf(ctx: Ctx, form: dict[str, str]) -> None:
    if not hmac.compare_digest(form.get("csrf", ""), ctx.row.csrf_token):
        raise PermissionDenied("CSRF token mismatch", code="CSRF")


def set_cookie(response: Response, request: Request, name: str, value: str, state: UIState) -> None:
    response.set_cookie(name, value, path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=is_secure(request, state.settings))


def parse_date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def parse_enum(cls: Any, value: str | None) -> Any:
    try:
        return cls(value) if value else None
    except ValueError:
        return None


def parse_int(value: str | None, default: int = 1) -> int:
    return int(value) if value and value.isdigit() and len(value) < 9 else default
