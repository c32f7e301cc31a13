"""Staff accounts, password + TOTP login, certificate login, server-side sessions (P12).

* passwords: argon2id (argon2-cffi defaults), re-hashed when the parameters change;
* second factor: TOTP (RFC 6238, 30 s, 6 digits, ±1 step), each step accepted once;
* lockout: ``max_failed_logins`` consecutive failures lock the account for ``lockout_minutes``;
* sessions: an opaque random token in the cookie, only its SHA-256 in ``staff_sessions``; idle and
  absolute timeouts are checked against the injected time on every request;
* certificate login: the front proxy verified a staff IC-card certificate and passes its SHA-256
  fingerprint; the view accepts the header only from a trusted proxy address.

Every login, failure, lockout and logout writes an access-log row. Services never commit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from intake.accesslog.service import access_log_keys, append_access
from intake.authz import STAFF_ROLES, Actor, Principal
from intake.crypto import Sealer
from intake.errors import InvalidRequest
from intake.jst import require_aware
from intake.models import StaffSession, StaffUser
from intake.procedures import ProcedureCatalogue
from intake.sealing import open_totp, seal_totp
from intake.settings import StaffUISettings
from intake.staff.errors import AccountLocked, LoginFailed, SessionEnded, UnknownRole
from status import Role

__all__ = [
    "NewUser",
    "create_user",
    "end_session",
    "login_with_certificate",
    "login_with_password",
    "principal_for",
    "resume_session",
    "totp_secret_of",
]

_hasher = PasswordHasher()
# Verifying against this keeps the time of "no such login" close to that of "wrong password".
_DUMMY_HASH = _hasher.hash("shinsei-dummy-password")


@dataclass(frozen=True)
class NewUser:
    """A created account and its TOTP secret (shown once, for the authenticator app)."""

    user: StaffUser
    totp_secret: str | None

    def provisioning_uri(self, issuer: str) -> str | None:
        if self.totp_secret is None:
            return None
        return pyotp.TOTP(self.totp_secret).provisioning_uri(name=self.user.login, issuer_name=issuer)


def create_user(
    session: Session, *, login: str, display_name: str, roles: list[str], departments: list[str], at: datetime,
    sealer: Sealer, password: str | None = None, may_reveal_my_number: bool = False,
    client_cert_sha256: str | None = None, totp_secret: str | None = None, allow_no_role: bool = False,
) -> NewUser:
    """Create an account. A password login always gets a TOTP secret (generated unless given).
    ``allow_no_role``: the account's only role waits for a second administrator (system_admin)."""
    require_aware(at)
    try:
        parsed = sorted({Role(r) for r in roles})
    except ValueError as exc:
        raise UnknownRole("unknown role") from exc
    if (not parsed and not allow_no_role) or not set(parsed) <= STAFF_ROLES:
        raise UnknownRole("at least one staff role is required")
    if not departments:
        raise InvalidRequest("at least one department is required", code="NO_DEPARTMENT")
    if password is None and client_cert_sha256 is None:
        raise InvalidRequest("a password or a certificate is required", code="NO_CREDENTIAL")
    if password is not None and len(password) < 12:
        raise InvalidRequest("passwords have at least 12 characters", code="WEAK_PASSWORD")
    fingerprint = _fingerprint(client_cert_sha256) if client_cert_sha256 else None
    user = StaffUser(login=login, display_name=display_name, roles=[r.value for r in parsed],
                     departments=sorted(set(departments)), may_reveal_my_number=may_reveal_my_number,
                     password_hash=_hasher.hash(password) if password is not None else None,
                     client_cert_sha256=fingerprint, created_at=at, failed_logins=0, active=True)
    session.add(user)
    session.flush()
    secret = None
    if password is not None:
        secret = totp_secret or pyotp.random_base32()
        user.totp_secret = seal_totp(sealer, user.id, secret)
    return NewUser(user, secret)


def totp_secret_of(user: StaffUser, sealer: Sealer) -> str | None:
    if user.totp_secret is None:
        return None
    return open_totp(sealer, user.id, user.totp_secret)


