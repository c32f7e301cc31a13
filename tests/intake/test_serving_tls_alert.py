"""A client certificate the intake refuses gets the fatal TLS alert, not a bare close (intake/serving.py).

The real ``intake serve --tls-cert --tls-key --client-ca`` process, and a raw TLS 1.3 client (the
``ssl`` module over a socket, as httpx uses it): with a certificate from another CA it must read
``TLSV1_ALERT_UNKNOWN_CA``, without one ``TLSV13_ALERT_CERTIFICATE_REQUIRED`` — the reason the relay
reads as ``misconfigured: TLS_HANDSHAKE`` — where asyncio's own loop (CPython issue 98078) gives it
only an end of file, which the relay must read as an intake that went away and retry. The relay's
certificate still gets its answer.

The last test pins the bug itself on this Python: uvicorn on asyncio's stock loop drops the alert.
When it fails, this Python sends the alert itself and the workaround is to be removed (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from intake import serving
from tests.conftest import World
from tests.support.servers import free_port, serve_in_thread, stop_process
from tests.support.tlscerts import RelayIntakeTls, TlsFiles, relay_intake_tls

ROOT = Path(__file__).resolve().parents[2]
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RelayIntakeTls:
    return relay_intake_tls(tmp_path_factory.mktemp("pki"))


def exchange(port: int, pki: RelayIntakeTls, client: TlsFiles | None) -> bytes:
    """Handshake (TLS 1.3 only) with ``client``'s certificate, send one request, read until the server
    closes. Returns what was read; raises what the ``ssl`` module raises (an alert: ``ssl.SSLError``)."""
    ctx = ssl.create_default_context(cafile=str(pki.server_ca.cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        # Under TLS 1.3 the client's handshake ends before the server has checked its certificate:
        # the refusal can only arrive on the first read.
        assert tls.version() == "TLSv1.3"
        tls.sendall(REQUEST)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return answer


@pytest.fixture(scope="module")
def intake_port(tmp_path_factory: pytest.TempPathFactory, world: World, pki: RelayIntakeTls) -> Iterator[int]:
    """``intake serve --only api`` with TLS and the relay-only client CA, as production runs it."""
    var = tmp_path_factory.mktemp("intake")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update(PYTHONPATH=str(ROOT), SHINSEI_INTAKE_ENVIRONMENT="development", SHINSEI_INTAKE_VAR_DIR=str(var),
               SHINSEI_INTAKE_CLIENT_AUTH="dedicated-ca", SHINSEI_INTAKE_MAIL__ENABLED="false",
               SHINSEI_INTAKE_JPKI_ROOTS=json.dumps([str(world.jpki_roots)]),
               SHINSEI_INTAKE_PORTAL_ROOTS=json.dumps([str(world.portal_roots)]),
               SHINSEI_INTAKE_CRLS=json.dumps([str(world.crl_dir)]))
    argv = [sys.executable, "-m", "intake", "serve", "--only", "api", "--host", "127.0.0.1", "--port", str(port),
            "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key),
            "--client-ca", str(pki.relay_ca.cert)]
    log_path = var / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd=var, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):  # bounded: until the relay's certificate gets an answer, or the process exits
            assert proc.poll() is None, "intake exited: " + log_path.read_text(errors="replace")[-2000:]
            with contextlib.suppress(OSError):
                if exchange(port, pki, pki.relay).startswith(b"HTTP/1.1 200"):
                    break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.05)
        else:
            pytest.fail("intake serve did not answer over TLS")
        yield port
    finally:
        stop_process(proc)


@pytest.mark.parametrize(("who", "alert"), [
    ("certificate-from-another-ca", "TLSV1_ALERT_UNKNOWN_CA"),
    ("no-certificate", "TLSV13_ALERT_CERTIFICATE_REQUIRED"),
])
def test_a_refused_client_certificate_gets_the_alert_that_says_why(
    intake_port: int, pki: RelayIntakeTls, who: str, alert: str,
) -> None:
    client = pki.rogue if who == "certificate-from-another-ca" else None
    with pytest.raises(ssl.SSLError) as refused:
        exchange(intake_port, pki, client)
    assert refused.value.reason == alert


def test_the_relay_certificate_still_gets_its_answer(intake_port: int, pki: RelayIntakeTls) -> None:
    answer = exchange(intake_port, pki, pki.relay)
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b'{"status":"ok"}')


def test_asyncio_on_this_python_still_drops_the_alert(pki: RelayIntakeTls) -> None:
    """Why intake/serving.py has ``_AlertingSSLProtocol``: uvicorn on asyncio's own loop closes without
    the alert. If this fails, this Python sends it itself (CPython issue 98078 fixed here): remove the
    workaround as docs/decisions.md says."""
    app = Starlette(routes=[Route("/healthz", lambda _request: PlainTextResponse("ok"))])
    with serve_in_thread(app, loop="asyncio", ssl_certfile=str(pki.server.cert), ssl_keyfile=str(pki.server.key),
                         ssl_ca_certs=str(pki.relay_ca.cert), ssl_cert_reqs=ssl.CERT_REQUIRED) as url:
        port = int(url.rsplit(":", 1)[1])
        assert exchange(port, pki, pki.relay).startswith(b"HTTP/1.1 200")  # the listener works …
        assert exchange(port, pki, pki.rogue) == b""  # … and refuses another CA's certificate with a bare close


def test_an_asyncio_the_fix_was_not_written_for_gets_the_stock_loop_and_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    assert serving._alert_fix_applies()  # this Python is the one it was written for; another is simulated
    monkeypatch.setattr(serving, "_alert_fix_applies", lambda: False)
    with caplog.at_level(logging.WARNING, logger="intake.serving"):
        loop = serving.listener_loop()
    try:
        assert type(loop) is asyncio.SelectorEventLoop
    finally:
        loop.close()
    assert any("CPython issue 98078" in r.getMessage() for r in caplog.records)
