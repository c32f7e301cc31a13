"""`python -m intake audit verify` and `staff add`, as an operator runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from intake.accesslog.service import append_access
from intake.authz import Actor
from intake.db import make_engine, make_session_factory
from intake.migrate import upgrade
from intake.models import AccessLogRow, StaffUser
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


def _staff(url: str) -> dict[str, tuple[list[str], bool, str | None]]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            users = s.scalars(select(StaffUser))
            return {u.login: (u.roles, u.may_reveal_my_number, u.client_cert_sha256) for u in users}
    finally:
        engine.dispose()


def _admin_rows(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            return [(r.action, r.staff_id) for r in s.scalars(select(AccessLogRow).where(
                AccessLogRow.action.like("admin.%")).order_by(AccessLogRow.id))]
    finally:
        engine.dispose()


def test_staff_add_obeys_the_four_eyes_after_the_first_admin(
        env: dict[str, str], empty_database: str, tmp_path: Path) -> None:
    catalogue = tmp_path / "procedures.json"
    catalogue.write_text(json.dumps({"procedures": [{"id": "P-1", "name": "児童手当", "department": "kodomo",
                                                     "department_name": "子ども家庭課"}]}), encoding="utf-8")
    env = {**env, "SHINSEI_INTAKE_PROCEDURES_FILE": str(catalogue)}
    pw = "a long enough password\n"
    # Installation: no administrator yet, so what is asked takes effect (and the row says so).
    made = intake(env, "staff", "add", "yamada", "--name", "山田 太郎", "--role", "reviewer", "--department", "kodomo",
                  "--reveal-my-number", "--password-stdin", stdin=pw)
    assert made.returncode == 0, made.stderr
    assert "bootstrap" in made.stdout
    assert "TOTP secret: " in made.stdout
    assert "otpauth://totp/" in made.stdout
    first = intake(env, "staff", "add", "kanri", "--name", "管理 一郎", "--role", "system_admin", "--department",
                   "kodomo", "--password-stdin", "--reason", "初期設定", stdin=pw)
    assert first.returncode == 0, first.stderr
    # An administrator exists: reveal, system_admin and an IC card become requests for an administrator.
    later = intake(env, "staff", "add", "sato", "--name", "佐藤 次郎", "--role", "reviewer", "--department", "kodomo",
                   "--reveal-my-number", "--cert-sha256", "ab" * 32, "--password-stdin", stdin=pw)
    assert later.returncode == 0, later.stderr
    assert "bootstrap" not in later.stdout
    assert "(grant_reveal) waits" in later.stdout
    assert "(bind_ic_card) waits" in later.stdout
    sock = intake(env, "staff", "add", "suzuki", "--name", "鈴木", "--role", "system_admin", "--department", "kodomo",
                  "--password-stdin", stdin=pw)
    assert sock.returncode == 0, sock.stderr
    assert "(grant_admin) waits" in sock.stdout
    staff = _staff(empty_database)
    assert staff["yamada"] == (["reviewer"], True, None)
    assert staff["kanri"] == (["system_admin"], False, None)
    assert staff["sato"] == (["reviewer"], False, None)
    assert staff["suzuki"] == ([], False, None)
    # Refused: a taken login id, an unknown role, an unknown department — nothing created, nothing logged.
    before = _admin_rows(empty_database)
    for args in (["yamada", "--role", "viewer", "--department", "kodomo"],
                 ["ito", "--role", "boss", "--department", "kodomo"],
                 ["ito", "--role", "viewer", "--department", "nowhere"]):
        refused = intake(env, "staff", "add", args[0], "--name", "x", *args[1:], "--password-stdin", stdin=pw)
        assert refused.returncode == 2, args
        assert "\nrefused: " in refused.stderr
    assert "ito" not in _staff(empty_database)
    rows = _admin_rows(empty_database)
    assert rows == before
    operator = {who for _, who in rows}
    assert len(operator) == 1
    assert operator.pop().startswith("cli:")
    assert [a for a, _ in rows] == ["admin.user.create", "admin.user.create", "admin.user.create",
                                    "admin.request.grant_reveal", "admin.request.bind_ic_card", "admin.user.create",
                                    "admin.request.grant_admin"]
    assert intake(env, "audit", "verify").returncode == 0
