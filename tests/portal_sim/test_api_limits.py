"""Rate limits (429 + Retry-After) and injected faults (503 + Retry-After) over real HTTP.

The token bucket runs on the pinned clock, so "empty the bucket, wait, retry" is a clock move.
"""

from __future__ import annotations

from datetime import timedelta

from portal_sim.api import FaultInjection, RateLimit
from tests.portal_sim.api_support import API_KEY, MUNICIPALITY, Harness, Start, bearer


def statuses(portal: Harness, token: str, n: int) -> list[int]:
    return [portal.client.get("/api/v1/applications", headers=bearer(token)).status_code for _ in range(n)]


def test_empty_bucket_gives_429_with_retry_after_and_recovers_when_time_passes(start: Start) -> None:
    portal = start(rate_limit=RateLimit(per_second=1, burst=3))
    token = portal.token()
    assert statuses(portal, token, 3) == [200, 200, 200]
    limited = portal.client.get("/api/v1/applications", headers=bearer(token))
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["error"] == {"code": "RATE_LIMITED", "message": "too many requests for this token",
                                       "details": {"retry_after": 1}}
    portal.clock.advance(timedelta(milliseconds=999))
    assert statuses(portal, token, 1) == [429]  # a rejected request does not take a token, nor refill early
    portal.clock.advance(timedelta(milliseconds=1))
    assert statuses(portal, token, 2) == [200, 429]
    portal.clock.advance(timedelta(seconds=10))
    assert statuses(portal, token, 4) == [200, 200, 200, 429]  # refilled to the burst, not beyond


def test_retry_after_is_rounded_up_to_whole_seconds(start: Start) -> None:
    portal = start(rate_limit=RateLimit(per_second=0.4, burst=1))
    token = portal.token()
    assert statuses(portal, token, 1) == [200]
    assert portal.client.get("/api/v1/applications", headers=bearer(token)).headers["Retry-After"] == "3"
    portal.clock.advance(timedelta(seconds=1))
    assert portal.client.get("/api/v1/applications", headers=bearer(token)).headers["Retry-After"] == "2"


def test_each_token_has_its_own_bucket(start: Start) -> None:
    portal = start(rate_limit=RateLimit(per_second=1, burst=2))
    first, second = portal.token(), portal.token()
    assert statuses(portal, first, 3) == [200, 200, 429]
    assert statuses(portal, second, 2) == [200, 200]


def test_rate_limit_applies_to_every_authenticated_operation(start: Start) -> None:
    portal = start(rate_limit=RateLimit(per_second=1, burst=1))
    token = portal.token()
    assert portal.client.get("/api/v1/statuses", headers=bearer(token)).status_code == 200
    assert portal.client.get(f"/api/v1/applications/{portal.apps[0].receipt_number}/package",
                             headers=bearer(token)).status_code == 429


def test_every_nth_request_is_503_with_retry_after(start: Start) -> None:
    portal = start(faults=FaultInjection(every=3, retry_after=7))
    token = portal.token()  # request 1
    codes = []
    for _ in range(6):  # requests 2..7
        response = portal.client.get("/api/v1/applications", headers=bearer(token))
        codes.append(response.status_code)
        if response.status_code == 503:
            assert response.headers["Retry-After"] == "7"
            assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert codes == [200, 503, 200, 200, 503, 200]


def test_faults_hit_login_too_and_a_retry_succeeds(start: Start) -> None:
    portal = start(faults=FaultInjection(every=1))
    body = {"municipality_code": MUNICIPALITY, "api_key": API_KEY}
    assert portal.client.post("/api/v1/login", json=body).status_code == 503
    assert portal.client.get("/healthz").status_code == 200  # liveness is never faulted


def test_faults_come_before_authentication(start: Start) -> None:
    portal = start(faults=FaultInjection(every=1))
    assert portal.client.get("/api/v1/applications").status_code == 503


def _fault_pattern(start: Start, seed: int) -> list[int]:
    portal = start(faults=FaultInjection(probability=0.5, seed=seed))
    return [portal.client.get("/api/v1/applications").status_code for _ in range(24)]


def test_random_faults_are_repeatable_for_a_seed(start: Start) -> None:
    first = _fault_pattern(start, seed=11)
    again = _fault_pattern(start, seed=11)
    other = _fault_pattern(start, seed=12)
    assert first == again
    assert set(first) == {401, 503}  # some pass the fault gate (and then fail auth), some do not
    assert first != other