def _fingerprint(value: str) -> str:
    fp = value.strip().lower().replace(":", "")
    if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
        raise InvalidRequest("a certificate fingerprint is 64 hex digits (SHA-256)", code="BAD_FINGERPRINT")
    return fp


def _audit(session: Session, *, login: str, terminal: str, at: datetime, action: str, departments: str = "-",
           reason: str | None = None) -> None:
    append_access(session, actor=Actor(staff_id=login[:64], department=departments, terminal=terminal), at=at,
                  action=action, subject=f"staff:{login[:48]}", reason=reason)


def _fail(session: Session, user: StaffUser | None, login: str, *, terminal: str, at: datetime,
          settings: StaffUISettings, why: str) -> LoginFailed | AccountLocked:
    if user is None:
        # Not an account: what was typed may be a password in the wrong field. Only a keyed
        # fingerprint is kept (the same text gives the same value; the value reveals nothing).
        _audit(session, login=access_log_keys(session).fingerprint("login", login), terminal=terminal, at=at,
               action="login.failed", reason=why)
        return LoginFailed(why)
    user.failed_logins += 1
    _audit(session, login=user.login, terminal=terminal, at=at, action="login.failed", reason=why)
    if user.failed_logins >= settings.max_failed_logins:
        user.locked_until = at + timedelta(minutes=settings.lockout_minutes)
        user.failed_logins = 0
        _audit(session, login=user.login, terminal=terminal, at=at, action="login.locked",
               reason=f"{settings.max_failed_logins} failures")
        return AccountLocked(user.locked_until)
    return LoginFailed(why)


def _start(session: Session, user: StaffUser, *, method: str, terminal: str, at: datetime) -> tuple[str, StaffSession]:
    token = secrets.token_urlsafe(32)
    row = StaffSession(token_sha256=hashlib.sha256(token.encode()).hexdigest(), user_id=user.id,
                       csrf_token=secrets.token_urlsafe(32), method=method, terminal=terminal[:128],
                       created_at=at, last_seen_at=at)
    session.add(row)
    user.failed_logins, user.locked_until = 0, None
    _audit(session, login=user.login, terminal=terminal, at=at, action="login.success", reason=method,
           departments=",".join(user.departments)[:128])
    session.flush()
    return token, row


def _locked(user: StaffUser, at: datetime) -> bool:
    return user.locked_until is not None and at < user.locked_until


def login_with_password(
    session: Session, *, login: str, password: str, totp_code: str, terminal: str, at: datetime,
    settings: StaffUISettings, sealer: Sealer,
) -> tuple[str, StaffSession]:
    """Check password and TOTP code; the new session's cookie token and row. The caller commits also
    on failure (the failure counter and the access-log row must stay)."""
    require_aware(at)
    # One login attempt per account at a time, so parallel guesses cannot each read the failure
    # counter before any of them writes it (the lockout would allow one guess per request in
    # flight). PostgreSQL locks the row with FOR UPDATE; SQLite ignores FOR UPDATE, and its driver
    # starts a transaction only at the first write, so a write comes first: the no-op UPDATE takes
    # SQLite's write lock (other logins wait for this one's commit) and the read below is current.
    session.execute(update(StaffUser).where(StaffUser.login == login)
                    .values(failed_logins=StaffUser.failed_logins))
    user = session.scalar(select(StaffUser).where(StaffUser.login == login).with_for_update())
    if user is None or not user.active or user.password_hash is None:
        _verify_quietly(_DUMMY_HASH, password)
        if user is not None:  # a real account: its login id is a staff id, not typed text
            _audit(session, login=user.login, terminal=terminal, at=at, action="login.failed",
                   reason="inactive" if not user.active else "no password login")
            raise LoginFailed("inactive or no password")
        raise _fail(session, None, login, terminal=terminal, at=at, settings=settings, why="unknown login id")
    if _locked(user, at):
        _audit(session, login=user.login, terminal=terminal, at=at, action="login.refused", reason="locked")
        assert user.locked_until is not None  # noqa: S101 - narrowed by _locked
        raise AccountLocked(user.locked_until)
    if not _verify_quietly(user.password_hash, password):
        raise _fail(session, user, login, terminal=terminal, at=at, settings=settings, why="password")
    secret = totp_secret_of(user, sealer)
    step = _totp_step(secret, totp_code, at) if secret else None
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        raise _fail(session, user, login, terminal=terminal, at=at, settings=settings, why="totp")
    user.totp_last_step = step
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return _start(session, user, method="password+totp", terminal=terminal, at=at)


