"""Issue 15 §7: the lock that serialises access-log appends is held for the append alone.

Two real PostgreSQL sessions: one is a page in the middle of its work (it has noted its access-log
row and runs a query with its transaction open, as the list and the export do); meanwhile another
member of staff opens an application, whose page appends and commits its own access-log row. That
page must not wait for the first transaction: a bounded wait on the page's answer, no sleeps."""

from __future__ import annotations

from contextlib import closing

import pytest
from sqlalchemy import func, select

from intake.accesslog.service import append_access, check_chain, pending_rows
from intake.authz import Actor
from intake.models import AccessLogRow, ApplicationVersion
from tests.conftest import NOW
from tests.intake.ui.conftest import UIWorld

pytestmark = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


def test_a_page_view_does_not_wait_for_a_transaction_running_a_long_query(ui_world: UIWorld) -> None:
    with closing(ui_world.login("reviewer")) as client, ui_world.sessions() as long_running:
        # The first page: its access-log row is noted, its query runs, its transaction stays open.
        append_access(long_running, actor=_actor(), at=NOW, action="application.export", subject="export:all")
        assert long_running.scalar(select(func.count()).select_from(ApplicationVersion)) == 2
        assert pending_rows(long_running) == 1
        before = _rows(ui_world)

        # The second page answers within the client's bound while the first transaction is open.
        answer = client.get(f"/staff/applications/{ui_world.own_app}", timeout=15)
        assert answer.status_code == 200
        assert _rows(ui_world) == [*before, "application.view"]  # committed, visible to others

        long_running.commit()  # the first page ends: its row chains after the second's
    assert _rows(ui_world) == [*before, "application.view", "application.export"]
    with ui_world.sessions() as s:
        assert check_chain(s).intact


def _actor() -> Actor:
    return Actor(staff_id="exporter", department="kodomo-katei", terminal="ip:127.0.0.1")


def _rows(w: UIWorld) -> list[str]:
    with w.sessions() as s:
        return list(s.scalars(select(AccessLogRow.action).order_by(AccessLogRow.id)))
