"""Exceptions of the mail package.

::

    IntakeError
    └── MailError
        ├── MailConfigError           departments file or mail settings unusable (department, field)
        ├── InvalidMailDay            (also InvalidRequest) a day whose mail cannot be sent (yet)
        ├── UnknownDepartment         (also NotFound) no such department in the configuration
        └── TransportError            one attempt did not hand the mail over (``code``)
            ├── TransientTransportError   worth retrying: connect error, timeout, lost connection, 4xx
            └── PermanentTransportError   refused (5xx, authentication, no STARTTLS, certificate):
                                          not retried in the call, only on the next scheduled pass

Messages and fields hold no personal data (they end up in ``mail_sent_log.last_error``, events and
logs). smtplib, ssl and OS errors are translated at the boundary (:mod:`intake.mail.transport`). A
sent-log change other than claimed → sent is the shared :class:`intake.errors.IllegalStateChange`.
"""

from __future__ import annotations

from datetime import date

from intake.errors import IntakeError, InvalidRequest, NotFound

__all__ = [
    "InvalidMailDay",
    "MailConfigError",
    "MailError",
    "PermanentTransportError",
    "TransientTransportError",
    "TransportError",
    "UnknownDepartment",
]


class MailError(IntakeError):
    code = "MAIL_ERROR"


class MailConfigError(MailError):
    """The mail configuration is unusable. ``department`` and ``field`` say where, when known."""

    code = "MAIL_CONFIG"

    def __init__(self, message: str, *, department: str | None = None, field: str | None = None) -> None:
        where = ".".join(p for p in (f"department {department!r}" if department else None, field) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.detail = message
        self.department = department
        self.field = field


class InvalidMailDay(MailError, InvalidRequest):
    """``day`` cannot be sent: it has not ended yet in Asia/Tokyo (``today`` is the current day)."""

    code = "INVALID_MAIL_DAY"

    def __init__(self, day: date, today: date) -> None:
        super().__init__(f"{day.isoformat()} has not ended yet (today is {today.isoformat()} in Asia/Tokyo)")
        self.day = day
        self.today = today


class UnknownDepartment(MailError, NotFound):
    code = "UNKNOWN_DEPARTMENT"

    def __init__(self, department: str) -> None:
        super().__init__(f"department {department!r} is not configured for the daily mail")
        self.department = department


class TransportError(MailError):
    """One attempt failed. ``code`` is stable: ``CONNECT_ERROR``, ``TIMEOUT``, ``SMTP_DISCONNECTED``,
    ``SMTP_451``, ``SMTP_550``, ``SMTP_AUTH``, ``SMTP_NO_STARTTLS``, ``TLS_VERIFY``, ``FILE_WRITE``…"""

    transient = True

    def __init__(self, message: str, *, code: str, smtp_code: int | None = None) -> None:
        super().__init__(message, code=code)
        self.smtp_code = smtp_code


class TransientTransportError(TransportError):
    transient = True


class PermanentTransportError(TransportError):
    transient = False
