"""Nothing lost to a misconfiguration or a poisoned package (issue 16): the pull channel against
portal_sim's real API app and the real intake app, both over HTTP.

* a package the intake cannot store (a database constraint that fails on it: a real 500) does not
  block the ones behind it; after its attempt budget it is set aside — visible in the metrics,
  ``dmz_relay status``, the portal's reception report and the intake's record — and an operator
  retries it;
* a configuration error between relay and intake (a wrong path, a body cap below the package size, a
  refused client certificate) or an intake that is down stops the channel without marking anything
  done, turns readiness red, and once the intake answers right every offered 受付番号 is stored
  exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.routing import Mount

from dmz_relay.push import create_app as create_relay_app
from dmz_relay.tombstones import ItemState, Outcome
from intake.api import create_app as create_intake_app
from intake.db import make_session_factory
from intake.relayreports.service import set_aside_items
from intake.runtime import Runtime
from portal_sim.api import ApiSettings, FixedClock, create_app
from status import Role
from tests.conftest import NOW
from tests.dmz_relay.conftest import RelayFactory, Sleeps
from tests.dmz_relay.test_pull import ARRIVED, Portal, stored_receipts
from tests.intake.staffdata import principal
from tests.portal_sim.api_support import App, write_data_dir
from tests.support.servers import free_port, serve_in_thread

POISONED = "20261125-0000000003"


@pytest.fixture
def portal(world: Any, tmp_path: Path) -> Iterator[Portal]:
    directory = tmp_path / "portal"
    apps: list[App] = write_data_dir(world, directory)
    clock, session_clock = FixedClock(NOW), FixedClock(NOW)
    app = create_app(directory, settings=ApiSettings(clock=clock, session_clock=session_clock, rate_limit=None))
    with serve_in_thread(app) as url:
        yield Portal(url, directory, apps, clock, session_clock)


def reception(portal: Portal, receipt_number: str) -> dict[str, Any] | None:
    token = httpx.post(f"{portal.url}/api/v1/login", json={
        "municipality_code": "131032", "api_key": "0123456789abcdef0123456789abcdef"}, timeout=10).json()
    answer = httpx.get(f"{portal.url}/api/v1/applications/{receipt_number}/reception", timeout=10,
                       headers={"Authorization": f"Bearer {token['access_token']}"})
    return None if answer.status_code == 404 else dict(answer.json())


def poison(engine: Engine, receipt_number: str) -> None:
    """A real database failure on one package: a trigger that aborts storing its version."""
    with engine.begin() as c:
        c.execute(text(f"CREATE TRIGGER poison BEFORE INSERT ON application_versions "
                       f"WHEN NEW.receipt_number = '{receipt_number}' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"))


def heal(engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(text("DROP TRIGGER poison"))


def metric(relay: Any, line_start: str) -> float:
    for line in relay.metrics.render().decode().splitlines():
        if line.startswith(line_start + " ") or (line.startswith(line_start + "{") and line_start.endswith("}")):
            return float(line.rsplit(" ", 1)[1])
    for line in relay.metrics.render().decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {line_start}")


def test_a_poisoned_package_is_set_aside_and_never_blocks_the_ones_behind_it(
    portal: Portal, intake_engine: Engine, intake_runtime: Runtime, make_relay: RelayFactory, relay_clock: Any,
) -> None:
    poison(intake_engine, POISONED)
    with serve_in_thread(create_intake_app(intake_runtime, make_session_factory(intake_engine))) as intake_url:
        relay = make_relay(intake_url, portal_url=portal.url, page_size=2, item_max_attempts=2,
                           max_consecutive_failures=3)
        assert relay.puller is not None
        first = relay.puller.poll_once()
        # Everything behind it is stored in the same round; the cursor waits before it.
        assert first.stopped is None
        assert first.failed == 1
        assert first.count(Outcome.STORED) == ARRIVED - 1
        assert POISONED not in stored_receipts(intake_engine)
        assert relay.tombstones.item(POISONED).attempts == 1  # type: ignore[union-attr]
        assert reception(portal, POISONED) is None

        relay_clock.now = NOW + timedelta(minutes=1)
        second = relay.puller.poll_once()
        # The next round starts at the durable cursor (the poisoned one's page): only it is fetched again.
        assert (second.failed, second.skipped) == (1, ARRIVED - 3)
        third = relay.puller.poll_once()
        assert (third.set_aside, third.failed, third.stopped) == (1, 0, None)
        item = relay.tombstones.item(POISONED)
        assert item is not None
        assert (item.state, item.attempts, item.reason_code) == (ItemState.SET_ASIDE, 2, "HTTP_500")
        # The cursor moved past it: the next round fetches nothing.
        assert relay.puller.poll_once().outcomes == {}

        # Everyone who must can see it, without personal data.
        assert reception(portal, POISONED) == {"receipt_number": POISONED, "result": "failed",
                                               "reason_code": "HTTP_500", "at": reception(portal, POISONED)["at"]}  # type: ignore[index]
        assert reception(portal, "20261125-0000000001")["result"] == "taken"  # type: ignore[index]
        status = relay.status()
        assert status["items"] == {"pending": 0, "stored": ARRIVED - 1, "refused": 0, "set_aside": 1}
        assert [i["receipt_number"] for i in status["set_aside"]] == [POISONED]  # type: ignore[index]
        assert status["last_completed_round"] is not None
        assert 'relay_pull_items{state="set_aside"} 1.0' in relay.metrics.render().decode()
        assert 'relay_pull_set_aside_total 1.0' in relay.metrics.render().decode()
        with make_session_factory(intake_engine)() as s:
            rows = set_aside_items(s, principal(Role.SYSTEM_ADMIN))
        assert [(r.receipt_number, r.reason_code, r.attempts) for r in rows] == [(POISONED, "HTTP_500", 2)]

        # The operator fixes the cause and retries it by 受付番号.
        heal(intake_engine)
        item, final = relay.puller.retry(POISONED)
        assert final
        assert item is not None
        assert item.state is ItemState.STORED
    assert stored_receipts(intake_engine) == sorted(a.receipt_number for a in portal.arrived())
    assert reception(portal, POISONED)["result"] == "taken"  # type: ignore[index]
    with make_session_factory(intake_engine)() as s:
        assert set_aside_items(s, principal(Role.SYSTEM_ADMIN)) == []  # resolved


def test_an_unscannable_file_is_flagged_and_the_channel_goes_on(
    portal: Portal, intake: Any, make_relay: RelayFactory,
) -> None:
    """clamd answers ERROR for one file (here: longer than its stream limit): that package is stored
    with the file flagged, never passed as clean, and the round goes on."""
    from malware import ScanLimitExceeded, ScanVerdict

    class OneTooLong:
        def scan(self, name: str, data: bytes) -> ScanVerdict:
            if name.endswith(".pdf"):
                raise ScanLimitExceeded("INSTREAM size limit exceeded", name=name, size=len(data), limit=None)
            return ScanVerdict(False, None)

        def ping(self) -> bool:
            return True

    relay = make_relay(intake.url, portal_url=portal.url, scanner=OneTooLong())
    assert relay.puller is not None
    result = relay.puller.poll_once()
    assert result.stopped is None
    assert result.count(Outcome.STORED) == ARRIVED
    assert intake.deliveries() == ARRIVED


# --- misconfigurations --------------------------------------------------------------------------


def _serve_at(app: Any, port: int) -> Any:
    import contextlib

    import uvicorn

    @contextlib.contextmanager
    def running() -> Iterator[str]:
        import threading

        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        for _ in range(1000):
            if server.started or not thread.is_alive():
                break
            thread.join(0.01)
        assert server.started
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(10)

    return running()


@pytest.mark.parametrize("fault", ["wrong-path", "body-cap-below-package", "intake-down"])
def test_a_misconfiguration_stops_the_channel_and_loses_nothing(
    portal: Portal, intake_engine: Engine, intake_runtime: Runtime, make_relay: RelayFactory, sleeps: Sleeps,
    fault: str,
) -> None:
    port = free_port()
    good = create_intake_app(intake_runtime, make_session_factory(intake_engine))
    relay = make_relay(f"http://127.0.0.1:{port}", portal_url=portal.url, page_size=3, forward_attempts=2)
    assert relay.puller is not None
    if fault == "wrong-path":  # a front proxy that routes the intake under another path
        broken: Any = Starlette(routes=[Mount("/intake", app=good)])
    elif fault == "body-cap-below-package":
        from dataclasses import replace

        small = replace(intake_runtime, settings=intake_runtime.settings.model_copy(update={"max_package_bytes": 1024}))
        broken = create_intake_app(small, make_session_factory(intake_engine))
    else:
        broken = None
    if broken is not None:
        with _serve_at(broken, port):
            stopped = relay.puller.poll_once()
    else:
        stopped = relay.puller.poll_once()
    expected = {"wrong-path": "HTTP_404", "body-cap-below-package": "BODY_TOO_LARGE",
                "intake-down": "INTAKE_UNAVAILABLE"}[fault]
    assert stopped.stopped == expected
    assert stopped.count(Outcome.FAILED) == 1  # the round stopped at the first package …
    assert relay.tombstones.cursor() is None  # … and nothing moved on
    assert stored_receipts(intake_engine) == []
    assert all(i.attempts == 0 for i in (relay.tombstones.item(a.receipt_number) for a in portal.arrived()) if i)
    state = "misconfigured" if fault != "intake-down" else "unavailable"
    assert relay.pipeline.channel.readiness() == f"{state}: {expected}"
    metrics = relay.metrics.render().decode()
    assert "relay_intake_channel_ok 0.0" in metrics
    assert f'relay_intake_channel_stops_total{{state="{state}"}} 1.0' in metrics

    with _serve_at(good, port):  # the operator fixes it; the same relay resumes by itself
        resumed = relay.puller.poll_once()
    assert resumed.stopped is None
    assert stored_receipts(intake_engine) == sorted(a.receipt_number for a in portal.arrived())  # each once
    assert relay.pipeline.channel.readiness() == "ok"
    assert "relay_intake_channel_ok 1.0" in relay.metrics.render().decode()
    assert relay.status()["items"]["stored"] == ARRIVED  # type: ignore[index]


def test_a_push_during_a_misconfiguration_gets_503_and_the_terminal_keeps_its_file(
    portal: Portal, intake_engine: Engine, intake_runtime: Runtime, make_relay: RelayFactory,
    make_package: Any,
) -> None:
    good = create_intake_app(intake_runtime, make_session_factory(intake_engine))
    with serve_in_thread(Starlette(routes=[Mount("/intake", app=good)])) as wrong:
        relay = make_relay(wrong)
        with serve_in_thread(create_relay_app(relay)) as url:
            body = make_package()
            answer = httpx.post(f"{url}/api/v1/packages", content=body, timeout=60,
                                headers={"Content-Type": "application/zip"})
            ready = httpx.get(f"{url}/readyz", timeout=30)
    assert answer.status_code == 503
    assert "Retry-After" in answer.headers
    assert ready.status_code == 503
    assert ready.json()["checks"]["intake_channel"] == "misconfigured: HTTP_404"
    assert stored_receipts(intake_engine) == []
