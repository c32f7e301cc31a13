"""Real HTTP servers for tests: uvicorn in a background thread on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

__all__ = ["descendants", "free_port", "free_port_run", "serve_in_thread", "stop_process", "stop_readiness",
           "wait_answering"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_run(count: int) -> int:
    """The first of ``count`` consecutive ports that can all be bound now (``intake serve --workers N
    --ops-port P`` listens on P … P+N-1). Searched below the kernel's ephemeral range: a port found
    free inside it (as :func:`free_port` finds one) can be the next outbound connection's local port,
    so the port after it may already be taken, or taken before the server binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    # Each pytest-xdist worker searches its own stretch, so two workers do not find the same run at once.
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    for base in range(low - count - 2000 * worker, 1024, -count):
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + count):
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no {count} consecutive free ports below {low}")


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (from /proc)."""
    children: dict[int, set[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), set()).add(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def wait_answering(proc: subprocess.Popen[bytes], log: Path, answers: Callable[[], bool], what: str) -> None:
    """Until ``answers()`` is true (an ``OSError`` counts as not yet), or fail the test at once when
    ``proc`` exits (with the end of its ``log``) or after 600 tries 50 ms apart."""
    for _ in range(600):
        assert proc.poll() is None, f"{what} exited: " + log.read_text(errors="replace")[-2000:]
        with contextlib.suppress(OSError):
            if answers():
                return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)
    raise AssertionError(f"{what} did not answer")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait for it (30 s); then SIGKILL, so a stuck service never outlives its test."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextlib.contextmanager
def serve_in_thread(app: Any, **config: Any) -> Iterator[str]:
    """Serve ``app`` until the block ends; yield its base URL. Binds port 0 (no race for a free
    port) and waits on the server's own ``started`` flag, with a deadline."""
    server = uvicorn.Server(uvicorn.Config(app, **{"host": "127.0.0.1", "port": 0, "log_level": "warning",
                                                   "lifespan": "off", **config}))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(1000):  # bounded: the server sets `started` once its socket listens
        if server.started or not thread.is_alive():
            break
        thread.join(0.01)
    if not server.started:
        server.should_exit = True
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    scheme = "https" if config.get("ssl_certfile") else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        stop_readiness(app)


def stop_readiness(app: Any) -> None:
    """Stop the readiness schedule of ``app`` (or of the app it wraps, ``.app``). The intake's
    ``/readyz`` starts the schedule on first use when no server did (``intake serve`` starts and stops
    its own); a test's server ends with its block, so the schedule ends there too, or its thread polls a
    dropped database every 10 s for the rest of the session (tests/conftest.py checks none is left)."""
    for _ in range(5):  # middleware over middleware over the app, at most
        monitor = getattr(getattr(app, "state", None), "readiness", None)
        if monitor is not None:
            monitor.stop()
        app = getattr(app, "app", None)
        if app is None:
            return
