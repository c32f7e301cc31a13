"""The staff outbox page: FAILED forwarding items and the operator's retry.

``department_admin`` sees and retries the items of its own departments (the procedure of the item's
application); ``system_admin`` those of every department (operational data, no personal data is
shown: 受付番号, route, attempts, error code). Other roles are refused. An item out of scope is
:class:`NotFound`, exactly like a missing one. Services never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.authz import OUTBOX_ROLES, Principal
from intake.errors import NotFound
from intake.forwarding.service import error_code, retry_failed
from intake.models import Application, ApplicationVersion, ForwardItem, ForwardState
from status import Role

__all__ = ["OutboxRow", "failed_items", "retry_item"]


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
