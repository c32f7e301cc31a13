"""A wrong certificate between relay and intake loses nothing (issue 16's proof, "wrong client certificate").

Over real TLS: the real intake app served by uvicorn exactly as ``intake serve --tls-cert --tls-key
--client-ca`` serves it (``client_auth=dedicated-ca``: client certificates from the relay-only CA are
required in the handshake), portal_sim's real API app, and a relay whose intake client is the
production one (:func:`dmz_relay.forwarder.build_intake_http` from the relay's settings).

A tired operator installs the wrong file at the path the relay's settings name:

* ``client-certificate-from-another-ca``: the relay's client certificate comes from another CA, so
  the intake refuses it in the handshake;
* ``intake-ca-of-another-ca``: the relay's certificate is right, but the CA it trusts for the intake
  is the relay-only client CA, so the relay refuses the intake's server certificate.

Either way the pull round stops at the first package, nothing is marked done, no attempt is counted,
the cursor stays, the portal is told nothing, readiness is red and the metrics show the stop; and it
stops as what it is — ``misconfigured: TLS_HANDSHAKE``, at once, without retries. For the refused
client certificate that needs the intake's listener loop (``tlsreload.alerting:listener_loop``, which the
intake here runs on as ``intake serve`` does): under TLS 1.3 it is what sends the relay the alert that
says why, where asyncio's own loop closes without it (CPython issue 98078) and the relay, seeing only
"Server disconnected without sending a response", must retry it as an intake that went away. What
must hold however the refusal is read is also its own test.

Then the operator installs the right file and restarts the relay — what production does: the relay
reads its intake client certificate and CA once, when it starts (``Relay.from_settings`` →
``build_intake_http``); only the push API's server certificate is reloaded while running. The
restarted relay, over the same state directory, stores every offered 受付番号 exactly once, and its
readiness and metrics show the resume.
"""

from __future__ import annotations

import logging
import random
import shutil
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from dmz_relay.errors import IntakeUnavailable
from dmz_relay.forwarder import BackoffPolicy, IntakeClient, build_intake_http
from dmz_relay.runtime import Relay
from intake.api import create_app as create_intake_app
from intake.db import make_session_factory
from intake.runtime import Runtime
from intake.serving import listener_problem
from portal_sim.api import ApiSettings, FixedClock, create_app
from tests.conftest import NOW, World
from tests.dmz_relay.conftest import RelayFactory, Sleeps, count_deliveries, relay_settings
from tests.dmz_relay.test_pull import ARRIVED, Portal, stored_receipts
from tests.portal_sim.api_support import API_KEY, MUNICIPALITY, App, write_data_dir
from tests.support.servers import serve_in_thread
from tests.support.tlscerts import RelayIntakeTls, TlsFiles, relay_intake_tls
from tests.support.tlsfaults import closing_after_hello

FAULTS = ["client-certificate-from-another-ca", "intake-ca-of-another-ca"]


@pytest.fixture
def portal(world: World, tmp_path: Path) -> Iterator[Portal]:
    directory = tmp_path / "portal"
    apps: list[App] = write_data_dir(world, directory)
    clock, session_clock = FixedClock(NOW), FixedClock(NOW)
    app = create_app(directory, settings=ApiSettings(clock=clock, session_clock=session_clock, rate_limit=None))
    with serve_in_thread(app) as url:
        yield Portal(url, directory, apps, clock, session_clock)


@pytest.fixture
def pki(tmp_path: Path) -> RelayIntakeTls:
    directory = tmp_path / "pki"
    directory.mkdir()
    return relay_intake_tls(directory)


@pytest.fixture
def mtls_intake(intake_engine: Engine, intake_runtime: Runtime, pki: RelayIntakeTls) -> Iterator[str]:
    """The intake's machine API as ``intake serve`` runs it with ``--client-ca`` (intake/serving.py)."""
    settings = intake_runtime.settings.model_copy(update={"client_auth": "dedicated-ca"})
    strict = replace(intake_runtime, settings=settings)
    # The listener passes the fail-closed rule (a TLS machine API needs the relay-only CA).
    assert listener_problem(strict.settings, role="api", tls_cert=pki.server.cert, tls_key=pki.server.key,
                            client_ca=pki.relay_ca.cert) is None
    app = create_intake_app(strict, make_session_factory(intake_engine))
    with serve_in_thread(app, ssl_certfile=str(pki.server.cert), ssl_keyfile=str(pki.server.key),
                         ssl_ca_certs=str(pki.relay_ca.cert), ssl_cert_reqs=ssl.CERT_REQUIRED,
                         loop="tlsreload.alerting:listener_loop") as url:
        assert url.startswith("https://")
        yield url


