"""Re-verification (issue 14, item 4) on SQLite and PostgreSQL: a delivery stored INDETERMINATE /
TRY_LATER because no current CRL covered its 到達日時 is verified again — from its stored bytes, at
its original processing time — when the CRL set in use changes; the new result is stored beside the
first; a version that now passes is admitted, linked, forwarded and announced exactly once, however
many processes and runs look at it; the CLI does the same for an operator's selection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from intake.applications.admission import HoldReason
from intake.applications.service import application_detail
from intake.db import make_engine, make_session_factory
from intake.deliveries.reverify import reverify_pending
from intake.forwarding.routes import Route
from intake.models import (
    Application,
    ApplicationVersion,
    Delivery,
    Event,
    ForwardItem,
    Reverification,
    VerificationRecord,
    VersionState,
)
from intake.runtime import Runtime
from intake.settings import IntakeSettings
from signature.testing.builder import ApplicationSpec
from status import Role
from tests.conftest import NOW, PackageFactory, World
from tests.intake.conftest import Clock
from tests.intake.staffdata import CATALOGUE, deliver, principal

LATE = NOW + timedelta(days=2)  # after every test CRL's nextUpdate (NOW + 1 day)
ROUTE = Route("kodomo-system", frozenset({"KOSODATE-JIDOTEATE-NINTEI"}), "file", "/nonexistent-outbox")


@dataclass
class Setup:
    runtime: Runtime
    sessions: sessionmaker[Session]
    crl_dir: Path
    world: World

    def publish_fresh_crls(self, *, this_update: datetime, next_update: datetime) -> None:
        """What J-LIS publishes next (nobody revoked): written into the CRL folder, then picked up
        by the store's refresh — as the CRL watcher does."""
        pki = self.world.pki
        for i, root in enumerate(pki.jpki_roots):
            (self.crl_dir / f"jpki-g{i + 1}.crl").write_bytes(
                pki.issue_crl(root, [], this_update=this_update, next_update=next_update))
        (self.crl_dir / "jpki-intermediate.crl").write_bytes(
            pki.issue_crl(pki.jpki_intermediate, [], this_update=this_update, next_update=next_update))
        store = self.runtime.trust.revocation
        assert store is not None
        assert store.refresh(at=this_update) is True


@pytest.fixture
def setup(engine: Engine, world: World, tmp_path: Path, clock: Clock) -> Setup:
    crl_dir = tmp_path / "crls"
    shutil.copytree(world.crl_dir, crl_dir)
    settings = IntakeSettings(var_dir=tmp_path / "var", jpki_roots=[world.jpki_roots],
                              portal_roots=[world.portal_roots], crls=[crl_dir],
                              jpki_intermediates=[world.intermediates])
    clock.now = LATE + timedelta(hours=1)
    runtime = replace(Runtime.from_settings(settings, clock=clock), procedures=CATALOGUE, routes=(ROUTE,))
    return Setup(runtime, make_session_factory(engine), crl_dir, world)


def late(spec: ApplicationSpec, n: int = 1, kind: str = "新規申請", minutes: int = 0) -> ApplicationSpec:
    return replace(spec, receipt_number=f"20261125-{n:010d}", kind=kind,
                   first_receipt_number=None if n == 1 else spec.receipt_number,
                   arrived_at=LATE + timedelta(minutes=minutes))


def counts(s: Session) -> tuple[int, int, int]:
    return (s.scalar(select(func.count()).select_from(Reverification)) or 0,
            s.scalar(select(func.count()).select_from(ForwardItem)) or 0,
            s.scalar(select(func.count()).select_from(Event).where(Event.kind == "version.admitted")) or 0)


