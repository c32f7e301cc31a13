"""The intake as operators run it: `python -m intake db upgrade` and `serve` in real processes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from intake.db import make_engine, make_session_factory
from intake.deliveries.service import expected_key
from intake.models import Delivery
from tests.conftest import PackageFactory, World
from tests.support.servers import free_port


@pytest.fixture
def database_url(empty_database: str) -> str:
    return empty_database


@pytest.fixture
def env(world: World, tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update({
        "SHINSEI_INTAKE_ENVIRONMENT": "development",
        "SHINSEI_INTAKE_DATABASE_URL": database_url,
        "SHINSEI_INTAKE_VAR_DIR": str(tmp_path / "var"),
        "SHINSEI_INTAKE_JPKI_ROOTS": json.dumps([str(world.jpki_roots)]),
        "SHINSEI_INTAKE_PORTAL_ROOTS": json.dumps([str(world.portal_roots)]),
        "SHINSEI_INTAKE_CRLS": json.dumps([str(world.crl_dir)]),
        # The packages' validation time is the real clock here; the test PKI is valid for years
        # around its pinned NOW and the CRLs are current only around it, so use soft-fail.
        "SHINSEI_INTAKE_REVOCATION": "soft-fail",
    })
    subprocess.run([sys.executable, "-m", "intake", "db", "upgrade"], env=env, check=True, capture_output=True,
                   timeout=120)
    return env


@contextmanager
def intake_process(env: dict[str, str], module: str = "intake") -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log = Path(env["SHINSEI_INTAKE_VAR_DIR"]) / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", module, "serve", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError("intake exited: " + log.read_text(errors="replace")[-2000:])
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                # bounded wait for the port to open, or for an early exit
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.05)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(20)


def stored(url: str) -> list[int]:
    """Ids of the stored deliveries (the engine is disposed: no connection outlives the check)."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            return list(s.scalars(select(Delivery.id)))
    finally:
        engine.dispose()


def post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/deliveries", content=body, timeout=60,
                      headers={"Content-Type": "application/zip", "Idempotency-Key": expected_key(body)})


def test_crash_after_commit_then_retry_gets_the_same_receipt(
    env: dict[str, str], database_url: str, make_package: PackageFactory
) -> None:
    body = make_package()
    with intake_process(env, "tests.support.crashing_intake") as (url, proc):
        with pytest.raises(httpx.TransportError):
            post(url, body)
        assert proc.wait(20) == 137
    ids = stored(database_url)
    assert len(ids) == 1  # committed before the crash
    with intake_process(env) as (url, _):
        retry = post(url, body)
    assert retry.status_code == 200
    assert retry.json()["duplicate"] is True
    assert retry.json()["delivery_id"] == ids[0]
    assert stored(database_url) == ids


def test_two_intake_processes_store_one(env: dict[str, str], database_url: str, make_package: PackageFactory) -> None:
    body = make_package()
    with intake_process(env) as (a, _), intake_process(env) as (b, _):
        statuses: list[int] = []
        barrier = threading.Barrier(6)

        def send(url: str) -> None:
            barrier.wait(10)
            statuses.append(post(url, body).status_code)

        threads = [threading.Thread(target=send, args=(u,)) for u in (a, b, a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert statuses.count(201) == 1
    assert set(statuses) <= {200, 201, 409}
    assert len(stored(database_url)) == 1
