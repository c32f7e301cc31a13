"""`python -m intake audit verify` and `staff add`, as an operator runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from intake.accesslog.service import append_access
from intake.authz import Actor
from intake.db import make_engine, make_session_factory
from intake.migrate import upgrade
from intake.models import AccessLogRow
from tests.conftest import NOW
from tests.intake.accessrows import committed_ids


@pytest.fixture
def env(empty_database: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update({"SHINSEI_INTAKE_ENVIRONMENT": "development", "SHINSEI_INTAKE_VAR_DIR": str(tmp_path / "var"),
                "SHINSEI_INTAKE_DATABASE_URL": empty_database})
    upgrade(empty_database)
    return env


def intake(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intake", *args], env=env, capture_output=True, text=True,
                          input=stdin, timeout=120, check=False)


def _rows(url: str, n: int) -> list[int]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            actor = Actor(staff_id="tanaka", department="kodomo", terminal="ip:10.1.2.3")
            for i in range(n):
                append_access(s, actor=actor, at=NOW + timedelta(minutes=i), action="application.view",
                              subject=f"application:{i}", atena_number="1234567890")
            return committed_ids(s, n)
    finally:
        engine.dispose()


def _tamper(url: str, statement: object) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as c:
            c.execute(statement)  # type: ignore[call-overload]
    finally:
        engine.dispose()


def test_verify_passes_then_detects_an_altered_row(env: dict[str, str], empty_database: str) -> None:
    ids = _rows(empty_database, 5)
    ok = intake(env, "audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "intact (5 rows)" in ok.stdout
    _tamper(empty_database, update(AccessLogRow).where(AccessLogRow.id == ids[2]).values(reason="書き換え"))
    bad = intake(env, "audit", "verify")
    assert bad.returncode == 1
    assert bad.stdout.strip().endswith(f"row id(s): {ids[2]}")


def test_verify_detects_a_removed_row(env: dict[str, str], empty_database: str) -> None:
    ids = _rows(empty_database, 5)
    _tamper(empty_database, delete(AccessLogRow).where(AccessLogRow.id == ids[1]))
    bad = intake(env, "audit", "verify")
    assert bad.returncode == 1
    assert f"row id(s): {ids[2]}" in bad.stdout


def test_staff_add_prints_the_totp_secret_once(env: dict[str, str]) -> None:
    made = intake(env, "staff", "add", "yamada", "--name", "山田 太郎", "--role", "reviewer", "--department", "kodomo",
                  "--reveal-my-number", "--password-stdin", stdin="a long enough password\n")
    assert made.returncode == 0, made.stderr
    assert "TOTP secret: " in made.stdout
    assert "otpauth://totp/" in made.stdout
    again = intake(env, "staff", "add", "yamada", "--name", "x", "--role", "viewer", "--department", "kodomo",
                   "--password-stdin", stdin="a long enough password\n")
    assert again.returncode == 2
    bad_role = intake(env, "staff", "add", "sato", "--name", "x", "--role", "boss", "--department", "kodomo",
                      "--password-stdin", stdin="a long enough password\n")
    assert bad_role.returncode == 2
