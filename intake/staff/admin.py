"""Staff-account administration, for ``system_admin`` only (the read-only configuration overview is
:mod:`intake.staff.overview`).

Why a service of its own: every check (the role, the 処理事由, the guards that keep the ward from
locking itself out of administration) must hold whatever calls it, so none of it lives in a view or
a template. Every change writes exactly one access-log row (P13) whose reason is the admin's 処理事由
plus what changed — never a password, a TOTP secret, a hash or a certificate fingerprint.

Services never commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

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
    Principal,
)
from intake.crypto import Sealer
from intake.errors import InvalidRequest, NotFound, ReasonRequired
from intake.models import StaffSession, StaffUser
from intake.procedures import ProcedureCatalogue
from intake.sealing import seal_totp
from intake.staff.errors import (
    AccountStateConflict,
    AdminGuard,
    FingerprintTaken,
    InvalidDepartments,
    InvalidDisplayName,
    InvalidFingerprint,
    InvalidLoginId,
    InvalidRoles,
    LoginTaken,
    NoChange,
    PasswordMismatch,
    WeakPassword,
)

# Same package: one password hasher and one AAD format for sealed TOTP secrets, shared with the login.
from intake.staff.service import _fingerprint, _hasher, create_user
from status import Role

__all__ = [
    "LOGIN_ID",
    "MIN_PASSWORD_LENGTH",
    "CreatedAccount",
    "TotpSecret",
    "UserRow",
    "create_account",
    "deactivate",
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


def create_account(
    session: Session, principal: Principal, *, login: str, display_name: str, roles: Iterable[str],
    departments: Iterable[str], may_reveal_my_number: bool, password: str, password_confirm: str,
    client_cert_sha256: str | None, reason: str, at: datetime, catalogue: ProcedureCatalogue, sealer: Sealer,
    issuer: str,
) -> CreatedAccount:
    """A new account with a password chosen by the admin and a fresh TOTP secret (returned once)."""
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
    new = create_user(session, login=login, display_name=name, roles=[r.value for r in parsed_roles],
                      departments=depts, at=at, sealer=sealer, password=secret_password,
                      may_reveal_my_number=may_reveal_my_number, client_cert_sha256=fp)
    assert new.totp_secret is not None  # noqa: S101 - a password account always gets a TOTP secret
    _log(session, principal, at=at, action="admin.user.create", user_id=new.user.id,
         reason=f"{why} [login={login}; roles={_list(parsed_roles)}; departments={_list(depts)}; "
                f"reveal={_yes(may_reveal_my_number)}; ic_card={_yes(fp is not None)}]")
    return CreatedAccount(new.user.id, TotpSecret(login, new.totp_secret, issuer))


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


def update_account(
    session: Session, principal: Principal, user_id: int, *, display_name: str, roles: Iterable[str],
    departments: Iterable[str], may_reveal_my_number: bool, client_cert_sha256: str | None, reason: str,
    at: datetime, catalogue: ProcedureCatalogue,
) -> list[str]:
    """Change an account's name, roles, departments, reveal permission and IC-card certificate (an
    empty fingerprint removes it). Takes effect on the user's next request. The changed fields."""
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
    changes: list[str] = []
    if name != user.display_name:
        changes.append("display_name")
    if new_roles != old_roles:
        changes.append(f"roles={_list(old_roles)}→{_list(new_roles)}")
    if depts != sorted(user.departments):
        changes.append(f"departments={_list(sorted(user.departments))}→{_list(depts)}")
    if may_reveal_my_number != user.may_reveal_my_number:
        changes.append(f"reveal={_yes(user.may_reveal_my_number)}→{_yes(may_reveal_my_number)}")
    if fp != user.client_cert_sha256:
        changes.append("ic_card=" + ("removed" if fp is None else "set" if user.client_cert_sha256 is None
                                     else "replaced"))
    if not changes:
        raise NoChange("nothing to change")
    if user.login == principal.login and any(not c.startswith(("display_name", "ic_card")) for c in changes):
        # Separation of duties: nobody widens (or narrows) their own access; another admin does it,
        # and the access log shows two people.
        raise AdminGuard("self_privilege")
    user.display_name, user.roles, user.departments = name, sorted(r.value for r in new_roles), depts
    user.may_reveal_my_number, user.client_cert_sha256 = may_reveal_my_number, fp
    _log(session, principal, at=at, action="admin.user.update", user_id=user.id,
         reason=f"{why} [{'; '.join(changes)}]")
    return changes


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


def _new_totp(user: StaffUser, sealer: Sealer) -> str:
    secret = pyotp.random_base32()
    user.totp_secret = seal_totp(sealer, user.id, secret)
    user.totp_last_step = None
    return secret


def reset_totp(session: Session, principal: Principal, user_id: int, *, reason: str, at: datetime, sealer: Sealer,
               issuer: str, current_session: int | None = None) -> TotpSecret:
    """A new TOTP secret (the old one stops working at once), shown once. The account's other
    sessions end: whoever holds the lost device must log in again."""
    require_admin(principal)
    why = _reason(reason)
    user = _target(session, user_id)
    if user.password_hash is None:
        raise AccountStateConflict("no_password")
    secret = _new_totp(user, sealer)
    ended = _end_sessions(session, user.id, at=at, why="credential", keep=current_session)
    _log(session, principal, at=at, action="admin.user.totp_reset", user_id=user.id,
         reason=f"{why} [sessions_ended={ended}]")
    return TotpSecret(user.login, secret, issuer)


def set_password(
    session: Session, principal: Principal, user_id: int, *, password: str, password_confirm: str, reason: str,
    at: datetime, sealer: Sealer, issuer: str, current_session: int | None = None,
) -> TotpSecret | None:
    """A new password chosen by the admin. An account that had no password login (IC card only)
    also gets its first TOTP secret, returned once; otherwise ``None``. Other sessions end."""
    require_admin(principal)
    why = _reason(reason)
    user = _target(session, user_id)
    new_password = _password(password, password_confirm)
    user.password_hash = _hasher.hash(new_password)
    secret = _new_totp(user, sealer) if user.totp_secret is None else None
    ended = _end_sessions(session, user.id, at=at, why="credential", keep=current_session)
    _log(session, principal, at=at, action="admin.user.password_set", user_id=user.id,
         reason=f"{why} [totp_created={_yes(secret is not None)}; sessions_ended={ended}]")
    return None if secret is None else TotpSecret(user.login, secret, issuer)