@dataclass(frozen=True)
class Installed:
    """The relay's TLS files where its settings name them (``/etc/shinsei/…`` on a real host)."""

    client_cert: Path
    client_key: Path
    intake_ca: Path

    def install(self, client: TlsFiles, intake_ca: TlsFiles) -> None:
        """What the operator does: copy files over the configured paths."""
        shutil.copyfile(client.cert, self.client_cert)
        shutil.copyfile(client.key, self.client_key)
        shutil.copyfile(intake_ca.cert, self.intake_ca)

    def settings(self) -> dict[str, Any]:
        return {"client_cert": self.client_cert, "client_key": self.client_key, "intake_ca": self.intake_ca}


def metrics_of(relay: Relay) -> str:
    return relay.metrics.render().decode()


def sample_values(metrics: str, name: str) -> list[float]:
    """The values of every sample of ``name`` (any labels) in a Prometheus text exposition."""
    return [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
            if line.split("{", 1)[0].split(" ", 1)[0] == name]


def reception(portal: Portal, receipt_number: str) -> dict[str, Any] | None:
    """What the relay told the portal about ``receipt_number`` (None: nothing)."""
    token = httpx.post(f"{portal.url}/api/v1/login", json={"municipality_code": MUNICIPALITY, "api_key": API_KEY},
                       timeout=10).json()["access_token"]
    answer = httpx.get(f"{portal.url}/api/v1/applications/{receipt_number}/reception", timeout=10,
                       headers={"Authorization": f"Bearer {token}"})
    return None if answer.status_code == 404 else dict(answer.json())


@pytest.mark.parametrize("fault", FAULTS)
def test_a_wrong_certificate_stops_the_channel_as_misconfigured_and_the_right_one_stores_everything_once(
    chain: Chain, fault: str,
) -> None:
    chain.run(fault, classified=True)


def test_a_refused_client_certificate_loses_nothing(chain: Chain) -> None:
    """What must hold however the refusal is classified: nothing done, nothing lost, nothing twice."""
    chain.run(FAULTS[0], classified=False)


