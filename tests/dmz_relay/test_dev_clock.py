"""The relay's development clock (``SHINSEI_RELAY_DEV_CLOCK``): a demo or a test runs a chosen moment.

What the relay decides by time (signature and certificate validity, CRL freshness, tombstones) is
judged on its clock. ``make demo --now`` and the smoke test pin the portal, the relay and the intake
to one moment; production refuses the setting (tests/dmz_relay/test_logs_and_settings.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from dmz_relay.runtime import clock_for, system_clock
from dmz_relay.settings import RelaySettings
from tests.conftest import NOW, World

ROOT = Path(__file__).resolve().parents[2]


def test_the_clock_starts_at_the_moment_and_runs_on() -> None:
    clock = clock_for(RelaySettings(scanner="none", dev_clock=NOW))
    first, second = clock(), clock()
    assert NOW <= first <= second < NOW + timedelta(minutes=1)
    assert first.tzinfo is UTC
    assert clock_for(RelaySettings(scanner="none")) is system_clock


def test_a_moment_must_say_its_offset() -> None:
    with pytest.raises(ValidationError):
        RelaySettings(scanner="none", dev_clock="2026-12-07T08:45:00")  # type: ignore[arg-type]


def _readiness(world: World, tmp_path: Path, **extra: str) -> dict[str, object]:
    tmp_path.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update(PYTHONPATH=str(ROOT), SHINSEI_RELAY_ENVIRONMENT="development", SHINSEI_RELAY_SCANNER="none",
               SHINSEI_RELAY_DATA_DIR=str(tmp_path / "relay"), SHINSEI_RELAY_INTAKE_URL="http://127.0.0.1:9",
               SHINSEI_RELAY_JPKI_ROOTS=json.dumps([str(world.jpki_roots)]),
               SHINSEI_RELAY_PORTAL_ROOTS=json.dumps([str(world.portal_roots)]),
               SHINSEI_RELAY_CRLS=json.dumps([str(world.crl_dir)]), **extra)
    done = subprocess.run([sys.executable, "-m", "dmz_relay", "check"], env=env, capture_output=True, text=True,
                          timeout=120, check=False, cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]  # not ready either way: no intake listens on port 9
    checks = json.loads(done.stdout)
    assert isinstance(checks, dict)
    return checks


def test_the_command_line_judges_on_the_development_clock(world: World, tmp_path: Path) -> None:
    """The test world's CRLs are current for a day from its moment (2026-11-25 12:00 JST): on the real
    clock, long after, they are stale; on a development clock at that moment, fresh."""
    assert datetime.now(UTC) > NOW + timedelta(days=2)  # the premise: the real clock is past the CRLs' window
    pinned = _readiness(world, tmp_path / "pinned", SHINSEI_RELAY_DEV_CLOCK=NOW.isoformat())
    real = _readiness(world, tmp_path / "real")
    assert pinned["crls"] == "ok", pinned
    assert real["crls"] != "ok", real
    assert pinned["trust"] == real["trust"] == "ok"  # the same relay otherwise
