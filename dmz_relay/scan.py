"""Malware scanning of attachments through ClamAV's ``clamd``, over its Unix socket.

Why INSTREAM: the relay's promise is that plaintext packages exist only in process memory between
read and receipt (pitfalls.md, "The relay's disk": deleting is not erasing). clamd's ``SCAN``/
``CONTSCAN`` commands take a *path*, so they would need the attachment written to a file first.
``INSTREAM`` sends the bytes over the socket instead: ``zINSTREAM\\0``, then chunks each prefixed with
a 4-byte big-endian length, then a zero-length chunk; clamd answers ``stream: OK``,
``stream: <signature> FOUND`` or ``<message> ERROR`` (for example ``INSTREAM size limit exceeded``
when the stream is longer than clamd's ``StreamMaxLength``). The ``z`` prefix makes every command and
reply NUL-terminated.

Caveat found by experiment (clamd 1.4.6, Debian bookworm): clamd itself spools an INSTREAM to a
temporary file in its ``TemporaryDirectory`` while it receives it, and unlinks it after the scan. So
INSTREAM keeps plaintext off the *relay's* disk, not off clamd's: in production clamd's
``TemporaryDirectory`` must be a RAM-backed tmpfs (with no swap, or encrypted swap), or clamd must run
where that disk is not the relay's.

No temporary files here, no file content in logs or exceptions, and a timeout on every socket
operation (connect, each send, each receive). Every scan opens its own connection, so one
:class:`ClamdScanner` can be shared between threads. The calls block: async callers run them in a
worker thread.

:class:`NullScanner` reports every file clean and warns loudly; it exists only for development
(the settings class refuses it elsewhere).
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "ClamdScanner",
    "NullScanner",
    "ScanLimitExceeded",
    "ScanVerdict",
    "Scanner",
    "ScannerUnavailable",
]

logger = logging.getLogger(__name__)

# clamd's answers are one short line; anything longer is not clamd speaking.
_MAX_REPLY = 4096
_MAX_CHUNK = 2**32 - 1  # the length prefix is an unsigned 32-bit integer
_TERMINATOR = struct.pack(">I", 0)


@dataclass(frozen=True)
class ScanVerdict:
    """What clamd said about one file. ``signature`` is the matched signature name when infected."""

    infected: bool
    signature: str | None

    def __post_init__(self) -> None:
        if self.infected != (self.signature is not None):
            raise ValueError("an infected verdict carries a signature name, a clean one none")


class ScannerUnavailable(Exception):
    """The file could not be scanned: clamd is not answering, timed out, spoke garbage or said ERROR.

    Never treat this as clean. ``reason`` is for logs and tombstones (it never holds file content,
    nor the file's name — names can carry personal data; ``name`` is kept apart for the caller to
    decide). ``retryable`` is False when trying again with the same bytes cannot help.
    """

    def __init__(self, reason: str, *, name: str | None = None, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.name = name
        self.retryable = retryable


class ScanLimitExceeded(ScannerUnavailable):
    """The file is longer than the stream limit (ours, ``max_stream``, or clamd's ``StreamMaxLength``).

    A subclass of :class:`ScannerUnavailable` so that callers catching only that stay fail-closed;
    not retryable. ``size`` is the file's length; ``limit`` is known when it was our own cap.
    """

    def __init__(self, reason: str, *, name: str | None = None, size: int, limit: int | None) -> None:
        super().__init__(reason, name=name, retryable=False)
        self.size = size
        self.limit = limit


class Scanner(Protocol):
    """The relay's view of a malware scanner."""

    def scan(self, name: str, data: bytes) -> ScanVerdict:
        """Scan one file held in memory; raise :class:`ScannerUnavailable` when it cannot be scanned."""
        ...

    def ping(self) -> bool:
        """True when the scanner answers (for ``/readyz``); never raises."""
        ...


class ClamdScanner:
    """Scans with ``clamd`` over its Unix socket (``LocalSocket``), by INSTREAM.

    ``timeout`` applies to each socket operation (connect, each send, each receive — including the
    wait for the verdict, which is when clamd scans). ``chunk`` is the INSTREAM chunk size.
    ``max_stream`` refuses longer files before connecting; set it to clamd's ``StreamMaxLength`` to
    fail fast instead of streaming up to the limit.
    """

    def __init__(
        self,
        socket_path: Path | str,
        *,
        timeout: float = 30.0,
        chunk: int = 64 * 1024,
        max_stream: int | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if not 0 < chunk <= _MAX_CHUNK:
            raise ValueError(f"chunk must be between 1 and {_MAX_CHUNK}")
        if max_stream is not None and max_stream < 0:
            raise ValueError("max_stream must not be negative")
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self.chunk = chunk
        self.max_stream = max_stream

    def __repr__(self) -> str:
        return f"ClamdScanner({str(self.socket_path)!r}, timeout={self.timeout}, chunk={self.chunk})"

    # -- the relay's interface -------------------------------------------------------------------

    def scan(self, name: str, data: bytes | bytearray | memoryview) -> ScanVerdict:
        """Stream ``data`` to clamd and return its verdict. ``name`` is only attached to errors.

        No copy of ``data`` is made, and every view of it is released before returning (or raising),
        so the caller can zero or resize a ``bytearray`` afterwards.
        """
        with memoryview(data) as raw, raw.cast("B") as view:
            return self._scan_view(name, view)

    def _scan_view(self, name: str, view: memoryview) -> ScanVerdict:
        size = view.nbytes
        if self.max_stream is not None and size > self.max_stream:
            raise ScanLimitExceeded(f"file of {size} bytes exceeds the scan limit of {self.max_stream} bytes",
                                    name=name, size=size, limit=self.max_stream)
        started = time.monotonic()
        with self._connect(name) as sock:
            self._send(sock, b"zINSTREAM\0", name)
            try:
                for offset in range(0, size, self.chunk):
                    with view[offset:offset + self.chunk] as piece:
                        sock.sendall(struct.pack(">I", piece.nbytes))
                        sock.sendall(piece)
                sock.sendall(_TERMINATOR)
            except (BrokenPipeError, ConnectionResetError) as exc:
                # clamd stops reading and closes when the stream exceeds StreamMaxLength, after
                # writing its ERROR line: read that line, which says why.
                try:
                    reply = self._receive(sock, name)
                except ScannerUnavailable:
                    reply = ""
                if reply.endswith(" ERROR"):
                    self._parse(reply, name, size)  # raises, with clamd's reason
                # Whatever else it said, a verdict on a truncated stream is no verdict.
                raise ScannerUnavailable(f"clamd closed the connection during INSTREAM ({_describe(exc)})",
                                         name=name) from exc
            except OSError as exc:
                raise ScannerUnavailable(f"sending to clamd failed ({_describe(exc)})", name=name) from exc
            reply = self._receive(sock, name)
        verdict = self._parse(reply, name, size)
        logger.debug("clamd scan of %d bytes in %.3f s: %s", size, time.monotonic() - started,
                     verdict.signature or "clean")
        return verdict

    def ping(self) -> bool:
        """True when clamd answers ``PONG`` to ``zPING``."""
        try:
            return self._command(b"PING") == "PONG"
        except ScannerUnavailable as exc:
            logger.debug("clamd ping failed: %s", exc.reason)
            return False

    def version(self) -> str:
        """clamd's ``VERSION`` line (engine, and database version when it has official ones)."""
        return self._command(b"VERSION")

    # -- protocol ---------------------------------------------------------------------------------

    def _command(self, command: bytes) -> str:
        with self._connect(None) as sock:
            self._send(sock, b"z" + command + b"\0", None)
            return self._receive(sock, None)

    def _connect(self, name: str | None) -> socket.socket:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError as exc:  # out of file descriptors, say
            raise ScannerUnavailable(f"cannot open a socket ({_describe(exc)})", name=name) from exc
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.socket_path))
        except OSError as exc:
            sock.close()
            raise ScannerUnavailable(f"cannot connect to clamd at {self.socket_path} ({_describe(exc)})",
                                     name=name) from exc
        return sock

    def _send(self, sock: socket.socket, payload: bytes, name: str | None) -> None:
        try:
            sock.sendall(payload)
        except OSError as exc:
            raise ScannerUnavailable(f"sending to clamd failed ({_describe(exc)})", name=name) from exc

    def _receive(self, sock: socket.socket, name: str | None) -> str:
        """Read one NUL-terminated reply (the ``z`` form), bounded in length and time."""
        buffer = bytearray()
        while True:
            try:
                piece = sock.recv(_MAX_REPLY)
            except OSError as exc:
                raise ScannerUnavailable(f"no reply from clamd ({_describe(exc)})", name=name) from exc
            if not piece:
                if not buffer:
                    raise ScannerUnavailable("clamd closed the connection without replying", name=name)
                break  # a reply without its NUL: accept what came, _parse judges it
            buffer += piece
            end = buffer.find(b"\0")
            if end >= 0:
                del buffer[end:]
                break
            if len(buffer) > _MAX_REPLY:
                raise ScannerUnavailable(f"protocol error: clamd reply longer than {_MAX_REPLY} bytes", name=name)
        return buffer.decode("utf-8", errors="replace").strip()

    @staticmethod
    def _parse(reply: str, name: str, size: int) -> ScanVerdict:
        if reply == "stream: OK":
            return ScanVerdict(infected=False, signature=None)
        if reply.startswith("stream: ") and reply.endswith(" FOUND"):
            signature = reply[len("stream: "):-len(" FOUND")].strip()
            if signature:
                return ScanVerdict(infected=True, signature=signature)
        elif reply.endswith(" ERROR"):
            message = reply[:-len(" ERROR")].strip()
            if "size limit exceeded" in message.lower():
                raise ScanLimitExceeded(f"clamd: {message} ({size} bytes)", name=name, size=size, limit=None)
            raise ScannerUnavailable(f"clamd: {message}", name=name)
        raise ScannerUnavailable(f"protocol error: unexpected reply from clamd {reply[:200]!r}", name=name)


def _describe(exc: OSError) -> str:
    # OSError's own text may carry a path (ours, the socket's): fine. Never any payload.
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc.strerror or exc}"


class NullScanner:
    """Reports every file clean. Development only: malware scanning is OFF, and it says so, loudly.

    The warning is logged once, when the scanner is created (at start-up), not once per file.
    """

    def __init__(self) -> None:
        logger.warning("malware scanning is OFF (NullScanner): every file is reported clean. "
                       "Development only — configure a clamd socket for any real use.")

    def scan(self, name: str, data: bytes | bytearray | memoryview) -> ScanVerdict:
        return ScanVerdict(infected=False, signature=None)

    def ping(self) -> bool:
        return True
