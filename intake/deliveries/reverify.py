"""Re-verification of deliveries whose revocation status was unknown (INDETERMINATE / TRY_LATER).

Called when the revocation data in use changed (:class:`signature.revocation.RevocationStoreStatus`
``digest``) and by ``python -m intake reverify``. (Being built: see the lead's branch.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from intake.runtime import Runtime

__all__ = ["ReverifySummary", "reverify_pending"]


@dataclass(frozen=True)
class ReverifySummary:
    examined: int = 0
    passed: int = 0
    still_pending: int = 0
    failed: int = 0


def reverify_pending(session_factory: sessionmaker[Session], runtime: Runtime, *, at: datetime) -> ReverifySummary:
    """Verify again, from the stored bytes, every delivery still waiting for revocation data that the
    current CRL set has not judged yet. Each delivery in its own transaction."""
    return ReverifySummary()
