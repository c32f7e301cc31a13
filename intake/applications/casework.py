"""Casework beyond one status change: hand-over to a colleague, internal notes, bulk status changes,
and notes.

* **Hand-over** (:func:`hand_over`): a reviewer or department admin gives a case to an active
  colleague who works cases of the case's department; the colleague then finds it under 自分の担当.
  One access-log row (``application.assign``, 「引継ぎ: a → b」 and the optional message).
* **Internal notes** (:func:`add_note`, 内部メモ): for the department's staff only. They are never
  forwarded to a business system, never put in a status notice, a mail or an export. Writing one
  is logged (``application.note``, without the text: the note itself is the record); reading them
  is part of the logged detail view.
* **Bulk status change** (:func:`bulk_change`): each case goes through the same
  :func:`intake.applications.workflow.change_status` as one by one — scope, roles, the transition
  table, the comment rule, one access-log row and one portal notice each — in its own savepoint, so a
  refused case is reported and the others go on.

What an arrival does to a case's due date (:mod:`intake.applications.deadlines`) and search keys
(:mod:`intake.applications.applicantkeys`) is decided where versions are admitted
(:mod:`intake.applications.admission`).

Services never commit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.applications.errors import BulkTooLarge, NotAColleague, NoteInvalid
from intake.applications.workflow import change_status
from intake.authz import CHANGE_ROLES, Principal, department_of, load_for
from intake.errors import IntakeError
from intake.freetext import check_no_my_number
from intake.models import Application, ApplicationVersion, CaseNote, StaffUser, VersionState
from status import Action, StatusError

__all__ = [
    "BULK_LIMIT",
    "NOTE_MAX_CHARS",
    "BulkItem",
    "BulkResult",
    "add_note",
    "bulk_change",
    "colleagues_for",
    "hand_over",
    "notes_of",
]

NOTE_MAX_CHARS = 2000
#: The list's page size bounds what can be ticked; this bounds one request whatever is sent.
BULK_LIMIT = 100


def colleagues_for(session: Session, principal: Principal, app: Application | None = None) -> list[StaffUser]:
    """Active members who work cases (reviewer, department admin) in the case's department (or, without
    a case, in one of the principal's departments), by login."""
    wanted = {department_of(app.procedure_id, principal.catalogue)} if app is not None else set(principal.departments)
    users = session.scalars(select(StaffUser).where(StaffUser.active.is_(True)).order_by(StaffUser.login))
    roles = {r.value for r in CHANGE_ROLES}
    return [u for u in users if set(u.departments) & wanted and set(u.roles) & roles]


def hand_over(session: Session, principal: Principal, application_id: int, *, to_login: str, message: str,
              at: datetime) -> str:
    """Give the case to ``to_login`` (引継ぎ). Reviewer or department admin of the case's department;
    the colleague must be able to work it (:class:`NotAColleague`). ``message`` (optional) goes to the
    access-log row and, when given, becomes an internal note for the colleague."""
    principal.require(CHANGE_ROLES, "hand over cases")
    app = load_for(session, principal, application_id, lock=True)
    colleague = next((u for u in colleagues_for(session, principal, app) if u.login == to_login), None)
    if colleague is None:
        raise NotAColleague("the case can only go to an active colleague who works its department's cases")
    before = app.assigned_to
    app.assigned_to = colleague.login
    app.updated_at = at
    text = message.strip()
    if text:
        _note(session, principal, app, f"【引継ぎ】{text}", at=at)
    append_access(session, actor=principal.access_actor(), at=at, action="application.assign",
                  subject=f"application:{app.id}", reason=f"引継ぎ: {before or '-'} → {colleague.login}",
                  atena_number=app.atena_number)
    return colleague.login


def add_note(session: Session, principal: Principal, application_id: int, *, body: str, at: datetime) -> CaseNote:
    """An internal note on the case (reviewer, department admin; the case's department)."""
    principal.require(CHANGE_ROLES, "write internal notes")
    app = load_for(session, principal, application_id)
    return _note(session, principal, app, body, at=at)


def _note(session: Session, principal: Principal, app: Application, body: str, *, at: datetime) -> CaseNote:
    text = check_no_my_number(body.strip())
    if not text or len(text) > NOTE_MAX_CHARS:
        raise NoteInvalid(NOTE_MAX_CHARS)
    note = CaseNote(application_id=app.id, at=at, author=principal.login, body=text)
    session.add(note)
    session.flush()
    append_access(session, actor=principal.access_actor(), at=at, action="application.note",
                  subject=f"application:{app.id}:note:{note.id}", atena_number=app.atena_number)
    return note


def notes_of(session: Session, application_id: int) -> list[CaseNote]:
    """The case's notes, oldest first (the caller has loaded the case in scope and logged the view)."""
    return list(session.scalars(select(CaseNote).where(CaseNote.application_id == application_id)
                                .order_by(CaseNote.id)))


@dataclass(frozen=True)
class BulkItem:
    application_id: int
    receipt_number: str | None  # None: not found in the principal's scope
    ok: bool
    #: why it was refused: the error's stable code (e.g. ``ILLEGAL_TRANSITION``, ``NOT_FOUND``)
    code: str | None = None


@dataclass(frozen=True)
class BulkResult:
    action: Action
    items: tuple[BulkItem, ...]

    @property
    def done(self) -> int:
        return sum(1 for i in self.items if i.ok)

    @property
    def refused(self) -> tuple[BulkItem, ...]:
        return tuple(i for i in self.items if not i.ok)


def bulk_change(session: Session, principal: Principal, application_ids: Sequence[int], *, action: Action,
                comment: str, at: datetime) -> BulkResult:
    """Apply ``action`` to each case as if one by one (see the module docstring)."""
    principal.require(CHANGE_ROLES, "change statuses")
    check_no_my_number(comment)  # once, before any case: it would fail every one
    ids = list(dict.fromkeys(application_ids))  # each case once, in the order ticked
    if len(ids) > BULK_LIMIT:
        raise BulkTooLarge(BULK_LIMIT)
    items: list[BulkItem] = []
    for app_id in ids:
        savepoint = session.begin_nested()
        try:
            change_status(session, application_id=app_id, action=action, actor=principal, comment=comment, at=at)
        except (StatusError, IntakeError) as exc:
            savepoint.rollback()
            items.append(BulkItem(app_id, _receipt(session, principal, app_id), False, _code(exc)))
            continue
        savepoint.commit()
        items.append(BulkItem(app_id, _receipt(session, principal, app_id), True))
    return BulkResult(action, tuple(items))


def _receipt(session: Session, principal: Principal, app_id: int) -> str | None:
    app = session.get(Application, app_id)
    if app is None or not principal.covers(app.procedure_id):
        return None
    number = session.scalar(select(ApplicationVersion.receipt_number).where(
        ApplicationVersion.application_id == app.id, ApplicationVersion.state == VersionState.CURRENT))
    return number or app.first_receipt_number


def _code(exc: Exception) -> str:
    """A stable code: the error's own, else its class name in upper snake case (``ILLEGAL_TRANSITION``)."""
    code = getattr(exc, "code", None)
    return str(code) if code else re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).upper()
