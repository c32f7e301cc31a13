"""Exception tree of the intake: the shared base classes and the refusals several domains raise.

Each domain keeps its own ``errors.py`` for what only it raises, subclassing these. API views and
the staff UI translate them to HTTP answers in one place each. ``code`` is a stable identifier,
free of personal data, for clients and logs.

::

    IntakeError
    ├── MyNumberInText             staff typed what looks like a My Number into free text (never echoed)
    ├── InvalidRequest
    │   ├── NaiveDateTime          a moment without a UTC offset (also a ValueError)
    │   ├── ReasonRequired         a 処理事由 is required and was blank
    │   ├── InvalidDate            a typed date (西暦 or 和暦) that is no real day of its era
    │   └── ExportTooLarge         more rows than one export may hold (``limit``)
    ├── NotFound                   missing, or out of the actor's scope (one answer for both)
    ├── PermissionDenied
    │   └── AccessDenied           typed ``cause`` (role, permission), see :mod:`intake.authz`
    └── Conflict
        └── IllegalStateChange     a state change a state machine does not allow (``subject``, ``from_``, ``to``)
"""

from __future__ import annotations

import enum

__all__ = [
    "AccessDenied",
    "Conflict",
    "Denial",
    "ExportTooLarge",
    "IllegalStateChange",
    "IntakeError",
    "InvalidDate",
    "InvalidRequest",
    "MyNumberInText",
    "NaiveDateTime",
    "NotFound",
    "PermissionDenied",
    "ReasonRequired",
]


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


class NaiveDateTime(InvalidRequest, ValueError):
    """A moment without a UTC offset (:func:`intake.jst.require_aware`)."""

    code = "NAIVE_DATETIME"

    def __init__(self) -> None:
        super().__init__("naive datetime refused: pass an aware datetime")


class MyNumberInText(IntakeError):
    """A note, a hand-over message, a comment for the resident or a 処理事由 holds what looks like a My
    Number (12 digits with a valid check digit, as typed or in groups of four): free text is read by
    staff without the reveal permission, sent to the portal or kept in the access log, so it must hold
    none (P14). Not an :class:`InvalidRequest`: the pages answer it with its own message."""

    code = "MY_NUMBER_IN_TEXT"

    def __init__(self) -> None:
        super().__init__("free text must not hold a My Number")


class ReasonRequired(InvalidRequest):
    """The action needs a 処理事由 (it is written to the access log) and none was given."""

    code = "REASON_REQUIRED"

    def __init__(self, message: str = "a reason (処理事由) is required") -> None:
        super().__init__(message)


class ExportTooLarge(InvalidRequest):
    """More rows than one export may hold: nothing is exported or logged; narrow the filters."""

    code = "EXPORT_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        super().__init__(f"more rows match than the export limit of {limit}")
        self.limit = limit


class Denial(enum.StrEnum):
    """Why an authenticated actor may not do something."""

    #: none of the actor's roles carries the function (e.g. an auditor changing a status)
    ROLE = "role"
    #: the role is right but a separate permission is missing (e.g. the My Number reveal)
    PERMISSION = "permission"


class AccessDenied(PermissionDenied):
    """A refusal with its typed ``cause``, so callers never re-derive why."""

    def __init__(self, message: str, *, cause: Denial, code: str | None = None) -> None:
        super().__init__(message, code=code or f"{cause.value.upper()}_REFUSED")
        self.cause = cause


class IllegalStateChange(Conflict):
    """``subject`` (e.g. ``"forward item 7"``) cannot go from ``from_`` to ``to`` (the status
    workflow's own refusal is :class:`status.IllegalTransition`)."""

    code = "ILLEGAL_TRANSITION"

    def __init__(self, subject: str, from_: str, to: str) -> None:
        super().__init__(f"{subject}: {from_} → {to} is not allowed")
        self.subject = subject
        self.from_ = from_
        self.to = to


class InvalidDate(InvalidRequest, ValueError):
    """A date staff typed (西暦 or 和暦) that is not a real day of its era (:mod:`intake.wareki`). The
    message never repeats the value: it may be a birth date."""

    code = "INVALID_DATE"

    def __init__(self, message: str = "not a date (YYYY-MM-DD or 和暦 such as 令和8年11月25日)") -> None:
        super().__init__(message)
