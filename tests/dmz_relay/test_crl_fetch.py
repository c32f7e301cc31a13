"""The relay's CRL rounds (dmz_relay/crls.py): fetched from a real HTTP server serving CRLs of the test
PKI, checked, installed atomically, swapped into the relay's store, and handed to the real intake over
the relay's channel. What is refused keeps the installed copy in use and is counted by code. The
clock is pinned; waits are recorded, never slept."""

from __future__ import annotations

import fcntl
import os
import random
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from dmz_relay.crls import LOCK_FILE, CrlFetcher
from dmz_relay.forwarder import build_intake_http
from dmz_relay.runtime import Relay
from intake.api import create_app as create_intake_app
from intake.db import make_session_factory
from intake.runtime import Runtime
from intake.settings import IntakeSettings
from malware import NullScanner
from signature.revocation import RevocationStatus
from signature.testing.pki import Issued
from signature.verify import TrustConfig
from tests.conftest import NOW, World
from tests.dmz_relay.conftest import FixedClock, Sleeps, relay_settings
from tests.support.crlserver import CrlServer, crl_server
from tests.support.servers import free_port, serve_in_thread
from tests.support.tlscerts import RelayIntakeTls, relay_intake_tls

NAME = "jpki-g2"


def root_crl(world: World, *, hours: float = 1, days: float = 2, number: int | None = None,
             revoked: tuple[Issued, ...] = (), issuer: Issued | None = None) -> bytes:
    """A CRL of the current root (or ``issuer``), issued ``hours`` before NOW, valid ``days`` after."""
    return world.pki.issue_crl(issuer or world.pki.jpki_roots[1],
                               [(r.cert.serial_number, NOW - timedelta(days=1)) for r in revoked],
                               this_update=NOW - timedelta(hours=hours), next_update=NOW + timedelta(days=days),
                               crl_number=number)


@pytest.fixture
def server() -> Iterator[CrlServer]:
    with crl_server() as s:
        yield s


@dataclass
class IntakeSide:
    url: str
    runtime: Runtime
    inbox: Path


def intake_settings(world: World, tmp_path: Path, **extra: Any) -> IntakeSettings:
    inbox = tmp_path / "intake-crls"
    inbox.mkdir(exist_ok=True)
    return IntakeSettings(var_dir=tmp_path / "intake-var", jpki_roots=[world.jpki_roots],
                          portal_roots=[world.portal_roots], crls=[world.crl_dir, inbox], crl_inbox=inbox,
                          jpki_intermediates=[world.intermediates], **extra)


@pytest.fixture
def intake_side(world: World, tmp_path: Path, intake_engine: Engine) -> Iterator[IntakeSide]:
    settings = intake_settings(world, tmp_path)
    runtime = Runtime.from_settings(settings, clock=FixedClock(NOW))
    with serve_in_thread(create_intake_app(runtime, make_session_factory(intake_engine))) as url:
        yield IntakeSide(url, runtime, settings.crl_inbox or Path())


RelayMaker = Callable[..., Relay]


@pytest.fixture
def make_crl_relay(world: World, tmp_path: Path, sleeps: Sleeps, relay_clock: FixedClock) -> Iterator[RelayMaker]:
    """``make(intake_url, sources=[(name, url, issuer)], intake_http=…, **settings)``: a relay whose
    CRL directory is one of its CRL sources, built from parts with the pinned clock."""
    built: list[Relay] = []
    crl_dir = tmp_path / "relay-crls"
    crl_dir.mkdir()

    def make(intake_url: str, *, sources: list[dict[str, Any]], intake_http: httpx.Client | None = None,
             **overrides: Any) -> Relay:
        settings = relay_settings(world, tmp_path, intake_url, crls=[world.crl_dir, crl_dir], crl_dir=crl_dir,
                                  crl_sources=sources, **overrides)
        trust = TrustConfig.load(jpki_roots=[world.jpki_roots], portal_roots=[world.portal_roots],
                                 crls=[world.crl_dir, crl_dir], intermediates=[world.intermediates])
        relay = Relay.build(settings, trust=trust, scanner=NullScanner(),
                            intake_http=intake_http or httpx.Client(base_url=intake_url, timeout=30, trust_env=False),
                            clock=relay_clock, sleep=sleeps, rng=random.Random(5),
                            crl_http=httpx.Client(timeout=30, trust_env=False))
        built.append(relay)
        return relay

    yield make
    for relay in built:
        relay.close()


