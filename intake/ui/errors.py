"""Exceptions of the staff UI's request plumbing. The app turns each into a page (intake/ui/app.py);
those that must leave a trace although the request fails carry ``record_after_rollback``, which the
unit of work runs (:func:`intake.web.unit_of_work`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.authz import Actor
from intake.errors import IntakeError, InvalidRequest, PermissionDenied
from intake.staff.errors import SessionEnded

__all__ = ["FormTooLarge", "LoginRequired", "TerminalRefused"]


class LoginRequired(IntakeError):
    """No live session: the browser goes to the login page. A session that ended just now (idle,
    absolute, inactive account, another terminal) stays ended."""

    code = "LOGIN_REQUIRED"

    def __init__(self, ended: SessionEnded) -> None:
        super().__init__("login required")
        self.ended = ended

    def record_after_rollback(self, session: Session) -> None:
        self.ended.record_after_rollback(session)


class TerminalRefused(PermissionDenied):
    """The request does not come from an allowed staff terminal (P12); the refusal is itself
    evidence, so it leaves an access-log row (``terminal.refused``)."""

    code = "TERMINAL_REFUSED"

    def __init__(self, terminal: str, *, at: datetime) -> None:
        super().__init__("terminal not allowed")
        self.terminal = terminal
        self.at = at

    def record_after_rollback(self, session: Session) -> None:
        append_access(session, actor=Actor(staff_id="-", department="-", terminal=self.terminal), at=self.at,
                      action="terminal.refused", subject="staff-ui")


class FormTooLarge(InvalidRequest):
    """A form over ``ui.max_form_bytes``, of another type than url-encoded, or malformed."""

    code = "FORM_TOO_LARGE"
