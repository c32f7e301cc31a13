"""Exception tree of staff authentication. Messages are for logs; the UI shows one generic text
for every login failure so that nobody learns which factor was wrong or whether a login exists."""

from __future__ import annotations

from datetime import datetime

from intake.errors import InvalidRequest, PermissionDenied

__all__ = ["AccountLocked", "LoginFailed", "SessionEnded", "StaffAuthError", "UnknownRole"]


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
    """No valid session: missing, logged out, or timed out (``reason``: idle / absolute / missing)."""

    code = "SESSION_ENDED"

    def __init__(self, reason: str) -> None:
        super().__init__(f"no valid session ({reason})")
        self.reason = reason


class UnknownRole(InvalidRequest):
    code = "UNKNOWN_ROLE"

