"""The API's parts without a server: token bucket, fault pattern, cursors, clocks, settings, rules."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

import portal_sim.api
from portal_sim.api import (
    AcceleratedClock,
    ApiSettings,
    ConfigurationError,
    FaultInjection,
    FixedClock,
    RateLimit,
    Status,
    SystemClock,
    parse_clock,
)
from portal_sim.api.cursor import decode_cursor, encode_cursor
from portal_sim.api.errors import InvalidCursor, RateLimited, ServiceUnavailable
from portal_sim.api.limits import FaultInjector, RateLimiter, TokenBucket
from portal_sim.api.statuses import FINAL, TRANSITIONS
from tests.conftest import NOW


def test_public_api_is_what_we_mean_to_export() -> None:
    assert set(portal_sim.api.__all__) == {
        "AcceleratedClock", "ApiProblem", "ApiSettings", "Clock", "ConfigurationError", "FaultInjection",
        "FixedClock", "PortalApiError", "RateLimit", "Status", "SystemClock", "create_app", "parse_clock",
    }
    for name in portal_sim.api.__all__:
        assert getattr(portal_sim.api, name) is not None


# -- token bucket ----------------------------------------------------------------------------------

def test_token_bucket_refills_continuously_up_to_capacity() -> None:
    bucket = TokenBucket(rate=2.0, capacity=2, tokens=2, updated=NOW)
    assert [bucket.take(NOW) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert bucket.take(NOW + timedelta(seconds=0.25)) == pytest.approx(0.25)
    assert bucket.take(NOW + timedelta(seconds=0.5)) == 0.0
    assert bucket.take(NOW + timedelta(hours=1)) == 0.0
    assert bucket.tokens == pytest.approx(1.0)  # capped at capacity, minus the one just taken


def test_token_bucket_does_not_refill_when_the_clock_goes_back() -> None:
    bucket = TokenBucket(rate=1.0, capacity=1, tokens=0, updated=NOW)
    assert bucket.take(NOW - timedelta(hours=1)) == pytest.approx(1.0)
    assert bucket.take(NOW + timedelta(seconds=0.5)) == pytest.approx(0.5)  # half a second since NOW, not 1 h
    assert bucket.take(NOW + timedelta(seconds=1)) == 0.0


# -- faults ----------------------------------------------------------------------------------------

def _pattern(faults: FaultInjection, n: int = 12) -> list[bool]:
    injector = FaultInjector(faults)
    out = []
    for _ in range(n):
        try:
            injector.check()
            out.append(False)
        except ServiceUnavailable:
            out.append(True)
    return out


@pytest.mark.parametrize(("faults", "expected"), [
    pytest.param(FaultInjection(), [False] * 12, id="off"),
    pytest.param(FaultInjection(every=4), [False, False, False, True] * 3, id="every-4th"),
    pytest.param(FaultInjection(probability=1.0), [True] * 12, id="always"),
])
def test_fault_patterns(faults: FaultInjection, expected: list[bool]) -> None:
    assert _pattern(faults) == expected


def test_random_faults_do_not_depend_on_every() -> None:
    random_only = _pattern(FaultInjection(probability=0.3, seed=5))
    both = _pattern(FaultInjection(probability=0.3, seed=5, every=5))
    assert [a or (i + 1) % 5 == 0 for i, a in enumerate(random_only)] == both


# -- cursors -----------------------------------------------------------------------------------------

def test_cursor_round_trip_and_opacity() -> None:
    cursor = encode_cursor("applications", ["2026-11-25T03:00:00+00:00", "20261125-0000000001"])
    assert "=" not in cursor
    assert "2026" not in cursor
    assert decode_cursor("applications", cursor) == ["2026-11-25T03:00:00+00:00", "20261125-0000000001"]


@pytest.mark.parametrize("cursor", [
    pytest.param("", id="empty"),
    pytest.param("a" * 513, id="too-long"),
    pytest.param("%%%", id="not-base64"),
    pytest.param(base64.urlsafe_b64encode(b"\xff\xfe").decode(), id="not-utf8"),
    pytest.param(base64.urlsafe_b64encode(b"[1, 2]").decode(), id="not-an-object"),
    pytest.param(encode_cursor("statuses", [1]), id="other-list"),
])
def test_cursor_rejects_what_we_did_not_issue(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor("applications", cursor)


# -- clocks --------------------------------------------------------------------------------------------

def test_fixed_clock_moves_only_when_told() -> None:
    clock = FixedClock(NOW)
    assert clock.now() == clock.now() == NOW
    assert clock.advance(timedelta(seconds=5)) == NOW + timedelta(seconds=5)
    clock.set(NOW - timedelta(days=1))
    assert clock.now() == NOW - timedelta(days=1)


def test_accelerated_clock_runs_factor_times_faster() -> None:
    ticks = iter([100.0, 100.0, 110.0])
    clock = AcceleratedClock(NOW, 60, monotonic=lambda: next(ticks))
    assert clock.now() == NOW
    assert clock.now() == NOW + timedelta(minutes=10)


def test_system_clock_is_aware_jst() -> None:
    assert SystemClock().now().utcoffset() == timedelta(hours=9)


def test_parse_clock_specs() -> None:
    assert isinstance(parse_clock("real"), SystemClock)
    assert parse_clock("fixed:2026-11-25T12:00:00+09:00").now() == NOW
    assert parse_clock("accelerated:60@2026-11-25T12:00:00+09:00").now() - NOW < timedelta(minutes=1)
    assert parse_clock("accelerated:1", default_start=NOW).now() - NOW < timedelta(seconds=5)


@pytest.mark.parametrize("spec", [
    pytest.param("wall", id="unknown-kind"),
    pytest.param("fixed:2026-11-25T12:00:00", id="naive-fixed"),
    pytest.param("fixed:noon", id="not-a-date"),
    pytest.param("accelerated:fast@2026-11-25T12:00:00+09:00", id="factor-not-a-number"),
    pytest.param("accelerated:0@2026-11-25T12:00:00+09:00", id="factor-zero"),
    pytest.param("accelerated:60", id="no-start-known"),
    pytest.param("real:now", id="real-with-argument"),
])
def test_parse_clock_refuses_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_clock(spec)


def test_naive_moments_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        FixedClock(datetime(2026, 11, 25, 12, 0))  # noqa: DTZ001 - the point of the test


# -- settings ------------------------------------------------------------------------------------------

def test_default_settings_limit_rate_and_inject_no_faults() -> None:
    settings = ApiSettings()
    assert settings.rate_limit == RateLimit(per_second=10, burst=20)
    assert not settings.faults.enabled
    assert settings.token_ttl == timedelta(hours=1)
    assert settings.timer is settings.clock


@pytest.mark.parametrize("make", [
    pytest.param(lambda: RateLimit(per_second=0), id="rate-zero"),
    pytest.param(lambda: RateLimit(burst=0), id="burst-zero"),
    pytest.param(lambda: FaultInjection(every=0), id="every-zero"),
    pytest.param(lambda: FaultInjection(probability=1.5), id="probability-above-one"),
    pytest.param(lambda: FaultInjection(retry_after=0), id="retry-after-zero"),
    pytest.param(lambda: ApiSettings(token_ttl=timedelta(0)), id="ttl-zero"),
    pytest.param(lambda: ApiSettings(default_page_size=101), id="page-size-above-max"),
    pytest.param(lambda: ApiSettings(municipality_code="13103"), id="municipality-five-digits"),
    pytest.param(lambda: ApiSettings(max_body_bytes=10), id="body-limit-tiny"),
    pytest.param(lambda: ApiSettings(api_key=SecretStr("short")), id="api-key-short"),
])
def test_insecure_or_senseless_settings_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigurationError):
        make()


def test_create_app_refuses_a_directory_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        portal_sim.api.create_app(tmp_path, settings=ApiSettings(clock=FixedClock(NOW)))


def test_injected_fault_carries_the_configured_retry_after() -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        FaultInjector(FaultInjection(every=1, retry_after=9)).check()
    assert caught.value.retry_after == 9
    assert caught.value.headers() == {"Retry-After": "9"}


# -- status rules --------------------------------------------------------------------------------------

def test_final_statuses_have_no_successor_and_arrival_none_predecessor() -> None:
    assert {Status.COMPLETED, Status.REJECTED, Status.WITHDRAWN} == FINAL
    assert all(not TRANSITIONS[s] for s in FINAL)
    assert all(Status.ARRIVED not in successors for successors in TRANSITIONS.values())
    assert set(TRANSITIONS) == set(Status)


def test_every_non_final_status_can_end() -> None:
    for status in set(Status) - FINAL:
        reachable: set[Status] = set()
        todo = [status]
        while todo:
            for nxt in TRANSITIONS[todo.pop()] - reachable:
                reachable.add(nxt)
                todo.append(nxt)
        assert reachable >= FINAL, status


def test_rate_limiter_forgets_only_buckets_that_are_full_again() -> None:
    clock = FixedClock(NOW)
    limiter = RateLimiter(RateLimit(per_second=1, burst=1), clock)
    limiter.MAX_BUCKETS = 2  # a small bound, to reach the purge
    limiter.check("a")
    limiter.check("b")
    clock.advance(timedelta(seconds=1))  # a and b are full again
    limiter.check("c")
    limiter.check("d")  # over the bound: a and b are forgotten, c (empty) is kept
    assert set(limiter._buckets) == {"c", "d"}
    with pytest.raises(RateLimited):
        limiter.check("c")
