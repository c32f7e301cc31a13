"""A client certificate the intake refuses gets the fatal TLS alert, not a bare close (intake/serving.py).

The real ``intake serve --tls-cert --tls-key --client-ca`` process, and a raw TLS 1.3 client (the
``ssl`` module over a socket, as httpx uses it): with a certificate from another CA it must read
``TLSV1_ALERT_UNKNOWN_CA``, without one ``TLSV13_ALERT_CERTIFICATE_REQUIRED`` — the reason the relay
reads as ``misconfigured: TLS_HANDSHAKE`` — where asyncio's own loop (CPython issue 98078) gives it
only an end of file, which the relay must read as an intake that went away and retry. The relay's
certificate still gets its answer.

The loop itself (tlsreload/alerting.py), and the bug it works around, are tested in
tests/test_tls_alert_loop.py; the relay's push listener, which runs on it too, in
tests/dmz_relay/test_push_tls_alert.py.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import World
from tests.support.servers import free_port, stop_process, wait_answering
from tests.support.tlscerts import RelayIntakeTls, TlsFiles, relay_intake_tls, tls_exchange

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RelayIntakeTls:
    return relay_intake_tls(tmp_path_factory.mktemp("pki"))


def exchange(port: int, pki: RelayIntakeTls, client: TlsFiles | None) -> bytes:
    return tls_exchange(port, pki.server_ca, client)


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
        wait_answering(proc, log_path, lambda: exchange(port, pki, pki.relay).startswith(b"HTTP/1.1 200"),
                       "intake serve (the relay's certificate)")
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
