"""Issue 17 §4: TLS certificates and keys are reloaded without a restart (tlsreload/).

The real processes — ``intake serve`` (the machine API, mutual TLS) and ``dmz_relay serve`` (the push
API, mutual TLS) — are started with one certificate; the files are replaced while they run, and a
real TLS client sees the new certificate on its next handshake, without a restart: when the files
change (the reloader's check) and at once on SIGHUP. A pair that does not load (a key of another
certificate) leaves the old pair in service.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import World
from tests.support.servers import free_port, stop_process
from tests.support.tlscerts import TlsFiles, issue, make_ca

ROOT = Path(__file__).resolve().parents[1]


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update(values, PYTHONPATH=str(ROOT))
    return env


class Pki:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.server_ca, *server_ca = make_ca(directory, "server-ca")
        self._server_ca = tuple(server_ca)
        self.client_ca, *client_ca = make_ca(directory, "client-ca")
        self.client = issue(directory, "client", tuple(client_ca), server=False)  # type: ignore[arg-type]
        self.live_cert, self.live_key = directory / "live.pem", directory / "live.key"

    def new_server(self, stem: str) -> TlsFiles:
        return issue(self.dir, stem, self._server_ca, server=True)  # type: ignore[arg-type]

    def install(self, files: TlsFiles, *, key: Path | None = None) -> None:
        """Replace the live pair the way an operator should: write beside, then rename (key first)."""
        for source, target in ((key or files.key, self.live_key), (files.cert, self.live_cert)):
            temp = target.with_suffix(".new")
            temp.write_bytes(source.read_bytes())
            os.replace(temp, target)


def _served_fingerprint(port: int, pki: Pki) -> str | None:
    ctx = ssl.create_default_context(cafile=str(pki.server_ca.cert))
    ctx.load_cert_chain(str(pki.client.cert), str(pki.client.key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    return hashlib.sha256(der).hexdigest() if der else None


def _wait_for(port: int, pki: Pki, want: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _served_fingerprint(port, pki) != want:
        assert proc.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the new certificate was not served in time"
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.1)  # bounded pause between handshakes (and notice an exit)


@contextlib.contextmanager
def _server(which: str, tmp_path: Path, world: World, pki: Pki,
            interval: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    trust = {"JPKI_ROOTS": json.dumps([str(world.jpki_roots)]), "PORTAL_ROOTS": json.dumps([str(world.portal_roots)]),
             "CRLS": json.dumps([str(world.crl_dir)])}
    if which == "intake":
        argv = ["intake", "serve", "--only", "api", "--host", "127.0.0.1", "--port", str(port),
                "--tls-cert", str(pki.live_cert), "--tls-key", str(pki.live_key),
                "--client-ca", str(pki.client_ca.cert)]
        env = _env(SHINSEI_INTAKE_ENVIRONMENT="development", SHINSEI_INTAKE_VAR_DIR=str(tmp_path / "intake"),
                   SHINSEI_INTAKE_CLIENT_AUTH="dedicated-ca", SHINSEI_INTAKE_MAIL__ENABLED="false",
                   SHINSEI_INTAKE_TLS_RELOAD_INTERVAL=interval, **{f"SHINSEI_INTAKE_{k}": v for k, v in trust.items()})
    else:
        argv = ["dmz_relay", "serve"]
        env = _env(SHINSEI_RELAY_ENVIRONMENT="development", SHINSEI_RELAY_DATA_DIR=str(tmp_path / "relay"),
                   SHINSEI_RELAY_SCANNER="none", SHINSEI_RELAY_LISTEN_HOST="127.0.0.1",
                   SHINSEI_RELAY_LISTEN_PORT=str(port), SHINSEI_RELAY_TLS_CERT=str(pki.live_cert),
                   SHINSEI_RELAY_TLS_KEY=str(pki.live_key), SHINSEI_RELAY_TLS_CLIENT_CA=str(pki.client_ca.cert),
                   SHINSEI_RELAY_TLS_RELOAD_INTERVAL=interval,
                   **{f"SHINSEI_RELAY_{k}": v for k, v in trust.items()})
    log = (tmp_path / f"{which}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", *argv], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield port, proc
    finally:
        stop_process(proc)
        log.close()


@pytest.mark.parametrize("which", ["intake", "relay"])
def test_a_new_certificate_is_served_without_a_restart(which: str, tmp_path: Path, world: World) -> None:
    pki = Pki(tmp_path)
    first, second = pki.new_server("first"), pki.new_server("second")
    pki.install(first)
    with _server(which, tmp_path, world, pki, interval="0.2") as (port, proc):
        _wait_for(port, pki, first.fingerprint, proc)
        pki.install(second)
        _wait_for(port, pki, second.fingerprint, proc)  # the files changed: picked up by the check
        # A key that does not belong to the certificate: not loaded, the working pair stays in service.
        third = pki.new_server("third")
        pki.install(third, key=first.key)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # several reload checks (every 0.2 s) see the bad pair
            assert _served_fingerprint(port, pki) == second.fingerprint
        assert proc.poll() is None
        pki.install(third)
        _wait_for(port, pki, third.fingerprint, proc)
    log = (tmp_path / f"{which}.log").read_text(encoding="utf-8", errors="replace")
    assert "TLS certificate not reloaded" in log
    assert "Traceback" not in log


@pytest.mark.parametrize("which", ["intake", "relay"])
def test_sighup_reloads_at_once(which: str, tmp_path: Path, world: World) -> None:
    pki = Pki(tmp_path)
    first, second = pki.new_server("first"), pki.new_server("second")
    pki.install(first)
    with _server(which, tmp_path, world, pki, interval="3600") as (port, proc):  # no periodic check
        _wait_for(port, pki, first.fingerprint, proc)
        pki.install(second)
        assert _served_fingerprint(port, pki) == first.fingerprint  # not before the signal
        proc.send_signal(signal.SIGHUP)
        _wait_for(port, pki, second.fingerprint, proc, timeout=10)
