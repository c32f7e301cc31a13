"""The fault proxy itself, between httpx and a tiny real uvicorn app."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.servers import free_port, serve_in_thread


class RecordingApp:
    """A raw ASGI app that records each request body and answers 201 with its length."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)  # "committed" before the answer is sent
        reply = f"stored {len(body)}".encode()
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(reply)).encode())]})
        await send({"type": "http.response.body", "body": reply})


@pytest.fixture
def app() -> RecordingApp:
    return RecordingApp()


@pytest.fixture
def proxy(app: RecordingApp) -> Iterator[FaultProxy]:
    with serve_in_thread(app) as base_url:
        upstream = urlsplit(base_url)
        assert upstream.hostname is not None
        assert upstream.port is not None
        with FaultProxy(upstream.hostname, upstream.port) as fault_proxy:
            yield fault_proxy


def post(proxy: FaultProxy, body: bytes, *, timeout: float = 5.0) -> httpx.Response:
    # A fresh client per request: one connection per request, so a per-connection fault hits it.
    with httpx.Client(base_url=proxy.url, timeout=timeout) as client:
        return client.post("/api/v1/deliveries", content=body)


def test_passes_requests_and_replies_through(proxy: FaultProxy, app: RecordingApp) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB, every byte value
    response = post(proxy, body)
    assert response.status_code == 201
    assert response.text == f"stored {len(body)}"
    assert app.bodies == [body]
    stats = proxy.wait_idle()
    assert (stats.connections, stats.passed, stats.resets, stats.dropped_replies) == (1, 1, 0, 0)


def test_keep_alive_connection_carries_several_requests(proxy: FaultProxy, app: RecordingApp) -> None:
    with httpx.Client(base_url=proxy.url, timeout=5.0) as client:
        for i in range(3):
            assert client.post("/", content=b"x" * i).status_code == 201
    assert app.bodies == [b"", b"x", b"xx"]
    assert proxy.wait_idle().connections == 1


def test_reset_on_accept_makes_httpx_raise(proxy: FaultProxy, app: RecordingApp) -> None:
    proxy.reset_next(2)
    for _ in range(2):
        with pytest.raises(httpx.TransportError):
            post(proxy, b"first")
    assert app.bodies == []  # nothing reached the upstream
    assert post(proxy, b"third").status_code == 201  # the fault was for two connections only
    assert app.bodies == [b"third"]
    stats = proxy.wait_idle()
    assert (stats.connections, stats.resets, stats.passed) == (3, 2, 1)


@pytest.mark.parametrize(("mode", "error"), [
    pytest.param("close", httpx.RemoteProtocolError, id="close-FIN"),
    pytest.param("reset", httpx.ReadError, id="reset-RST"),
    pytest.param("hang", httpx.ReadTimeout, id="hang-until-client-timeout"),
])
def test_dropped_reply_after_upstream_committed(
    proxy: FaultProxy, app: RecordingApp, mode: Any, error: type[Exception],
) -> None:
    proxy.drop_reply_next(1, mode)
    with pytest.raises(error):
        post(proxy, b"package-1", timeout=0.5 if mode == "hang" else 5.0)
    assert app.bodies == [b"package-1"]  # the server has it; the client does not know
    assert post(proxy, b"package-1").status_code == 201  # a retry goes through
    assert app.bodies == [b"package-1", b"package-1"]
    stats = proxy.wait_idle()
    assert (stats.connections, stats.dropped_replies, stats.passed) == (2, 1, 1)


def test_latency_is_applied_per_connection(proxy: FaultProxy) -> None:
    proxy.latency = 0.3
    started = time.monotonic()
    assert post(proxy, b"slow").status_code == 201
    assert time.monotonic() - started >= 0.3
    proxy.latency = 0.0
    assert proxy.pending_faults == 0


def test_faults_apply_in_order(proxy: FaultProxy, app: RecordingApp) -> None:
    proxy.reset_next(1)
    proxy.drop_reply_next(1)
    with pytest.raises(httpx.TransportError):
        post(proxy, b"a")
    with pytest.raises(httpx.RemoteProtocolError):
        post(proxy, b"b")
    assert post(proxy, b"c").status_code == 201
    assert app.bodies == [b"b", b"c"]


def test_unreachable_upstream_resets_the_client() -> None:
    with FaultProxy("127.0.0.1", free_port()) as proxy:  # nothing listens there
        with pytest.raises(httpx.TransportError):
            post(proxy, b"x")
        assert proxy.wait_idle().upstream_failures == 1


def test_stop_closes_open_connections_and_the_listener(app: RecordingApp) -> None:
    with serve_in_thread(app) as base_url:
        upstream = urlsplit(base_url)
        assert upstream.port is not None
        proxy = FaultProxy("127.0.0.1", upstream.port).start()
        url = proxy.url
        proxy.drop_reply_next(1, "hang")
        with httpx.Client(base_url=url, timeout=5.0) as client:
            # Stopping while a connection hangs ends it (no waiting for the client's timeout).
            def stop_once_dropped() -> None:
                proxy.wait_for(lambda stats: stats.dropped_replies == 1)
                proxy.stop()

            stopper = threading.Thread(target=stop_once_dropped)
            stopper.start()
            with pytest.raises(httpx.TransportError):
                client.post("/", content=b"x")
            stopper.join()
        with pytest.raises(httpx.ConnectError):
            httpx.post(url, content=b"y", timeout=2.0)
