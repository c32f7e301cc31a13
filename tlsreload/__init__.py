"""TLS certificates and keys reloaded without a restart — for the intake's listeners and the relay's push API.

Its module :mod:`tlsreload.alerting` is the other piece both zones' TLS listeners share: the event
loop that sends the TLS alert when a listener refuses a client certificate (CPython issue 98078).

A leaf package shared by both zones, like :mod:`malware`: it imports nothing of ours (an
import-linter contract), so neither side pulls the other in through it.

uvicorn builds one :class:`ssl.SSLContext` at start-up; ``SSLContext.load_cert_chain`` on that same
context replaces the certificate and key for every handshake after it. :class:`TlsReloader` watches
the two files (size, mtime, inode — a ``stat`` per check) and reloads them when they change, or at
once on :meth:`TlsReloader.check` with ``force`` (the services call it on SIGHUP).

A pair that does not load (a half-written file, a key of another certificate) is logged and the old
pair stays in service. That needs care: OpenSSL replaces the certificate *before* it finds that the
key does not match, which would leave the live context with the new certificate and the old key —
every handshake failing. So each file is read **once** into memory, the pair is first loaded into a
scratch context, and only a pair that loaded there is loaded into the live one, from the same bytes
(anonymous memory files: the key never touches a disk and cannot change in between).
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TlsReloader"]

_log = logging.getLogger(__name__)

_Stamp = tuple[int, int, int]


def _stamp(path: Path) -> _Stamp:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino)


@contextlib.contextmanager
def _in_memory(data: bytes) -> Iterator[str]:
    """A path naming ``data`` in an anonymous memory file (Linux ``memfd``), for ``load_cert_chain``."""
    fd = os.memfd_create("tls", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


class TlsReloader:
    """Watches one certificate/key pair and loads it into a live :class:`ssl.SSLContext`."""

    def __init__(self, context: ssl.SSLContext, cert: Path, key: Path, *, interval: float) -> None:
        self.context = context
        self.cert, self.key = cert, key
        self._interval = interval
        self._stamps = self._current()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0

    def _current(self) -> tuple[_Stamp, _Stamp] | None:
        try:
            return (_stamp(self.cert), _stamp(self.key))
        except OSError:
            return None

    def check(self, *, force: bool = False) -> bool:
        """Reload if the files changed (or ``force``); True when a new pair was loaded."""
        with self._lock:  # the periodic thread and a SIGHUP may meet here
            stamps = self._current()
            if stamps is None or (stamps == self._stamps and not force):
                return False
            try:
                cert, key = self.cert.read_bytes(), self.key.read_bytes()
                with _in_memory(cert) as cert_path, _in_memory(key) as key_path:
                    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)  # test first
                    self.context.load_cert_chain(cert_path, key_path)
            except (OSError, ssl.SSLError) as exc:
                # Remember the stamps: the same broken pair is not retried (and logged) every interval.
                self._stamps = stamps
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
