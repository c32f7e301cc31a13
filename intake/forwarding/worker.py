"""The outbox worker: send due PENDING items, remember each step, schedule retries, give up cleanly.

One item at a time, in its own transaction:

1. *claim* — ``SELECT … WHERE state = 'pending' AND next_attempt_at <= at … FOR UPDATE SKIP LOCKED``
   (PostgreSQL). The row lock is held until the item's result is committed, so two workers never
   send the same item at the same time; a crashed worker's lock dies with its connection.
2. *build* — the payload, in a second, short session that writes the access-log rows and commits
   them before anything leaves the process (:mod:`intake.forwarding.payload`).
3. *send* — HTTP (tenacity for the short in-call retries) or an atomic file drop.
4. *record* — attempts + 1; DELIVERED with ``delivered_at``, or the next attempt at
   ``at + backoff`` (capped, exponential, jittered from ``rng``), or FAILED with ``last_error`` after
   ``max_attempts`` or a refusal. An event per step.

If the process dies between 3 and 4, the item is still PENDING and is sent again: the business system
sees the same ``Idempotency-Key`` (or the same file name) and keeps one record. Such a crash is not
counted as an attempt.

SQLite has no row locks: there, run one worker (a second one stays correct for the business system,
thanks to the key, but may send an item twice).

Decisions use only ``at``, ``rng`` and ``sleep`` passed in; nothing here reads the clock.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from intake.events import record_event
from intake.forwarding.backoff import next_attempt_delay
from intake.forwarding.errors import ForwardingError, PayloadError, RejectedError, SendError
from intake.forwarding.payload import ForwardingRuntime, build_payload
from intake.forwarding.routes import RetryPolicy, Route
from intake.forwarding.senders import HttpSender, drop_file
from intake.forwarding.service import EVENT_ATTEMPT_FAILED, EVENT_DELIVERED, EVENT_FAILED
from intake.jst import require_aware
from intake.models import ApplicationVersion, ForwardItem, ForwardState

__all__ = ["ItemOutcome", "WorkerResult", "run_once"]

_log = logging.getLogger(__name__)
_MAX_ERROR_CHARS = 500

Outcome = Literal["delivered", "rescheduled", "failed"]


@dataclass(frozen=True)
class ItemOutcome:
    """What one attempt did. No personal data: ids, route name, codes, times."""

    item_id: int
    route: str
    outcome: Outcome
    attempts: int
    next_attempt_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True)
class WorkerResult:
    outcomes: tuple[ItemOutcome, ...]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    @property
    def delivered(self) -> int:
        return self.count("delivered")

    @property
    def rescheduled(self) -> int:
        return self.count("rescheduled")

    @property
    def failed(self) -> int:
        return self.count("failed")

    def summary(self) -> str:
        return f"{self.delivered} delivered, {self.rescheduled} rescheduled, {self.failed} failed"


def run_once(
    session_factory: sessionmaker[Session], runtime: ForwardingRuntime, *, at: datetime,
    rng: random.Random | None = None, sleep: Callable[[float], None] = time.sleep, limit: int = 100,
) -> WorkerResult:
    """Process the items due at ``at`` (each at most once per run, at most ``limit``) and return what
    happened. ``rng`` jitters the retry schedule; ``sleep`` waits between in-call retries (tests
    inject both). Database errors propagate (the item's transaction rolls back and it stays due)."""
    require_aware(at)
    rng = rng if rng is not None else random.SystemRandom()
    routes = {r.name: r for r in runtime.routes}
    senders: dict[str, HttpSender] = {}
    outcomes: list[ItemOutcome] = []
    seen: set[int] = set()
    try:
        while len(outcomes) < limit:
            with session_factory() as locked:
                item = _claim_next(locked, at=at, exclude=seen)
                if item is None:
                    break
                seen.add(item.id)
                outcome = _process(session_factory, runtime, locked, item, routes.get(item.route), at=at,
                                   rng=rng, sleep=sleep, senders=senders)
                locked.commit()
            _log.info("forward item %s (route %s): %s after %s attempt(s)%s", outcome.item_id, outcome.route,
                      outcome.outcome, outcome.attempts, f" [{outcome.error}]" if outcome.error else "")
            outcomes.append(outcome)
    finally:
        for sender in senders.values():
            sender.close()
    return WorkerResult(tuple(outcomes))


def _claim_next(session: Session, *, at: datetime, exclude: set[int]) -> ForwardItem | None:
    query = (select(ForwardItem)
             .where(ForwardItem.state == ForwardState.PENDING, ForwardItem.next_attempt_at <= at)
             .order_by(ForwardItem.next_attempt_at, ForwardItem.id)
             .limit(1)
             # PostgreSQL: lock the row for this attempt and let other workers pass it by.
             # SQLite ignores the clause (one writer; see the module docstring).
             .with_for_update(skip_locked=True))
    if exclude:
        query = query.where(ForwardItem.id.not_in(exclude))
    return session.scalar(query)


def _process(
    session_factory: sessionmaker[Session], runtime: ForwardingRuntime, locked: Session, item: ForwardItem,
    route: Route | None, *, at: datetime, rng: random.Random, sleep: Callable[[float], None],
    senders: dict[str, HttpSender],
) -> ItemOutcome:
    detail: dict[str, Any] = {}
    try:
        if route is None:
            raise RejectedError(f"route {item.route!r} is not configured", code="ROUTE_UNKNOWN")
        with session_factory() as reader:
            payload = build_payload(reader, runtime, version_id=item.version_id,
                                    idempotency_key=item.idempotency_key, route=route, at=at)
            reader.commit()  # the access log of this read exists before the data leaves
        detail["my_numbers"] = payload.my_numbers
        if route.kind == "http":
            sender = senders.get(route.name)
            if sender is None:
                sender = senders[route.name] = HttpSender(route, rng=rng, sleep=sleep)
            detail["status"] = sender.send(payload, idempotency_key=item.idempotency_key)
        else:
            detail["file"] = "written" if drop_file(Path(route.target), payload) else "already_present"
    except (SendError, PayloadError) as exc:
        return _record_failure(locked, item, route, exc, at=at, rng=rng)
    item.attempts += 1
    item.state, item.delivered_at, item.last_error = ForwardState.DELIVERED, at, None
    _event(locked, EVENT_DELIVERED, item, at=at, attempts=item.attempts, **detail)
    return ItemOutcome(item.id, item.route, "delivered", item.attempts)


def _record_failure(
    session: Session, item: ForwardItem, route: Route | None, exc: ForwardingError, *, at: datetime,
    rng: random.Random,
) -> ItemOutcome:
    policy = route.retry if route is not None else RetryPolicy()
    transient = isinstance(exc, SendError) and exc.transient
    item.attempts += 1
    item.last_error = f"{exc.code}: {exc}"[:_MAX_ERROR_CHARS]
    if transient and item.attempts < policy.max_attempts:
        item.next_attempt_at = at + next_attempt_delay(policy, item.attempts, rng)
        _event(session, EVENT_ATTEMPT_FAILED, item, at=at, attempts=item.attempts, error=exc.code,
               next_attempt_at=item.next_attempt_at.isoformat())
        return ItemOutcome(item.id, item.route, "rescheduled", item.attempts, item.next_attempt_at, item.last_error)
    item.state = ForwardState.FAILED
    _event(session, EVENT_FAILED, item, at=at, attempts=item.attempts, error=exc.code,
           reason="refused" if not transient else "max_attempts")
    return ItemOutcome(item.id, item.route, "failed", item.attempts, None, item.last_error)


def _event(session: Session, kind: str, item: ForwardItem, *, at: datetime, **detail: Any) -> None:
    version = session.get(ApplicationVersion, item.version_id)
    record_event(session, kind, at=at, receipt_number=version.receipt_number if version else None,
                 first_receipt_number=version.application.first_receipt_number if version else None,
                 procedure_id=version.application.procedure_id if version else None,
                 item_id=item.id, route=item.route, **detail)
