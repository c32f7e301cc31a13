"""An LGWAN terminal whose certificate the relay's push API refuses is told so, and does not retry.

The push API (``dmz_relay serve`` with ``TLS_CERT``, ``TLS_KEY`` and ``TLS_CLIENT_CA``) requires a
client certificate from the terminals' CA. A tired operator installs the wrong one (another CA's), or
none, or points ``--ca`` at the wrong file. Before, the relay closed such a connection without the TLS
alert (CPython issue 98078), and the terminal client read "server disconnected", retried with
back-off and reported "send again later", which never helps. Now the relay serves on the loop that
sends the alert (tlsreload/alerting.py), and the client reports, at once and without retries, which
side refused and why, and keeps the file. The terminal with the right certificate still delivers.

The operator's other TLS mistakes are refused before anything is sent, in one line naming the option
(a key of another certificate, a missing file, ``http://`` with TLS options or to another machine);
and a TLS error after the relay read the package (a corrupted record) is a broken connection, retried,
not a refused certificate.

Here the test PKI's server pair is the push API's certificate and its relay-only CA stands for the
terminals' CA (``pki.relay`` is a terminal's certificate).
"""

from __future__ import annotations

import io
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dmz_relay.client import FileOutcome, push_files
from tests.conftest import PackageFactory, World
from tests.dmz_relay.conftest import Intake, Sleeps
from tests.support.servers import free_port, stop_process, wait_answering
from tests.support.tlscerts import RelayIntakeTls, TlsFiles, relay_intake_tls, tls_exchange
from tests.support.tlsfaults import breaking_the_answer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> RelayIntakeTls:
    return relay_intake_tls(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def push_port(world: World, intake: Intake, pki: RelayIntakeTls, tmp_path: Path) -> Iterator[int]:
    """``dmz_relay serve``, the push API on TLS requiring the terminals' CA, as production runs it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update(PYTHONPATH=str(ROOT), SHINSEI_RELAY_ENVIRONMENT="development",
               SHINSEI_RELAY_DATA_DIR=str(tmp_path / "relay"), SHINSEI_RELAY_SCANNER="none",
               SHINSEI_RELAY_INTAKE_URL=intake.url, SHINSEI_RELAY_LISTEN_HOST="127.0.0.1",
               SHINSEI_RELAY_LISTEN_PORT=str(port), SHINSEI_RELAY_TLS_CERT=str(pki.server.cert),
               SHINSEI_RELAY_TLS_KEY=str(pki.server.key), SHINSEI_RELAY_TLS_CLIENT_CA=str(pki.relay_ca.cert),
               SHINSEI_RELAY_JPKI_ROOTS=json.dumps([str(world.jpki_roots)]),
               SHINSEI_RELAY_JPKI_INTERMEDIATES=json.dumps([str(world.intermediates)]),
               SHINSEI_RELAY_PORTAL_ROOTS=json.dumps([str(world.portal_roots)]),
               SHINSEI_RELAY_CRLS=json.dumps([str(world.crl_dir)]))
    log_path = tmp_path / "relay.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dmz_relay", "serve"], env=env, cwd=tmp_path, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        wait_answering(proc, log_path, lambda: tls_exchange(port, pki.server_ca, pki.relay).startswith(
            b"HTTP/1.1 200"), "dmz_relay serve (a terminal's certificate)")
        yield port
    finally:
        stop_process(proc)


def terminal(pki: RelayIntakeTls, port: int, *, cert: TlsFiles | None, ca: TlsFiles) -> httpx.Client:
    """The terminal's client as ``dmz_relay push --url --ca --cert --key`` builds it."""
    ctx = ssl.create_default_context(cafile=str(ca.cert))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=ctx, timeout=60, trust_env=False)


@pytest.mark.parametrize(("who", "alert"), [
    ("certificate-from-another-ca", "TLSV1_ALERT_UNKNOWN_CA"),
    ("no-certificate", "TLSV13_ALERT_CERTIFICATE_REQUIRED"),
])
def test_the_push_api_sends_the_alert_that_says_why(push_port: int, pki: RelayIntakeTls, who: str,
                                                    alert: str) -> None:
    with pytest.raises(ssl.SSLError) as refused:
        tls_exchange(push_port, pki.server_ca, pki.rogue if who == "certificate-from-another-ca" else None)
    assert refused.value.reason == alert


def test_a_refused_terminal_certificate_is_reported_at_once_and_the_file_kept(
    push_port: int, pki: RelayIntakeTls, intake: Intake, make_package: PackageFactory, sleeps: Sleeps,
    tmp_path: Path,
) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    package = outbox / "a.zip"
    package.write_bytes(make_package())
    out = io.StringIO()
    with terminal(pki, push_port, cert=pki.rogue, ca=pki.server_ca) as http:
        summary = push_files(http, [package], out=out, retries=3, sleep=sleeps, progress=False)
    result = summary.results[0]
    assert (result.outcome, result.code) == (FileOutcome.MISCONFIGURED, "TLS_HANDSHAKE")
    assert "TLSV1_ALERT_UNKNOWN_CA" in result.message
    assert "--cert" in result.message  # what to check: this terminal's certificate
    assert sleeps.waits == []  # not retried: waiting does not heal a certificate
    assert package.exists()
    assert intake.deliveries() == 0
    assert "1 file(s): 0 delivered, 0 already delivered, 0 refused, 0 to retry later, 1 not sent (TLS settings)" \
        in out.getvalue()
    assert not summary.ok

    # The operator points --ca at the wrong file instead: this side refuses, and the line says so.
    with terminal(pki, push_port, cert=pki.relay, ca=pki.relay_ca) as http:
        summary = push_files(http, [package], out=io.StringIO(), retries=3, sleep=sleeps, progress=False)
    result = summary.results[0]
    assert (result.outcome, result.code) == (FileOutcome.MISCONFIGURED, "TLS_HANDSHAKE")
    assert "CERTIFICATE_VERIFY_FAILED" in result.message
    assert "--ca" in result.message
    assert sleeps.waits == []
    assert package.exists()

    # With the right files the same file is delivered, and only then deleted.
    with terminal(pki, push_port, cert=pki.relay, ca=pki.server_ca) as http:
        summary = push_files(http, [package], out=io.StringIO(), retries=3, sleep=sleeps, progress=False)
    assert summary.results[0].outcome is FileOutcome.DELIVERED
    assert not package.exists()
    assert intake.deliveries() == 1


