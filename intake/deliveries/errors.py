"""Refusals of ``POST /api/v1/deliveries``, each with the HTTP status of the delivery contract
(docs/intake.md, "Deliveries"). Messages hold no personal data."""

from __future__ import annotations

from intake.errors import InvalidRequest

__all__ = ["DeliveryRefused"]


class DeliveryRefused(InvalidRequest):
    """The request is not a delivery the intake can store: ``status`` (400, 409, 413, 415, 422) and a
    stable ``code``; ``retry_after`` seconds for 409 (the same key is being stored right now)."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.retry_after = retry_after
