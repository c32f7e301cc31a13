"""Intake fixtures: every database test runs on SQLite and on PostgreSQL; time is pinned."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from intake.db import Base, make_engine, make_session_factory
from intake.runtime import Runtime
from intake.settings import IntakeSettings
from tests.conftest import NOW, World
from tests.support.postgres import postgres_cluster
from tests.support.servers import free_port


class Clock:
    """A pinned clock tests advance explicitly."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database (no tables at all), for migrations and real processes."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    eng = make_engine(url)
    with eng.begin() as c:
        c.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    eng.dispose()
    yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    else:
        eng = make_engine(request.getfixturevalue("postgres_url"))
    Base.metadata.drop_all(eng)
    Base.metadata.create_all(eng)
    yield eng
    Base.metadata.drop_all(eng)
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with make_session_factory(engine)() as s:
        yield s


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def settings(world: World, tmp_path: Path) -> IntakeSettings:
    return IntakeSettings(
        var_dir=tmp_path / "var", jpki_roots=[world.jpki_roots], portal_roots=[world.portal_roots],
        crls=[world.crl_dir], jpki_intermediates=[world.intermediates],
    )


@pytest.fixture
def runtime(settings: IntakeSettings, clock: Clock) -> Runtime:
    return Runtime.from_settings(settings, clock=clock)


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
