"""Issue 17 §3: backup and restore that lose nothing.

Real processes (portal_sim → relay → intake, mutual TLS), on SQLite and PostgreSQL: the portal
offers the first part of a period and the relay hands it over; ``intake backup`` runs while the
intake serves; the portal offers the rest and the relay hands that over too; the intake's database
is destroyed; ``intake restore`` brings back the backup (and only it: what came later is really
gone); ``dmz_relay replay --since`` asks the portal again for everything offered since the backup
and the intake's idempotency drops what it has — so every application is there again, once. The
relay's own state (``dmz_relay backup`` / ``restore``) is put back too: its next pull fetches again
what came after the saved cursor, and still nothing is stored twice.

The portal's clock is simulated (fixed), so "since the backup" is the portal time at which the
backup was taken, with an hour's overlap on purpose: packages the restored intake already holds
are offered again and must not be stored twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from intake.db import make_engine
from tests.chain.conftest import PortalDataFactory
from tests.support.chain import Chain, ChainOptions


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600,
                          check=False)


def _destroy(database_url: str, var: Path) -> None:
    if database_url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            (var / f"intake.db{suffix}").unlink(missing_ok=True)
        return
    engine = make_engine(database_url)
    try:
        with engine.begin() as c:
            c.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_restore_then_replay_brings_back_every_application_once(
        database: str, portal_data_factory: PortalDataFactory, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    data = portal_data_factory(applications=24, residents=12, defect_rate=0.0)
    portal = data.copy_to(tmp_path / "portal")
    arrivals = sorted(datetime.fromisoformat(a["arrived_at"]) for a in portal.applications())
    backup_time = arrivals[len(arrivals) // 2]  # the portal's time when the backup is taken
    database_url = None
    if database == "postgresql":
        database_url = str(request.getfixturevalue("chain_postgres_url"))
        _destroy(database_url, tmp_path)  # start empty
    with Chain(portal, tmp_path / "chain", options=ChainOptions(database_url=database_url)) as chain:
        chain.start_portal(clock=f"fixed:{backup_time.isoformat()}")
        chain.start_intake()
        code, first_round = chain.pull_once()
        assert code == 0, first_round
        before_backup = sorted(chain.intake_deliveries())
        assert 0 < len(before_backup) < len(arrivals)

        backup = tmp_path / "backup"
        made = _cli(chain.intake.env, chain.work, "-m", "intake", "backup", "--out", str(backup))
        assert made.returncode == 0, made.stdout + made.stderr
        manifest = json.loads((backup / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["deliveries"] == len(before_backup)
        assert manifest["key_ids"]  # the ids of the keys it needs; the keys themselves are not in it
        relay_backup = tmp_path / "relay-state.db"
        made = _cli(chain.relay.env, chain.work, "-m", "dmz_relay", "backup", "--out", str(relay_backup))
        assert made.returncode == 0, made.stdout + made.stderr
        stones_at_backup = len(chain.tombstones())

        chain.portal.terminate()
        chain.start_portal()  # the rest of the period arrives and is handed over
        code, second_round = chain.pull_once()
        assert code == 0, second_round
        everything = sorted(chain.intake_deliveries())
        assert len(everything) == len(set(everything)) == len(arrivals)

        chain.intake.terminate()
        _destroy(chain.database_url, chain.intake_var)
        restored = _cli(chain.intake.env, chain.work, "-m", "intake", "restore", str(backup))
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert sorted(chain.intake_deliveries()) == before_backup  # what came after the backup is gone
        chain.start_intake()

        since = (backup_time - timedelta(hours=1)).isoformat()
        replayed = _cli(chain.relay.env, chain.work, "-m", "dmz_relay", "replay", "--since", since)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        result = json.loads(replayed.stdout.strip().splitlines()[-1])
        after = sorted(chain.intake_deliveries())

        # The relay's state, restored from its own backup (refused over an existing one without --force):
        # the pull resumes from the saved cursor, fetches what came after it again, and the intake keeps one copy.
        refused = _cli(chain.relay.env, chain.work, "-m", "dmz_relay", "restore", str(relay_backup))
        assert refused.returncode != 0
        assert "--force" in refused.stdout
        put_back = _cli(chain.relay.env, chain.work, "-m", "dmz_relay", "restore", str(relay_backup), "--force")
        assert put_back.returncode == 0, put_back.stdout + put_back.stderr
        assert len(chain.tombstones()) == stones_at_backup
        code, resumed = chain.pull_once()
        assert code == 0, resumed
        assert sum(resumed["outcomes"].values()) >= len(everything) - len(before_backup), resumed  # fetched again
        after_relay_restore = sorted(chain.intake_deliveries())

    assert after == everything  # nothing lost, nothing twice
    assert after_relay_restore == everything
    assert result["unfinished"] == []
    assert result["listed"] > len(everything) - len(before_backup)  # the overlap was offered again …
    assert sum(Counter(result["outcomes"]).values()) == result["listed"]
    verify = _cli(chain.intake.env, chain.work, "-m", "intake", "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
