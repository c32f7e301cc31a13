"""``intake serve --only api --workers N``: N processes accept on one port (PostgreSQL).

The real command, real processes: deliveries spread over the workers are each stored once, twins
included; SIGTERM stops the service whole; a worker that dies takes the service down with a non-zero
exit (systemd restarts it whole); the combinations that cannot work are refused with one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from intake.db import make_engine, make_session_factory
from intake.deliveries.service import expected_key
from intake.models import Application, Delivery
from signature.testing.builder import ApplicationSpec
from tests.conftest import PackageFactory
from tests.support.chain import wait_until
from tests.support.servers import free_port, free_port_run


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """PostgreSQL only: several workers need it (SQLite is refused below)."""
    engine = make_engine(postgres_url)
    with engine.begin() as c:
        c.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()
    return postgres_url


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def answered(metrics: str) -> float:
    """The sum of one worker's ``intake_deliveries_total`` counters (every outcome)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("intake_deliveries_total{"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state != "Z"


@contextlib.contextmanager
def workers(env: dict[str, str], count: int, log: Path,
            host: str = "127.0.0.1") -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    port, ops = free_port(), free_port_run(count)  # the workers' operations listeners: ops … ops+count-1
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "intake", "serve", "--only", "api", "--host", host,
                                 "--port", str(port), "--ops-port", str(ops), "--workers", str(count)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    try:
        def up() -> bool:
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                return (httpx.get(f"{base}/healthz", timeout=1).status_code == 200
                        and all(httpx.get(f"http://127.0.0.1:{ops + i}/healthz", timeout=1).status_code == 200
                                for i in range(count)))
            except httpx.TransportError:
                return False

        wait_until(up, timeout=60, what="every worker's listener")
        yield base, ops, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)


def test_deliveries_spread_over_two_workers_are_each_stored_once(
    env: dict[str, str], database_url: str, make_package: PackageFactory, spec: ApplicationSpec, tmp_path: Path,
) -> None:
    bodies = [make_package(spec=replace(spec, receipt_number=f"20261125-{i:010d}")) for i in range(1, 25)]
    answers: Counter[int] = Counter()
    lock = threading.Lock()
    with workers(env, 2, tmp_path / "serve.log") as (url, ops, proc):
        pids = children(proc.pid)
        assert len(pids) == 2
        queue = [b for body in bodies for b in (body, body)]  # every package twice: twins race

        def client() -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                while True:
                    with lock:
                        if not queue:
                            return
                        body = queue.pop()
                    status = http.post("/api/v1/deliveries", content=body, headers={
                        "Content-Type": "application/zip", "Idempotency-Key": expected_key(body)}).status_code
                    with lock:
                        answers[status] += 1

        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        metrics = [httpx.get(f"http://127.0.0.1:{ops + i}/metrics", timeout=5).text for i in range(2)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        wait_until(lambda: not any(alive(p) for p in pids), timeout=30, what="both workers gone")
    assert answers[201] == len(bodies)  # each stored once ...
    assert answers[200] + answers[409] == len(bodies)  # ... its twin answered with that receipt, or "in flight"
    assert set(answers) <= {200, 201, 409}
    engine = make_engine(database_url)
    with make_session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == len(bodies)
        assert s.scalar(select(func.count()).select_from(Application)) == len(bodies)
    engine.dispose()
    # Each worker serves its own operations listener with its own counters: together they count every answer.
    assert sum(answered(m) for m in metrics) == sum(answers.values())
    started = [json.loads(line)["args"][-1] for line in (tmp_path / "serve.log").read_text().splitlines()
               if line.startswith("{") and json.loads(line)["message"].startswith("intake serving ")]
    assert sorted(started) == [0, 1]


def test_workers_listen_on_an_ipv6_address(env: dict[str, str], database_url: str, tmp_path: Path) -> None:
    """``--host ::1`` (an IPv6 address; before, the workers' socket was always IPv4 and refused it)."""
    with workers(env, 2, tmp_path / "serve.log", host="::1") as (url, _ops, proc):
        assert url.startswith("http://[::1]:")
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        assert len(children(proc.pid)) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_a_worker_that_dies_stops_the_service_with_an_error(
    env: dict[str, str], database_url: str, tmp_path: Path,
) -> None:
    with workers(env, 2, tmp_path / "serve.log") as (_url, _ops, proc):
        first, second = sorted(children(proc.pid))
        os.kill(first, signal.SIGKILL)
        assert proc.wait(30) == 1  # non-zero: the service manager restarts it whole
        wait_until(lambda: not alive(second), timeout=30, what="the other worker stopped")
    assert "stopping the other workers" in (tmp_path / "serve.log").read_text(errors="replace")


def test_a_supervisor_killed_outright_leaves_no_worker_serving(
    env: dict[str, str], database_url: str, tmp_path: Path,
) -> None:
    """SIGKILL (or the OOM killer) gives the supervisor no chance to stop its workers: Linux does
    (PR_SET_PDEATHSIG), so nothing keeps accepting on the port."""
    with workers(env, 2, tmp_path / "serve.log") as (url, _ops, proc):
        pids = children(proc.pid)
        assert len(pids) == 2
        proc.kill()
        proc.wait(30)
        wait_until(lambda: not any(alive(p) for p in pids), timeout=30, what="both workers gone")
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/healthz", timeout=2)


@pytest.mark.parametrize(("args", "url_kind", "message"), [
    (["--workers", "2"], "postgresql", "--workers > 1 serves the machine API only (--only api)"),
    (["--only", "api", "--workers", "2"], "sqlite", "--workers > 1 needs PostgreSQL"),
    (["--only", "api", "--workers", "0"], "postgresql", "--workers must be at least 1"),
], ids=["not-api-only", "sqlite", "zero"])
def test_workers_that_cannot_work_are_refused_with_one_line(
    env: dict[str, str], database_url: str, tmp_path: Path, args: list[str], url_kind: str, message: str,
) -> None:
    run_env = dict(env)
    if url_kind == "sqlite":
        run_env["SHINSEI_INTAKE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'one.db'}"
    done = subprocess.run([sys.executable, "-m", "intake", "serve", "--port", str(free_port()), *args],
                          env=run_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
