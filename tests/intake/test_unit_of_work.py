"""One unit of work per request (intake/web.py): committed before the answer leaves, rolled back when
the handler raises, and what must outlive a failed request written after the rollback — on both
engines, through real HTTP against routes that use the real dependency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from intake.accesslog.service import append_access
from intake.authz import Actor
from intake.db import make_session_factory
from intake.events import record_event
from intake.models import AccessLogRow, Event
from intake.runtime import Runtime
from intake.web import AppState, UnitOfWork
from tests.conftest import NOW
from tests.support.servers import serve_in_thread

ACTOR = Actor(staff_id="test", department="-", terminal="ip:127.0.0.1")


class Refused(Exception):
    """A failed request that must still leave an access-log row."""

    def record_after_rollback(self, session: Session) -> None:
        append_access(session, actor=ACTOR, at=NOW, action="test.refused", subject="uow")


class _FailingCommit(Session):
    """A session whose commit fails (a full disk, a lost connection at COMMIT)."""

    def commit(self) -> None:
        raise RuntimeError("commit failed")


def _app(runtime: Runtime, factory: sessionmaker[Session]) -> FastAPI:
    app = FastAPI()
    app.state.shinsei = AppState(runtime=runtime, session_factory=factory)

    @app.post("/ok")
    def ok(session: UnitOfWork) -> dict[str, Any]:
        record_event(session, "test.ok", at=NOW)
        return {"ok": True}

    @app.post("/boom")
    def boom(session: UnitOfWork) -> dict[str, Any]:
        record_event(session, "test.boom", at=NOW)
        raise KeyError("boom")

    @app.post("/refused")
    def refused(session: UnitOfWork) -> dict[str, Any]:
        record_event(session, "test.refused", at=NOW)
        raise Refused

    return app


@pytest.fixture
def served(engine: Engine, runtime: Runtime) -> Iterator[tuple[str, Engine]]:
    with serve_in_thread(_app(runtime, make_session_factory(engine))) as url:
        yield url, engine


def _count(engine: Engine, model: Any, **where: str) -> int:
    with make_session_factory(engine)() as s:
        stmt = select(func.count()).select_from(model)
        for column, value in where.items():
            stmt = stmt.where(getattr(model, column) == value)
        return s.scalar(stmt) or 0


def test_a_handler_that_returns_is_committed(served: tuple[str, Engine]) -> None:
    url, engine = served
    assert httpx.post(f"{url}/ok", timeout=10).status_code == 200
    assert _count(engine, Event, kind="test.ok") == 1


def test_a_handler_that_raises_is_rolled_back(served: tuple[str, Engine]) -> None:
    url, engine = served
    assert httpx.post(f"{url}/boom", timeout=10).status_code == 500
    assert _count(engine, Event, kind="test.boom") == 0


def test_what_a_failed_request_must_leave_is_written_after_the_rollback(served: tuple[str, Engine]) -> None:
    url, engine = served
    assert httpx.post(f"{url}/refused", timeout=10).status_code == 500
    assert _count(engine, Event, kind="test.refused") == 0  # the request's own work is gone
    assert _count(engine, AccessLogRow, action="test.refused") == 1  # the trace is not


def test_a_failed_commit_is_never_answered_as_success(engine: Engine, runtime: Runtime) -> None:
    """The commit runs before the response is sent (``scope="function"``): a commit that fails makes
    the request fail. With FastAPI's default scope this test answers 200 and stores nothing."""
    factory: sessionmaker[Session] = sessionmaker(engine, class_=_FailingCommit, expire_on_commit=False)
    with serve_in_thread(_app(runtime, factory)) as url:
        assert httpx.post(f"{url}/ok", timeout=10).status_code == 500
    assert _count(engine, Event, kind="test.ok") == 0
