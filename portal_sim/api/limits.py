"""Rate limiting (token bucket per access token) and fault injection (deliberate 503s).

Both take time from the injected clock and randomness from a seeded RNG, so a test can empty a
bucket, see the 429 with its ``Retry-After``, move the clock and see it recover, without sleeping.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from portal_sim.api.clock import Clock
from portal_sim.api.errors import RateLimited, ServiceUnavailable
from portal_sim.api.settings import FaultInjection, RateLimit

__all__ = ["FaultInjector", "RateLimiter", "TokenBucket"]


@dataclass
class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``rate`` per second; one request takes one."""

    rate: float
    capacity: float
    tokens: float
    updated: datetime

    def take(self, now: datetime) -> float:
        """Take a token and return 0, or return the seconds until one will be there (taking nothing)."""
        elapsed = max(0.0, (now - self.updated).total_seconds())  # a clock set backwards refills nothing
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = max(now, self.updated)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per session key; raises :class:`RateLimited` with a whole-second ``Retry-After``."""

    def __init__(self, limit: RateLimit, clock: Clock) -> None:
        self._limit = limit
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    MAX_BUCKETS = 10_000

    def check(self, key: str) -> None:
        now = self._clock.now()
        with self._lock:
            if len(self._buckets) > self.MAX_BUCKETS:
                self._forget_full_buckets(now)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = TokenBucket(self._limit.per_second, self._limit.burst, self._limit.burst, now)
                self._buckets[key] = bucket
            wait = bucket.take(now)
        if wait > 0:
            raise RateLimited("too many requests for this token", retry_after=math.ceil(wait))

    def _forget_full_buckets(self, now: datetime) -> None:
        """Drop buckets idle long enough to be full again: a full bucket and a new one are the same,
        so forgetting them changes no answer and keeps memory bounded as tokens come and go."""
        refill = timedelta(seconds=self._limit.burst / self._limit.per_second)
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < refill}


class FaultInjector:
    """Decides, per request, whether to answer 503 instead; deterministic for given settings."""

    def __init__(self, faults: FaultInjection) -> None:
        self._faults = faults
        self._rng = random.Random(faults.seed)  # noqa: S311 - a repeatable fault pattern, not a secret
        self._count = 0
        self._lock = threading.Lock()

    def check(self) -> None:
        if not self._faults.enabled:
            return
        with self._lock:
            self._count += 1
            every = self._faults.every is not None and self._count % self._faults.every == 0
            # Draw on every request, so the pattern of probabilistic failures does not depend on `every`.
            drawn = self._faults.probability > 0 and self._rng.random() < self._faults.probability
        if every or drawn:
            raise ServiceUnavailable("the portal is temporarily unavailable (injected fault)",
                                     retry_after=self._faults.retry_after)
