"""The intake as operators run it: `python -m intake db upgrade` and `serve` in real processes."""

from __future__ import annotations

import threading

import httpx
import pytest
from sqlalchemy import select

from intake.db import make_engine, make_session_factory
from intake.deliveries.service import expected_key
from intake.models import Delivery
from tests.conftest import PackageFactory
from tests.intake.conftest import intake_process


def stored(url: str) -> list[int]:
    """Ids of the stored deliveries (the engine is disposed: no connection outlives the check)."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            return list(s.scalars(select(Delivery.id)))
    finally:
        engine.dispose()


def post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/deliveries", content=body, timeout=60,
                      headers={"Content-Type": "application/zip", "Idempotency-Key": expected_key(body)})


def test_crash_after_commit_then_retry_gets_the_same_receipt(
    env: dict[str, str], database_url: str, make_package: PackageFactory
) -> None:
    body = make_package()
    with intake_process(env, "tests.support.crashing_intake") as (url, proc):
        with pytest.raises(httpx.TransportError):
            post(url, body)
        assert proc.wait(20) == 137
    ids = stored(database_url)
    assert len(ids) == 1  # committed before the crash
    with intake_process(env) as (url, _):
        retry = post(url, body)
    assert retry.status_code == 200
    assert retry.json()["duplicate"] is True
    assert retry.json()["delivery_id"] == ids[0]
    assert stored(database_url) == ids


def test_two_intake_processes_store_one(env: dict[str, str], database_url: str, make_package: PackageFactory) -> None:
    body = make_package()
    with intake_process(env) as (a, _), intake_process(env) as (b, _):
        statuses: list[int] = []
        barrier = threading.Barrier(6)

        def send(url: str) -> None:
            barrier.wait(10)
            statuses.append(post(url, body).status_code)

        threads = [threading.Thread(target=send, args=(u,)) for u in (a, b, a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert statuses.count(201) == 1
    assert set(statuses) <= {200, 201, 409}
    assert len(stored(database_url)) == 1