def fetcher(relay: Relay) -> CrlFetcher:
    assert relay.crl_fetcher is not None
    return relay.crl_fetcher


def metric(relay: Relay, line: str) -> bool:
    return line in relay.metrics.render().decode()


def sample(relay: Relay, name: str, **labels: str) -> float | None:
    """The value of one series of the relay's metrics (None: not exposed)."""
    for family in text_string_to_metric_families(relay.metrics.render().decode()):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


def status_of(relay: Relay, world: World, leaf: Issued) -> RevocationStatus:
    store = relay.trust.revocation
    assert store is not None
    return store.check(leaf.cert, world.pki.jpki_roots[1].cert, NOW - timedelta(minutes=30)).status


# --- the whole way ------------------------------------------------------------------------------------


def test_a_fresh_crl_is_fetched_installed_swapped_in_and_delivered(
    world: World, server: CrlServer, intake_side: IntakeSide, make_crl_relay: RelayMaker
) -> None:
    newly_revoked = world.pki.issue_signer(world.residents[2])
    fresh = root_crl(world, revoked=(world.revoked_signer, newly_revoked))
    relay = make_crl_relay(intake_side.url, sources=[{"name": NAME, "url": server.serve("g2.crl", fresh)}])
    store, intake_store = relay.trust.revocation, intake_side.runtime.trust.revocation
    assert store is not None
    assert intake_store is not None
    before, intake_before = store.status(), intake_store.status()
    assert status_of(relay, world, newly_revoked) is RevocationStatus.GOOD

    result = fetcher(relay).run_once()

    (r,) = result.results
    assert (r.outcome, r.delivery, result.ok) == ("installed", "delivered", True)
    assert r.line().startswith(f"{NAME}: installed (thisUpdate ")
    assert r.line().endswith("delivered to the intake")
    # Installed atomically where the store reads, swapped in while the relay runs.
    assert (relay.settings.crl_dir / f"{NAME}.crl").read_bytes() == fresh  # type: ignore[operator]
    assert [p.name for p in relay.settings.crl_dir.iterdir()] == [f"{NAME}.crl"]  # type: ignore[union-attr]
    after = store.status()
    assert after.generation == before.generation + 1
    assert after.digest != before.digest
    assert status_of(relay, world, newly_revoked) is RevocationStatus.REVOKED
    # The intake holds the same bytes in its inbox and uses them: the same CRL set as the relay.
    assert (intake_side.inbox / f"{NAME}.crl").read_bytes() == fresh
    assert intake_store.status().generation == intake_before.generation + 1
    assert intake_store.status().digest == after.digest
    assert metric(relay, f'relay_crl_fetches_total{{outcome="installed",source="{NAME}"}} 1.0')
    assert metric(relay, 'relay_crl_deliveries_total{result="delivered"} 1.0')
    assert sample(relay, "relay_crl_last_success_timestamp_seconds", source=NAME) == NOW.timestamp()
    assert sample(relay, "relay_crl_generation") == after.generation
    assert sample(relay, "relay_crl_seconds_until_next_update") == (after.earliest_next_update - NOW).total_seconds()  # type: ignore[operator]

    # The next round: a conditional GET, 304, nothing written or sent again.
    again = fetcher(relay).run_once()
    assert [(x.outcome, x.delivery) for x in again.results] == [("unchanged", "already")]
    assert server.hits("g2.crl")[-1].get("if-none-match")
    assert store.status().generation == after.generation
    assert intake_side.runtime.trust.revocation.status().generation == intake_before.generation + 1  # type: ignore[union-attr]