def test_try_later_is_reverified_once_admitted_and_forwarded_once(
    setup: Setup, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    first, fix = late(spec), late(spec, 2, "補正", minutes=10)
    with setup.sessions() as s:
        deliver(s, setup.runtime, make_package(spec=first))
        deliver(s, setup.runtime, make_package(spec=fix))
    with setup.sessions() as s:
        record = s.scalar(select(VerificationRecord).order_by(VerificationRecord.id))
        assert record is not None
        assert (record.indication, record.sub_indication) == ("INDETERMINATE", "TRY_LATER")
        anchor = s.scalar(select(ApplicationVersion).where(ApplicationVersion.receipt_number == first.receipt_number))
        held = s.scalar(select(ApplicationVersion).where(ApplicationVersion.receipt_number == fix.receipt_number))
        assert anchor is not None
        assert held is not None
        assert (anchor.state, anchor.admitted_at) == (VersionState.CURRENT, None)
        assert (held.state, held.hold_reason) == (VersionState.HELD, HoldReason.SIGNATURE_NOT_PASSED)
        assert counts(s) == (0, 0, 0)
        assert all(d.awaiting_revocation for d in s.scalars(select(Delivery)))

    # The same CRL set again: nothing to ask.
    assert reverify_pending(setup.sessions, setup.runtime, at=setup.runtime.clock()).examined == 0

    setup.publish_fresh_crls(this_update=NOW + timedelta(days=1), next_update=NOW + timedelta(days=5))
    summary = reverify_pending(setup.sessions, setup.runtime, at=setup.runtime.clock())
    assert (summary.examined, summary.passed, summary.errors) == (2, 2, 0)
    with setup.sessions() as s:
        assert counts(s) == (2, 2, 2)  # two results, the 補正 forwarded, the first superseded yet forwarded once
        versions = {v.receipt_number: v for v in s.scalars(select(ApplicationVersion))}
        assert versions[first.receipt_number].state is VersionState.SUPERSEDED
        assert versions[fix.receipt_number].state is VersionState.CURRENT
        assert all(v.indication == "PASSED" and v.admitted_at is not None for v in versions.values())
        # the first result is kept as it was, the new one beside it
        firsts = s.scalars(select(VerificationRecord.sub_indication)).all()
        assert set(firsts) == {"TRY_LATER"}
        assert not any(d.awaiting_revocation for d in s.scalars(select(Delivery)))
        # Staff see both results, each with when it was made.
        app = s.scalar(select(Application))
        assert app is not None
        detail = application_detail(s, principal(Role.VIEWER), app.id, at=setup.runtime.clock(),
                                    version_id=versions[first.receipt_number].id)
        assert [(r.trigger, r.indication) for r in detail.results] == [("arrival", "INDETERMINATE"),
                                                                      ("revocation", "PASSED")]
        assert detail.results[1].made_at == setup.runtime.clock()

    # Another run, a restart, another CRL set: nothing twice.
    assert reverify_pending(setup.sessions, setup.runtime, at=setup.runtime.clock()).examined == 0
    setup.publish_fresh_crls(this_update=NOW + timedelta(days=1, hours=1), next_update=NOW + timedelta(days=6))
    assert reverify_pending(setup.sessions, setup.runtime, at=setup.runtime.clock()).examined == 0
    with setup.sessions() as s:
        assert counts(s) == (2, 2, 2)


def test_still_stale_stays_waiting_and_is_asked_again_with_the_next_set(
    setup: Setup, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    with setup.sessions() as s:
        deliver(s, setup.runtime, make_package(spec=late(spec)))
    # A new set that still does not cover the 到達日時 (published before it, expiring before it).
    setup.publish_fresh_crls(this_update=NOW, next_update=NOW + timedelta(days=1, hours=12))
    summary = reverify_pending(setup.sessions, setup.runtime, at=setup.runtime.clock())
    assert (summary.examined, summary.still_pending) == (1, 1)
    with setup.sessions() as s:
        delivery = s.scalar(select(Delivery))
        assert delivery is not None
        assert delivery.awaiting_revocation
        assert counts(s) == (1, 0, 0)
    setup.publish_fresh_crls(this_update=NOW + timedelta(days=1), next_update=NOW + timedelta(days=5))
    assert reverify_pending(setup.sessions, setup.runtime, at=setup.runtime.clock()).passed == 1
    with setup.sessions() as s:
        assert counts(s) == (2, 1, 1)


def test_two_processes_reverify_each_delivery_once(
    setup: Setup, make_package: PackageFactory, spec: ApplicationSpec, engine: Engine,
) -> None:
    """Two workers (threads with their own connections; on PostgreSQL the row lock decides) run at
    once after the same CRL change: one result and one forwarding per delivery."""
    with setup.sessions() as s:
        for n in range(1, 6):
            deliver(s, setup.runtime, make_package(spec=replace(late(spec, n), first_receipt_number=None,
                                                                kind="新規申請")))
    setup.publish_fresh_crls(this_update=NOW + timedelta(days=1), next_update=NOW + timedelta(days=5))
    start = threading.Barrier(2)
    results = []

    def worker() -> None:
        start.wait(timeout=30)
        results.append(reverify_pending(setup.sessions, setup.runtime, at=setup.runtime.clock()))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sum(r.examined for r in results) == 5
    assert sum(r.errors for r in results) == 0
    with setup.sessions() as s:
        assert counts(s) == (5, 5, 5)


def test_cli_reverifies_an_operators_selection(
    make_package: PackageFactory, spec: ApplicationSpec, empty_database: str, tmp_path: Path, world: World,
    clock: Clock,
) -> None:
    """``python -m intake reverify`` in a real process: a dry run changes nothing, no selection is
    refused, by 受付番号 it records an operator result with the reference, then admits and forwards."""
    crl_dir = tmp_path / "crls"
    shutil.copytree(world.crl_dir, crl_dir)
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"routes": [{"name": "kodomo-system", "procedures": ["KOSODATE-JIDOTEATE-NINTEI"],
                                              "kind": "file", "target": str(tmp_path / "outbox")}]}))
    env = {
        "PATH": "/usr/bin:/bin", "SHINSEI_INTAKE_ENVIRONMENT": "development",
        "SHINSEI_INTAKE_DATABASE_URL": empty_database, "SHINSEI_INTAKE_VAR_DIR": str(tmp_path / "var"),
        "SHINSEI_INTAKE_JPKI_ROOTS": json.dumps([str(world.jpki_roots)]),
        "SHINSEI_INTAKE_PORTAL_ROOTS": json.dumps([str(world.portal_roots)]),
        "SHINSEI_INTAKE_CRLS": json.dumps([str(crl_dir)]),
        "SHINSEI_INTAKE_JPKI_INTERMEDIATES": json.dumps([str(world.intermediates)]),
        "SHINSEI_INTAKE_ROUTES_FILE": str(routes),
    }

    def intake(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "intake", *args], env=env, capture_output=True, text=True,
                              timeout=120, check=False)

    assert intake("db", "upgrade").returncode == 0
    engine = make_engine(empty_database)
    try:
        setup = Setup(replace(Runtime.from_settings(IntakeSettings(
            var_dir=tmp_path / "var", jpki_roots=[world.jpki_roots], portal_roots=[world.portal_roots],
            crls=[crl_dir], jpki_intermediates=[world.intermediates]), clock=clock), routes=(ROUTE,)),
            make_session_factory(engine), crl_dir, world)
        clock.now = LATE + timedelta(hours=1)
        with setup.sessions() as s:
            deliver(s, setup.runtime, make_package(spec=late(spec)))
        setup.publish_fresh_crls(this_update=NOW + timedelta(days=1), next_update=NOW + timedelta(days=5))
        dry = intake("reverify", "--awaiting-revocation", "--dry-run")
        assert (dry.returncode, dry.stdout.strip()) == (0, "1 deliveries match")
        nothing = intake("reverify")
        assert nothing.returncode == 2
        assert "choose deliveries" in nothing.stderr
        with setup.sessions() as s:
            assert counts(s) == (0, 0, 0)
        run = intake("reverify", "--receipt-number", late(spec).receipt_number, "--reference", "CHG-0042")
        assert run.returncode == 0, run.stderr
        assert "INDETERMINATE/TRY_LATER -> PASSED" in run.stdout
        with setup.sessions() as s:
            row = s.scalar(select(Reverification))
            assert row is not None
            assert (row.trigger, row.reference, row.indication) == ("operator", "CHG-0042", "PASSED")
            assert counts(s) == (1, 1, 1)
    finally:
        engine.dispose()
