"""``make test`` on two workers (tests/support/parallel.py): each test file whole on one worker and
in order, the machine-wide directories on one worker one after another, the rest spread over both.

A throw-away project in a temporary directory whose conftest uses our scheduler, run by a real
``pytest -n 2`` in a subprocess. Each test appends "worker file test" to a log as it runs, and the
machine-wide tests hold a lock file while they run, failing if another one holds it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = """
import pytest
from tests.support.parallel import make_scheduler

@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    return make_scheduler(config, log)
"""

BODY = """
import os, time
from pathlib import Path
import pytest

LOG = Path(os.environ["PARALLEL_LOG"])
LOCK = LOG.with_suffix(".machine-wide")
MACHINE_WIDE = {machine_wide}

@pytest.mark.parametrize("i", range(6))
def test_step(i):
    if MACHINE_WIDE:
        try:
            fd = os.open(LOCK, os.O_CREAT | os.O_EXCL)  # fails if another machine-wide test holds it
        except FileExistsError:
            pytest.fail("two machine-wide tests ran at once")
    with LOG.open("a") as f:
        f.write(f"{{os.environ['PYTEST_XDIST_WORKER']}} {{Path(__file__).name}} {{i}}\\n")
    time.sleep(0.05)  # long enough for the other worker to run something meanwhile
    if MACHINE_WIDE:
        os.close(fd)
        os.unlink(LOCK)
"""

FILES = {
    "tests/deploy/test_stack.py": True, "tests/docker/test_images.py": True, "tests/zones/test_zones.py": True,
    **{f"tests/unit/test_{name}.py": False for name in ("a", "b", "c", "d", "e", "f")},
}


def run_project(tmp_path: Path, *args: str, marks: str = "", lock: bool = True) -> dict[str, list[tuple[str, int]]]:
    """Build the project, run it on two workers; file name → [(worker, step)] in the order run.
    ``lock``: the machine-wide files fail when two of their tests overlap."""
    project = tmp_path / "project"
    for name, machine_wide in FILES.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(marks + BODY.format(machine_wide=machine_wide and lock), encoding="utf-8")
    (project / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    log = tmp_path / "ran.log"
    env = {**os.environ, "PARALLEL_LOG": str(log), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", *args,
                           "--rootdir", str(project), "-c", os.devnull, str(project / "tests")],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ran: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for line in log.read_text(encoding="utf-8").splitlines():
        worker, name, step = line.split()
        ran[name].append((worker, int(step)))
    return ran


def test_each_file_runs_whole_on_one_worker_and_the_machine_wide_ones_together(tmp_path: Path) -> None:
    ran = run_project(tmp_path, "--dist", "loadfile")
    assert sorted(ran) == sorted(Path(name).name for name in FILES)
    for name, steps in ran.items():
        assert len({worker for worker, _ in steps}) == 1, f"{name} ran on two workers: {steps}"
        assert [step for _, step in steps] == list(range(6)), f"{name} out of order: {steps}"
    machine_wide = {ran[Path(name).name][0][0] for name, together in FILES.items() if together}
    assert len(machine_wide) == 1  # one worker (and, from the lock, one at a time)
    assert {steps[0][0] for steps in ran.values()} == {"gw0", "gw1"}  # and both workers worked


def test_xdist_group_marks_do_not_group_on_this_pytest(tmp_path: Path) -> None:
    """Why tests/support/parallel.py schedules by file itself: ``--dist loadgroup`` with one
    ``xdist_group`` for a whole file still splits it (pytest-dev/pytest-xdist#1386). When this
    fails, xdist groups again and marks would do."""
    marks = 'import pytest as _p\npytestmark = _p.mark.xdist_group("one")\n'
    ran = run_project(tmp_path, "--dist", "loadgroup", marks=marks, lock=False)
    workers = {worker for steps in ran.values() for worker, _ in steps}
    assert workers == {"gw0", "gw1"}  # one group, yet both workers ran its tests
