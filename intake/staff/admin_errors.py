"""Exception tree of staff-account administration (:mod:`intake.staff.admin`).

Each class says one thing that was wrong with an admin's request, so the UI maps it to one Japanese
message and one status (400 bad input, 409 the accounts' current state forbids it). Refusals of the
role itself are :class:`intake.errors.PermissionDenied`, unknown accounts :class:`intake.errors.NotFound`.

::

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
    └── AccountStateConflict    already active/inactive, not locked, no password login (``state``)
"""

from __future__ import annotations

from typing import Literal

from intake.errors import Conflict, InvalidRequest

__all__ = [
    "AccountStateConflict",
    "AdminGuard",
    "FingerprintTaken",
    "InvalidDepartments",
    "InvalidDisplayName",
    "InvalidFingerprint",
    "InvalidLoginId",
    "InvalidRoles",
    "LoginTaken",
    "NoChange",
    "PasswordMismatch",
    "WeakPassword",
]


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
