"""Issue 14 §3 with real processes: a fresh CRL is fetched by the relay (``python -m dmz_relay crl
refresh``) from a real HTTP server, delivered over the relay's channel to one intake process, and
reaches the other intake processes — a second API process and the forwarding worker — through
their watchers, without a restart. No intake process ever opens a connection: an audit hook in
each records every ``socket.connect``. And an intake whose CRL inbox is not one of its CRL sources
refuses to start with one line.

These processes read the real clock (like tests/chain), so the CRLs served here are made for it:
thisUpdate an hour before the wall clock at the start of the test, nextUpdate two days after.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import World
from tests.support.crlserver import CrlServer, crl_server
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[1]

#: An audit hook in every intake process: each outgoing connection attempt is written down.
SITECUSTOMIZE = '''
import os, sys
_log = os.environ.get("SHINSEI_TEST_CONNECT_LOG")
if _log:
    def _record(event, args):
        if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
            with open(_log, "a", encoding="utf-8") as out:
                out.write(f"{os.getpid()} {event} {args[1]!r}\\n")
    sys.addaudithook(_record)
'''


def wait_for(condition: Callable[[], bool], *, what: str, procs: list[subprocess.Popen[bytes]],
             seconds: float = 60.0) -> None:
    """Bounded wait on ``condition``; fails early if a process died."""
    done = threading.Event()
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        for proc in procs:
            assert proc.poll() is None, f"a process exited while waiting for {what}"
        done.wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def hooks(tmp_path: Path) -> Path:
    d = tmp_path / "hooks"
    d.mkdir()
    (d / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return d


def intake_env(world: World, tmp_path: Path, hooks: Path, inbox: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update({
        "SHINSEI_INTAKE_ENVIRONMENT": "development",
        "SHINSEI_INTAKE_DATABASE_URL": f"sqlite:///{tmp_path / 'intake.db'}",
        "SHINSEI_INTAKE_VAR_DIR": str(tmp_path / "intake-var"),
        "SHINSEI_INTAKE_JPKI_ROOTS": json.dumps([str(world.jpki_roots)]),
        "SHINSEI_INTAKE_PORTAL_ROOTS": json.dumps([str(world.portal_roots)]),
        "SHINSEI_INTAKE_CRLS": json.dumps([str(world.crl_dir), str(inbox)]),
        "SHINSEI_INTAKE_CRL_INBOX": str(inbox),
        "SHINSEI_INTAKE_CRL_WATCH_INTERVAL": "0.2",
        "SHINSEI_INTAKE_READINESS_INTERVAL": "0.2",
        "SHINSEI_INTAKE_MAIL__ENABLED": "false",
        "SHINSEI_TEST_CONNECT_LOG": str(tmp_path / "intake-connects.log"),
        "PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT)]),
    })
    return env


@contextlib.contextmanager
def started(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", *argv], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(20)


def readyz(url: str) -> dict[str, Any]:
    try:
        body = httpx.get(f"{url}/readyz", timeout=2).json()
    except (httpx.TransportError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def test_a_fresh_crl_travels_from_the_distribution_point_through_the_relay_to_every_intake_process(
    world: World, tmp_path: Path, hooks: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    root = world.pki.jpki_roots[1]
    fresh = world.pki.issue_crl(root, [(world.signer.cert.serial_number, now - timedelta(minutes=5))],
                                this_update=now - timedelta(hours=1), next_update=now + timedelta(days=2))
    inbox = tmp_path / "intake-crls"
    inbox.mkdir()
    env = intake_env(world, tmp_path, hooks, inbox)
    subprocess.run([sys.executable, "-m", "intake", "db", "upgrade"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    api_a, api_b = free_port(), free_port()
    a_url, b_url = f"http://127.0.0.1:{api_a}", f"http://127.0.0.1:{api_b}"
    logs = tmp_path / "logs"
    logs.mkdir()
    with crl_server() as server, \
            started(["intake", "serve", "--only", "api", "--port", str(api_a)], env, logs / "a.log") as a, \
            started(["intake", "serve", "--only", "api", "--port", str(api_b)], env, logs / "b.log") as b, \
            started(["intake", "outbox", "run", "--interval", "0.2"], env, logs / "outbox.log") as worker:
        procs = [a, b, worker]
        wait_for(lambda: bool(readyz(a_url).get("crl_set")) and bool(readyz(b_url).get("crl_set")),
                 what="both intake API processes", procs=procs)
        before = readyz(b_url)["crl_set"]
        assert readyz(a_url)["crl_set"] == before

        relay = run_relay_crl_refresh(world, tmp_path, server, a_url, fresh)

        assert relay.returncode == 0, relay.stdout + relay.stderr
        assert relay.stdout.startswith("jpki-g2: installed (thisUpdate ")
        assert relay.stdout.rstrip().endswith("delivered to the intake")
        assert (inbox / "jpki-g2.crl").read_bytes() == fresh
        # A took it (its own store at once); B and the worker through their watchers, no restart.
        wait_for(lambda: readyz(a_url).get("crl_set") not in (None, before), what="A's new CRL set", procs=procs)
        after = readyz(a_url)["crl_set"]
        wait_for(lambda: readyz(b_url).get("crl_set") == after, what="B's watcher", procs=procs)
        wait_for(lambda: "the CRL set changed" in (logs / "outbox.log").read_text(errors="replace"),
                 what="the forwarding worker's watcher", procs=procs)
        for proc in procs:
            assert proc.poll() is None  # nobody restarted

    # The intake never opened a connection (SQLite, no outbound client): the relay pushed.
    connects = tmp_path / "intake-connects.log"
    assert not connects.exists() or connects.read_text() == "", connects.read_text()[:2000]


def test_the_connection_recorder_records(tmp_path: Path, hooks: Path, world: World) -> None:
    """The instrument of the test above sees a connect when one happens (so its silence means something)."""
    env = intake_env(world, tmp_path, hooks, tmp_path)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        subprocess.run([sys.executable, "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 5)"],
                       env=env, check=True, timeout=60)
    assert f"socket.connect ('127.0.0.1', {port})" in (tmp_path / "intake-connects.log").read_text()


def run_relay_crl_refresh(world: World, tmp_path: Path, server: CrlServer, intake_url: str, crl: bytes,
                          *, sources: list[dict[str, str]] | None = None) -> subprocess.CompletedProcess[str]:
    crl_dir = tmp_path / "relay-crls"
    crl_dir.mkdir(exist_ok=True)
    url = server.serve("jpki-g2.crl", crl)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update({
        "SHINSEI_RELAY_ENVIRONMENT": "development",
        "SHINSEI_RELAY_DATA_DIR": str(tmp_path / "relay"),
        "SHINSEI_RELAY_INTAKE_URL": intake_url,
        "SHINSEI_RELAY_SCANNER": "none",
        "SHINSEI_RELAY_JPKI_ROOTS": json.dumps([str(world.jpki_roots)]),
        "SHINSEI_RELAY_PORTAL_ROOTS": json.dumps([str(world.portal_roots)]),
        "SHINSEI_RELAY_CRLS": json.dumps([str(world.crl_dir), str(crl_dir)]),
        "SHINSEI_RELAY_CRL_DIR": str(crl_dir),
        "SHINSEI_RELAY_CRL_SOURCES": json.dumps(sources if sources is not None else
                                                [{"name": "jpki-g2", "url": url}]),
        "SHINSEI_RELAY_FORWARD_ATTEMPTS": "2",
        "SHINSEI_RELAY_FORWARD_BACKOFF_INITIAL": "0.1",
        "SHINSEI_RELAY_FORWARD_BACKOFF_MAX": "0.2",
        "PYTHONPATH": str(ROOT),
    })
    return subprocess.run([sys.executable, "-m", "dmz_relay", "crl", "refresh"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_crl_refresh_exit_codes_and_lines(world: World, tmp_path: Path) -> None:
    """0 when every source is fine, 1 when one is refused (the line says why), 2 when it cannot run."""
    now = datetime.now(UTC).replace(microsecond=0)
    root = world.pki.jpki_roots[1]
    newer = world.pki.issue_crl(root, [], this_update=now - timedelta(hours=1), next_update=now + timedelta(days=2))
    older = world.pki.issue_crl(root, [], this_update=now - timedelta(hours=5), next_update=now + timedelta(days=2))
    no_intake = f"http://127.0.0.1:{free_port()}"
    with crl_server() as server:
        first = run_relay_crl_refresh(world, tmp_path, server, no_intake, newer)
        replayed = run_relay_crl_refresh(world, tmp_path, server, no_intake, older)
        nothing = run_relay_crl_refresh(world, tmp_path, server, no_intake, older, sources=[])
    # Installed, but the intake is not there: not all fine (1), and the line says so.
    assert first.returncode == 1, first.stderr
    assert first.stdout.startswith("jpki-g2: installed (")
    assert "NOT delivered to the intake: CONNECT_ERROR (next round tries again)" in first.stdout
    assert replayed.returncode == 1
    assert replayed.stdout.startswith("jpki-g2: REFUSED OLDER_THAN_INSTALLED (")
    assert "the installed copy stays in use" in replayed.stdout
    assert len(replayed.stdout.splitlines()) == 1
    assert (tmp_path / "relay-crls" / "jpki-g2.crl").read_bytes() == newer
    assert nothing.returncode == 2
    assert [line for line in nothing.stderr.splitlines() if not line.startswith("{")] == [
        "dmz_relay: cannot start: no CRL sources configured (crl_sources, crl_dir)"]


def test_an_intake_whose_crl_inbox_is_not_a_crl_source_refuses_to_start(
    world: World, tmp_path: Path, hooks: Path
) -> None:
    inbox = tmp_path / "elsewhere"
    inbox.mkdir()
    env = intake_env(world, tmp_path, hooks, inbox)
    env["SHINSEI_INTAKE_CRLS"] = json.dumps([str(world.crl_dir)])
    done = subprocess.run([sys.executable, "-m", "intake", "serve", "--port", str(free_port())], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("intake: cannot start: invalid settings:")
    assert "must be one of crls" in lines[0]
    assert "Traceback" not in done.stderr
