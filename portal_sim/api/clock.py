"""Clocks for the simulated portal.

Time is an argument (house style 6): nothing in :mod:`portal_sim.api` calls ``datetime.now``
except :class:`SystemClock`. Tests pin time with :class:`FixedClock` and move it by hand, so
token expiry, the token bucket and "which applications have arrived by now" are deterministic.
:class:`AcceleratedClock` lets a demo watch a day's stream arrive in minutes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from portal_sim.api.errors import ConfigurationError
from portal_sim.datadir import JST

__all__ = ["JST", "AcceleratedClock", "Clock", "FixedClock", "SystemClock", "parse_clock", "require_aware"]



def require_aware(moment: datetime, what: str) -> datetime:
    """Refuse naive datetimes: a naive time in a Japanese system is a bug waiting for a server in UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigurationError(f"{what} must carry a UTC offset")
    return moment


@runtime_checkable
class Clock(Protocol):
    """Anything that says what time it is, always with an offset."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in Japan Standard Time (the portal's timestamps carry +09:00)."""

    def now(self) -> datetime:
        return datetime.now(JST)

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock:
    """A clock that moves only when told to. Safe to move from a test while a server thread reads it."""

    def __init__(self, moment: datetime) -> None:
        self._moment = require_aware(moment, "moment")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._moment

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (also backwards: callers must cope with a clock that is not monotonic)."""
        require_aware(moment, "moment")
        with self._lock:
            self._moment = moment

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` and return the new time."""
        with self._lock:
            self._moment = self._moment + delta
            return self._moment

    def __repr__(self) -> str:
        return f"FixedClock({self._moment.isoformat()})"


class AcceleratedClock:
    """Simulated time that starts at ``start`` and runs ``factor`` times faster than real time."""

    def __init__(self, start: datetime, factor: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        if not factor > 0:
            raise ConfigurationError("an accelerated clock needs a factor > 0")
        self._start = require_aware(start, "start")
        self._factor = factor
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(self._monotonic() - self._origin) * self._factor)

    def __repr__(self) -> str:
        return f"AcceleratedClock({self._start.isoformat()}, x{self._factor:g})"


def _parse_moment(text: str, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigurationError(f"{what}: not an ISO 8601 date-time") from exc
    return require_aware(moment, what)


def parse_clock(spec: str, *, default_start: datetime | None = None) -> Clock:
    """Build a clock from a command-line spec.

    ``real`` — the wall clock; ``fixed:<ISO>`` — frozen at that moment;
    ``accelerated:<factor>[@<ISO>]`` — starts at ``<ISO>`` (or ``default_start``, e.g. the first
    arrival in the data directory) and runs ``factor`` times faster than real time.
    """
    kind, _, rest = spec.partition(":")
    if kind == "real" and not rest:
        return SystemClock()
    if kind == "fixed" and rest:
        return FixedClock(_parse_moment(rest, "fixed clock"))
    if kind == "accelerated" and rest:
        factor_text, _, start_text = rest.partition("@")
        try:
            factor = float(factor_text)
        except ValueError as exc:
            raise ConfigurationError("accelerated clock: the factor is not a number") from exc
        if start_text:
            start = _parse_moment(start_text, "accelerated clock start")
        elif default_start is not None:
            start = require_aware(default_start, "default start")
        else:
            raise ConfigurationError("accelerated clock: no start given and none known")
        return AcceleratedClock(start, factor)
    raise ConfigurationError("clock must be 'real', 'fixed:<ISO>' or 'accelerated:<factor>[@<ISO>]'")
