"""`python -m intake` commands as an operator runs them: db upgrade, check, linkage import, outbox retry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import World

HEADER = "利用者証明用電子証明書シリアル番号,宛名番号,有効開始日,有効終了日,失効日時,区分,作成日時"
CREATED = "2026-11-24T09:00:00+09:00"


@pytest.fixture
def env(world: World, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update({
        "SHINSEI_INTAKE_ENVIRONMENT": "development",
        "SHINSEI_INTAKE_VAR_DIR": str(tmp_path / "var"),
        "SHINSEI_INTAKE_JPKI_ROOTS": json.dumps([str(world.jpki_roots)]),
        "SHINSEI_INTAKE_PORTAL_ROOTS": json.dumps([str(world.portal_roots)]),
        "SHINSEI_INTAKE_CRLS": json.dumps([str(world.crl_dir)]),
    })
    return env


def intake(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intake", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_check_fails_before_upgrade_and_passes_after(env: dict[str, str]) -> None:
    before = intake(env, "check")
    assert before.returncode == 1
    assert "db upgrade" in before.stdout
    assert intake(env, "db", "upgrade").returncode == 0
    after = intake(env, "check")
    assert after.returncode == 0, after.stdout
    assert after.stdout.strip().endswith("OK")


def test_check_reports_a_missing_trust_anchor(env: dict[str, str], tmp_path: Path) -> None:
    assert intake(env, "db", "upgrade").returncode == 0
    env["SHINSEI_INTAKE_JPKI_ROOTS"] = json.dumps([str(tmp_path / "absent")])
    result = intake(env, "check")
    assert result.returncode == 1
    assert "configuration" in result.stdout


def test_linkage_import_good_then_duplicate_then_broken(env: dict[str, str], tmp_path: Path) -> None:
    assert intake(env, "db", "upgrade").returncode == 0
    good = tmp_path / "linkage-full.csv"
    good.write_text(f"{HEADER}\r\n1A2B3C4D5E6F,0000012345,2025-04-01,2030-03-31,,全件,{CREATED}\r\n",
                    encoding="utf-8")
    first = intake(env, "linkage", "import", str(good))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "1 row(s)" in first.stdout
    again = intake(env, "linkage", "import", str(good))
    assert again.returncode == 0
    assert "already imported" in again.stdout
    broken = tmp_path / "linkage-broken.csv"
    broken.write_text(f"{HEADER}\r\nnot-hex,0000012345,2025-04-01,2030-03-31,,全件,{CREATED}\r\n"
                      f"ABCDEF,12,2025-04-01,2030-03-31,,全件,{CREATED}\r\n", encoding="utf-8")
    rejected = intake(env, "linkage", "import", str(broken))
    assert rejected.returncode == 1
    assert "REJECTED" in rejected.stdout
    assert "line 2" in rejected.stdout
    assert "line 3" in rejected.stdout
    assert "0000012345" not in rejected.stdout  # values are never echoed


def test_outbox_retry_with_nothing_failed(env: dict[str, str]) -> None:
    assert intake(env, "db", "upgrade").returncode == 0
    result = intake(env, "outbox", "retry")
    assert result.returncode == 0
    assert "0 item(s) queued again" in result.stdout
