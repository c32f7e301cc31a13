"""The intake's CRL inbox (``PUT /api/v1/crls/{name}``), its watcher and its CRL readiness and metrics.

Real HTTP (the intake app served by uvicorn in a thread), real SQLite, the real re-verification
entry point; the clock is pinned. A CRL is refused with its code and the installed copy stays in
use; what one process installs or an operator drops in, the watcher of every process picks up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from intake.api import create_app, make_metrics, make_readiness
from intake.crls.service import inbox_of
from intake.crls.watcher import CrlWatcher, watcher_of
from intake.db import Base, make_engine, make_session_factory
from intake.deliveries import reverify
from intake.metrics import METRIC_NAMES
from intake.runtime import Runtime
from intake.settings import IntakeSettings
from signature.revocation import RevocationStore
from signature.testing.pki import Issued
from tests.conftest import NOW, World
from tests.intake.conftest import Clock
from tests.support.servers import serve_in_thread

ROOT_NAME = "jpki-g2"


def root_crl(world: World, *, hours: float = 1, days: float = 2, issuer: Issued | None = None) -> bytes:
    return world.pki.issue_crl(issuer or world.pki.jpki_roots[1], [], this_update=NOW - timedelta(hours=hours),
                               next_update=NOW + timedelta(days=days))


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@dataclass
class Side:
    runtime: Runtime
    sessions: sessionmaker[Session]
    inbox: Path
    clock: Clock

    @property
    def store(self) -> RevocationStore:
        assert self.runtime.trust.revocation is not None
        return self.runtime.trust.revocation


def make_side(world: World, tmp_path: Path, engine: Engine, **settings: Any) -> Side:
    inbox = tmp_path / "crl-inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {
        "var_dir": tmp_path / "var", "jpki_roots": [world.jpki_roots], "portal_roots": [world.portal_roots],
        "crls": [world.crl_dir, inbox], "crl_inbox": inbox, "jpki_intermediates": [world.intermediates],
    }
    values.update(settings)
    clock = Clock(NOW)
    return Side(Runtime.from_settings(IntakeSettings(**values), clock=clock), make_session_factory(engine), inbox,
                clock)


@pytest.fixture
def side(world: World, tmp_path: Path, sqlite: Engine) -> Side:
    return make_side(world, tmp_path, sqlite)


@pytest.fixture
def url(side: Side) -> Iterator[str]:
    with serve_in_thread(create_app(side.runtime, side.sessions)) as base:
        yield base


def put(url: str, name: str, body: bytes, *, content_type: str = "application/pkix-crl",
        headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.put(f"{url}/api/v1/crls/{name}", content=body, timeout=30,
                     headers={"Content-Type": content_type, **(headers or {})})


def samples(side: Side) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = make_metrics(side.runtime, side.sessions).render().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): float(s.value)
            for family in text_string_to_metric_families(text) for s in family.samples}


# --- the endpoint -------------------------------------------------------------------------------------


def test_a_fresh_crl_is_installed_and_used_at_once(world: World, side: Side, url: str) -> None:
    fresh = root_crl(world)
    before = side.store.status()
    answer = put(url, ROOT_NAME, fresh)
    assert answer.status_code == 200, answer.text
    receipt = answer.json()
    assert receipt["outcome"] == "installed"
    assert receipt["name"] == ROOT_NAME
    assert datetime.fromisoformat(receipt["this_update"]) == NOW - timedelta(hours=1)
    assert datetime.fromisoformat(receipt["next_update"]) == NOW + timedelta(days=2)
    assert (side.inbox / f"{ROOT_NAME}.crl").read_bytes() == fresh
    after = side.store.status()
    assert after.generation == before.generation + 1
    assert after.digest != before.digest
    assert after.earliest_next_update == before.earliest_next_update  # the other CRLs still expire first
    # The same bytes again: unchanged, nothing rewritten, the set as it was.
    mtime = (side.inbox / f"{ROOT_NAME}.crl").stat().st_mtime_ns
    again = put(url, ROOT_NAME, fresh)
    assert (again.status_code, again.json()["outcome"]) == (200, "unchanged")
    assert (side.inbox / f"{ROOT_NAME}.crl").stat().st_mtime_ns == mtime
    assert side.store.status().digest == after.digest
    counts = samples(side)
    assert counts[("intake_crl_received_total", (("outcome", "installed"),))] == 1
    assert counts[("intake_crl_received_total", (("outcome", "unchanged"),))] == 1
    assert counts[("intake_crl_generation", ())] == after.generation


@pytest.mark.parametrize("case", ["older", "forged", "truncated", "garbage"])
def test_a_bad_crl_is_refused_with_its_code_and_the_installed_one_stays(
    world: World, side: Side, url: str, case: str
) -> None:
    genuine = root_crl(world)
    assert put(url, ROOT_NAME, genuine).status_code == 200
    installed = side.store.status()
    bad, code = {
        "older": (root_crl(world, hours=6), "OLDER_THAN_INSTALLED"),
        "forged": (world.pki.issue_crl(Issued(world.pki.jpki_roots[1].cert, world.pki.portal_root.key), [],
                                       this_update=NOW, next_update=NOW + timedelta(days=9)), "SIGNATURE_INVALID"),
        "truncated": (genuine[: len(genuine) // 2], "MALFORMED"),
        "garbage": (b"\x30\x03abc", "MALFORMED"),
    }[case]
    answer = put(url, ROOT_NAME, bad)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == code
    assert (side.inbox / f"{ROOT_NAME}.crl").read_bytes() == genuine
    assert side.store.status().digest == installed.digest
    assert samples(side)[("intake_crl_refused_total", (("code", code),))] == 1
    assert list(side.inbox.glob("*.tmp")) == []


@pytest.mark.parametrize(("name", "content_type", "body", "status", "code"), [
    ("UPPER", "application/pkix-crl", b"x", 400, "BAD_CRL_NAME"),
    ("g2", "application/zip", b"x", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ("g2", "application/pkix-crl", b"", 400, "EMPTY_BODY"),
    ("g2", "application/pkix-crl", b"x" * 2048, 413, "BODY_TOO_LARGE"),
])
def test_requests_outside_the_contract_are_refused(
    world: World, tmp_path: Path, sqlite: Engine, name: str, content_type: str, body: bytes, status: int, code: str
) -> None:
    side = make_side(world, tmp_path, sqlite, crl_max_bytes=1024)
    with serve_in_thread(create_app(side.runtime, side.sessions)) as base:
        answer = put(base, name, body, content_type=content_type)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    assert list(side.inbox.iterdir()) == []


def test_without_an_inbox_the_intake_takes_no_crls(world: World, tmp_path: Path, sqlite: Engine) -> None:
    side = make_side(world, tmp_path, sqlite, crl_inbox=None, crls=[world.crl_dir])
    with serve_in_thread(create_app(side.runtime, side.sessions)) as base:
        answer = put(base, ROOT_NAME, root_crl(world))
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "CRL_INBOX_NOT_CONFIGURED")


def test_only_the_relay_may_deliver_crls(world: World, tmp_path: Path, sqlite: Engine) -> None:
    """The same client authentication as deliveries (here: the front proxy's fingerprint header)."""
    fingerprint = "ab" * 32
    side = make_side(world, tmp_path, sqlite, client_auth="proxy-header", trusted_proxies=["127.0.0.1"],
                     relay_client_fingerprints=[fingerprint])
    with serve_in_thread(create_app(side.runtime, side.sessions)) as base:
        nobody = put(base, ROOT_NAME, root_crl(world))
        other = put(base, ROOT_NAME, root_crl(world), headers={"X-Client-Cert-Sha256": "cd" * 32})
        relay = put(base, ROOT_NAME, root_crl(world), headers={"X-Client-Cert-Sha256": fingerprint})
    assert (nobody.status_code, nobody.json()["error"]["code"]) == (403, "CLIENT_CERT_REFUSED")
    assert other.status_code == 403
    assert relay.status_code == 200


def test_the_inbox_must_be_one_of_the_crl_sources(world: World, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"crl_inbox .* must be one of crls"):
        IntakeSettings(var_dir=tmp_path, crls=[world.crl_dir], crl_inbox=tmp_path / "inbox")


# --- readiness and metrics ----------------------------------------------------------------------------


def test_readiness_turns_red_before_the_earliest_next_update(world: World, side: Side) -> None:
    readiness = make_readiness(side.runtime, side.sessions)
    earliest = side.store.status().earliest_next_update
    assert earliest is not None
    assert side.runtime.settings.crl_expiry_margin_hours == 6

    def check_at(moment: Any) -> tuple[bool, dict[str, Any]]:
        side.clock.now = moment
        readiness.run_once()
        return readiness.snapshot()

    ready, body = check_at(NOW)
    assert (ready, body["status"], body["crls"]) == (True, "ready", "ok")
    assert body["crl_set"] == side.store.status().digest[:16]
    ready, body = check_at(earliest - timedelta(hours=6, minutes=1))
    assert (ready, body["crls"]) == (True, "ok")
    ready, body = check_at(earliest - timedelta(hours=2))
    assert (ready, body["crls"]) == (False, "expiring: the earliest nextUpdate is in 2.0 h (margin 6 h)")
    ready, body = check_at(earliest + timedelta(minutes=30))
    assert (ready, body["status"]) == (False, "not ready")
    assert body["crls"] == "expired: the earliest nextUpdate passed 0.5 h ago"
    # A fresh CRL for every issuer whose CRL expires first: green again, without a restart.
    side.clock.now = NOW
    for i, root in enumerate(world.pki.jpki_roots):
        (side.inbox / f"root-g{i + 1}.crl").write_bytes(root_crl(world, issuer=root, days=5))
    (side.inbox / "intermediate.crl").write_bytes(root_crl(world, issuer=world.pki.jpki_intermediate, days=5))
    assert watcher_of(side.runtime).refresh_once() is True
    ready, body = check_at(earliest + timedelta(minutes=30))
    assert (ready, body["crls"]) == (True, "ok")


def test_readiness_is_red_when_the_crl_sources_cannot_be_read(world: World, side: Side) -> None:
    readiness = make_readiness(side.runtime, side.sessions)
    side.inbox.rmdir()
    watcher_of(side.runtime).refresh_once()
    readiness.run_once()
    ready, body = readiness.snapshot()
    assert (ready, body["crls"]) == (False, "CRL sources cannot be read (see the log)")
    side.inbox.mkdir()
    watcher_of(side.runtime).refresh_once()
    readiness.run_once()
    assert readiness.snapshot()[0] is True


def test_the_crl_metrics_are_the_documented_ones(world: World, side: Side, url: str) -> None:
    put(url, ROOT_NAME, root_crl(world))
    put(url, ROOT_NAME, root_crl(world, hours=9))
    watcher_of(side.runtime).refresh_once()
    found = samples(side)
    names = {name for name, _ in found}
    crl_names = {n for n in names if "crl" in n}
    documented = {n.removesuffix("_total") for n in METRIC_NAMES}
    assert {n.removesuffix("_total").removesuffix("_created") for n in crl_names} <= documented
    status = side.store.status()
    assert found[("intake_crl_seconds_until_next_update", ())] == (status.earliest_next_update - NOW).total_seconds()  # type: ignore[operator]
    assert found[("intake_crls_in_use", ())] == status.crl_count
    assert found[("intake_crl_last_refresh_timestamp_seconds", ())] == NOW.timestamp()
    assert found[("intake_crl_refused_total", (("code", "OLDER_THAN_INSTALLED"),))] == 1
    assert "intake_crl_age_seconds" not in names  # the ad-hoc reader is gone


# --- the watcher --------------------------------------------------------------------------------------


def test_a_crl_dropped_by_an_operator_reaches_the_store_and_triggers_reverification(
    world: World, side: Side
) -> None:
    watcher = CrlWatcher(side.runtime, interval=3600).start(side.sessions)
    try:
        assert watcher.wait_reverified(1, timeout=30)  # once at start-up
        first = watcher.snapshot()
        assert first.reverified_digest == side.store.status().digest
        assert watcher.refresh_once() is False  # nothing changed: no re-verification
        generation = side.store.generation
        (side.inbox / "dropped.crl").write_bytes(root_crl(world))  # the drop folder: a ward's hand carry
        assert watcher.refresh_once() is True
        assert side.store.generation == generation + 1
        assert watcher.wait_reverified(2, timeout=30)
        second = watcher.snapshot()
        assert second.reverified_digest == side.store.status().digest != first.reverified_digest
        assert second.reverify_error is None
        assert watcher.refresh_once() is False
    finally:
        watcher.stop()
    assert watcher.snapshot().reverify_runs == 2


def test_the_watcher_notices_on_its_own_schedule(world: World, side: Side) -> None:
    """No explicit call: its loop re-scans every interval (bounded wait on the store's generation)."""
    watcher = CrlWatcher(side.runtime, interval=0.05).start(side.sessions)
    try:
        generation = side.store.generation
        (side.inbox / "dropped.crl").write_bytes(root_crl(world))
        changed = threading.Event()
        for _ in range(600):  # bounded: at most 30 s
            if side.store.generation > generation:
                changed.set()
                break
            changed.wait(0.05)
        assert changed.is_set()
        assert watcher.wait_reverified(2, timeout=30)
    finally:
        watcher.stop()


def test_reverification_never_runs_twice_at_once_in_a_process(
    world: World, tmp_path: Path, sqlite: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two watchers of one process (two trust configurations): the second waits for the first.
    The real entry point runs; the wrapper only records overlap."""
    sides = [make_side(world, tmp_path / str(i), sqlite) for i in range(2)]
    real = reverify.reverify_pending
    active, most = [0], [0]
    lock, second_in, release = threading.Lock(), threading.Event(), threading.Event()

    def recording(*args: Any, **kwargs: Any) -> Any:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
            if active[0] > 1:
                second_in.set()
        try:
            release.wait(30)
            return real(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(reverify, "reverify_pending", recording)
    watchers = [CrlWatcher(s.runtime, interval=3600) for s in sides]
    for w, s in zip(watchers, sides, strict=True):
        w._sessions = s.sessions
    threads = [threading.Thread(target=w.reverify_once) for w in watchers]
    for t in threads:
        t.start()
    overlapped = second_in.wait(1.0)  # the second must not get in while the first holds
    release.set()
    for t in threads:
        t.join(30)
    assert not overlapped
    assert most[0] == 1
    assert [w.snapshot().reverify_runs for w in watchers] == [1, 1]


def test_a_runtime_copy_shares_the_watcher(side: Side) -> None:
    """create_app copies the runtime (metrics hooks); the watcher belongs to its trust configuration."""
    assert watcher_of(replace(side.runtime, clock=side.clock)) is watcher_of(side.runtime)
    assert inbox_of(replace(side.runtime)) is inbox_of(side.runtime)
