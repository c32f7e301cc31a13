"""Operations: mutual TLS to the intake end to end, /healthz, /readyz, /metrics, graceful shutdown."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from dmz_relay.forwarder import build_intake_http
from dmz_relay.ops import create_ops_app
from dmz_relay.push import create_app
from dmz_relay.tombstones import Outcome
from intake.api import create_app as create_intake_app
from intake.db import make_session_factory
from intake.runtime import Runtime
from malware import ClamdScanner
from portal_sim.api import ApiSettings, FixedClock
from portal_sim.api import create_app as create_portal_app
from tests.conftest import NOW, PackageFactory, World
from tests.dmz_relay.conftest import FixedClock as RelayClock
from tests.dmz_relay.conftest import Intake, RelayFactory, count_deliveries, push, relay_settings
from tests.portal_sim.api_support import write_data_dir
from tests.support.servers import free_port, serve_in_thread
from tests.support.tlscerts import RelayIntakeTls, relay_intake_tls

Pki = RelayIntakeTls


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return relay_intake_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def mtls_intake(intake_engine: Engine, intake_runtime: Runtime, pki: Pki) -> Iterator[str]:
    strict = replace(intake_runtime,
                     settings=intake_runtime.settings.model_copy(update={"client_auth": "dedicated-ca"}))
    app = create_intake_app(strict, make_session_factory(intake_engine))
    with serve_in_thread(app, ssl_certfile=str(pki.server.cert), ssl_keyfile=str(pki.server.key),
                         ssl_ca_certs=str(pki.relay_ca.cert), ssl_cert_reqs=ssl.CERT_REQUIRED) as url:
        yield url


def test_end_to_end_over_mutual_tls(
    world: World, tmp_path: Path, mtls_intake: str, pki: Pki, intake_engine: Engine,
    make_relay: RelayFactory, make_package: PackageFactory,
) -> None:
    settings = relay_settings(world, tmp_path, mtls_intake, intake_ca=pki.server_ca.cert,
                              client_cert=pki.relay.cert, client_key=pki.relay.key)
    relay = make_relay(mtls_intake, intake_http=build_intake_http(settings))
    with serve_in_thread(create_app(relay)) as url:
        response = push(url, make_package())
        again = push(url, make_package())
        ready = httpx.get(f"{url}/readyz", timeout=30)
    assert (response.status_code, again.status_code) == (201, 200), response.text
    assert count_deliveries(intake_engine) == 1
    assert ready.json()["checks"]["intake"] == "ok"


def test_a_relay_with_another_certificate_is_not_let_in(
    world: World, tmp_path: Path, mtls_intake: str, pki: Pki, intake_engine: Engine,
    make_relay: RelayFactory, make_package: PackageFactory,
) -> None:
    settings = relay_settings(world, tmp_path, mtls_intake, intake_ca=pki.server_ca.cert,
                              client_cert=pki.rogue.cert, client_key=pki.rogue.key)
    relay = make_relay(mtls_intake, intake_http=build_intake_http(settings))
    with serve_in_thread(create_app(relay)) as url:
        response = push(url, make_package())
    assert response.status_code == 503
    assert count_deliveries(intake_engine) == 0
    assert relay.tombstones.all()[0].outcome is Outcome.FAILED


def test_healthz_readyz_and_metrics(
    intake: Intake, make_relay: RelayFactory, make_package: PackageFactory, relay_clock: RelayClock
) -> None:
    relay = make_relay(intake.url)
    with serve_in_thread(create_app(relay)) as url:
        assert httpx.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
        ready = httpx.get(f"{url}/readyz", timeout=30)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"intake": "ok", "intake_channel": "ok", "portal": "skipped",
                                          "scanner": "disabled", "trust": "ok", "crls": "ok"}
        assert push(url, make_package()).status_code == 201
        # No metrics on the push listener without the bearer token; the loopback ops listener serves them.
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
        with serve_in_thread(create_ops_app(relay)) as ops:
            metrics = httpx.get(f"{ops}/metrics", timeout=10).text

        relay_clock.now = NOW + timedelta(days=2)  # past every CRL's nextUpdate
        assert relay.monitor is not None
        relay.monitor.run_once()  # the next scheduled check (/readyz itself never checks)
        stale = httpx.get(f"{url}/readyz", timeout=30)
    assert 'relay_packages_total{channel="push",outcome="stored"} 1.0' in metrics
    assert 'relay_package_seconds_count{channel="push"} 1.0' in metrics
    assert 'relay_stage_seconds_count{stage="verify"} 1.0' in metrics
    assert "relay_packages_in_flight 0.0" in metrics
    assert stale.status_code == 503
    assert stale.json()["checks"]["crls"].startswith("expired: the earliest nextUpdate passed")


def test_readyz_fails_when_the_intake_or_the_scanner_does_not_answer(
    make_relay: RelayFactory, tmp_path: Path
) -> None:
    relay = make_relay(f"http://127.0.0.1:{free_port()}", scanner=ClamdScanner(tmp_path / "no-clamd.sock",
                                                                                timeout=2))
    with serve_in_thread(create_app(relay)) as url:
        ready = httpx.get(f"{url}/readyz", timeout=30)
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert (checks["intake"], checks["scanner"]) == ("unreachable", "not answering")


def test_shutdown_leaves_no_package_half_done(
    world: World, tmp_path: Path, intake: Intake, make_relay: RelayFactory
) -> None:
    """Background pull loop started by the lifespan; leaving the app stops it. Whenever the stop
    lands, every tombstone is final, the intake holds exactly the stored ones, and the cursor never
    passes a package the intake does not have."""
    write_data_dir(world, tmp_path / "portal")
    portal = create_portal_app(tmp_path / "portal", settings=ApiSettings(clock=FixedClock(NOW), rate_limit=None))
    with serve_in_thread(portal) as portal_url:
        relay = make_relay(intake.url, portal_url=portal_url, page_size=1, poll_interval=3600)
        first_done = threading.Event()
        process = relay.pipeline.process

        def noted(*args: Any, **kwargs: Any) -> Any:
            try:
                return process(*args, **kwargs)
            finally:
                first_done.set()

        relay.pipeline.process = noted  # type: ignore[method-assign]
        app = create_app(relay, background=True)

        async def run() -> None:
            async with app.router.lifespan_context(app):  # what uvicorn does at start-up and shutdown
                assert await asyncio.to_thread(first_done.wait, 30)

        asyncio.run(run())
        assert relay.stop.is_set()
        stones = relay.tombstones.all()
        assert intake.deliveries() == sum(1 for s in stones if s.outcome is Outcome.STORED)
        # A restart resumes from the saved cursor and misses nothing.
        restarted = make_relay(intake.url, portal_url=portal_url)
        assert restarted.puller is not None
        assert restarted.puller.poll_once().stopped is None
        assert intake.deliveries() == 7
    assert stones
    assert all(s.outcome is not Outcome.RECEIVED for s in stones)
    assert all(s.outcome in (Outcome.STORED, Outcome.ABANDONED, Outcome.FAILED) for s in stones)


def test_serve_runs_and_stops_cleanly_on_sigterm(world: World, tmp_path: Path, intake: Intake,
                                                 make_package: PackageFactory) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys

    port = free_port()
    env = {**os.environ, "SHINSEI_RELAY_DATA_DIR": str(tmp_path / "serve-relay"), "SHINSEI_RELAY_SCANNER": "none",
           "SHINSEI_RELAY_INTAKE_URL": intake.url, "SHINSEI_RELAY_LISTEN_PORT": str(port),
           "SHINSEI_RELAY_JPKI_ROOTS": json.dumps([str(world.jpki_roots)]),
           "SHINSEI_RELAY_JPKI_INTERMEDIATES": json.dumps([str(world.intermediates)]),
           "SHINSEI_RELAY_PORTAL_ROOTS": json.dumps([str(world.portal_roots)]),
           "SHINSEI_RELAY_REVOCATION": "soft-fail"}
    process = subprocess.Popen([sys.executable, "-m", "dmz_relay", "serve"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # bounded: until the socket answers, or the process died
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            try:
                process.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"serve exited early: {process.stderr.read() if process.stderr else ''}")
        response = httpx.post(f"http://127.0.0.1:{port}/api/v1/packages", content=make_package(), timeout=60,
                              headers={"Content-Type": "application/zip"})
        assert response.status_code == 201, response.text
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    # uvicorn re-raises SIGTERM after its graceful shutdown, so the status is the signal's.
    assert process.returncode in (0, -signal.SIGTERM)
    events = [json.loads(line).get("event") for line in stderr.splitlines() if line.startswith("{")]
    assert "relay.started" in events
    assert "package.erased" in events
    assert "relay.stopped" in events
    assert intake.deliveries() == 1
