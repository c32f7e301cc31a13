"""Readiness that is cheap and cached, for both zones' services: checks run on a schedule, ``/readyz``
reads the last result.

A probe that checked on every request would let anyone who can reach the port make the service open
connections (the relay: to the intake, the portal and clamd; the intake: to its database) and
re-read the CRLs (issue 16). :class:`ReadinessMonitor` runs ``check`` in one daemon thread every
``interval`` seconds (and once at start); :meth:`ReadinessMonitor.snapshot` returns the last result
and its time without touching anything. Before the first check finishes the service is not ready.

A leaf package like ``tlsreload``: it imports nothing of ours, so the relay (DMZ) and the intake (My
Number zone) share one implementation without importing each other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

__all__ = ["ReadinessMonitor"]


_log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, dict[str, Any]]]


class ReadinessMonitor:
    def __init__(self, check: Check, *, interval: float, clock: Callable[[], datetime]) -> None:
        self._check = check
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._result: tuple[bool, dict[str, Any]] = (False, {"status": "starting"})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first = threading.Event()
        self.runs = 0

    def run_once(self) -> None:
        try:
            ready, body = self._check()
        except Exception as exc:  # noqa: BLE001 - a failing check means "not ready", never a dead thread
            ready, body = False, {"status": "check failed", "error": type(exc).__name__}
        body = {**body, "checked_at": self._clock().isoformat(timespec="seconds")}
        with self._lock:
            self._result = (ready, body)
            self.runs += 1
        self._first.set()

    def snapshot(self, *, wait: float = 0.0) -> tuple[bool, dict[str, Any]]:
        """The last result; ``wait`` bounds how long to wait for the very first check."""
        if wait > 0:
            self._first.wait(wait)
        with self._lock:
            return self._result

    def start(self) -> None:
        """Start the schedule (idempotent: the first ``/readyz`` starts it when no server did)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name="readiness", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self._interval)
