"""The CRL watcher of one intake process: re-scan the CRL sources, and re-verify when they changed.

Every intake process holds its own :class:`~signature.revocation.RevocationStore` (API workers, the
staff UI, the forwarding worker). A CRL the relay delivered to one API worker, or one an operator
dropped into a CRL directory, must reach all of them without a restart: each long-running process
runs one :class:`CrlWatcher`, which calls :meth:`RevocationStore.refresh` every
``crl_watch_interval`` seconds (a ``stat`` per file; only a changed file is read).

When the usable CRL set changed — the store's ``status().digest`` differs from the last one seen —
and once at start-up, the watcher asks :func:`intake.deliveries.reverify.reverify_pending` to verify
again the deliveries still waiting for revocation data. That runs in its own thread (off every
request path), never twice at once in one process, and again after it finished if the set changed
meanwhile. Time comes from ``runtime.clock``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from intake.deliveries import reverify
from intake.runtime import Runtime
from signature.errors import SignatureError

__all__ = ["CrlWatcher", "WatcherSnapshot", "watcher_of"]

_log = logging.getLogger(__name__)

#: One re-verification at a time in this process, whichever watcher asks.
_REVERIFY_LOCK = threading.Lock()

@dataclass(frozen=True)
class WatcherSnapshot:
    """What the watcher did last (for readiness and metrics; no personal data)."""

    running: bool
    #: the last refresh that read every source (None: none yet)
    last_refresh_at: datetime | None
    #: why the last refresh failed (None: it did not)
    refresh_error: str | None
    #: the CRL set (``status().digest``) the last re-verification was asked for
    reverified_digest: str | None
    last_reverify_at: datetime | None
    reverify_runs: int
    reverify_error: str | None


class CrlWatcher:
    """Re-scans ``runtime``'s CRL sources on a schedule and triggers re-verification on change."""

    def __init__(self, runtime: Runtime, *, interval: float | None = None) -> None:
        self.runtime = runtime
        self.interval = interval if interval is not None else runtime.settings.crl_watch_interval
        self._sessions: sessionmaker[Session] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._due = threading.Event()  # a re-verification is wanted
        self._threads: list[threading.Thread] = []
        self._last_refresh_at: datetime | None = None
        self._refresh_error: str | None = None
        store = runtime.trust.revocation
        self._seen_digest = store.status().digest if store is not None else ""
        self._reverified_digest: str | None = None
        self._last_reverify_at: datetime | None = None
        self._reverify_runs = 0
        self._reverify_error: str | None = None
        self._reverify_idle = threading.Condition(self._lock)

    # --- one step each ------------------------------------------------------------------------

    def refresh_once(self) -> bool:
        """Re-scan the sources; True (and a re-verification scheduled) when the CRL set changed."""
        store = self.runtime.trust.revocation
        at = self.runtime.clock()
        error: str | None = None
        if store is not None:
            try:
                store.refresh(at=at)
            except SignatureError as exc:
                error = str(exc)
                _log.error("CRL sources cannot be read (the CRLs loaded before stay in use): %s", exc)
        digest = store.status().digest if store is not None else ""
        with self._lock:
            if error is None:
                self._last_refresh_at = at
            self._refresh_error = error
            changed = digest != self._seen_digest
            self._seen_digest = digest
        if changed:
            _log.info("the CRL set changed (generation %s): re-verifying deliveries waiting for revocation data",
                      store.generation if store is not None else 0)
            self._due.set()
        return changed

    def reverify_once(self) -> None:
        """Ask for re-verification with the current CRL set (never twice at once in this process)."""
        if self._sessions is None:
            raise RuntimeError("start(session_factory) first")
        store = self.runtime.trust.revocation
        with _REVERIFY_LOCK:
            digest = store.status().digest if store is not None else ""
            at = self.runtime.clock()
            error: str | None = None
            try:
                # Looked up at each call: the one implementation, never a copy of it.
                summary = reverify.reverify_pending(self._sessions, self.runtime, at=at)
                # Counts only: the JSON log keeps token values and would drop the summary object whole.
                _log.info("re-verification with CRL set %s: examined=%d passed=%d still_pending=%d failed=%d "
                          "errors=%d", digest[:16] or "-", summary.examined, summary.passed, summary.still_pending,
                          summary.failed, summary.errors)
            except Exception as exc:  # noqa: BLE001 - a failed pass is reported and tried at the next change
                error = type(exc).__name__
                _log.error("re-verification failed (%s); it runs again when the CRL set changes", error)
            with self._lock:
                self._reverified_digest = digest
                self._last_reverify_at = at
                self._reverify_runs += 1
                self._reverify_error = error
                self._reverify_idle.notify_all()

    def poke(self) -> None:
        """Re-scan now instead of at the next interval (after this process installed a CRL)."""
        self._wake.set()

    # --- the schedule ---------------------------------------------------------------------------

    def start(self, session_factory: sessionmaker[Session]) -> CrlWatcher:
        """Start the refresh loop and the re-verification thread (idempotent)."""
        with self._lock:
            if self._threads:
                return self
            self._sessions = session_factory
            self._due.set()  # once at start-up
            self._threads = [threading.Thread(target=self._refresh_loop, name="crl-watch", daemon=True),
                             threading.Thread(target=self._reverify_loop, name="crl-reverify", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._due.set()
        for thread in self._threads:
            thread.join(timeout)

    def wait_reverified(self, runs: int, timeout: float) -> bool:
        """Wait (bounded) until at least ``runs`` re-verifications finished; for tests and operators."""
        with self._lock:
            return self._reverify_idle.wait_for(lambda: self._reverify_runs >= runs, timeout)

    def snapshot(self) -> WatcherSnapshot:
        with self._lock:
            return WatcherSnapshot(
                running=bool(self._threads) and not self._stop.is_set(), last_refresh_at=self._last_refresh_at,
                refresh_error=self._refresh_error, reverified_digest=self._reverified_digest,
                last_reverify_at=self._last_reverify_at, reverify_runs=self._reverify_runs,
                reverify_error=self._reverify_error)

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh_once()
            except Exception as exc:  # noqa: BLE001 - the loop must survive; the error is reported
                _log.error("CRL watcher round failed (%s)", type(exc).__name__)
            self._wake.wait(self.interval)
            self._wake.clear()

    def _reverify_loop(self) -> None:
        while True:
            self._due.wait()
            if self._stop.is_set():
                return
            self._due.clear()
            self.reverify_once()


_watchers: dict[int, tuple[object, CrlWatcher]] = {}
_watchers_lock = threading.Lock()


def watcher_of(runtime: Runtime) -> CrlWatcher:
    """This process's watcher for ``runtime``'s trust configuration (made on first use, not started)."""
    trust = runtime.trust
    with _watchers_lock:
        hit = _watchers.get(id(trust))
        if hit is None or hit[0] is not trust:  # the stored reference keeps the id from being reused
            hit = (trust, CrlWatcher(runtime))
            _watchers[id(trust)] = hit
        return hit[1]
