"""Retry timing: pure functions of the policy, the attempt number and an injected random source.

No clock is read here: the outbox adds the delay to the worker's ``at``, and tenacity's sleep is
injected by the caller.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

from tenacity import RetryCallState

from intake.forwarding.routes import RetryPolicy

__all__ = ["in_call_wait", "next_attempt_delay"]


def _jittered(delay: float, jitter: float, rng: random.Random) -> float:
    # Subtractive jitter: spreads retries of many items that failed together (a business system
    # outage) without ever exceeding the cap or reaching zero.
    return delay * (1.0 - jitter * rng.random())


def next_attempt_delay(policy: RetryPolicy, failed_attempts: int, rng: random.Random) -> timedelta:
    """Delay before the next outbox attempt after ``failed_attempts`` (≥ 1) failures."""
    if failed_attempts < 1:
        raise ValueError("failed_attempts must be >= 1")  # programming error, not input
    exponent = min(failed_attempts - 1, 64)  # beyond this the cap applies anyway; avoids float overflow
    delay = min(policy.backoff_cap_seconds, policy.backoff_base_seconds * policy.backoff_factor**exponent)
    return timedelta(seconds=_jittered(delay, policy.jitter, rng))


def in_call_wait(policy: RetryPolicy, rng: random.Random) -> Callable[[RetryCallState], float]:
    """A tenacity ``wait``: seconds before in-call request k+1 after k failed requests."""

    def wait(state: RetryCallState) -> float:
        if state.attempt_number >= policy.in_call_attempts:
            # tenacity asks for the wait before it checks ``stop``; after the last request there is
            # no wait, and the random source is left untouched for the outbox schedule.
            return 0.0
        exponent = min(state.attempt_number - 1, 32)
        delay = min(policy.in_call_cap_seconds, policy.in_call_base_seconds * 2**exponent)
        return _jittered(delay, policy.jitter, rng)

    return wait
