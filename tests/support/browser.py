"""A watchdog for the browser tests: Playwright waits without a timeout in a few calls
(``page.evaluate`` of a promise, ``page.close``), so a Chromium that stops answering would hang the
suite until CI's limit. :func:`chromium_watchdog` kills this process's Chromium when a test runs
past its bound: the pending call then raises (TargetClosedError) and the test fails, saying why.

One hang is ours to avoid: Chromium can acknowledge a ``page.close()`` that races a navigation's
commit and never close the page (crbug.com/536385539; playwright#41900, #42068). A test waits for the
page a click leads to (``page.wait_for_url``) before it closes the page: the clerk's-day test's
``logout()`` does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import descendants

__all__ = ["chromium_watchdog"]


def _kill_chromium() -> None:
    for pid in descendants(os.getpid()):
        with contextlib.suppress(OSError):
            if b"chrom" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]:
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def chromium_watchdog(seconds: float) -> Iterator[threading.Event]:
    """Kill this process's Chromium if the block is still running after ``seconds``; yields the
    event that says it fired (the caller fails the test on it)."""
    fired = threading.Event()

    def bite() -> None:
        fired.set()
        _kill_chromium()

    timer = threading.Timer(seconds, bite)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()
