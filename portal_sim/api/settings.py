"""Settings of the simulated portal API: one frozen object handed to :func:`create_app`.

No environment variables are read: the simulator is started by tests (which build settings in code)
and by ``python -m portal_sim serve`` (which builds them from its arguments). The API key and the
municipality code come from the data directory's manifest unless overridden here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from pydantic import SecretStr

from portal_sim.api.clock import Clock, SystemClock
from portal_sim.api.errors import ConfigurationError

__all__ = ["MAX_PAGE_SIZE", "ApiSettings", "FaultInjection", "RateLimit"]

_MUNICIPALITY_RE = re.compile(r"[0-9]{6}")
#: The largest page a client may ask for (part of the API's contract, so not a setting).
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class RateLimit:
    """A token bucket per access token: ``burst`` requests at once, refilled at ``per_second``."""

    per_second: float = 10.0
    burst: int = 20

    def __post_init__(self) -> None:
        if not self.per_second > 0:
            raise ConfigurationError("rate limit: per_second must be > 0")
        if self.burst < 1:
            raise ConfigurationError("rate limit: burst must be >= 1")


@dataclass(frozen=True)
class FaultInjection:
    """Deliberate 503 answers, so a client's retry logic meets the failures it must survive.

    ``every``: every N-th API request fails (counted over all ``/api/v1`` requests, login included).
    ``probability``: each request fails with this probability, drawn from ``random.Random(seed)``, so
    a run is repeatable. Both may be set; either one failing is enough. Off by default.
    """

    every: int | None = None
    probability: float = 0.0
    seed: int = 0
    retry_after: int = 1

    def __post_init__(self) -> None:
        if self.every is not None and self.every < 1:
            raise ConfigurationError("fault injection: every must be >= 1")
        if not 0.0 <= self.probability <= 1.0:
            raise ConfigurationError("fault injection: probability must be within [0, 1]")
        if self.retry_after < 1:
            raise ConfigurationError("fault injection: retry_after must be >= 1 second")

    @property
    def enabled(self) -> bool:
        return self.every is not None or self.probability > 0


@dataclass(frozen=True)
class ApiSettings:
    """Everything :func:`portal_sim.api.create_app` needs besides the data directory.

    ``clock`` is the portal's calendar: which applications have arrived, when a status was set.
    ``session_clock`` times tokens and the rate limit; it defaults to ``clock`` (tests pin both at
    once) and ``serve`` sets it to the wall clock when the calendar is accelerated, so a token still
    lasts an hour of real time.
    """

    clock: Clock = field(default_factory=SystemClock)
    session_clock: Clock | None = None
    api_key: SecretStr | None = None  # None: the manifest's
    municipality_code: str | None = None  # None: the manifest's
    token_ttl: timedelta = timedelta(hours=1)
    rate_limit: RateLimit | None = field(default_factory=RateLimit)  # None: unlimited
    faults: FaultInjection = field(default_factory=FaultInjection)
    max_body_bytes: int = 16 * 1024
    default_page_size: int = 50

    def __post_init__(self) -> None:
        if self.token_ttl <= timedelta(0):
            raise ConfigurationError("token_ttl must be positive")
        if self.max_body_bytes < 256:
            raise ConfigurationError("max_body_bytes must be >= 256")
        if not 1 <= self.default_page_size <= MAX_PAGE_SIZE:
            raise ConfigurationError(f"default_page_size must be within 1..{MAX_PAGE_SIZE}")
        if self.municipality_code is not None and not _MUNICIPALITY_RE.fullmatch(self.municipality_code):
            raise ConfigurationError("municipality_code must be six digits")
        if self.api_key is not None and len(self.api_key.get_secret_value()) < 16:
            raise ConfigurationError("api_key must be at least 16 characters")

    @property
    def timer(self) -> Clock:
        """The clock for tokens and rate limits."""
        return self.session_clock if self.session_clock is not None else self.clock
