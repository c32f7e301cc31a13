"""Four eyes for privileged account changes (issue 15 §3): the requests and their life.

A change that would let an account reach My Numbers, or act as another person, takes effect only
when a **second** system administrator approves it:

* granting the My Number reveal permission (``grant_reveal``);
* granting the ``system_admin`` role (``grant_admin``: an administrator could otherwise make
  themselves a second administrator and approve their own requests);
* binding an IC-card certificate to an account (``bind_ic_card``: the card logs in without TOTP);
* setting another member's password (``set_password``) and re-issuing another's TOTP secret
  (``reset_totp``).

A request is filed by :mod:`intake.staff.admin` (or ``python -m intake staff add``) and expires
after ``ui.approval_hours``; :func:`intake.staff.admin.approve_request` applies it and
:func:`intake.staff.admin.deny_request` closes it — each by another administrator than the one who
asked, never for their own account, each with a 処理事由 and an access-log row. Removing a
privilege (reveal, role, card) is never held back.

A leaf of the staff package: models and the access log only. Services never commit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.authz import Actor
from intake.models import StaffChangeRequest, StaffUser

__all__ = ["KIND_LABELS", "PENDING", "ChangeKind", "Filed", "RequestRow", "file_request", "request_rows"]

PENDING = "pending"


class ChangeKind(enum.StrEnum):
    GRANT_REVEAL = "grant_reveal"
    GRANT_ADMIN = "grant_admin"
    BIND_IC_CARD = "bind_ic_card"
    SET_PASSWORD = "set_password"  # noqa: S105 - the name of a kind of request, not a password
    RESET_TOTP = "reset_totp"


KIND_LABELS = {
    ChangeKind.GRANT_REVEAL: "個人番号の表示権限の付与",
    ChangeKind.GRANT_ADMIN: "システム管理者の役割の付与",
    ChangeKind.BIND_IC_CARD: "ICカード証明書の登録",
    ChangeKind.SET_PASSWORD: "パスワードの設定",
    ChangeKind.RESET_TOTP: "二要素認証（TOTP）の再発行",
}


@dataclass(frozen=True)
class Filed:
    """A request was filed: nothing changed yet."""

    request_id: int
    kind: ChangeKind


def file_request(
    session: Session, actor: Actor, user: StaffUser, kind: ChangeKind, *, reason: str, at: datetime,
    ttl: timedelta, payload: dict[str, Any] | None = None,
) -> Filed:
    """File ``kind`` for ``user`` on behalf of ``actor`` (already checked to be an administrator, or
    the command line) and log it: ``admin.request.<kind>``."""
    request = StaffChangeRequest(kind=kind.value, target_user_id=user.id, requested_by=actor.staff_id,
                                 requested_at=at, expires_at=at + ttl, reason=reason, payload=payload or {},
                                 state=PENDING)
    session.add(request)
    session.flush()
    append_access(session, actor=actor, at=at, action=f"admin.request.{kind.value}", subject=f"staff_user:{user.id}",
                  reason=f"{reason} [request={request.id}; expires={request.expires_at.isoformat()}]")
    return Filed(request.id, kind)


@dataclass(frozen=True)
class RequestRow:
    """A request as the pages show it (never its payload)."""

    id: int
    kind: ChangeKind
    label: str
    target_id: int
    target_login: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    reason: str
    state: str  # pending | approved | denied | expired
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    #: the viewer asked for it (or it is about the viewer's own account): someone else decides
    mine: bool
    own_account: bool

    @property
    def open(self) -> bool:
        return self.state == PENDING


def request_rows(session: Session, *, viewer: str, at: datetime, user_id: int | None = None,
                 limit: int = 200) -> list[RequestRow]:
    """Requests newest first (of one account with ``user_id``); ``expired``: pending past its time."""
    stmt = (select(StaffChangeRequest, StaffUser.login)
            .join(StaffUser, StaffUser.id == StaffChangeRequest.target_user_id)
            .order_by(StaffChangeRequest.id.desc()).limit(limit))
    if user_id is not None:
        stmt = stmt.where(StaffChangeRequest.target_user_id == user_id)
    rows = []
    for r, login in session.execute(stmt):
        kind = ChangeKind(r.kind)
        state = "expired" if r.state == PENDING and at >= r.expires_at else r.state
        rows.append(RequestRow(r.id, kind, KIND_LABELS[kind], r.target_user_id, login, r.requested_by,
                               r.requested_at, r.expires_at, r.reason, state, r.decided_by, r.decided_at,
                               r.decision_reason, r.requested_by == viewer, login == viewer))
    return rows
