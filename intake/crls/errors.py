"""Refusals of ``PUT /api/v1/crls/{name}`` (docs/intake.md, "CRLs from the relay"). No personal data:
a CRL holds none, and messages name codes and the CRL's name only."""

from __future__ import annotations

from intake.errors import IntakeError, InvalidRequest

__all__ = ["CrlNotStored", "CrlRefused"]


class CrlRefused(InvalidRequest):
    """The request or the CRL is refused: ``status`` 400, 404, 413, 415 or 422 (a CRL refusal of
    :data:`handover.CRL_REFUSALS`, final for these bytes) and a stable ``code``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


class CrlNotStored(IntakeError):
    """The CRL could not be written durably (disk full, I/O error): 503, the relay tries again later."""

    code = "CRL_NOT_STORED"
    status = 503
    retry_after = 60