def test_delivery_goes_over_the_mutual_tls_channel(
    world: World, tmp_path: Path, server: CrlServer, intake_engine: Engine, make_crl_relay: RelayMaker
) -> None:
    """The relay's existing channel: the intake requires the relay's client certificate for CRLs too."""
    (tmp_path / "tls").mkdir()
    tls: RelayIntakeTls = relay_intake_tls(tmp_path / "tls")
    settings = intake_settings(world, tmp_path, client_auth="dedicated-ca")
    runtime = Runtime.from_settings(settings, clock=FixedClock(NOW))
    app = create_intake_app(runtime, make_session_factory(intake_engine))
    with serve_in_thread(app, ssl_certfile=str(tls.server.cert), ssl_keyfile=str(tls.server.key),
                         ssl_ca_certs=str(tls.relay_ca.cert), ssl_cert_reqs=ssl.CERT_REQUIRED) as url:
        answers = []
        for cert in (tls.rogue, tls.relay):
            relay_side = relay_settings(world, tmp_path, url, intake_ca=tls.server_ca.cert, client_cert=cert.cert,
                                        client_key=cert.key)
            relay = make_crl_relay(url, sources=[{"name": NAME, "url": server.serve("g2.crl", root_crl(world))}],
                                   intake_http=build_intake_http(relay_side))
            (r,) = fetcher(relay).run_once().results
            answers.append((r.delivery, r.delivery_code))
    # Another certificate is turned away in the handshake (TLS 1.3 reports it on the first read).
    assert answers[0][0] == "failed"
    assert answers[0][1] in ("TLS_HANDSHAKE", "CONNECT_ERROR")
    assert answers[1] == ("delivered", None)
    assert (tmp_path / "intake-crls" / f"{NAME}.crl").read_bytes() == root_crl(world)


# --- refused: the installed copy stays in use ---------------------------------------------------------


@pytest.mark.parametrize("case", ["forged", "truncated", "older", "over_size_declared", "over_size_streamed",
                                  "garbage", "compressed"])
def test_a_bad_download_is_refused_and_the_installed_crl_stays_in_use(
    world: World, server: CrlServer, intake_side: IntakeSide, make_crl_relay: RelayMaker, case: str
) -> None:
    genuine = root_crl(world, revoked=(world.revoked_signer,))
    url = server.serve("g2.crl", genuine)
    relay = make_crl_relay(intake_side.url, sources=[{"name": NAME, "url": url}], crl_max_bytes=64 * 1024)
    assert fetcher(relay).run_once().ok
    store = relay.trust.revocation
    assert store is not None
    installed = store.status()
    forged = world.pki.issue_crl(Issued(world.pki.jpki_roots[1].cert, world.pki.portal_root.key), [],
                                 this_update=NOW, next_update=NOW + timedelta(days=3), crl_number=10**9)
    big = genuine + b"\0" * (70 * 1024)
    bad, code, kwargs = {
        "forged": (forged, "SIGNATURE_INVALID", {}),
        "truncated": (root_crl(world, hours=0.5), "TRUNCATED", {"mode": "truncated"}),
        "older": (world.pki.issue_crl(world.pki.jpki_roots[1], [], this_update=NOW - timedelta(hours=6),
                                      next_update=NOW + timedelta(days=1)), "OLDER_THAN_INSTALLED", {}),
        "over_size_declared": (big, "TOO_LARGE", {}),
        "over_size_streamed": (big, "TOO_LARGE", {"mode": "no_length"}),
        "garbage": (b"<html>maintenance</html>", "MALFORMED", {}),
        "compressed": (root_crl(world, hours=0.5), "CONTENT_ENCODING", {"headers": {"Content-Encoding": "gzip"}}),
    }[case]
    server.serve("g2.crl", bad, **kwargs)

    result = fetcher(relay).run_once()

    (r,) = result.results
    assert (r.outcome, r.code, result.ok) == ("refused", code, False)
    assert r.line().startswith(f"{NAME}: REFUSED {code} (")
    assert "the installed copy stays in use" in r.line()
    assert r.delivery == "already"  # the intake keeps what it had; nothing bad was sent
    assert (relay.settings.crl_dir / f"{NAME}.crl").read_bytes() == genuine  # type: ignore[operator]
    assert store.status().digest == installed.digest
    assert status_of(relay, world, world.revoked_signer) is RevocationStatus.REVOKED  # still used
    assert (intake_side.inbox / f"{NAME}.crl").read_bytes() == genuine
    assert metric(relay, f'relay_crl_refused_total{{code="{code}"}} 1.0')
    assert metric(relay, f'relay_crl_fetches_total{{outcome="refused",source="{NAME}"}} 1.0')
    # The last success stays the genuine fetch's.
    assert fetcher(relay).state()[NAME]["code"] == code


