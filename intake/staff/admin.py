"""Staff-account administration, for ``system_admin`` only (the read-only configuration overview is
:mod:`intake.staff.overview`).

Why a service of its own: every check (the role, the 処理事由, the guards that keep the ward from
locking itself out of administration, the four eyes) must hold whatever calls it, so none of it lives
in a view or a template. Every change writes exactly one access-log row (P13) whose reason is the
admin's 処理事由 plus what changed — never a password, a TOTP secret, a hash or a certificate
fingerprint.

**Four eyes** (issue 15 §3, :mod:`intake.staff.requests`): granting the reveal permission or the
system_admin role, binding an IC-card certificate, and setting another's password or TOTP are filed
as requests; they take effect when another administrator approves (:func:`approve_request`). Who
knows an account's factors is tracked (``password_set_by``, ``totp_set_by``) so that no single
administrator ever holds both the password and the TOTP secret of another's account: a new TOTP
secret made by an approval is shown to the approver, and an approval that would give one person both
factors is refused.

Services never commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.authz import (
    ADMIN_ROLES,
    ALL,
    ROLE_ORDER,
    STAFF_ROLES,
    UNASSIGNED,
    Actor,
    Principal,
)
from intake.crypto import Sealer
from intake.errors import InvalidRequest, NotFound, ReasonRequired
from intake.models import StaffChangeRequest, StaffSession, StaffUser
from intake.procedures import ProcedureCatalogue
from intake.sealing import seal_totp
from intake.staff.errors import (
    AccountStateConflict,
    AdminGuard,
    FingerprintTaken,
    FourEyesRefused,
    InvalidDepartments,
    InvalidDisplayName,
    InvalidFingerprint,
    InvalidLoginId,
    InvalidRoles,
    LoginTaken,
    NoChange,
    PasswordMismatch,
    RequestDecided,
    RequestExpired,
    WeakPassword,
)
from intake.staff.requests import PENDING, ChangeKind, Filed, RequestRow, file_request, request_rows

# Same package: one password hasher and one AAD format for sealed TOTP secrets, shared with the login.
from intake.staff.service import _fingerprint, _hasher, create_user
from status import Role

__all__ = [
    "APPROVAL_TTL",
    "LOGIN_ID",
    "MIN_PASSWORD_LENGTH",
    "Approved",
    "CommandLineAccount",
    "CreatedAccount",
    "TotpSecret",
    "Updated",
    "UserRow",
    "approve_request",
    "change_requests",
    "create_account",
    "create_from_command_line",
    "deactivate",
    "deny_request",
    "get_user",
    "known_departments",
    "list_users",
    "reactivate",
    "require_admin",
    "reset_totp",
    "roles_of",
    "set_password",
    "unlock",
    "update_account",
]

LOGIN_ID = re.compile(r"[a-z0-9._-]{3,64}")
MIN_PASSWORD_LENGTH = 12
_MAX_DISPLAY_NAME = 128
#: How long a change request waits for its second administrator (``ui.approval_hours`` in the UI).
APPROVAL_TTL = timedelta(hours=24)

def require_admin(principal: Principal) -> None:
    principal.require(ADMIN_ROLES, "manage staff accounts")


# --- reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserRow:
    id: int
    login: str
    display_name: str
    roles: tuple[Role, ...]
    departments: tuple[str, ...]
    may_reveal_my_number: bool
    active: bool
    locked_until: datetime | None
    locked: bool
    password_totp: bool
    ic_card: bool
    client_cert_sha256: str | None
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return Role.SYSTEM_ADMIN in self.roles


def roles_of(user: StaffUser) -> tuple[Role, ...]:
    held = {Role(r) for r in user.roles if r in {s.value for s in STAFF_ROLES}}
    return tuple(r for r in ROLE_ORDER if r in held)


def _row(user: StaffUser, at: datetime) -> UserRow:
    locked = user.locked_until is not None and at < user.locked_until
    return UserRow(
        id=user.id, login=user.login, display_name=user.display_name, roles=roles_of(user),
        departments=tuple(sorted(user.departments)), may_reveal_my_number=user.may_reveal_my_number,
        active=user.active, locked_until=user.locked_until if locked else None, locked=locked,
        password_totp=user.password_hash is not None and user.totp_secret is not None,
        ic_card=user.client_cert_sha256 is not None, client_cert_sha256=user.client_cert_sha256,
        created_at=user.created_at)


def list_users(session: Session, principal: Principal, *, at: datetime) -> list[UserRow]:
    """Every account, active first, then by login."""
    require_admin(principal)
    users = session.scalars(select(StaffUser).order_by(StaffUser.active.desc(), StaffUser.login))
    return [_row(u, at) for u in users]


def get_user(session: Session, principal: Principal, user_id: int, *, at: datetime) -> UserRow:
    require_admin(principal)
    user = session.get(StaffUser, user_id)
    if user is None:
        raise NotFound("no such staff user")
    return _row(user, at)


def known_departments(catalogue: ProcedureCatalogue) -> dict[str, str]:
    """Department id → name an account may be given. With a catalogue: its departments and
    :data:`UNASSIGNED` (procedures the catalogue does not list); without one: :data:`ALL` only."""
    if not catalogue.configured:
        return {ALL: "すべての手続（手続カタログ未設定）"}
    found: dict[str, str] = {}
    for proc in sorted(catalogue.procedures.values(), key=lambda p: p.department):
        found.setdefault(proc.department, proc.department_name or proc.department)
    found[UNASSIGNED] = "カタログにない手続（未割当）"
    return found


# --- validation -------------------------------------------------------------------------------------


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise ReasonRequired("a reason (処理事由) is required")
    return text


def _display_name(name: str) -> str:
    text = name.strip()
    if not text or len(text) > _MAX_DISPLAY_NAME or any(ord(c) < 32 for c in text):
        raise InvalidDisplayName("a display name has 1-128 printable characters")
    return text


def _roles(roles: Iterable[str]) -> list[Role]:
    try:
        parsed = {Role(r) for r in roles}
    except ValueError as exc:
        raise InvalidRoles("unknown role") from exc
    if not parsed or not parsed <= STAFF_ROLES:
        raise InvalidRoles("at least one staff role is required")
    return [r for r in ROLE_ORDER if r in parsed]


def _departments(departments: Iterable[str], catalogue: ProcedureCatalogue,
                 already: Iterable[str] = ()) -> list[str]:
    """Known departments only; one the account already holds may stay (the catalogue may have
    changed since), but none can be added that the catalogue does not know."""
    wanted = set(departments)
    if not wanted:
        raise InvalidDepartments("at least one department is required")
    unknown = wanted - set(known_departments(catalogue)) - set(already)
    if unknown:
        raise InvalidDepartments("unknown department", unknown=frozenset(unknown))
    return sorted(wanted)


def _password(password: str, confirm: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"passwords have at least {MIN_PASSWORD_LENGTH} characters")
    if password != confirm:
        raise PasswordMismatch("the confirmation differs")
    return password


def _cert(session: Session, value: str | None, *, user_id: int | None = None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        fp = _fingerprint(value)
    except InvalidRequest as exc:
        raise InvalidFingerprint("a certificate fingerprint is 64 hex digits (SHA-256)") from exc
    holder = session.scalar(select(StaffUser.id).where(StaffUser.client_cert_sha256 == fp))
    if holder is not None and holder != user_id:
        raise FingerprintTaken("another account holds this certificate")
    return fp


def _log(session: Session, principal: Principal, *, at: datetime, action: str, user_id: int, reason: str) -> None:
    append_access(session, actor=principal.access_actor(), at=at, action=action, subject=f"staff_user:{user_id}",
                  reason=reason)


def _list(values: Iterable[str]) -> str:
    return ",".join(values) or "-"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


# --- accounts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TotpSecret:
    """A new TOTP secret, to be shown once (the result page), never stored in clear or logged."""

    login: str
    secret: str = field(repr=False)
    issuer: str

    @property
    def provisioning_uri(self) -> str:
        return pyotp.TOTP(self.secret).provisioning_uri(name=self.login, issuer_name=self.issuer)


@dataclass(frozen=True)
class CreatedAccount:
    user_id: int
    totp: TotpSecret
    #: the privileged parts asked for (reveal, system_admin, IC card), waiting for another admin
    requests: tuple[Filed, ...] = ()


def create_account(
    session: Session, principal: Principal, *, login: str, display_name: str, roles: Iterable[str],
    departments: Iterable[str], may_reveal_my_number: bool, password: str, password_confirm: str,
    client_cert_sha256: str | None, reason: str, at: datetime, catalogue: ProcedureCatalogue, sealer: Sealer,
    issuer: str, ttl: timedelta = APPROVAL_TTL,
) -> CreatedAccount:
    """A new account with a password chosen by the admin and a fresh TOTP secret (returned once).
    The privileged parts (reveal, system_admin, an IC card) are filed as requests for a second
    administrator; the account starts without them."""
    require_admin(principal)
    why = _reason(reason)
    if not LOGIN_ID.fullmatch(login):
        raise InvalidLoginId("login ids are 3-64 of a-z 0-9 . _ -")
    name = _display_name(display_name)
    parsed_roles = _roles(roles)
    depts = _departments(departments, catalogue)
    secret_password = _password(password, password_confirm)
    fp = _cert(session, client_cert_sha256)
    if session.scalar(select(StaffUser.id).where(StaffUser.login == login)) is not None:
        raise LoginTaken("login id exists")
    now_roles = [r for r in parsed_roles if r is not Role.SYSTEM_ADMIN]
    new = create_user(session, login=login, display_name=name, roles=[r.value for r in now_roles],
                      departments=depts, at=at, sealer=sealer, password=secret_password, allow_no_role=True)
    assert new.totp_secret is not None  # noqa: S101 - a password account always gets a TOTP secret
    new.user.password_set_by = new.user.totp_set_by = principal.login  # the creator knows both, for now
    _log(session, principal, at=at, action="admin.user.create", user_id=new.user.id,
         reason=f"{why} [login={login}; roles={_list(now_roles)}; departments={_list(depts)}; "
                f"reveal=no; ic_card=no]")
    filed = _file_privileged(session, principal, new.user, why=why, at=at, ttl=ttl, reveal=may_reveal_my_number,
                             admin=Role.SYSTEM_ADMIN in parsed_roles, fingerprint=fp)
    return CreatedAccount(new.user.id, TotpSecret(login, new.totp_secret, issuer), filed)


def _file_privileged(session: Session, principal: Principal | Actor, user: StaffUser, *, why: str, at: datetime,
                     ttl: timedelta, reveal: bool, admin: bool, fingerprint: str | None) -> tuple[Filed, ...]:
    actor = principal if isinstance(principal, Actor) else principal.access_actor()
    filed = []
    if reveal:
        filed.append(file_request(session, actor, user, ChangeKind.GRANT_REVEAL, reason=why, at=at, ttl=ttl))
    if admin:
        filed.append(file_request(session, actor, user, ChangeKind.GRANT_ADMIN, reason=why, at=at, ttl=ttl))
    if fingerprint is not None:
        filed.append(file_request(session, actor, user, ChangeKind.BIND_IC_CARD, reason=why, at=at, ttl=ttl,
                                  payload={"fingerprint": fingerprint}))
    return tuple(filed)


@dataclass(frozen=True)
class CommandLineAccount:
    """An account made by ``python -m intake staff add``."""

    user_id: int
    totp: TotpSecret | None  # None: an IC-card-only account
    requests: tuple[Filed, ...]
    #: no active system administrator existed: everything asked took effect at once
    bootstrap: bool


def create_from_command_line(
    session: Session, *, operator: str, login: str, display_name: str, roles: Iterable[str],
    departments: Iterable[str], may_reveal_my_number: bool, password: str | None, client_cert_sha256: str | None,
    reason: str, at: datetime, catalogue: ProcedureCatalogue, sealer: Sealer, issuer: str,
    ttl: timedelta = APPROVAL_TTL,
) -> CommandLineAccount:
    """``staff add`` under the same rules as the admin pages (issue 15 §3): known roles and
    departments only (the catalogue's), an access-log row under ``cli:<operator>``, and — once an
    active system administrator exists — the privileged parts (reveal, system_admin, an IC card)
    filed as requests that an administrator approves on the admin pages (the operator at the command
    line and the approving administrator are the two people). Before the first administrator exists
    (installation) everything asked takes effect at once, and the row says ``bootstrap=yes``."""
    why = _reason(reason)
    actor = Actor(staff_id=f"cli:{operator}"[:64], department="-", terminal="cli")
    if not LOGIN_ID.fullmatch(login):
        raise InvalidLoginId("login ids are 3-64 of a-z 0-9 . _ -")
    name = _display_name(display_name)
    parsed_roles = _roles(roles)
    depts = _departments(departments, catalogue)
    secret_password = _password(password, password) if password is not None else None
    fp = _cert(session, client_cert_sha256)
    if secret_password is None and fp is None:
        raise InvalidRequest("an account needs a password or an IC-card certificate", code="NO_LOGIN")
    if session.scalar(select(StaffUser.id).where(StaffUser.login == login)) is not None:
        raise LoginTaken("login id exists")
    active = _lock_active(session)
    bootstrap = not any(Role.SYSTEM_ADMIN.value in u.roles for u in active)
    now_roles = parsed_roles if bootstrap else [r for r in parsed_roles if r is not Role.SYSTEM_ADMIN]
    new = create_user(session, login=login, display_name=name, roles=[r.value for r in now_roles],
                      departments=depts, at=at, sealer=sealer, password=secret_password, allow_no_role=True,
                      may_reveal_my_number=bootstrap and may_reveal_my_number,
                      client_cert_sha256=fp if bootstrap else None)
    if secret_password is not None:
        new.user.password_set_by = new.user.totp_set_by = actor.staff_id
    append_access(session, actor=actor, at=at, action="admin.user.create", subject=f"staff_user:{new.user.id}",
                  reason=f"{why} [login={login}; roles={_list(now_roles)}; departments={_list(depts)}; "
                         f"reveal={_yes(bootstrap and may_reveal_my_number)}; "
                         f"ic_card={_yes(bootstrap and fp is not None)}; bootstrap={_yes(bootstrap)}]")
    filed: tuple[Filed, ...] = ()
    if not bootstrap:
        filed = _file_privileged(session, actor, new.user, why=why, at=at, ttl=ttl, reveal=may_reveal_my_number,
                                 admin=Role.SYSTEM_ADMIN in parsed_roles, fingerprint=fp)
    totp = TotpSecret(login, new.totp_secret, issuer) if new.totp_secret is not None else None
    return CommandLineAccount(new.user.id, totp, filed, bootstrap)


def _lock_active(session: Session) -> list[StaffUser]:
    """Every active account, locked in id order: two admins demoting each other at once are
    serialised, so the last administrator cannot disappear between the count and the change."""
    return list(session.scalars(select(StaffUser).where(StaffUser.active.is_(True))
                                .order_by(StaffUser.id).with_for_update()))


def _target(session: Session, user_id: int) -> StaffUser:
    user = session.scalar(select(StaffUser).where(StaffUser.id == user_id).with_for_update())
    if user is None:
        raise NotFound("no such staff user")
    return user


def _guard_admin_loss(principal: Principal, user: StaffUser, active: Sequence[StaffUser], *,
                      self_rule: AdminGuard) -> None:
    """``user`` is about to stop being an active system_admin (or an active account at all): refused
    for the last active system_admin, and for the acting admin's own account."""
    admins = sum(Role.SYSTEM_ADMIN.value in u.roles for u in active)
    if user.active and Role.SYSTEM_ADMIN.value in user.roles and admins <= 1:
        raise AdminGuard("last_admin")
    if user.login == principal.login:
        raise self_rule


@dataclass(frozen=True)
class Updated:
    """What an update changed at once, and what it filed for a second administrator."""

    changes: list[str]
    requests: tuple[Filed, ...] = ()


def update_account(
    session: Session, principal: Principal, user_id: int, *, display_name: str, roles: Iterable[str],
    departments: Iterable[str], may_reveal_my_number: bool, client_cert_sha256: str | None, reason: str,
    at: datetime, catalogue: ProcedureCatalogue, ttl: timedelta = APPROVAL_TTL,
) -> Updated:
    """Change an account's name, roles, departments, reveal permission and IC-card certificate (an
    empty fingerprint removes it). Takes effect on the user's next request — except granting the
    reveal permission or the system_admin role and binding a certificate, which are filed for a
    second administrator (:func:`approve_request`)."""
    require_admin(principal)
    why = _reason(reason)
    active = _lock_active(session)
    user = _target(session, user_id)
    name = _display_name(display_name)
    new_roles = _roles(roles)
    depts = _departments(departments, catalogue, already=user.departments)
    fp = _cert(session, client_cert_sha256, user_id=user.id)
    old_roles = list(roles_of(user))
    if Role.SYSTEM_ADMIN in old_roles and Role.SYSTEM_ADMIN not in new_roles:
        _guard_admin_loss(principal, user, active, self_rule=AdminGuard("self_demote"))
    grant_admin = Role.SYSTEM_ADMIN in new_roles and Role.SYSTEM_ADMIN not in old_roles
    grant_reveal = may_reveal_my_number and not user.may_reveal_my_number
    bind = fp is not None and fp != user.client_cert_sha256
    now_roles = [r for r in new_roles if r is not Role.SYSTEM_ADMIN or not grant_admin]
    changes: list[str] = []
    if name != user.display_name:
        changes.append("display_name")
    if now_roles != old_roles:
        changes.append(f"roles={_list(old_roles)}→{_list(now_roles)}")
    if depts != sorted(user.departments):
        changes.append(f"departments={_list(sorted(user.departments))}→{_list(depts)}")
    if not may_reveal_my_number and user.may_reveal_my_number:
        changes.append("reveal=yes→no")
    if fp is None and user.client_cert_sha256 is not None:
        changes.append("ic_card=removed")
    if not changes and not (grant_admin or grant_reveal or bind):
        raise NoChange("nothing to change")
    own = user.login == principal.login
    if own and (grant_admin or grant_reveal or any(not c.startswith(("display_name", "ic_card")) for c in changes)):
        # Separation of duties: nobody widens (or narrows) their own access; another admin does it,
        # and the access log shows two people.
        raise AdminGuard("self_privilege")
    user.display_name, user.roles, user.departments = name, sorted(r.value for r in now_roles), depts
    if not may_reveal_my_number:
        user.may_reveal_my_number = False
    if fp is None:
        user.client_cert_sha256 = None
    if changes:
        _log(session, principal, at=at, action="admin.user.update", user_id=user.id,
             reason=f"{why} [{'; '.join(changes)}]")
    filed = _file_privileged(session, principal, user, why=why, at=at, ttl=ttl, reveal=grant_reveal,
                             admin=grant_admin, fingerprint=fp if bind else None)
    return Updated(changes, filed)


def _end_sessions(session: Session, user_id: int, *, at: datetime, why: str, keep: int | None = None) -> int:
    """End the account's live sessions (all but ``keep``, the acting admin's own). How many ended."""
    rows = session.scalars(select(StaffSession).where(StaffSession.user_id == user_id,
                                                      StaffSession.ended_at.is_(None))).all()
    ended = [r for r in rows if r.id != keep]
    for row in ended:
        row.ended_at, row.end_reason = at, why
    return len(ended)


def deactivate(session: Session, principal: Principal, user_id: int, *, reason: str, at: datetime) -> int:
    """No login from now on and every live session of the account ended. The sessions ended."""
    require_admin(principal)
    why = _reason(reason)
    active = _lock_active(session)
    user = _target(session, user_id)
    if not user.active:
        raise AccountStateConflict("already_inactive")
    _guard_admin_loss(principal, user, active, self_rule=AdminGuard("self_deactivate"))
    user.active = False
    ended = _end_sessions(session, user.id, at=at, why="deactivated")
    _log(session, principal, at=at, action="admin.user.deactivate", user_id=user.id,
         reason=f"{why} [sessions_ended={ended}]")
    return ended


def reactivate(session: Session, principal: Principal, user_id: int, *, reason: str, at: datetime) -> None:
    require_admin(principal)
    why = _reason(reason)
    user = _target(session, user_id)
    if user.active:
        raise AccountStateConflict("already_active")
    user.active = True
    _log(session, principal, at=at, action="admin.user.reactivate", user_id=user.id, reason=why)


def unlock(session: Session, principal: Principal, user_id: int, *, reason: str, at: datetime) -> None:
    """Lift a lockout after failed logins before it expires."""
    require_admin(principal)
    why = _reason(reason)
    user = _target(session, user_id)
    if user.locked_until is None or at >= user.locked_until:
        raise AccountStateConflict("not_locked")
    user.locked_until, user.failed_logins = None, 0
    _log(session, principal, at=at, action="admin.user.unlock", user_id=user.id, reason=why)


def _new_totp(user: StaffUser, sealer: Sealer, *, by: str) -> str:
    secret = pyotp.random_base32()
    user.totp_secret = seal_totp(sealer, user.id, secret)
    user.totp_last_step = None
    user.totp_set_by = by
    return secret


def reset_totp(session: Session, principal: Principal, user_id: int, *, reason: str, at: datetime, sealer: Sealer,
               issuer: str, current_session: int | None = None, ttl: timedelta = APPROVAL_TTL) -> TotpSecret | Filed:
    """A new TOTP secret (the old one stops working at once), shown once. The account's other
    sessions end: whoever holds the lost device must log in again. For another's account this is a
    request: the secret is made, and shown to the approver, when a second administrator approves."""
    require_admin(principal)
    why = _reason(reason)
    user = _target(session, user_id)
    if user.password_hash is None:
        raise AccountStateConflict("no_password")
    if user.login != principal.login:
        return file_request(session, principal.access_actor(), user, ChangeKind.RESET_TOTP, reason=why, at=at, ttl=ttl)
    secret = _new_totp(user, sealer, by=principal.login)
    ended = _end_sessions(session, user.id, at=at, why="credential", keep=current_session)
    _log(session, principal, at=at, action="admin.user.totp_reset", user_id=user.id,
         reason=f"{why} [sessions_ended={ended}]")
    return TotpSecret(user.login, secret, issuer)


def set_password(
    session: Session, principal: Principal, user_id: int, *, password: str, password_confirm: str, reason: str,
    at: datetime, sealer: Sealer, issuer: str, current_session: int | None = None, ttl: timedelta = APPROVAL_TTL,
) -> TotpSecret | Filed | None:
    """A new password chosen by the admin. On one's own account at once: an account that had no
    password login (IC card only) also gets its first TOTP secret, returned once; otherwise ``None``;
    other sessions end. On another's account a request (the password's hash waits in it) that a
    second administrator approves — refused when the asking admin issued the account's TOTP secret
    (they would know both factors)."""
    require_admin(principal)
    why = _reason(reason)
    user = _target(session, user_id)
    new_password = _password(password, password_confirm)
    if user.login != principal.login:
        if user.totp_set_by == principal.login:
            raise FourEyesRefused("both_factors")
        return file_request(session, principal.access_actor(), user, ChangeKind.SET_PASSWORD, reason=why, at=at,
                            ttl=ttl, payload={"password_hash": _hasher.hash(new_password)})
    user.password_hash = _hasher.hash(new_password)
    user.password_set_by = principal.login
    secret = _new_totp(user, sealer, by=principal.login) if user.totp_secret is None else None
    ended = _end_sessions(session, user.id, at=at, why="credential", keep=current_session)
    _log(session, principal, at=at, action="admin.user.password_set", user_id=user.id,
         reason=f"{why} [totp_created={_yes(secret is not None)}; sessions_ended={ended}]")
    return None if secret is None else TotpSecret(user.login, secret, issuer)


# --- four eyes: deciding requests ----------------------------------------------------------------------


def change_requests(session: Session, principal: Principal, *, at: datetime, user_id: int | None = None,
                    ) -> list[RequestRow]:
    """Change requests, newest first (of one account with ``user_id``)."""
    require_admin(principal)
    return request_rows(session, viewer=principal.login, at=at, user_id=user_id)


@dataclass(frozen=True)
class Approved:
    """An approved request: what was applied, and a TOTP secret for the approver to hand over (shown
    once) when the approval made one."""

    request_id: int
    kind: ChangeKind
    user_id: int
    totp: TotpSecret | None


def _open_request(session: Session, principal: Principal, request_id: int, *, at: datetime
                  ) -> tuple[StaffChangeRequest, StaffUser]:
    request = session.scalar(select(StaffChangeRequest).where(StaffChangeRequest.id == request_id).with_for_update())
    if request is None:
        raise NotFound("no such change request")
    if request.state != PENDING:
        raise RequestDecided(f"request {request.id} is {request.state}")
    if at >= request.expires_at:
        raise RequestExpired(f"request {request.id} expired")
    user = _target(session, request.target_user_id)
    if request.requested_by == principal.login:
        raise FourEyesRefused("own_request")
    if user.login == principal.login:
        raise FourEyesRefused("own_account")
    return request, user


def _knows_both(user: StaffUser) -> str | None:
    """The one person who knows both factors of ``user``, if there is one."""
    if user.password_hash is not None and user.password_set_by is not None \
            and user.password_set_by == user.totp_set_by:
        return user.password_set_by
    return None


def approve_request(
    session: Session, principal: Principal, request_id: int, *, reason: str, at: datetime, sealer: Sealer,
    issuer: str, current_session: int | None = None,
) -> Approved:
    """Apply a pending request as its second administrator. Refused: one's own request or account
    (:class:`FourEyesRefused`), an expired or decided request (409), and any approval after which one
    administrator would know both factors of the account. Granting the reveal permission or the
    system_admin role to an account whose password and TOTP secret one person issued also issues a
    new TOTP secret — to the approver, who hands it to the account's holder."""
    require_admin(principal)
    why = _reason(reason)
    request, user = _open_request(session, principal, request_id, at=at)
    kind = ChangeKind(request.kind)
    totp: str | None = None
    done: list[str] = [f"request={request.id}", f"kind={kind.value}", f"requested_by={request.requested_by}"]
    if kind in (ChangeKind.GRANT_REVEAL, ChangeKind.GRANT_ADMIN):
        if _knows_both(user) is not None:
            if user.password_set_by == principal.login:
                raise FourEyesRefused("both_factors")
            totp = _new_totp(user, sealer, by=principal.login)
        if kind is ChangeKind.GRANT_REVEAL:
            user.may_reveal_my_number = True
        else:
            user.roles = sorted({*user.roles, Role.SYSTEM_ADMIN.value})
    elif kind is ChangeKind.BIND_IC_CARD:
        user.client_cert_sha256 = _cert(session, str(request.payload.get("fingerprint", "")), user_id=user.id)
    elif kind is ChangeKind.SET_PASSWORD:
        if user.totp_set_by == request.requested_by:
            raise FourEyesRefused("both_factors")
        user.password_hash = str(request.payload["password_hash"])
        user.password_set_by = request.requested_by
        if user.totp_secret is None:  # an IC-card account's first password: its first TOTP secret too
            totp = _new_totp(user, sealer, by=principal.login)
    elif kind is ChangeKind.RESET_TOTP:
        if user.password_set_by == principal.login:
            raise FourEyesRefused("both_factors")
        totp = _new_totp(user, sealer, by=principal.login)
    if totp is not None or kind in (ChangeKind.SET_PASSWORD, ChangeKind.BIND_IC_CARD):
        ended = _end_sessions(session, user.id, at=at, why="credential", keep=current_session)
        done.append(f"sessions_ended={ended}")
    done.append(f"totp_issued={_yes(totp is not None)}")
    request.state, request.decided_by, request.decided_at = "approved", principal.login, at
    request.decision_reason = why
    _log(session, principal, at=at, action="admin.request.approve", user_id=user.id,
         reason=f"{why} [{'; '.join(done)}]")
    return Approved(request.id, kind, user.id, None if totp is None else TotpSecret(user.login, totp, issuer))


def deny_request(session: Session, principal: Principal, request_id: int, *, reason: str, at: datetime) -> int:
    """Close a pending request unapplied (another administrator than the one who asked, as for an
    approval; an expired request may be denied). The account id."""
    require_admin(principal)
    why = _reason(reason)
    request = session.scalar(select(StaffChangeRequest).where(StaffChangeRequest.id == request_id).with_for_update())
    if request is None:
        raise NotFound("no such change request")
    if request.state != PENDING:
        raise RequestDecided(f"request {request.id} is {request.state}")
    if request.requested_by == principal.login:
        raise FourEyesRefused("own_request")
    user = _target(session, request.target_user_id)
    if user.login == principal.login:
        raise FourEyesRefused("own_account")
    request.state, request.decided_by, request.decided_at, request.decision_reason = "denied", principal.login, at, why
    _log(session, principal, at=at, action="admin.request.deny", user_id=user.id,
         reason=f"{why} [request={request.id}; kind={request.kind}; requested_by={request.requested_by}]")
    return user.id
