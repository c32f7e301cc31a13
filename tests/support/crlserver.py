"""A real HTTP server for CRL distribution points in tests: stdlib ``http.server`` in a thread on a
loopback port, answering each path as the test set it up — the CRL, a 304 for a matching ETag, an
error status, a body cut short of its Content-Length, a body without Content-Length — and recording
every request it got."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

__all__ = ["Answer", "CrlServer", "crl_server"]

Mode = Literal["ok", "truncated", "no_length", "status"]


@dataclass
class Answer:
    body: bytes = b""
    mode: Mode = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class CrlServer:
    base_url: str
    answers: dict[str, Answer] = field(default_factory=dict)
    #: (path, request headers) of every request, in order
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def serve(self, path: str, body: bytes, **kwargs: object) -> str:
        self.answers["/" + path.lstrip("/")] = Answer(body, **kwargs)  # type: ignore[arg-type]
        return self.url(path)

    def hits(self, path: str) -> list[dict[str, str]]:
        return [h for p, h in self.requests if p == "/" + path.lstrip("/")]


@contextlib.contextmanager
def crl_server() -> Iterator[CrlServer]:
    state: list[CrlServer] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def end_headers(self) -> None:
            # One request per connection: a client's kept-alive connection must not outlive the server.
            self.send_header("Connection", "close")
            self.close_connection = True
            super().end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            server = state[0]
            server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            answer = server.answers.get(self.path)
            if answer is None:
                self._plain(404, b"not found")
                return
            if answer.mode == "status":
                self._plain(answer.status, b"error")
                return
            etag = '"' + hashlib.sha256(answer.body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/pkix-crl")
            self.send_header("ETag", etag)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.mode == "no_length":
                self.end_headers()
                self.wfile.write(answer.body)
                return
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if answer.mode == "truncated":
                self.wfile.write(answer.body[: len(answer.body) // 2])
                self.wfile.flush()
                return
            self.wfile.write(answer.body)

        def _plain(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.append(CrlServer(f"http://127.0.0.1:{httpd.server_address[1]}"))
    thread = threading.Thread(target=httpd.serve_forever, name="crl-server", daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
