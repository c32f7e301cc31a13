"""Every refused attempt in the staff UI leaves an access-log row (issue 15 §5, P13).

A read of a record that is missing or outside the user's departments (both answer 404), a POST
with a wrong CSRF token, an action the user's role or permissions do not allow: each is written
to the access log with who (the staff id, or ``-`` before login), which terminal, when, and what
was tried (the method and the path — ids only, never a query string), and why (the refusal's
code). The request's own work is rolled back; the row is written after the rollback by the unit of
work (:func:`intake.web.unit_of_work`, ``refused=``) or, for a refusal a page answers itself
(:func:`intake.ui.forms.handle`), in the unit of work that renders that page.

The request is described once, when its terminal is known (:func:`begin`), and its actor is added
once the staff session is (:func:`identify`); both live in the session's ``info`` for this request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from fastapi import Request
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.authz import Actor
from intake.errors import NotFound, PermissionDenied
from intake.staff.errors import StaffAuthError
from status import NotPermitted

__all__ = ["begin", "identify", "record_refusal", "refusal_action", "refused_after_rollback"]

_INFO = "shinsei.attempt"
# ASCII path characters only: ids and fixed words. Anything else (a typed name) is not written.
_SAFE_PATH = re.compile(r"[A-Za-z0-9/_.\-]{1,100}")


@dataclass(frozen=True)
class _Attempt:
    what: str  # "GET /staff/applications/12"
    terminal: str
    at: datetime
    actor: Actor | None = None


def _what(request: Request) -> str:
    path = request.url.path
    if not _SAFE_PATH.fullmatch(path):
        route = request.scope.get("route")
        path = getattr(route, "path_format", None) or "?"
    return f"{request.method} {path}"[:128]


def begin(session: Session, request: Request, *, terminal: str, at: datetime) -> None:
    """Describe this request (on an allowed terminal) for a possible refusal row."""
    session.info[_INFO] = _Attempt(_what(request), terminal, at)


def identify(session: Session, actor: Actor) -> None:
    """The request's staff session is known: refusals are written under its staff id."""
    attempt = session.info.get(_INFO)
    if isinstance(attempt, _Attempt):
        session.info[_INFO] = replace(attempt, actor=actor)


def refusal_action(exc: BaseException) -> str | None:
    """The access-log action of a refusal, or ``None`` for what is not one (a login failure and an
    ended session write their own rows; a bad form or a crash is not an attempt on someone's data)."""
    if isinstance(exc, StaffAuthError):
        return None
    if isinstance(exc, NotFound):
        return "refused.not_found"
    if isinstance(exc, PermissionDenied):
        return "refused.csrf" if exc.code == "CSRF" else "refused.forbidden"
    if isinstance(exc, NotPermitted):
        return "refused.forbidden"
    return None


def record_refusal(session: Session, exc: BaseException) -> None:
    """Append the refusal's row to ``session`` (nothing when the request was never described, i.e.
    its terminal was refused: that has its own row)."""
    action = refusal_action(exc)
    attempt = session.info.get(_INFO)
    if action is None or not isinstance(attempt, _Attempt):
        return
    actor = attempt.actor or Actor(staff_id="-", department="-", terminal=attempt.terminal)
    code = getattr(exc, "code", None) or type(exc).__name__
    append_access(session, actor=actor, at=attempt.at, action=action, subject=attempt.what, reason=str(code)[:64])


def refused_after_rollback(exc: BaseException) -> Callable[[Session], None] | None:
    """For :func:`intake.web.unit_of_work`: what to write after a refused request's rollback."""
    if refusal_action(exc) is None:
        return None
    return lambda session: record_refusal(session, exc)
