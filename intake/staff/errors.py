"""Exceptions of the staff package: authentication (:mod:`intake.staff.service`) and account
administration (:mod:`intake.staff.admin`). Messages are for logs; the UI shows one generic text for
every login failure so that nobody learns which factor was wrong or whether a login exists, and maps
each administration refusal to one Japanese message and one status (400 bad input, 409 the accounts'
current state forbids it). Refusals of the role itself are :class:`intake.errors.AccessDenied`,
unknown accounts :class:`intake.errors.NotFound`.

Authentication::

    PermissionDenied
    └── StaffAuthError
        ├── LoginFailed          wrong login id, password, TOTP code or certificate
        ├── AccountLocked        too many failures (``until``)
        └── SessionEnded         no valid session (``reason``), recorded after the request's rollback
    InvalidRequest
    └── UnknownRole

Administration::

    InvalidRequest
    ├── ReasonRequired          (the shared class) no 処理事由
    ├── InvalidLoginId          not [a-z0-9._-]{3,64}
    ├── InvalidDisplayName      empty or too long
    ├── InvalidRoles            none, or not a staff role
    ├── InvalidDepartments      none, or not a department of the catalogue (``unknown``)
    ├── WeakPassword            shorter than 12 characters
    ├── PasswordMismatch        the confirmation differs
    ├── InvalidFingerprint      not 64 hex digits
    └── NoChange                an update that changes nothing
    Conflict
    ├── LoginTaken              the login id exists
    ├── FingerprintTaken        another account holds that IC-card certificate
    ├── AdminGuard              would lock the ward out of administration (``rule``)
    ├── AccountStateConflict    already active/inactive, not locked, no password login (``state``)
    ├── RequestExpired          a change request past its ``expires_at``
    └── RequestDecided          a change request already approved or denied

Four eyes (:mod:`intake.staff.approvals`), refusals of the person, logged as refused attempts::

    PermissionDenied
    └── FourEyesRefused         ``rule``: own_request, own_account, both_factors
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from intake.errors import Conflict, InvalidRequest, PermissionDenied
from intake.models import StaffSession

__all__ = [
    "AccountLocked",
    "AccountStateConflict",
    "AdminGuard",
    "FingerprintTaken",
    "FourEyesRefused",
    "InvalidDepartments",
    "InvalidDisplayName",
    "InvalidFingerprint",
    "InvalidLoginId",
    "InvalidRoles",
    "LoginFailed",
    "LoginTaken",
    "NoChange",
    "PasswordMismatch",
    "RequestDecided",
    "RequestExpired",
    "SessionEnded",
    "StaffAuthError",
    "UnknownRole",
    "WeakPassword",
]


class StaffAuthError(PermissionDenied):
    """Base class of authentication failures."""


class LoginFailed(StaffAuthError):
    """Wrong login id, password, TOTP code or certificate (the UI does not say which)."""

    code = "LOGIN_FAILED"


class AccountLocked(StaffAuthError):
    """Too many failures: no login until ``until`` (a correct password does not help meanwhile)."""

    code = "ACCOUNT_LOCKED"

    def __init__(self, until: datetime) -> None:
        super().__init__(f"account locked until {until.isoformat()}")
        self.until = until


class SessionEnded(StaffAuthError):
    """No valid session: missing, logged out, or timed out (``reason``: idle / absolute / inactive /
    terminal / missing). When a live session was ended just now (``session_id``), the ending must
    outlive the refused request: the unit of work records it after its rollback
    (:func:`intake.web.unit_of_work`)."""

    code = "SESSION_ENDED"

    def __init__(self, reason: str, *, session_id: int | None = None, at: datetime | None = None) -> None:
        super().__init__(f"no valid session ({reason})")
        self.reason = reason
        self.session_id = session_id
        self.at = at

    def record_after_rollback(self, session: Session) -> None:
        if self.session_id is None or self.at is None:
            return
        row = session.get(StaffSession, self.session_id)
        if row is not None and row.ended_at is None:
            row.ended_at, row.end_reason = self.at, self.reason


class UnknownRole(InvalidRequest):
    code = "UNKNOWN_ROLE"


class InvalidLoginId(InvalidRequest):
    code = "INVALID_LOGIN_ID"


class InvalidDisplayName(InvalidRequest):
    code = "INVALID_DISPLAY_NAME"


class InvalidRoles(InvalidRequest):
    code = "INVALID_ROLES"


class InvalidDepartments(InvalidRequest):
    """``unknown``: the department ids that are not in the catalogue (empty: none were given)."""

    code = "INVALID_DEPARTMENTS"

    def __init__(self, message: str, *, unknown: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.unknown = unknown


class WeakPassword(InvalidRequest):
    code = "WEAK_PASSWORD"


class PasswordMismatch(InvalidRequest):
    code = "PASSWORD_MISMATCH"


class InvalidFingerprint(InvalidRequest):
    code = "INVALID_FINGERPRINT"


class NoChange(InvalidRequest):
    code = "NO_CHANGE"


class LoginTaken(Conflict):
    code = "LOGIN_TAKEN"


class FingerprintTaken(Conflict):
    code = "FINGERPRINT_TAKEN"


GuardRule = Literal["self_deactivate", "self_demote", "self_privilege", "last_admin"]


class AdminGuard(Conflict):
    """The change would leave the ward without an administrator, or an admin would lock themselves out."""

    code = "ADMIN_GUARD"

    def __init__(self, rule: GuardRule) -> None:
        super().__init__(f"refused by the admin guard: {rule}")
        self.rule: GuardRule = rule


StateProblem = Literal["already_active", "already_inactive", "not_locked", "no_password"]


class AccountStateConflict(Conflict):
    """The account is not in a state the action applies to."""

    code = "ACCOUNT_STATE"

    def __init__(self, state: StateProblem) -> None:
        super().__init__(f"account state: {state}")
        self.state: StateProblem = state


FourEyesRule = Literal["own_request", "own_account", "both_factors"]


class FourEyesRefused(PermissionDenied):
    """A privileged change needs a second administrator, and this one may not be it: ``own_request``
    (nobody approves their own request), ``own_account`` (nobody approves a change to their own
    account), ``both_factors`` (the change would leave one administrator knowing both the password
    and the TOTP secret of another's account)."""

    code = "FOUR_EYES"

    def __init__(self, rule: FourEyesRule) -> None:
        super().__init__(f"refused by the four-eyes rule: {rule}")
        self.rule: FourEyesRule = rule


class RequestExpired(Conflict):
    code = "REQUEST_EXPIRED"


class RequestDecided(Conflict):
    code = "REQUEST_DECIDED"
