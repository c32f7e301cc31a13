"""One private Docker engine per host: a second run waits for the first's lock (tests/support/dockerd.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dockerd import DockerUnavailable, clashes, host_lock

ROOT = Path(__file__).resolve().parents[2]
TAKE = ("import sys; from pathlib import Path; from tests.support.dockerd import host_lock, DockerUnavailable\n"
        "try:\n    host_lock(Path(sys.argv[1]), timeout=float(sys.argv[2]))\nexcept DockerUnavailable:\n"
        "    sys.exit(3)\nprint('got it')\n")


def _take(lock: Path, timeout: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", TAKE, str(lock), str(timeout)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)


def test_a_second_run_waits_until_the_first_releases(tmp_path: Path) -> None:
    lock = tmp_path / "dockerd.lock"
    held = host_lock(lock, timeout=5)
    try:
        refused = _take(lock, 0.5)
        refused.communicate(timeout=30)
        assert refused.returncode == 3  # refused after its bounded wait
        waiter = _take(lock, 60)
        with pytest.raises(subprocess.TimeoutExpired):
            waiter.wait(1.5)  # still waiting while the lock is held
    finally:
        held.release()
    out, _ = waiter.communicate(timeout=30)
    assert waiter.returncode == 0
    assert out.strip() == "got it"


def test_the_lock_is_not_reentrant_within_a_process(tmp_path: Path) -> None:
    """A second start in the same process (a leaked engine) is refused, not silently shared."""
    lock = tmp_path / "dockerd.lock"
    held = host_lock(lock, timeout=5)
    try:
        with pytest.raises(DockerUnavailable):
            host_lock(lock, timeout=0.2)
    finally:
        held.release()


def test_address_clashes_are_found() -> None:
    """A range on the host's own link clashes (the engine and the compose file are checked with this)."""
    route = subprocess.run(["ip", "-4", "route", "show", "scope", "link"], capture_output=True, text=True,
                           check=True).stdout.split()
    if not route:
        pytest.skip("the host has no link-scope route to compare against")
    assert clashes([route[0]]), f"{route[0]} is the host's own link and must clash"