def test_the_command_line_says_which_certificate_to_check(
    push_port: int, pki: RelayIntakeTls, make_package: PackageFactory, tmp_path: Path,
) -> None:
    package = tmp_path / "a.zip"
    package.write_bytes(make_package())
    done = subprocess.run([sys.executable, "-m", "dmz_relay", "push", str(package), "--url",
                           f"https://127.0.0.1:{push_port}", "--ca", str(pki.server_ca.cert), "--cert",
                           str(pki.rogue.cert), "--key", str(pki.rogue.key), "--no-progress"],
                          capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "TLS_HANDSHAKE" in done.stdout
    assert "連携サーバがこの端末の証明書を受け入れません（TLSV1_ALERT_UNKNOWN_CA）" in done.stdout
    assert "1 not sent (TLS settings)" in done.stdout
    assert package.exists()


def _push_cli(package: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dmz_relay", "push", str(package), *options, "--no-progress",
                           "--retries", "0"], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


@pytest.mark.parametrize(("case", "named"), [
    ("key-of-another-certificate", "--cert"),
    ("key-missing", "--cert"),
    ("key-without-certificate", "--key needs --cert"),
    ("ca-file-missing", "--ca"),
    ("ca-file-not-a-certificate", "--ca"),
])
def test_a_wrong_tls_file_is_one_line_naming_the_option(pki: RelayIntakeTls, tmp_path: Path, case: str,
                                                        named: str) -> None:
    """What the tired operator types wrong before anything is sent: exit 2, one line naming the option to
    fix, no traceback, the file kept."""
    package = tmp_path / "a.zip"
    package.write_bytes(b"PK\x05\x06" + bytes(18))
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate")
    ca = ["--ca", str(pki.server_ca.cert)]
    options = {"key-of-another-certificate": [*ca, "--cert", str(pki.relay.cert), "--key", str(pki.rogue.key)],
               "key-missing": [*ca, "--cert", str(pki.relay.cert)],
               "key-without-certificate": [*ca, "--key", str(pki.relay.key)],
               "ca-file-missing": ["--ca", str(tmp_path / "missing.pem")],
               "ca-file-not-a-certificate": ["--ca", str(not_pem)]}[case]
    done = _push_cli(package, "--url", "https://127.0.0.1:9", *options)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("dmz_relay push: cannot start: ")
    assert named in lines[0]
    assert package.exists()


@pytest.mark.parametrize(("url", "options", "why"), [
    ("http://127.0.0.1:9", ["--cert", "c.pem", "--key", "c.key"], "need an https:// --url"),
    ("http://127.0.0.1:9", ["--ca", "ca.pem"], "need an https:// --url"),
    ("http://relay.example.lg.jp:8500", [], "must be https://"),
    ("ftp://relay.example.lg.jp", [], "must be https://"),
])
def test_packages_are_not_sent_unencrypted_by_mistake(tmp_path: Path, url: str, options: list[str],
                                                     why: str) -> None:
    """An ``http://`` URL silently ignored ``--ca``/``--cert``/``--key``: to a plain listener the packages
    went unencrypted and were deleted. Now http:// is for this machine only, and never with TLS options."""
    package = tmp_path / "a.zip"
    package.write_bytes(b"PK\x05\x06" + bytes(18))
    done = _push_cli(package, "--url", url, *options)
    assert done.returncode == 2, done.stdout + done.stderr
    assert why in done.stderr
    assert package.exists()


def test_a_tls_error_after_the_relay_read_the_package_is_retried_not_reported_as_settings(
    pki: RelayIntakeTls, tmp_path: Path, sleeps: Sleeps,
) -> None:
    """The relay read the whole package (and may have stored it); then the answer's record arrives
    corrupted. That is a broken connection, not a refused certificate: retried (the push is
    idempotent), the file kept until a receipt."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server.cert), str(pki.server.key))
    package = tmp_path / "a.zip"
    package.write_bytes(bytes(range(256)) * 16)
    received: list[int] = []
    attempts = 2
    with breaking_the_answer(context, received, attempts) as port, \
            terminal(pki, port, cert=None, ca=pki.server_ca) as http:
        summary = push_files(http, [package], out=io.StringIO(), retries=attempts - 1, sleep=sleeps, progress=False)
    assert received == [len(package.read_bytes())] * attempts  # the relay had every byte, twice
    result = summary.results[0]
    assert result.outcome is FileOutcome.FAILED, (result.code, result.message)
    assert result.code == "CONNECT_ERROR"
    assert len(sleeps.waits) == attempts - 1
    assert package.exists()
