"""A small fault-injecting TCP proxy for tests (toxiproxy's server is not installable here).

It listens on a free loopback port and forwards each connection to one upstream. It runs its own
asyncio loop in a background thread, so synchronous tests (httpx, subprocesses) can use it. Faults
are decided per *connection*, in accept order, which makes them deterministic:

- ``latency``: every new connection waits this long before the upstream is dialled (so the client's
  first reply comes at least this late);
- ``reset_next(n)``: the next ``n`` accepted connections are reset at once (RST, nothing forwarded);
- ``drop_reply_next(n, mode)``: the next ``n`` connections forward the request, and when the upstream
  starts answering — so it has received the whole request and acted on it ("the intake committed")
  — the proxy reads that answer and never sends it: it closes the client connection (``"close"``,
  FIN: httpx sees ``RemoteProtocolError``), resets it (``"reset"``, RST: ``ReadError``) or holds it
  silent (``"hang"``: the client's read timeout fires).

Everything else passes through byte for byte, half-closes included. :attr:`stats` counts what
happened. An HTTP client that keeps connections alive sends several requests over one connection:
use a fresh client (or ``Connection: close``) when a fault must hit one particular request.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

__all__ = ["DropMode", "FaultProxy", "ProxyStats"]

DropMode = Literal["close", "reset", "hang"]
_READ = 64 * 1024
_CONTROL_TIMEOUT = 10.0  # bound on start/stop hand-overs between the test thread and the loop


@dataclass(frozen=True)
class ProxyStats:
    """Counters since start (a snapshot)."""

    connections: int = 0  # accepted
    passed: int = 0  # forwarded both ways until one side closed
    resets: int = 0  # reset at accept
    dropped_replies: int = 0  # upstream answered, client never got it
    upstream_failures: int = 0  # the upstream could not be dialled (client reset)
    active: int = 0  # open right now


class FaultProxy:
    """``FaultProxy(host, port)``; ``start()`` it (or use ``with``), then point the client at ``.port``."""

    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self._port: int | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified whenever a counter moves
        self._latency = 0.0
        self._faults: deque[tuple[Literal["reset", "drop"], DropMode]] = deque()
        self._counts = {"connections": 0, "passed": 0, "resets": 0, "dropped_replies": 0,
                        "upstream_failures": 0, "active": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- control (from the test's thread) ---------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the proxy is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` of the proxy (for HTTP upstreams)."""
        return f"http://{self.listen_host}:{self.port}"

    @property
    def latency(self) -> float:
        with self._lock:
            return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency cannot be negative")
        with self._lock:
            self._latency = seconds

    def reset_next(self, n: int = 1) -> None:
        """Reset the next ``n`` connections at accept (queued after faults already pending)."""
        with self._lock:
            self._faults.extend([("reset", "close")] * n)

    def drop_reply_next(self, n: int = 1, mode: DropMode = "close") -> None:
        """Forward the next ``n`` connections' requests but lose the upstream's replies (see module doc)."""
        if mode not in ("close", "reset", "hang"):
            raise ValueError(f"unknown drop mode {mode!r}")
        with self._lock:
            self._faults.extend([("drop", mode)] * n)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latency = 0.0

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    @property
    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(**self._counts)

    def wait_for(self, predicate: Callable[[ProxyStats], bool], timeout: float = 5.0) -> ProxyStats:
        """Wait (bounded) until ``predicate(stats)`` holds; return those stats. Raises TimeoutError."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(ProxyStats(**self._counts)), timeout):
                raise TimeoutError(f"proxy state not reached within {timeout} s: {ProxyStats(**self._counts)}")
            return ProxyStats(**self._counts)

    def wait_idle(self, timeout: float = 5.0) -> ProxyStats:
        """Wait until no connection is open, so the counters are final.

        A client sees its reply or error before the proxy has finished closing that connection;
        call this before asserting on ``passed``.
        """
        return self.wait_for(lambda stats: stats.active == 0, timeout)

    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("the proxy is already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"faultproxy-{self.target_port}", daemon=True)
        self._thread.start()
        if not ready.wait(_CONTROL_TIMEOUT):
            raise RuntimeError("the proxy's event loop did not start")
        try:
            asyncio.run_coroutine_threadsafe(self._listen(), loop).result(_CONTROL_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close the listener and every open connection; stop the loop and its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_CONTROL_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_CONTROL_TIMEOUT)
            if not thread.is_alive():
                loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the loop's side ----------------------------------------------------------------------------

    def _count(self, name: str, delta: int = 1) -> None:
        with self._changed:
            self._counts[name] += delta
            self._changed.notify_all()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.listen_host, 0)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._changed:
            self._counts["connections"] += 1
            self._counts["active"] += 1
            fault = self._faults.popleft() if self._faults else None
            latency = self._latency
            self._changed.notify_all()
        try:
            await self._handle(reader, writer, fault, latency)
        except asyncio.CancelledError:
            _abort(writer)
        finally:
            self._count("active", -1)
            self._tasks.discard(task)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      fault: tuple[Literal["reset", "drop"], DropMode] | None, latency: float) -> None:
        if fault is not None and fault[0] == "reset":
            self._count("resets")
            _abort(writer)
            return
        if latency:
            await asyncio.sleep(latency)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            self._count("upstream_failures")
            _abort(writer)
            return
        try:
            if fault is None:
                await self._pass_through(reader, writer, up_reader, up_writer)
                self._count("passed")
            else:
                await self._drop_reply(reader, writer, up_reader, up_writer, fault[1])
        finally:
            await _close(up_writer)
            await _close(writer)

    async def _pass_through(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))

    async def _drop_reply(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter, mode: DropMode) -> None:
        request = asyncio.ensure_future(_pump(reader, up_writer))
        try:
            first = await up_reader.read(_READ)  # the upstream answers only after it took the request
            if first:
                self._count("dropped_replies")
            if mode == "hang":
                # Keep the client waiting, silent, until it gives up (or the proxy stops).
                up_writer.close()
                await request
                return
            if mode == "reset":
                _abort(writer)
        finally:
            request.cancel()
            await asyncio.gather(request, return_exceptions=True)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close. A reset on either side resets the destination too, so that
    the copy in the other direction ends at once instead of waiting for an idle timeout."""
    try:
        while data := await reader.read(_READ):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
    except OSError:  # ConnectionResetError, BrokenPipeError, …
        _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST: linger 0, then abort the transport."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _close(writer: asyncio.StreamWriter) -> None:
    if not writer.is_closing():
        writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