@pytest.mark.parametrize(("answer", "code"), [(404, "HTTP_404"), (500, "HTTP_500"), (None, "CONNECT_ERROR")])
def test_a_distribution_point_that_fails_keeps_the_installed_crl(
    world: World, intake_side: IntakeSide, make_crl_relay: RelayMaker, relay_clock: FixedClock,
    answer: int | None, code: str,
) -> None:
    with crl_server() as server:
        relay = make_crl_relay(intake_side.url, sources=[{"name": NAME, "url": server.serve("g2.crl",
                                                                                            root_crl(world))}])
        assert fetcher(relay).run_once().ok
        relay_clock.now = NOW + timedelta(hours=1)
        if answer is not None:
            server.serve("g2.crl", b"", mode="status", status=answer)
            (r,) = fetcher(relay).run_once().results
    if answer is None:  # the server is gone: nothing listens at its port any more
        (r,) = fetcher(relay).run_once().results
    assert (r.outcome, r.code) == ("failed", code)
    assert r.line().startswith(f"{NAME}: FAILED {code}")
    state = fetcher(relay).state()[NAME]
    assert state["last_success_at"] == NOW.isoformat()  # the earlier success, not this attempt
    assert state["last_attempt_at"] == (NOW + timedelta(hours=1)).isoformat()
    assert (relay.settings.crl_dir / f"{NAME}.crl").exists()  # type: ignore[operator]
    assert metric(relay, f'relay_crl_fetches_total{{outcome="failed",source="{NAME}"}} 1.0')


def test_an_issuer_configured_for_the_source_must_have_signed_it(
    world: World, tmp_path: Path, server: CrlServer, intake_side: IntakeSide, make_crl_relay: RelayMaker
) -> None:
    """Root generation 1 shares the current root's name; configured for the source, a CRL of the
    current root is not signed by it and is refused. The current root configured: verified."""
    g1 = tmp_path / "g1.pem"
    g1.write_bytes(world.pki.jpki_roots[0].cert_pem())
    g2 = tmp_path / "g2.pem"
    g2.write_bytes(world.pki.jpki_roots[1].cert_pem())
    url = server.serve("g2.crl", root_crl(world))
    relay = make_crl_relay(intake_side.url, sources=[{"name": NAME, "url": url, "issuer": str(g1)},
                                                     {"name": "again", "url": url, "issuer": str(g2)}])
    wrong, right = fetcher(relay).run_once().results
    assert (wrong.outcome, wrong.code) == ("refused", "UNVERIFIED_ISSUER")
    assert right.outcome == "installed"
    assert right.inspection is not None
    assert right.inspection.signature_verified


# --- delivery: refused is reported once, unavailable is tried again ----------------------------------


def test_a_crl_the_intake_refuses_is_reported_and_not_sent_again(
    world: World, server: CrlServer, intake_side: IntakeSide, make_crl_relay: RelayMaker
) -> None:
    """The intake already holds a newer CRL under this name (a ward carried it in by hand): it refuses
    the relay's older one (422 OLDER_THAN_INSTALLED); the relay says so and does not send it again."""
    (intake_side.inbox / f"{NAME}.crl").write_bytes(root_crl(world, hours=0.25))
    relay = make_crl_relay(intake_side.url, sources=[{"name": NAME, "url": server.serve("g2.crl", root_crl(world))}])
    (r,) = fetcher(relay).run_once().results
    assert (r.outcome, r.delivery, r.delivery_code) == ("installed", "refused", "OLDER_THAN_INSTALLED")
    assert "the intake REFUSED it: OLDER_THAN_INSTALLED (not sent again)" in r.line()
    assert metric(relay, 'relay_crl_deliveries_total{result="refused"} 1.0')
    from intake.crls.service import inbox_of

    inbox = inbox_of(intake_side.runtime)
    assert inbox is not None
    assert inbox.refused == {"OLDER_THAN_INSTALLED": 1}
    (again,) = fetcher(relay).run_once().results
    assert again.delivery == "refused"
    assert inbox.refused == {"OLDER_THAN_INSTALLED": 1}  # not sent a second time
    # A newer CRL from the source is sent (and accepted).
    server.serve("g2.crl", root_crl(world, hours=0.1))
    (newer,) = fetcher(relay).run_once().results
    assert (newer.outcome, newer.delivery) == ("installed", "delivered")


