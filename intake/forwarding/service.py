"""The forwarding outbox: one item per (application version, route), delivered at most once there."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from intake.forwarding.routes import Route
from intake.models import ApplicationVersion, ForwardItem

__all__ = ["enqueue_forwarding"]


def enqueue_forwarding(
    session: Session, version: ApplicationVersion, *, at: datetime, routes: Sequence[Route]
) -> list[ForwardItem]:
    """Queue ``version`` for every route serving its procedure (committed with the caller)."""
    items = []
    for route in routes:
        if route.serves(version.application.procedure_id):
            item = ForwardItem(version_id=version.id, route=route.name, next_attempt_at=at,
                               idempotency_key=f"{version.receipt_number}:{route.name}")
            session.add(item)
            items.append(item)
    return items