@dataclass
class Chain:
    world: World
    tmp_path: Path
    portal: Portal
    intake_url: str
    intake_engine: Engine
    pki: RelayIntakeTls
    make_relay: RelayFactory
    sleeps: Sleeps
    caplog: pytest.LogCaptureFixture

    def run(self, fault: str, *, classified: bool) -> None:
        """The wrong file, a stopped channel, the right file and a restart, every 受付番号 stored once.

        ``classified``: also that the stop is read as what it is — ``misconfigured: TLS_HANDSHAKE``,
        at once, logged at ERROR."""
        etc = self.tmp_path / "etc-shinsei"
        etc.mkdir()
        installed = Installed(etc / "relay-client.pem", etc / "relay-client.key", etc / "intake-ca.pem")
        if fault == "client-certificate-from-another-ca":
            installed.install(self.pki.rogue, self.pki.server_ca)
        else:  # the relay-only client CA where the intake's server CA belongs
            installed.install(self.pki.relay, self.pki.relay_ca)
        engine, portal = self.intake_engine, self.portal
        offered = sorted(a.receipt_number for a in portal.arrived())
        assert len(offered) == ARRIVED

        # --- the wrong file is installed ----------------------------------------------------------
        relay = self.start_relay(installed)
        assert relay.puller is not None
        with self.caplog.at_level(logging.INFO, logger="dmz_relay"):
            stopped = relay.puller.poll_once()
        assert stopped.stopped is not None
        assert stopped.outcomes == {"failed": 1}  # the round stopped at the first package …
        assert relay.tombstones.cursor() is None  # … and nothing moved on
        assert count_deliveries(engine) == 0
        items = [relay.tombstones.item(r) for r in offered]
        assert all(i is None or (i.attempts == 0 and i.state.value == "pending") for i in items)  # nothing done
        assert all(reception(portal, r) is None for r in offered)  # the portal is told nothing
        checks = relay.readiness()
        assert checks["intake_channel"] != "ok"
        assert checks["intake"] == "unreachable"  # its /readyz fails the same handshake
        metrics = metrics_of(relay)
        assert "relay_intake_channel_ok 0.0" in metrics
        assert sum(sample_values(metrics, "relay_intake_channel_stops_total")) == 1.0
        assert 'relay_pull_rounds_total{result="stopped"} 1.0' in metrics
        assert 'relay_pull_items{state="stored"} 0.0' in metrics
        if classified:
            assert stopped.stopped == "TLS_HANDSHAKE"
            assert self.sleeps.waits == []  # at once: a handshake that fails is not waited out
            assert checks["intake_channel"] == "misconfigured: TLS_HANDSHAKE"
            assert 'relay_intake_channel_stops_total{state="misconfigured"} 1.0' in metrics
            stops = [r for r in self.caplog.records if r.getMessage() == "intake.channel_stopped"]
            assert [(r.levelno, r.relay_fields["reason_code"]) for r in stops] == [  # type: ignore[attr-defined]
                (logging.ERROR, "TLS_HANDSHAKE")]

        # A second round while the wrong file is still installed: the same stop, still nothing lost.
        again = relay.puller.poll_once()
        assert (again.stopped, again.outcomes) == (stopped.stopped, {"failed": 1})
        assert count_deliveries(engine) == 0
        assert relay.tombstones.cursor() is None

        # --- the operator installs the right files and restarts the relay (same state directory) --
        relay.close()
        installed.install(self.pki.relay, self.pki.server_ca)
        relay = self.start_relay(installed)
        assert relay.puller is not None
        before = relay.status()
        assert before["last_round"]["stopped"] == stopped.stopped  # type: ignore[index]  # the stop is on record
        assert before["last_completed_round"] is None
        assert relay.readiness()["intake"] == "ok"

        waits_before = len(self.sleeps.waits)
        resumed = relay.puller.poll_once()
        assert resumed.stopped is None
        assert resumed.outcomes == {"stored": ARRIVED}
        assert len(self.sleeps.waits) == waits_before  # nothing to wait for once the files fit
        assert stored_receipts(engine) == offered  # every offered 受付番号, each exactly once
        assert count_deliveries(engine) == ARRIVED
        assert all(reception(portal, r)["result"] == "taken" for r in offered)  # type: ignore[index]
        checks = relay.readiness()
        assert (checks["intake"], checks["intake_channel"]) == ("ok", "ok")
        status = relay.status()
        assert status["items"] == {"pending": 0, "stored": ARRIVED, "refused": 0, "set_aside": 0}
        assert status["last_completed_round"] is not None
        metrics = metrics_of(relay)
        assert "relay_intake_channel_ok 1.0" in metrics
        assert sample_values(metrics, "relay_intake_channel_stops_total") == []  # no stop since the restart
        assert 'relay_pull_rounds_total{result="completed"} 1.0' in metrics
        assert f'relay_packages_total{{channel="pull",outcome="stored"}} {float(ARRIVED)}' in metrics
        assert f'relay_pull_items{{state="stored"}} {float(ARRIVED)}' in metrics
        assert sample_values(metrics, "relay_pull_last_completed_round_timestamp_seconds") == [NOW.timestamp()]

        # Nothing twice: the next round finds nothing new and the intake holds each package once.
        assert relay.puller.poll_once().outcomes == {}
        assert stored_receipts(engine) == offered

    def start_relay(self, installed: Installed) -> Relay:
        """The relay as its process starts: the intake client built from the files its settings name."""
        settings = relay_settings(self.world, self.tmp_path, self.intake_url, **installed.settings())
        return self.make_relay(self.intake_url, intake_http=build_intake_http(settings), portal_url=self.portal.url,
                               page_size=3, forward_attempts=3, **installed.settings())


@pytest.fixture
def chain(world: World, tmp_path: Path, portal: Portal, mtls_intake: str, intake_engine: Engine,
          pki: RelayIntakeTls, make_relay: RelayFactory, sleeps: Sleeps, caplog: pytest.LogCaptureFixture) -> Chain:
    return Chain(world, tmp_path, portal, mtls_intake, intake_engine, pki, make_relay, sleeps, caplog)


def test_an_intake_that_closes_during_the_handshake_is_retried_not_misconfigured() -> None:
    """An intake restarting can close a connection in the middle of the TLS handshake; ``ssl`` reports
    that as ``SSLEOFError``. It is a disconnect, retried like any other, not a certificate problem
    that stops the channel (tlsreload.alerting.tls_refusal)."""
    attempts = 3
    waits: list[float] = []
    with closing_after_hello(attempts) as port, httpx.Client(
            base_url=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(), timeout=10,
            trust_env=False) as http:
        client = IntakeClient(http, backoff=BackoffPolicy(attempts=attempts), sleep=waits.append,
                              rng=random.Random(1))
        with pytest.raises(IntakeUnavailable) as unavailable:
            client.deliver(b"PK\x03\x04 not read by anyone")
    assert unavailable.value.attempts == attempts
    assert unavailable.value.code == "INTAKE_UNAVAILABLE"
    assert len(waits) == attempts - 1
