"""`python -m intake audit purge [--dry-run]` as an operator (or the timer) runs it, with the real
clock, on SQLite and PostgreSQL; `audit verify` afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from intake.accesslog.service import append_access
from intake.authz import Actor
from intake.db import make_engine, make_session_factory
from intake.migrate import upgrade
from intake.models import AccessLogRetention, AccessLogRow
from tests.intake.accessrows import committed_ids

ACTOR = Actor(staff_id="tanaka", department="kodomo", terminal="ip:10.1.2.3")
EIGHT_YEARS = timedelta(days=8 * 366)


@pytest.fixture
def env(empty_database: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update({"SHINSEI_INTAKE_ENVIRONMENT": "development", "SHINSEI_INTAKE_VAR_DIR": str(tmp_path / "var"),
                "SHINSEI_INTAKE_DATABASE_URL": empty_database})
    upgrade(empty_database)
    return env


def intake(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intake", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _add(url: str, old: int, young: int) -> list[int]:
    now = datetime.now(UTC)
    times = [now - EIGHT_YEARS + timedelta(minutes=i) for i in range(old)] + \
            [now - timedelta(days=1, minutes=-i) for i in range(young)]
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            for i, at in enumerate(times):
                append_access(s, actor=ACTOR, at=at, action="application.view", subject=f"application:{i}",
                              atena_number="1234567890")
            return committed_ids(s, len(times))
    finally:
        engine.dispose()


def _state(url: str) -> tuple[list[tuple[int, str, str]], list[tuple[int, int, str]]]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            rows = [(r.id, r.action, r.hash) for r in s.scalars(select(AccessLogRow).order_by(AccessLogRow.id))]
            kept = [(r.purged_through_id, r.purged_rows, r.actor) for r in s.scalars(select(AccessLogRetention))]
            return rows, kept
    finally:
        engine.dispose()


def _tamper(url: str, statement: object) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as c:
            c.execute(statement)  # type: ignore[call-overload]
    finally:
        engine.dispose()


def test_dry_run_then_purge_then_verify(env: dict[str, str], empty_database: str) -> None:
    ids = _add(empty_database, old=3, young=2)
    before = _state(empty_database)
    dry = intake(env, "audit", "purge", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.stdout.startswith(f"DRY RUN  would purge 3 access-log row(s), ids {ids[0]}-{ids[2]}, before ")
    assert "(retention 7 years)" in dry.stdout
    assert "nothing changed" in dry.stdout
    assert _state(empty_database) == before

    done = intake(env, "audit", "purge")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"OK  purged 3 access-log row(s), ids {ids[0]}-{ids[2]}, before ")
    rows, kept = _state(empty_database)
    assert [r[0] for r in rows[:2]] == ids[3:]
    assert rows[-1][1] == "audit.purge"
    assert kept == [(ids[2], 3, "system")]

    ok = intake(env, "audit", "verify")
    assert ok.returncode == 0, ok.stdout
    assert f"rows up to id {ids[2]} were purged" in ok.stdout
    assert "intact (3 rows)" in ok.stdout  # two kept rows and the purge's own

    again = intake(env, "audit", "purge")
    assert again.returncode == 0
    assert again.stdout.startswith("OK  nothing to purge: no access-log row before ")


def test_a_broken_prefix_is_refused_and_kept(env: dict[str, str], empty_database: str) -> None:
    ids = _add(empty_database, old=3, young=1)
    _tamper(empty_database, update(AccessLogRow).where(AccessLogRow.id == ids[1]).values(reason="書き換え"))
    before = _state(empty_database)
    for args in (("--dry-run",), ()):
        refused = intake(env, "audit", "purge", *args)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert refused.stdout.startswith("NG  purge refused, nothing deleted: ")
        assert refused.stdout.strip().endswith(f"row id(s): {ids[1]}")
    assert _state(empty_database) == before


def test_verify_after_a_purge_detects_rows_deleted_without_one(env: dict[str, str], empty_database: str) -> None:
    ids = _add(empty_database, old=2, young=3)
    assert intake(env, "audit", "purge").returncode == 0
    _tamper(empty_database, delete(AccessLogRow).where(AccessLogRow.id == ids[2]))
    bad = intake(env, "audit", "verify")
    assert bad.returncode == 1
    assert bad.stdout.strip().endswith(f"row id(s): {ids[3]}")


def test_the_retention_setting_is_used_and_below_seven_years_refused(env: dict[str, str],
                                                                      empty_database: str) -> None:
    _add(empty_database, old=2, young=1)
    before = _state(empty_database)
    longer = intake({**env, "SHINSEI_INTAKE_ACCESS_LOG_RETENTION_YEARS": "10"}, "audit", "purge")
    assert longer.returncode == 0
    assert "nothing to purge" in longer.stdout
    assert "(retention 10 years)" in longer.stdout
    shorter = intake({**env, "SHINSEI_INTAKE_ACCESS_LOG_RETENTION_YEARS": "6"}, "audit", "purge")
    assert shorter.returncode != 0
    assert "access_log_retention_years" in shorter.stderr
    assert _state(empty_database) == before
