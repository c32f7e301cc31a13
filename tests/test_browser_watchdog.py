"""The browser tests' watchdog (tests/support/browser.py): a Playwright call that never returns —
here an ``evaluate`` of a promise that never settles, which has no timeout of its own — ends with
an error once the bound passes, instead of hanging the suite. The scenario runs in a child process
with a deadline, so a watchdog that does not bite fails this test instead of hanging it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")

SCENARIO = """
import os, sys, time
from pathlib import Path
from playwright.sync_api import Error, sync_playwright
from tests.support.browser import chromium_watchdog
from tests.support.servers import descendants

bound = float(sys.argv[1])
args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=args)
    page = browser.new_context().new_page()
    page.set_content("<p>waiting</p>")
    assert page.evaluate("1 + 1") == 2
    started = time.monotonic()
    with chromium_watchdog(bound) as fired:
        try:
            page.evaluate(sys.argv[2])
            outcome = "returned"
        except Error:
            outcome = "raised"
    print(outcome, fired.is_set(), round(time.monotonic() - started, 1))
    browser.close()
left = [pid for pid in descendants(os.getpid()) if Path(f"/proc/{pid}/cmdline").exists()
        and b"chrom" in Path(f"/proc/{pid}/cmdline").read_bytes()]
print("left", len(left))
"""


def scenario(bound: float, script: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", SCENARIO, str(bound), script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_a_call_that_never_returns_fails_once_the_bound_passes() -> None:
    outcome, fired, seconds, _, left = scenario(3.0, "new Promise(() => {})")  # never settles
    assert (outcome, fired, left) == ("raised", "True", "0")  # the call failed; nothing of Chromium is left
    assert float(seconds) >= 3.0  # … after the bound, not before


def test_a_call_within_its_bound_is_left_alone() -> None:
    outcome, fired, _seconds, _, left = scenario(120.0, "new Promise(r => setTimeout(() => r(1), 200))")
    assert (outcome, fired, left) == ("returned", "False", "0")
