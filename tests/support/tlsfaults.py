"""TLS peers that fail the way the real world does, for the tests of what a client makes of it.

* :func:`closing_after_hello`: a server that reads the ClientHello and closes cleanly, no alert — a
  server stopping or restarting in the middle of a handshake (the client's ``ssl`` raises
  ``SSLEOFError``).
* :func:`breaking_the_answer`: a TLS server that reads a whole HTTP request (and its body), then
  writes an application-data record whose MAC cannot check out — a faulty middlebox or card after
  the request arrived.
* :func:`cause_chain`: an exception and its causes, as a client walks them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Iterator

__all__ = ["breaking_the_answer", "cause_chain", "closing_after_hello"]


def cause_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


@contextlib.contextmanager
def _serving(handle: object, connections: int) -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        def run() -> None:
            for _ in range(connections):
                raw, _ = server.accept()
                handle(raw)  # type: ignore[operator]

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        yield server.getsockname()[1]
        worker.join(10)
        assert not worker.is_alive(), "the fault server did not see every connection it expected"


@contextlib.contextmanager
def closing_after_hello(connections: int = 1) -> Iterator[int]:
    """The port of a server that closes each of ``connections`` connections after the ClientHello."""
    def handle(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)  # the ClientHello
            conn.shutdown(socket.SHUT_WR)  # a clean close, no alert
            conn.recv(65536)

    with _serving(handle, connections) as port:
        yield port


@contextlib.contextmanager
def breaking_the_answer(context: ssl.SSLContext, received: list[int], connections: int = 1) -> Iterator[int]:
    """The port of a TLS server (``context``) that reads each request whole — appending its body's
    length to ``received`` — and answers with a corrupted record."""
    def handle(raw: socket.socket) -> None:
        with context.wrap_socket(raw, server_side=True) as tls:
            data = b""
            while b"\r\n\r\n" not in data:
                data += tls.recv(65536)
            head, body = data.split(b"\r\n\r\n", 1)
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += tls.recv(65536)
            received.append(len(body))
            # An application-data record whose MAC cannot check out, written past the TLS layer.
            os.write(tls.fileno(), b"\x17\x03\x03\x00\x20" + bytes(range(32)))
            with contextlib.suppress(OSError):  # the client's alert (bad record MAC), or its close
                tls.recv(1)

    with _serving(handle, connections) as port:
        yield port