def test_an_unavailable_intake_is_retried_with_backoff_and_next_round(
    world: World, server: CrlServer, intake_engine: Engine, tmp_path: Path, make_crl_relay: RelayMaker,
    sleeps: Sleeps,
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    relay = make_crl_relay(down, sources=[{"name": NAME, "url": server.serve("g2.crl", root_crl(world))}])
    (r,) = fetcher(relay).run_once().results
    assert (r.outcome, r.delivery) == ("installed", "failed")
    assert r.delivery_code == "CONNECT_ERROR"
    assert len(sleeps.waits) == relay.settings.forward_attempts - 1  # the relay's backoff, recorded
    assert "NOT delivered to the intake: CONNECT_ERROR (next round tries again)" in r.line()
    # The intake comes up at that address: the next round delivers the installed copy.
    settings = intake_settings(world, tmp_path)
    runtime = Runtime.from_settings(settings, clock=FixedClock(NOW))
    port = int(down.rsplit(":", 1)[1])
    with serve_in_thread(create_intake_app(runtime, make_session_factory(intake_engine)), port=port) as url:
        assert url == down
        (again,) = fetcher(relay).run_once().results
    assert (again.outcome, again.delivery) == ("unchanged", "delivered")


# --- readiness and the round lock ---------------------------------------------------------------------


def test_readiness_turns_red_before_the_crls_expire_and_when_a_source_is_not_fetched(
    world: World, server: CrlServer, intake_side: IntakeSide, make_crl_relay: RelayMaker, relay_clock: FixedClock
) -> None:
    relay = make_crl_relay(intake_side.url, sources=[{"name": NAME, "url": server.serve("g2.crl", root_crl(world))}],
                           crl_expiry_margin_hours=6, crl_fetch_max_age_hours=24)
    checks = relay.readiness()
    assert checks["crl_sources"] == f"not fetched successfully for 24 h: {NAME}"
    assert fetcher(relay).run_once().ok
    assert (relay.readiness()["crls"], relay.readiness()["crl_sources"]) == ("ok", "ok")
    store = relay.trust.revocation
    assert store is not None
    earliest = store.status().earliest_next_update
    assert earliest is not None
    relay_clock.now = earliest - timedelta(hours=6, minutes=1)
    assert relay.readiness()["crls"] == "ok"
    relay_clock.now = earliest - timedelta(hours=5)
    assert relay.readiness()["crls"] == "expiring: the earliest nextUpdate is in 5.0 h (margin 6 h)"
    relay_clock.now = earliest + timedelta(hours=1)
    assert relay.readiness()["crls"] == "expired: the earliest nextUpdate passed 1.0 h ago"
    relay_clock.now = NOW + timedelta(hours=25)
    assert relay.readiness()["crl_sources"] == f"not fetched successfully for 24 h: {NAME}"


def test_a_round_while_another_runs_is_skipped(
    world: World, server: CrlServer, intake_side: IntakeSide, make_crl_relay: RelayMaker
) -> None:
    """Rounds of serve and of the timer's `crl refresh` never interleave (an flock across processes)."""
    relay = make_crl_relay(intake_side.url, sources=[{"name": NAME, "url": server.serve("g2.crl", root_crl(world))}])
    fd = os.open(relay.settings.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        busy = fetcher(relay).run_once()
    finally:
        os.close(fd)
    assert (busy.busy, busy.ok, busy.results) == (True, False, ())
    assert server.hits("g2.crl") == []
    assert fetcher(relay).run_once().ok


def test_settings_refuse_a_crl_dir_that_is_not_a_crl_source(world: World, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"crl_dir .* must be one of crls"):
        relay_settings(world, tmp_path, "http://127.0.0.1:1", crl_dir=tmp_path / "elsewhere",
                       crl_sources=[{"name": NAME, "url": "http://crl.example.lg.jp/g2.crl"}])
    with pytest.raises(ValueError, match="crl_sources need crl_dir"):
        relay_settings(world, tmp_path, "http://127.0.0.1:1",
                       crl_sources=[{"name": NAME, "url": "http://crl.example.lg.jp/g2.crl"}])
    with pytest.raises(ValueError, match="https CRL sources need crl_ca"):
        relay_settings(world, tmp_path, "http://127.0.0.1:1", crls=[world.crl_dir], crl_dir=world.crl_dir,
                       crl_sources=[{"name": NAME, "url": "https://crl.example.lg.jp/g2.crl"}])
    with pytest.raises(ValueError, match="name"):
        relay_settings(world, tmp_path, "http://127.0.0.1:1", crls=[world.crl_dir], crl_dir=world.crl_dir,
                       crl_sources=[{"name": "../g2", "url": "http://crl.example.lg.jp/g2.crl"}])
