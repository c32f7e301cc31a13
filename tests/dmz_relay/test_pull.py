"""The pull channel against portal_sim's real API app and the real intake app, both over HTTP."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from dmz_relay.runtime import Relay
from dmz_relay.tombstones import Outcome
from intake.api import create_app as create_intake_app
from intake.db import make_session_factory
from intake.models import Delivery
from intake.runtime import Runtime
from malware import NullScanner, ScanVerdict
from portal_sim.api import ApiSettings, FaultInjection, FixedClock, RateLimit, create_app
from signature.testing.samples import sample_pdf
from tests.conftest import NOW, World
from tests.dmz_relay.conftest import Intake, RelayFactory, Sleeps
from tests.portal_sim.api_support import App, write_data_dir
from tests.support.servers import free_port, serve_in_thread

ARRIVED = 7  # of the 9 applications in api_support.PLAN, 7 have arrived at NOW


@dataclass
class Portal:
    url: str
    data_dir: Path
    apps: list[App]
    clock: FixedClock
    session_clock: FixedClock

    def arrived(self) -> list[App]:
        return [a for a in self.apps if a.arrived_at <= self.clock.now()]


@pytest.fixture
def data_dir(world: World, tmp_path: Path) -> tuple[Path, list[App]]:
    directory = tmp_path / "portal"
    return directory, write_data_dir(world, directory)


@pytest.fixture
def serve_portal(data_dir: tuple[Path, list[App]]) -> Iterator[Any]:
    """``serve_portal(**ApiSettings fields)`` → a running portal (one per test)."""
    stack: list[Any] = []

    def start(**settings: Any) -> Portal:
        clock, session_clock = FixedClock(NOW), FixedClock(NOW)
        options: dict[str, Any] = {"clock": clock, "session_clock": session_clock, "rate_limit": None, **settings}
        app = create_app(data_dir[0], settings=ApiSettings(**options))
        ctx = serve_in_thread(app)
        url = ctx.__enter__()
        stack.append(ctx)
        return Portal(url, data_dir[0], data_dir[1], clock, session_clock)

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


def stored_receipts(engine: Engine) -> list[str | None]:
    with make_session_factory(engine)() as s:
        return sorted(s.scalars(select(Delivery.receipt_number)).all(), key=str)


def test_pull_stores_every_arrived_package_once_and_moves_the_cursor(
    serve_portal: Any, intake: Intake, make_relay: RelayFactory
) -> None:
    portal = serve_portal()
    relay = make_relay(intake.url, portal_url=portal.url, page_size=3)
    assert relay.puller is not None
    result = relay.puller.poll_once()
    assert result.stopped is None
    assert result.count(Outcome.STORED) == ARRIVED
    assert result.pages == 3
    assert result.cursor_saves == 3
    assert stored_receipts(intake.engine) == sorted(a.receipt_number for a in portal.arrived())
    assert relay.tombstones.cursor() is not None
    assert all(s.outcome is Outcome.STORED and s.erased_at is not None for s in relay.tombstones.all())

    again = relay.puller.poll_once()  # nothing new: the cursor is past everything
    assert (again.outcomes, again.skipped, again.stopped) == ({}, 0, None)

    portal.clock.advance(timedelta(hours=2))  # the last two applications arrive
    later = relay.puller.poll_once()
    assert later.count(Outcome.STORED) == 2
    assert intake.deliveries() == ARRIVED + 2


class _FailFrom:
    """In front of the real intake: deliveries from the ``first``-th on get 503 while ``broken``."""

    def __init__(self, app: Any, first: int) -> None:
        self.app, self.first, self.count, self.broken = app, first, 0, True

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/v1/deliveries":
            self.count += 1
            if self.broken and self.count >= self.first:
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


def test_cursor_moves_only_past_receipts(
    serve_portal: Any, intake_engine: Engine, intake_runtime: Runtime, make_relay: RelayFactory, sleeps: Sleeps
) -> None:
    portal = serve_portal()
    front = _FailFrom(create_intake_app(intake_runtime, make_session_factory(intake_engine)), first=4)
    with serve_in_thread(front) as intake_url:
        relay = make_relay(intake_url, portal_url=portal.url, page_size=2, forward_attempts=2)
        assert relay.puller is not None
        first = relay.puller.poll_once()
        # Page 1 (two receipts) is saved; on page 2 the first package is stored, the second fails.
        assert first.stopped == "INTAKE_UNAVAILABLE"
        assert first.count(Outcome.STORED) == 3
        assert first.count(Outcome.FAILED) == 1
        assert first.cursor_saves == 1
        cursor_after_page_one = relay.tombstones.cursor()
        assert len(stored_receipts(intake_engine)) == 3

        front.broken = False
        second = relay.puller.poll_once()
    assert second.stopped is None
    assert second.skipped == 1  # the stored one on page 2 is not fetched again
    assert second.count(Outcome.STORED) == ARRIVED - 3
    assert relay.tombstones.cursor() != cursor_after_page_one
    receipts = stored_receipts(intake_engine)
    assert receipts == sorted(a.receipt_number for a in portal.arrived())  # each exactly once


class _DropReply:
    """Passes deliveries to the real intake, then drops the reply (the intake committed)."""

    def __init__(self, app: Any) -> None:
        self.app, self.drop = app, True

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/v1/deliveries" and self.drop:
            async def swallow(message: Any) -> None:
                return None

            await self.app(scope, receive, swallow)
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


def test_a_lost_receipt_means_a_refetch_and_the_intake_deduplicates(
    serve_portal: Any, intake_engine: Engine, intake_runtime: Runtime, make_relay: RelayFactory
) -> None:
    portal = serve_portal()
    front = _DropReply(create_intake_app(intake_runtime, make_session_factory(intake_engine)))
    with serve_in_thread(front) as intake_url:
        relay = make_relay(intake_url, portal_url=portal.url, forward_attempts=1)
        assert relay.puller is not None
        first = relay.puller.poll_once()
        assert first.count(Outcome.FAILED) == 1
        assert relay.tombstones.cursor() is None
        assert len(stored_receipts(intake_engine)) == 1  # stored, but the relay never heard so
        front.drop = False
        second = relay.puller.poll_once()
    assert second.count(Outcome.DUPLICATE) == 1
    assert second.count(Outcome.STORED) == ARRIVED - 1
    assert stored_receipts(intake_engine) == sorted(a.receipt_number for a in portal.arrived())


def test_rate_limit_and_faults_are_waited_out_with_retry_after(
    serve_portal: Any, intake: Intake, make_relay: RelayFactory, sleeps: Sleeps
) -> None:
    portal = serve_portal(rate_limit=RateLimit(per_second=1, burst=3),
                          faults=FaultInjection(every=4, retry_after=2))
    # The portal's token bucket runs on its session clock: what the relay waits, the clock moves.
    sleeps.on_sleep = lambda s: portal.session_clock.advance(timedelta(seconds=s)) and None
    relay = make_relay(intake.url, portal_url=portal.url)
    assert relay.puller is not None
    result = relay.puller.poll_once()
    assert result.stopped is None
    assert result.count(Outcome.STORED) == ARRIVED
    assert 2.0 in sleeps.waits  # the injected 503's Retry-After
    assert 1.0 in sleeps.waits  # the 429's Retry-After (one request per second)
    metrics = relay.metrics.render().decode()
    assert 'relay_portal_waits_total{reason="RATE_LIMITED"}' in metrics
    assert 'relay_portal_waits_total{reason="SERVICE_UNAVAILABLE"}' in metrics


def test_a_portal_that_stays_unavailable_ends_the_round_without_moving(
    serve_portal: Any, intake: Intake, make_relay: RelayFactory, sleeps: Sleeps
) -> None:
    portal = serve_portal(faults=FaultInjection(every=1, retry_after=5))
    relay = make_relay(intake.url, portal_url=portal.url, portal_max_waits=3)
    assert relay.puller is not None
    result = relay.puller.poll_once()
    assert result.stopped == "SERVICE_UNAVAILABLE"
    assert sleeps.waits == [5.0, 5.0, 5.0]
    assert relay.tombstones.cursor() is None
    assert intake.deliveries() == 0


def test_portal_down_ends_the_round(intake: Intake, make_relay: RelayFactory, sleeps: Sleeps) -> None:
    relay = make_relay(intake.url, portal_url=f"http://127.0.0.1:{free_port()}", portal_max_waits=2)
    assert relay.puller is not None
    assert relay.puller.poll_once().stopped == "CONNECT_ERROR"
    assert len(sleeps.waits) == 2


def test_an_expired_token_means_a_new_login(serve_portal: Any, intake: Intake, make_relay: RelayFactory) -> None:
    portal = serve_portal(token_ttl=timedelta(minutes=5))
    relay = make_relay(intake.url, portal_url=portal.url, page_size=100)
    assert relay.puller is not None
    assert relay.portal is not None
    relay.puller.poll_once()
    old_token = relay.portal._token
    portal.session_clock.advance(timedelta(hours=1))
    portal.clock.advance(timedelta(hours=2))
    assert relay.puller.poll_once().count(Outcome.STORED) == 2
    assert relay.portal._token != old_token


def _replace_package(portal_dir: Path, receipt: str, data: bytes) -> None:
    (portal_dir / "packages" / f"{receipt}.zip").write_bytes(data)
    path = portal_dir / "applications.jsonl"
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    for line in lines:
        if line["receipt_number"] == receipt:
            line["sha256"], line["size"] = hashlib.sha256(data).hexdigest(), len(data)
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), "utf-8")


def test_refused_packages_are_tombstoned_and_passed(
    data_dir: tuple[Path, list[App]], serve_portal: Any, intake: Intake, make_relay: RelayFactory
) -> None:
    _replace_package(data_dir[0], "20261125-0000000003", sample_pdf("not a zip"))
    _replace_package(data_dir[0], "20261125-0000000004", b"PK" + bytes(300_000))  # over the relay's cap
    portal = serve_portal()
    relay = make_relay(intake.url, portal_url=portal.url)
    assert relay.puller is not None
    result = relay.puller.poll_once()
    assert result.stopped is None
    assert result.count(Outcome.REFUSED) == 2
    assert result.count(Outcome.STORED) == ARRIVED - 2
    refused = {s.receipt_number: s.reason_code for s in relay.tombstones.all() if s.outcome is Outcome.REFUSED}
    assert refused == {"20261125-0000000003": "NOT_A_ZIP", "20261125-0000000004": "ZIP_TOO_LARGE"}
    assert intake.deliveries() == ARRIVED - 2
    assert relay.tombstones.cursor() is not None

    relay.tombstones._db.execute("DELETE FROM pull_cursor")  # a lost cursor: everything is listed again …
    again = relay.puller.poll_once()
    assert again.skipped == ARRIVED
    assert again.outcomes == {}


def test_pull_over_a_relay_whose_intake_is_down_stores_nothing(
    serve_portal: Any, intake: Intake, make_relay: RelayFactory, sleeps: Sleeps
) -> None:
    portal = serve_portal()
    relay: Relay = make_relay(f"http://127.0.0.1:{free_port()}", portal_url=portal.url)
    assert relay.puller is not None
    result = relay.puller.poll_once()
    assert result.stopped == "INTAKE_UNAVAILABLE"
    assert result.count(Outcome.FAILED) == 1
    assert relay.tombstones.cursor() is None
    assert len(sleeps.waits) == 2  # three attempts for the first package, then the round ends


def _env(world: World, tmp_path: Path, intake_url: str, portal_url: str) -> dict[str, str]:
    import os

    return {**os.environ, "SHINSEI_RELAY_DATA_DIR": str(tmp_path / "cli-relay"), "SHINSEI_RELAY_SCANNER": "none",
            "SHINSEI_RELAY_INTAKE_URL": intake_url, "SHINSEI_RELAY_PORTAL_URL": portal_url,
            "SHINSEI_RELAY_MUNICIPALITY_CODE": "131032",
            "SHINSEI_RELAY_PORTAL_API_KEY": "0123456789abcdef0123456789abcdef",
            "SHINSEI_RELAY_JPKI_ROOTS": json.dumps([str(world.jpki_roots)]),
            "SHINSEI_RELAY_JPKI_INTERMEDIATES": json.dumps([str(world.intermediates)]),
            "SHINSEI_RELAY_PORTAL_ROOTS": json.dumps([str(world.portal_roots)]),
            "SHINSEI_RELAY_CRLS": json.dumps([str(world.crl_dir)]),
            # The CLI runs on the wall clock; the test PKI's CRLs are current around NOW only.
            "SHINSEI_RELAY_REVOCATION": "soft-fail"}


def test_pull_once_from_the_command_line(
    world: World, tmp_path: Path, serve_portal: Any, intake: Intake
) -> None:
    import subprocess
    import sys

    portal = serve_portal()
    done = subprocess.run([sys.executable, "-m", "dmz_relay", "pull", "--once"],
                          env=_env(world, tmp_path, intake.url, portal.url), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outcomes"] == {"stored": ARRIVED}
    assert intake.deliveries() == ARRIVED
    for line in done.stderr.splitlines():  # every log line is JSON
        json.loads(line)


# --- the next package is downloaded while the current one is handled (pull_prefetch) ---------------


class _Watch:
    """Sees the relay's package downloads (an httpx event hook on its portal client) and, in front
    of the real (null) scanner, what had been downloaded when the first package was scanned."""

    def __init__(self, wait_for: int | None) -> None:
        self.downloads: list[str] = []
        self.asked = threading.Event()
        self.wait_for = wait_for
        self.at_first_scan: list[str] | None = None
        self.scanner = NullScanner()

    def hook(self, request: httpx.Request) -> None:
        if request.url.path.endswith("/package"):
            self.downloads.append(request.url.path.split("/")[-2])
            if self.wait_for is not None and len(self.downloads) >= self.wait_for:
                self.asked.set()

    def scan(self, name: str, data: bytes | bytearray | memoryview) -> ScanVerdict:
        if self.at_first_scan is None:
            if self.wait_for is not None:
                self.asked.wait(timeout=30)  # bounded: returns as soon as the download was asked for
            self.at_first_scan = list(self.downloads)
        return self.scanner.scan(name, data)

    def ping(self) -> bool:
        return True


def _watched(make_relay: RelayFactory, intake_url: str, portal: Portal, watch: _Watch, **settings: Any) -> Relay:
    relay = make_relay(intake_url, portal_url=portal.url, scanner=watch, **settings)
    assert relay.portal is not None
    relay.portal.http.event_hooks = {"request": [watch.hook], "response": []}
    return relay


def _all_slots_free(relay: Relay) -> bool:
    taken = 0
    while relay.slots.acquire(blocking=False):
        taken += 1
    for _ in range(taken):
        relay.slots.release()
    return taken == relay.settings.max_concurrent_packages


def test_the_next_package_is_downloaded_while_one_is_handled_and_no_further(
    serve_portal: Any, intake: Intake, make_relay: RelayFactory
) -> None:
    portal = serve_portal()
    watch = _Watch(wait_for=2)
    relay = _watched(make_relay, intake.url, portal, watch, pull_prefetch=1)
    assert relay.puller is not None
    result = relay.puller.poll_once()
    # While the first package was being scanned, the second had been asked for — not a third.
    assert watch.at_first_scan is not None
    assert len(watch.at_first_scan) == 2
    assert result.stopped is None
    assert result.count(Outcome.STORED) == ARRIVED
    assert sorted(watch.downloads) == sorted(set(watch.downloads))  # each downloaded once
    assert len(watch.downloads) == ARRIVED
    assert stored_receipts(intake.engine) == sorted(a.receipt_number for a in portal.arrived())
    # Handled in list order (tombstones are opened when a package's turn comes), whichever download
    # was asked for first.
    listed = sorted(portal.arrived(), key=lambda a: (a.arrived_at, a.receipt_number))
    assert [s.receipt_number for s in relay.tombstones.all()] == [a.receipt_number for a in listed]
    assert _all_slots_free(relay)


def test_downloads_ahead_wait_for_a_free_package_slot(
    serve_portal: Any, intake: Intake, make_relay: RelayFactory
) -> None:
    portal = serve_portal()
    watch = _Watch(wait_for=None)
    relay = _watched(make_relay, intake.url, portal, watch, pull_prefetch=1, max_concurrent_packages=1)
    assert relay.puller is not None
    result = relay.puller.poll_once()
    # One slot: the package being handled holds it, so nothing was downloaded ahead of it.
    assert watch.at_first_scan is not None
    assert len(watch.at_first_scan) == 1
    assert result.count(Outcome.STORED) == ARRIVED
    assert len(watch.downloads) == ARRIVED
    assert _all_slots_free(relay)


def test_a_stopped_round_wipes_the_package_downloaded_ahead_and_the_next_round_takes_it_once(
    serve_portal: Any, intake_engine: Engine, intake_runtime: Runtime, make_relay: RelayFactory
) -> None:
    portal = serve_portal()
    front = _FailFrom(create_intake_app(intake_runtime, make_session_factory(intake_engine)), first=1)
    watch = _Watch(wait_for=2)
    with serve_in_thread(front) as intake_url:
        relay = _watched(make_relay, intake_url, portal, watch, pull_prefetch=1, forward_attempts=1)
        assert relay.puller is not None
        first = relay.puller.poll_once()
        assert first.stopped == "INTAKE_UNAVAILABLE"
        assert watch.at_first_scan is not None
        assert len(watch.at_first_scan) == 2
        # Only the package whose turn came has a tombstone; the one fetched ahead was wiped and its
        # slot is free; nothing was recorded about it (its turn never came).
        stones = relay.tombstones.all()
        assert [(s.receipt_number, s.outcome) for s in stones] == [(watch.downloads[0], Outcome.FAILED)]
        assert _all_slots_free(relay)
        assert relay.tombstones.item(watch.downloads[1]) is None
        front.broken = False
        second = relay.puller.poll_once()
    assert second.stopped is None
    assert second.count(Outcome.STORED) == ARRIVED
    assert stored_receipts(intake_engine) == sorted(a.receipt_number for a in portal.arrived())
    assert _all_slots_free(relay)


def test_a_pulled_package_costs_four_fsyncs_and_each_comes_before_what_others_see(
    serve_portal: Any, intake: Intake, make_relay: RelayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19: a pulled package took nine commits at ``synchronous=FULL`` (an fsync costs the
    relay ~0.05–0.15 ms of CPU). Now five: its tombstone opened, ``verified`` (the SHA-256 the
    package turned out to have), ``scanned`` before the forward, its outcome (with the links), its
    item settled before the portal is told; the round adds its own (start, cursor, end)."""
    from tests.dmz_relay.commits import CommitLog

    portal = serve_portal()
    relay = make_relay(intake.url, portal_url=portal.url)
    assert relay.puller is not None
    log = CommitLog(relay.tombstones)
    deliver, report = relay.intake.deliver, relay.puller.portal.report_reception

    def forward(*args: Any, **kwargs: Any) -> Any:
        log.mark("forward")
        return deliver(*args, **kwargs)

    def tell(*args: Any, **kwargs: Any) -> Any:
        log.mark("report")
        return report(*args, **kwargs)

    monkeypatch.setattr(relay.intake, "deliver", forward)
    monkeypatch.setattr(relay.puller.portal, "report_reception", tell)
    result = relay.puller.poll_once()
    assert (result.count(Outcome.STORED), result.stopped) == (ARRIVED, None)
    tally = log.tally()
    assert tally.fsynced == 5 * ARRIVED + 2 + result.cursor_saves
    # listed, forwarded, the portal told: each made durable by the next fsync'd commit
    assert tally.unsynced == 3 * ARRIVED
    # Only "the portal was told" of the report before may still wait for an fsync when the next goes.
    assert [e for e in tally.exposed if e != "report"] == []
    assert all(s.verified_at and s.forwarded_at and s.erased_at for s in relay.tombstones.all())
    assert relay.tombstones.untold_portal() == []
