"""Exactly once through a faulty network: the fault proxy sits between the relay and the real intake
and resets connections or loses the intake's reply after it committed."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from dmz_relay.push import create_app
from dmz_relay.tombstones import Outcome
from intake.models import Delivery
from signature.testing.builder import ApplicationSpec
from tests.conftest import PackageFactory
from tests.dmz_relay.conftest import Intake, RelayFactory, Sleeps, push
from tests.support.faultproxy import FaultProxy
from tests.support.servers import serve_in_thread


@pytest.fixture
def proxy(intake: Intake) -> Iterator[FaultProxy]:
    target = urlsplit(intake.url)
    with FaultProxy(target.hostname or "127.0.0.1", target.port or 80) as p:
        yield p


@contextlib.contextmanager
def relay_through(make_relay: RelayFactory, proxy: FaultProxy, *, read_timeout: float = 30,
                  attempts: int = 4) -> Iterator[str]:
    """A relay served over HTTP whose intake client goes through ``proxy``."""
    http = httpx.Client(base_url=proxy.url, timeout=httpx.Timeout(30, read=read_timeout), trust_env=False)
    relay = make_relay(proxy.url, intake_http=http, forward_attempts=attempts)
    with serve_in_thread(create_app(relay)) as url:
        yield url


def test_connection_resets_are_retried(
    proxy: FaultProxy, intake: Intake, make_relay: RelayFactory, make_package: PackageFactory, sleeps: Sleeps
) -> None:
    proxy.reset_next(2)
    with relay_through(make_relay, proxy) as url:
        response = push(url, make_package())
    assert response.status_code == 201, response.text
    assert len(sleeps.waits) == 2
    assert intake.deliveries() == 1


@pytest.mark.parametrize("mode", ["close", "reset", "hang"])
def test_a_reply_lost_after_the_intake_committed_is_not_a_second_copy(
    proxy: FaultProxy, intake: Intake, make_relay: RelayFactory, make_package: PackageFactory, mode: str
) -> None:
    proxy.drop_reply_next(1, mode)  # type: ignore[arg-type]
    with relay_through(make_relay, proxy, read_timeout=3) as url:
        response = push(url, make_package())
    # The intake stored it on the first attempt; the retry is answered with the same receipt.
    assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is True
    assert intake.deliveries() == 1


def test_many_packages_through_random_faults_are_stored_exactly_once(
    proxy: FaultProxy, intake: Intake, make_relay: RelayFactory, make_package: PackageFactory,
    spec: ApplicationSpec,
) -> None:
    rng = random.Random(11)
    bodies = [make_package(spec=replace(spec, receipt_number=f"20261125-{n:010d}")) for n in range(100, 124)]
    answers = []
    with relay_through(make_relay, proxy, read_timeout=3, attempts=6) as url:
        for body in bodies:
            fault = rng.choice(["none", "none", "reset", "close", "reset-drop"])
            if fault == "reset":
                proxy.reset_next(1)
            elif fault == "close":
                proxy.drop_reply_next(1, "close")
            elif fault == "reset-drop":
                proxy.drop_reply_next(1, "reset")
            response = push(url, body)
            if response.status_code == 503:  # told to come back: the source sends it again
                response = push(url, body)
            answers.append(response.status_code)
    assert all(code in (200, 201) for code in answers), answers
    with intake.session() as s:
        stored = sorted(s.scalars(select(Delivery.receipt_number)).all(), key=str)
    assert stored == [f"20261125-{n:010d}" for n in range(100, 124)]
    assert proxy.stats.resets + proxy.stats.dropped_replies > 0


def test_the_relay_tombstone_says_duplicate_when_the_receipt_came_on_a_retry(
    proxy: FaultProxy, intake: Intake, make_relay: RelayFactory, make_package: PackageFactory
) -> None:
    proxy.drop_reply_next(1, "close")
    http = httpx.Client(base_url=proxy.url, timeout=30, trust_env=False)
    relay = make_relay(proxy.url, intake_http=http)
    with serve_in_thread(create_app(relay)) as url:
        assert push(url, make_package()).status_code == 200
    [stone] = relay.tombstones.all()
    assert stone.outcome is Outcome.DUPLICATE
    assert stone.erased_at is not None
