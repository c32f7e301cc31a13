"""Exceptions of the forwarding package.

::

    IntakeError
    └── ForwardingError
        ├── RouteConfigError      the routes file is unreadable or wrong (route, field)
        ├── PayloadError          an item's payload cannot be built (missing version, key problem)
        ├── SendError             one attempt did not reach the business system (code, status_code)
        │   ├── TransientSendError    worth another attempt later (connect error, timeout, 5xx, 408/409/425/429)
        │   └── RejectedError         the business system refused the request (other 4xx, 3xx): retrying
        │                             the same bytes cannot help, the item fails at once

A manual retry of an item that is not FAILED is the shared :class:`intake.errors.IllegalStateChange`.

Messages and fields never hold personal data: they end up in ``forward_outbox.last_error``, events
and logs. Other libraries' errors (httpx, OSError, CryptoError) are translated at the boundary.
"""

from __future__ import annotations

from intake.errors import IntakeError

__all__ = [
    "ForwardingError",
    "PayloadError",
    "RejectedError",
    "RouteConfigError",
    "SendError",
    "TransientSendError",
]


class ForwardingError(IntakeError):
    code = "FORWARDING_ERROR"


class RouteConfigError(ForwardingError):
    """The routes configuration is unusable. ``route`` and ``field`` say where, when known."""

    code = "ROUTE_CONFIG"

    def __init__(self, message: str, *, route: str | None = None, field: str | None = None) -> None:
        where = ".".join(p for p in (f"route {route!r}" if route else None, field) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.detail = message
        self.route = route
        self.field = field


class PayloadError(ForwardingError):
    code = "PAYLOAD_ERROR"


class SendError(ForwardingError):
    """One attempt failed. ``code`` is stable (``HTTP_503``, ``CONNECT_ERROR``, ``TIMEOUT``, ``FILE_WRITE``…)."""

    transient = True

    def __init__(self, message: str, *, code: str, status_code: int | None = None) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code


class TransientSendError(SendError):
    transient = True


class RejectedError(SendError):
    transient = False

