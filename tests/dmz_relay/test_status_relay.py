"""Status relay: the real intake's outbox → portal_sim's status API → acknowledgement."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from dmz_relay.runtime import Relay
from intake.api import create_app as create_intake_app
from intake.db import make_session_factory
from intake.models import StatusNotice
from intake.runtime import Runtime
from intake.statusoutbox.service import enqueue_status, pending_notices
from portal_sim.api import ApiSettings, FaultInjection, FixedClock, create_app
from tests.conftest import NOW, World
from tests.dmz_relay.conftest import Intake, RelayFactory, Sleeps
from tests.portal_sim.api_support import API_KEY, MUNICIPALITY, write_data_dir
from tests.support.servers import serve_in_thread


def enqueue(engine: Engine, *notices: tuple[str, str]) -> None:
    with make_session_factory(engine)() as s:
        for receipt, status in notices:
            enqueue_status(s, receipt_number=receipt, status=status, at=NOW)
        s.commit()


def pending(engine: Engine) -> int:
    with make_session_factory(engine)() as s:
        return len(pending_notices(s))


def portal_history(url: str, receipt: str) -> list[str]:
    with httpx.Client(base_url=url, timeout=10) as c:
        token = c.post("/api/v1/login", json={"municipality_code": MUNICIPALITY, "api_key": API_KEY}).json()
        r = c.get(f"/api/v1/applications/{receipt}/status",
                  headers={"Authorization": f"Bearer {token['access_token']}"})
        return [e["status"] for e in r.json()["history"]]


@pytest.fixture
def portal_dir(world: World, tmp_path: Path) -> Path:
    write_data_dir(world, tmp_path / "portal")
    return tmp_path / "portal"


@pytest.fixture
def portal_url(portal_dir: Path) -> Iterator[str]:
    settings = ApiSettings(clock=FixedClock(NOW), rate_limit=None)
    with serve_in_thread(create_app(portal_dir, settings=settings)) as url:
        yield url


R1, R2 = "20261125-0000000001", "20261125-0000000002"


def test_statuses_are_delivered_and_acknowledged(
    portal_url: str, intake: Intake, make_relay: RelayFactory
) -> None:
    enqueue(intake.engine, (R1, "受付"), (R1, "審査中"), (R2, "受付"))
    relay = make_relay(intake.url, portal_url=portal_url)
    assert relay.status_relay is not None
    result = relay.status_relay.run_once()
    assert (result.delivered, result.acknowledged, result.stopped) == (3, 3, None)
    assert portal_history(portal_url, R1) == ["到達", "受付", "審査中"]
    assert portal_history(portal_url, R2) == ["到達", "受付"]
    assert pending(intake.engine) == 0
    assert relay.status_relay.run_once().delivered == 0


class _AckFails:
    """The real intake, except that acknowledgements get 503 while ``broken``."""

    def __init__(self, app: Any) -> None:
        self.app, self.broken = app, True

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/v1/status-outbox/ack" and self.broken:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


def test_a_lost_acknowledgement_repeats_harmlessly(
    portal_url: str, intake_engine: Engine, intake_runtime: Runtime, make_relay: RelayFactory
) -> None:
    enqueue(intake_engine, (R1, "受付"), (R2, "受付"))
    front = _AckFails(create_intake_app(intake_runtime, make_session_factory(intake_engine)))
    with serve_in_thread(front) as intake_url:
        relay: Relay = make_relay(intake_url, portal_url=portal_url)
        assert relay.status_relay is not None
        first = relay.status_relay.run_once()
        assert (first.delivered, first.acknowledged, first.stopped) == (2, 0, "HTTP_503")
        assert pending(intake_engine) == 2
        front.broken = False
        second = relay.status_relay.run_once()
    assert (second.delivered, second.repeated, second.acknowledged) == (0, 2, 2)
    assert portal_history(portal_url, R1) == ["到達", "受付"]  # once, thanks to the Idempotency-Key
    assert pending(intake_engine) == 0


def test_a_status_the_portal_refuses_is_acknowledged_and_counted(
    portal_url: str, intake: Intake, make_relay: RelayFactory
) -> None:
    enqueue(intake.engine, (R1, "却下"), (R1, "受付"), (R2, "到達"), (R2, "受付"))
    relay = make_relay(intake.url, portal_url=portal_url)
    assert relay.status_relay is not None
    result = relay.status_relay.run_once()
    # 却下 is final (受付 after it is 409), and 到達 is the portal's own (422): neither can ever succeed.
    assert (result.delivered, result.refused, result.acknowledged) == (2, 2, 4)
    assert portal_history(portal_url, R1) == ["到達", "却下"]
    assert portal_history(portal_url, R2) == ["到達", "受付"]
    assert pending(intake.engine) == 0
    assert 'relay_status_notices_total{result="refused"} 2.0' in relay.metrics.render().decode()


def test_portal_faults_are_waited_out(
    portal_dir: Path, intake: Intake, make_relay: RelayFactory, sleeps: Sleeps
) -> None:
    enqueue(intake.engine, (R1, "受付"), (R2, "受付"))
    settings = ApiSettings(clock=FixedClock(NOW), rate_limit=None, faults=FaultInjection(every=2, retry_after=3))
    with serve_in_thread(create_app(portal_dir, settings=settings)) as url:
        relay = make_relay(intake.url, portal_url=url)
        assert relay.status_relay is not None
        result = relay.status_relay.run_once()
    assert (result.delivered, result.acknowledged) == (2, 2)
    assert sleeps.waits
    assert set(sleeps.waits) == {3.0}
    assert pending(intake.engine) == 0


def portal_comments(url: str, receipt: str) -> list[str | None]:
    with httpx.Client(base_url=url, timeout=10) as c:
        token = c.post("/api/v1/login", json={"municipality_code": MUNICIPALITY, "api_key": API_KEY}).json()
        r = c.get(f"/api/v1/applications/{receipt}/status",
                  headers={"Authorization": f"Bearer {token['access_token']}"})
        return [e["comment"] for e in r.json()["history"]]


def test_comments_reach_the_portal_and_refusals_are_reported_back(
    portal_url: str, intake: Intake, make_relay: RelayFactory
) -> None:
    comment = "住民票の写し（発行から3か月以内のもの）を添付して、もう一度提出してください。"
    with make_session_factory(intake.engine)() as s:
        enqueue_status(s, receipt_number=R1, status="受付", at=NOW)
        enqueue_status(s, receipt_number=R1, status="補正依頼", at=NOW, comment=comment)
        enqueue_status(s, receipt_number=R2, status="完了", at=NOW)  # 到達 → 完了: the portal refuses
        s.commit()
    relay = make_relay(intake.url, portal_url=portal_url)
    assert relay.status_relay is not None
    result = relay.status_relay.run_once()
    assert (result.delivered, result.refused, result.acknowledged) == (2, 1, 3)
    assert portal_comments(portal_url, R1) == [None, None, comment]
    with make_session_factory(intake.engine)() as s:
        outcomes = [(n.status, n.outcome, n.portal_code) for n in s.scalars(select(StatusNotice).order_by(
            StatusNotice.id))]
    assert outcomes == [("受付", "delivered", None), ("補正依頼", "delivered", None),
                        ("完了", "refused", "ILLEGAL_TRANSITION")]