def _verify_quietly(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _totp_step(secret: str, code: str, at: datetime) -> int | None:
    """The 30-second step ``code`` belongs to (now ±1), or ``None``."""
    code = code.strip()
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    now_step = int(at.timestamp()) // totp.interval
    for step in (now_step, now_step - 1, now_step + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def login_with_certificate(
    session: Session, *, fingerprint: str, terminal: str, at: datetime, settings: StaffUISettings,
) -> tuple[str, StaffSession]:
    """Log in the user whose IC-card certificate the trusted front proxy verified."""
    require_aware(at)
    try:
        fp = _fingerprint(fingerprint)
    except InvalidRequest as exc:
        _audit(session, login="certificate", terminal=terminal, at=at, action="login.failed", reason="bad fingerprint")
        raise LoginFailed("bad fingerprint") from exc
    user = session.scalar(select(StaffUser).where(StaffUser.client_cert_sha256 == fp).with_for_update())
    if user is None or not user.active:
        _audit(session, login="certificate", terminal=terminal, at=at, action="login.failed",
               reason=f"unknown certificate {fp[:16]}")
        raise LoginFailed("unknown or inactive certificate")
    if _locked(user, at):
        assert user.locked_until is not None  # noqa: S101 - narrowed by _locked
        raise AccountLocked(user.locked_until)
    return _start(session, user, method="certificate", terminal=terminal, at=at)


def resume_session(
    session: Session, *, token: str, at: datetime, settings: StaffUISettings,
) -> tuple[StaffSession, StaffUser]:
    """The live session for a cookie token, its idle clock reset; :class:`SessionEnded` otherwise."""
    require_aware(at)
    if not token:
        raise SessionEnded("missing")
    row = session.scalar(select(StaffSession).where(
        StaffSession.token_sha256 == hashlib.sha256(token.encode()).hexdigest()))
    if row is None or row.ended_at is not None:
        raise SessionEnded("missing")
    user = session.get(StaffUser, row.user_id)
    if user is None or not user.active:
        _end(row, at, "inactive")
        raise SessionEnded("inactive", session_id=row.id, at=at)
    if at - row.created_at >= timedelta(hours=settings.absolute_timeout_hours):
        _end(row, at, "absolute")
        raise SessionEnded("absolute", session_id=row.id, at=at)
    if at - row.last_seen_at >= timedelta(minutes=settings.idle_timeout_minutes):
        _end(row, at, "idle")
        raise SessionEnded("idle", session_id=row.id, at=at)
    row.last_seen_at = at
    return row, user


def _end(row: StaffSession, at: datetime, reason: str) -> None:
    row.ended_at, row.end_reason = at, reason


def end_session(session: Session, row: StaffSession, user: StaffUser, *, at: datetime) -> None:
    """Logout: the token is dead from now on, whoever holds it."""
    _end(row, at, "logout")
    _audit(session, login=user.login, terminal=row.terminal, at=at, action="logout",
           departments=",".join(user.departments)[:128])


def principal_for(user: StaffUser, *, terminal: str, catalogue: ProcedureCatalogue) -> Principal:
    return Principal(login=user.login, display_name=user.display_name, roles=frozenset(Role(r) for r in user.roles),
                     departments=frozenset(user.departments), terminal=terminal,
                     may_reveal_my_number=user.may_reveal_my_number, catalogue=catalogue)
