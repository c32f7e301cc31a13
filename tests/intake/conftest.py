"""Intake fixtures: every database test runs on SQLite and on PostgreSQL; time is pinned."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from intake.db import Base, make_engine, make_session_factory
from intake.runtime import Runtime
from intake.settings import IntakeSettings
from tests.conftest import NOW, World
from tests.support.postgres import postgres_cluster


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
