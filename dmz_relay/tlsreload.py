"""TLS certificates and keys reloaded without a restart.

uvicorn builds one (the push API's) :class:`ssl.SSLContext` at start-up; ``SSLContext.load_cert_chain`` on that same
context replaces the certificate and key for every handshake after it. :class:`TlsReloader` watches
the two files (size, mtime, inode — a ``stat`` per check) and reloads them when they change; a pair
that does not load (a half-written file, a key that does not match) is logged and the old pair stays.
Replace the files atomically (write both, then rename), or send the process SIGHUP to reload at once.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from pathlib import Path

__all__ = ["TlsReloader"]

_log = logging.getLogger(__name__)


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class TlsReloader:
    def __init__(self, context: ssl.SSLContext, cert: Path, key: Path, *, interval: float) -> None:
        self.context = context
        self.cert, self.key = cert, key
        self._interval = interval
        self._stamps = self._current()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0

    def _current(self) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
        try:
            return (_stamp(self.cert), _stamp(self.key))
        except OSError:
            return None

    def check(self, *, force: bool = False) -> bool:
        """Reload if the files changed (or ``force``); True when a new pair was loaded."""
        stamps = self._current()
        if stamps is None or (stamps == self._stamps and not force):
            return False
        try:
            self.context.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as exc:
            _log.error("TLS certificate not reloaded, the previous one stays (%s)", type(exc).__name__)
            return False
        self._stamps = stamps
        self.reloads += 1
        _log.info("TLS certificate reloaded")
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tls-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()
