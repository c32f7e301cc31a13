"""Exception tree of the intake. API views translate these to HTTP answers in one place."""

from __future__ import annotations

__all__ = ["Conflict", "IntakeError", "InvalidRequest", "NotFound", "PermissionDenied"]


class IntakeError(Exception):
    """Base class. ``code`` is a stable, personal-data-free identifier for clients and logs."""

    code = "INTAKE_ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidRequest(IntakeError):
    code = "INVALID_REQUEST"


class NotFound(IntakeError):
    code = "NOT_FOUND"


class PermissionDenied(IntakeError):
    code = "PERMISSION_DENIED"


class Conflict(IntakeError):
    code = "CONFLICT"
