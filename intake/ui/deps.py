"""What every staff UI route depends on: the app's state, the request's unit of work, the terminal
check, the small form, and the live staff session (:data:`Staff`).

Route modules (:mod:`intake.ui.views`, :mod:`intake.ui.admin_views`, :mod:`intake.ui.linkage_views`,
:mod:`intake.ui.audit_views`) stay thin: parse, call a service (which checks roles, scope and logs),
render. The unit of work commits when a handler returns and rolls back when it raises
(:func:`intake.web.unit_of_work`); no handler commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from intake.authz import Principal
from intake.models import StaffSession, StaffUser
from intake.runtime import Runtime
from intake.settings import StaffUISettings
from intake.staff.errors import SessionEnded
from intake.staff.service import principal_for, resume_session
from intake.ui import attempts
from intake.ui.errors import LoginRequired
from intake.ui.forms import Refusals, read_form, submit
from intake.ui.rendering import LABELS, Renderer
from intake.ui.searches import SavedSearches
from intake.ui.security import SESSION_COOKIE, terminal_of
from intake.web import unit_of_work

__all__ = ["DB", "Ctx", "Form", "Staff", "Terminal", "UIState", "ui_state"]


@dataclass
class UIState:
    runtime: Runtime
    session_factory: sessionmaker[Session]
    renderer: Renderer
    #: searches by personal data, kept out of URLs (:mod:`intake.ui.searches`)
    searches: SavedSearches = field(default_factory=SavedSearches)

    @property
    def settings(self) -> StaffUISettings:
        return self.runtime.settings.ui

    def render(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return self.renderer.render(name, status_code, **context)


def ui_state(request: Request) -> UIState:
    state: UIState = request.app.state.ui
    return state


def _db(request: Request) -> Iterator[Session]:
    # A refused attempt (404, 403, CSRF) leaves an access-log row after the rollback (issue 15 §5).
    yield from unit_of_work(ui_state(request).session_factory, refused=attempts.refused_after_rollback)


#: The request's unit of work; every other dependency that writes depends on it, so it is entered first.
DB = Annotated[Session, Depends(_db, scope="function")]


def _terminal(request: Request, session: DB) -> str:
    state = ui_state(request)
    at = state.runtime.clock()
    terminal = terminal_of(request, state.settings, at=at)
    attempts.begin(session, request, terminal=terminal, at=at)
    return terminal


async def _form(request: Request) -> dict[str, str]:
    return await read_form(request, ui_state(request).settings)


Terminal = Annotated[str, Depends(_terminal)]
Form = Annotated[dict[str, str], Depends(_form)]


@dataclass
class Ctx:
    state: UIState
    session: Session
    principal: Principal
    user: StaffUser
    row: StaffSession

    def now(self) -> datetime:
        return self.state.runtime.clock()

    def page(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return self.state.render(name, status_code, me=self.principal, csrf=self.row.csrf_token,
                                 labels=LABELS, **context)

    def submit(self, form: dict[str, str], action: Any, *, refusals: Refusals, refused: Any, done: Any) -> Response:
        """:func:`intake.ui.forms.submit` with this session's CSRF token."""
        return submit(self.session, self.row.csrf_token, form, action, refusals=refusals, refused=refused,
                      done=done)


def _staff(request: Request, session: DB, terminal: Terminal) -> Ctx:
    state = ui_state(request)
    now = state.runtime.clock()
    try:
        row, user = resume_session(session, token=request.cookies.get(SESSION_COOKIE, ""), at=now,
                                   settings=state.settings)
        if row.terminal != terminal:  # a session is bound to the terminal it was opened on
            raise SessionEnded("terminal", session_id=row.id, at=now)
    except SessionEnded as exc:
        raise LoginRequired(exc) from exc
    principal = principal_for(user, terminal=terminal, catalogue=state.runtime.procedures)
    attempts.identify(session, principal.access_actor())
    return Ctx(state, session, principal, user, row)


Staff = Annotated[Ctx, Depends(_staff)]
