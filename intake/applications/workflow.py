"""The status workflow (:mod:`status`) made persistent (P8).

Every change is one :class:`~intake.models.StatusTransitionRow`, keeps ``Application.status`` and
``Application.needs_review`` in line with the pure :class:`status.StatusHistory`, queues a
:class:`~intake.models.StatusNotice` for the portal (the chain's current 受付番号, the status, the
time; no personal data) and records an event. Staff changes also write an access-log row.

Staff changes go through :func:`change_status` (roles, the pure rules and department scope); the
system's own changes on arrival (a 再申請/補正 during 審査中 or 補正依頼 → ``NEW_VERSION``, a 取下げ →
``WITHDRAW``) are decided by :func:`intake.applications.arrivals.add_version` and applied with
:func:`system_action`. Services never commit.

Errors: :class:`intake.errors.NotFound` for an application outside the actor's departments (the
same answer as for one that does not exist), :class:`status.StatusError` subclasses
(``IllegalTransition``, ``NotPermitted``, ``CommentRequired``) for refused changes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from handover import COMMENT_MAX_CHARS
from intake.accesslog.service import append_access
from intake.applications.deadlines import on_status_change
from intake.applications.errors import CommentTooLong
from intake.authz import Principal, load_for
from intake.errors import InvalidRequest
from intake.events import write_event
from intake.freetext import check_no_my_number
from intake.jst import require_aware
from intake.models import (
    Application,
    ApplicationState,
    ApplicationVersion,
    StatusTransitionRow,
    VersionState,
)
from intake.statusoutbox.service import enqueue_status
from intake.workdays import WardCalendar
from status import Action, NotPermitted, Role, Status, StatusHistory, Transition
from status import Actor as StatusActor

__all__ = [
    "EVENT_STATUS_CHANGED",
    "SYSTEM_ACTOR",
    "change_status",
    "current_receipt_number",
    "history_of",
    "mark_reviewed",
    "system_action",
]

EVENT_STATUS_CHANGED = "status.changed"
SYSTEM_ACTOR = StatusActor(id="system", roles=frozenset({Role.SYSTEM}))


def history_of(session: Session, app: Application) -> StatusHistory:
    rows = session.scalars(select(StatusTransitionRow).where(StatusTransitionRow.application_id == app.id)
                           .order_by(StatusTransitionRow.id)).all()
    steps = tuple(Transition(Status(r.source), Status(r.target), Action(r.action), r.actor_id, r.at, r.comment)
                  for r in rows)
    return StatusHistory(app.created_at, steps, app.needs_review)


def current_receipt_number(session: Session, app: Application) -> str:
    number = session.scalar(select(ApplicationVersion.receipt_number).where(
        ApplicationVersion.application_id == app.id, ApplicationVersion.state == VersionState.CURRENT))
    return number or app.first_receipt_number


def _apply(session: Session, app: Application, action: Action, *, actor: StatusActor, comment: str,
           at: datetime, calendar: WardCalendar | None = None) -> StatusTransitionRow:
    history = history_of(session, app)
    if history.current.value != app.status:  # pragma: no cover - only if someone edited the table by hand
        raise InvalidRequest("status out of step with its history", code="STATUS_OUT_OF_STEP")
    after = history.apply(action, actor=actor, at=at, comment=comment)
    step = after.transitions[-1]
    receipt = current_receipt_number(session, app)
    row = StatusTransitionRow(application_id=app.id, at=at, action=step.action.value, source=step.source.value,
                              target=step.target.value, actor_id=actor.id, comment=step.comment,
                              receipt_number=receipt)
    session.add(row)
    session.flush()
    app.status, app.needs_review, app.updated_at = step.target.value, after.needs_review, at
    if step.target is Status.WITHDRAWN:
        app.state = ApplicationState.WITHDRAWN
    # Staff write the comment for the resident (the form says so); the system's own notes on an
    # arrival ("<受付番号> 補正") are for staff and stay here.
    enqueue_status(session, receipt_number=receipt, status=step.target.value, at=at, transition_id=row.id,
                   comment=None if actor is SYSTEM_ACTOR else step.comment)
    on_status_change(session, app, source=step.source, target=step.target, at=at, calendar=calendar)
    write_event(session, EVENT_STATUS_CHANGED, at=at, receipt_number=receipt,
                first_receipt_number=app.first_receipt_number, procedure_id=app.procedure_id,
                action=step.action.value, source=step.source.value, target=step.target.value,
                by="system" if actor is SYSTEM_ACTOR else "staff")
    session.flush()
    return row


def change_status(
    session: Session, *, application_id: int, action: Action, actor: Principal, comment: str, at: datetime,
) -> StatusTransitionRow:
    """A member of staff changes a chain's status (ステータスの更新機能, P8). ``comment`` goes to the
    resident with the portal notice: at most :data:`handover.COMMENT_MAX_CHARS` characters."""
    require_aware(at)
    if len(comment.strip()) > COMMENT_MAX_CHARS:
        raise CommentTooLong(COMMENT_MAX_CHARS)
    check_no_my_number(comment)  # it goes to the resident through the portal, and to the access log
    app = load_for(session, actor, application_id, lock=True)
    row = _apply(session, app, action, actor=actor.status_actor(), comment=comment, at=at,
                 calendar=actor.catalogue.calendar)
    if action is Action.START_REVIEW and app.assigned_to is None:
        app.assigned_to = actor.login  # who starts the review works the case, until handed over
    append_access(session, actor=actor.access_actor(), at=at, action=f"status.{action.value}",
                  subject=f"application:{app.id}", reason=row.comment or None, atena_number=app.atena_number)
    return row


def mark_reviewed(session: Session, *, application_id: int, actor: Principal, at: datetime) -> None:
    """The reviewer has looked at the newest version: the chain leaves the review queue."""
    require_aware(at)
    if not actor.has_any(frozenset({Role.REVIEWER, Role.DEPARTMENT_ADMIN})):
        raise NotPermitted(Action.START_REVIEW, actor.roles)
    app = load_for(session, actor, application_id, lock=True)
    app.needs_review = False
    append_access(session, actor=actor.access_actor(), at=at, action="application.reviewed",
                  subject=f"application:{app.id}", atena_number=app.atena_number)


def system_action(session: Session, app: Application, action: Action, *, comment: str, at: datetime
                  ) -> StatusTransitionRow:
    """A change the system makes on its own (an arrival), with the portal notice and the event."""
    return _apply(session, app, action, actor=SYSTEM_ACTOR, comment=comment, at=at)
