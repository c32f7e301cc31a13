"""Exception tree of :mod:`portal_sim.api`.

Two branches: :class:`ConfigurationError` for a server that cannot start (bad settings, unusable
data directory), and :class:`ApiProblem` for everything answered to a client. Each problem carries
its HTTP status, a stable machine-readable ``code``, an English ``message`` and typed fields
(``retry_after``, ``from_``/``to``). Messages never contain personal data: they name receipt-number
*formats*, fields and rules, never a comment, a name or a package's content — a client's log line
must be safe to keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portal_sim.errors import PortalSimError

__all__ = [
    "ApiProblem",
    "ConfigurationError",
    "IdempotencyKeyReused",
    "IllegalTransition",
    "InvalidCursor",
    "InvalidReceiptNumber",
    "NotFound",
    "PackageUnavailable",
    "PayloadTooLarge",
    "PortalApiError",
    "RateLimited",
    "ServiceUnavailable",
    "StatusNotSettable",
    "Unauthenticated",
]


class PortalApiError(PortalSimError):
    """Base class of every error raised by :mod:`portal_sim.api`."""


class ConfigurationError(PortalApiError):
    """Settings or the data directory cannot be used; the server must not start."""


class ApiProblem(PortalApiError):
    """An error answered to the client as ``{"error": {"code", "message", ...}}``."""

    status_code: int = 400
    code: str = "BAD_REQUEST"

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{self.code}: {message}")
        self.message = message
        self.details = dict(details or {})

    def headers(self) -> dict[str, str]:
        """Extra response headers (``Retry-After``, ``WWW-Authenticate``)."""
        return {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class Unauthenticated(ApiProblem):
    """No, an unknown or an expired token, or wrong credentials at login (RFC 6750 §3.1)."""

    status_code = 401

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)

    def headers(self) -> dict[str, str]:
        if self.code == "INVALID_CREDENTIALS":
            return {"WWW-Authenticate": 'Bearer realm="portal-sim"'}
        challenge = f'Bearer realm="portal-sim", error="invalid_token", error_description="{self.code}"'
        return {"WWW-Authenticate": challenge}


class NotFound(ApiProblem):
    """The resource does not exist (or, for an application, has not arrived yet)."""

    status_code = 404
    code = "NOT_FOUND"


class PackageUnavailable(ApiProblem):
    """The package bytes differ from what the list announced: the portal's own data is damaged."""

    status_code = 500
    code = "PACKAGE_UNAVAILABLE"


class InvalidReceiptNumber(ApiProblem):
    """A 受付番号 that cannot be one: refused before it comes near a file name."""

    status_code = 400
    code = "INVALID_RECEIPT_NUMBER"


class InvalidCursor(ApiProblem):
    """A cursor this server did not issue, or one issued by a different list."""

    status_code = 400
    code = "INVALID_CURSOR"


class IllegalTransition(ApiProblem):
    """The requested status cannot follow the current one (e.g. anything after 完了)."""

    status_code = 409
    code = "ILLEGAL_TRANSITION"

    def __init__(self, from_: str, to: str) -> None:
        self.from_ = from_
        self.to = to
        super().__init__(f"status {to} cannot follow {from_}", details={"from": from_, "to": to})


class StatusNotSettable(ApiProblem):
    """The municipality may not set this status at all (到達 is the portal's own)."""

    status_code = 422
    code = "STATUS_NOT_SETTABLE"

    def __init__(self, status: str) -> None:
        self.status = status
        super().__init__(f"status {status} is set by the portal, not by the municipality",
                         details={"status": status})


class IdempotencyKeyReused(ApiProblem):
    """The same Idempotency-Key came with a different request body."""

    status_code = 422
    code = "IDEMPOTENCY_KEY_REUSED"


class PayloadTooLarge(ApiProblem):
    """The request body exceeds the configured limit."""

    status_code = 413
    code = "PAYLOAD_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"request body larger than {limit} bytes", details={"limit": limit})


class _RetryLater(ApiProblem):
    def __init__(self, message: str, *, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(message, details={"retry_after": self.retry_after})

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RateLimited(_RetryLater):
    """The token's request bucket is empty; ``retry_after`` seconds until one request is allowed."""

    status_code = 429
    code = "RATE_LIMITED"


class ServiceUnavailable(_RetryLater):
    """The portal is (deliberately, by fault injection) unavailable for a moment."""

    status_code = 503
    code = "SERVICE_UNAVAILABLE"
