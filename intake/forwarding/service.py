"""The forwarding outbox: one item per (application version, route), delivered at most once there.

Items are queued in the delivery's own transaction (:func:`enqueue_forwarding`), sent by the worker
(:mod:`intake.forwarding.worker`), and put back in the queue by an operator (:func:`retry_failed`).

The staff outbox page (:func:`failed_items`, :func:`retry_item`): ``department_admin`` sees and
retries the FAILED items of its own departments (the procedure of the item's application);
``system_admin`` those of every department (operational data, no personal data is shown: 受付番号,
route, attempts, error code). Other roles are refused. An item out of scope is :class:`NotFound`,
exactly like a missing one. Services never commit; the caller does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.authz import OUTBOX_ROLES, Principal
from intake.errors import IllegalStateChange, NotFound
from intake.events import record_event
from intake.forwarding.routes import Route
from intake.jst import require_aware
from intake.models import Application, ApplicationVersion, ForwardItem, ForwardState
from status import Role

__all__ = [
    "EVENT_ATTEMPT_FAILED",
    "EVENT_DELIVERED",
    "EVENT_FAILED",
    "EVENT_RETRIED",
    "OutboxRow",
    "enqueue_forwarding",
    "error_code",
    "failed_items",
    "retry_failed",
    "retry_item",
]

#: Event kinds (append-only history, no personal data): each step of each item is remembered.
EVENT_DELIVERED = "forwarding.delivered"
EVENT_ATTEMPT_FAILED = "forwarding.attempt_failed"  # a failed attempt with another one scheduled
EVENT_FAILED = "forwarding.failed"  # the item gave up (max attempts, or refused) and waits for an operator
EVENT_RETRIED = "forwarding.retried"  # an operator put a FAILED item back in the queue


def enqueue_forwarding(
    session: Session, version: ApplicationVersion, *, at: datetime, routes: Sequence[Route]
) -> list[ForwardItem]:
    """Queue ``version`` for every route serving its procedure (committed with the caller)."""
    items = []
    for route in routes:
        if route.serves(version.application.procedure_id):
            item = ForwardItem(version_id=version.id, route=route.name, next_attempt_at=at,
                               idempotency_key=f"{version.receipt_number}:{route.name}")
            session.add(item)
            items.append(item)
    return items


def error_code(last_error: str | None) -> str | None:
    """The stable code at the start of ``ForwardItem.last_error`` (``"HTTP_503: …"`` → ``"HTTP_503"``)."""
    return None if last_error is None else last_error.split(":", 1)[0]


def retry_failed(session: Session, *, item_id: int | None, at: datetime) -> int:
    """Put FAILED items back in the queue with their attempt counter reset; due at ``at``.

    ``item_id`` names one item (it must exist and be FAILED: :class:`NotFound`,
    :class:`IllegalStateChange`); ``None`` means every FAILED item. Each reset is an event. Returns the
    number of items queued again. The caller commits.
    """
    require_aware(at)
    query = select(ForwardItem).where(ForwardItem.state == ForwardState.FAILED)
    if item_id is not None:
        item = session.get(ForwardItem, item_id, with_for_update=True)
        if item is None:
            raise NotFound(f"no forward item {item_id}")
        if item.state is not ForwardState.FAILED:
            raise IllegalStateChange(f"forward item {item.id}", item.state.value, ForwardState.PENDING.value)
        items: Sequence[ForwardItem] = [item]
    else:
        items = session.scalars(query.order_by(ForwardItem.id).with_for_update()).all()
    for item in items:
        version = session.get(ApplicationVersion, item.version_id)
        record_event(
            session, EVENT_RETRIED, at=at, receipt_number=version.receipt_number if version else None,
            first_receipt_number=version.application.first_receipt_number if version else None,
            procedure_id=version.application.procedure_id if version else None,
            item_id=item.id, route=item.route, previous_attempts=item.attempts,
            previous_error=error_code(item.last_error),
        )
        # last_error stays until the next attempt: it tells staff what went wrong before.
        item.state, item.attempts, item.next_attempt_at = ForwardState.PENDING, 0, at
    session.flush()
    return len(items)


# --- the staff outbox page -----------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxRow:
    id: int
    receipt_number: str
    procedure_name: str
    route: str
    attempts: int
    error_code: str | None
    next_attempt_at: datetime


def _scope(principal: Principal) -> ColumnElement[bool]:
    principal.require(OUTBOX_ROLES, "manage the outbox")
    return true() if Role.SYSTEM_ADMIN in principal.roles else principal.procedure_clause()


def failed_items(session: Session, principal: Principal, *, limit: int = 500) -> list[OutboxRow]:
    """FAILED items in the principal's scope, oldest first."""
    stmt = (select(ForwardItem, ApplicationVersion, Application)
            .join(ApplicationVersion, ForwardItem.version_id == ApplicationVersion.id)
            .join(Application, ApplicationVersion.application_id == Application.id)
            .where(_scope(principal), ForwardItem.state == ForwardState.FAILED)
            .order_by(ForwardItem.id).limit(limit))
    return [OutboxRow(item.id, version.receipt_number, app.procedure_name, item.route, item.attempts,
                      error_code(item.last_error), item.next_attempt_at)
            for item, version, app in session.execute(stmt)]


def retry_item(session: Session, principal: Principal, item_id: int, *, at: datetime) -> None:
    """:func:`intake.forwarding.service.retry_failed` for one item in scope, with an access-log row
    naming who did it (the forwarding event itself has no actor)."""
    scope = _scope(principal)
    found = session.scalar(
        select(ForwardItem.id).join(ApplicationVersion, ForwardItem.version_id == ApplicationVersion.id)
        .join(Application, ApplicationVersion.application_id == Application.id)
        .where(scope, ForwardItem.id == item_id))
    if found is None:
        raise NotFound("no such forward item")
    retry_failed(session, item_id=item_id, at=at)
    append_access(session, actor=principal.access_actor(), at=at, action="outbox.retry",
                  subject=f"forward_item:{item_id}")
