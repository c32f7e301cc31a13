"""``python -m tests.support.crashing_relay [--crash POINT:N]… serve|pull …``: the real relay, except
that the process kills itself with ``SIGKILL`` the N-th time it reaches POINT.

The hooks wrap methods of the relay's own classes from the outside (nothing in ``dmz_relay/``
knows about them), so everything else — settings, the pipeline, the pull loop, uvicorn — is the
product as operators run it. The points, in the order a package meets them:

``before-forward``
    verified and scanned, nothing sent to the intake yet;
``after-receipt``
    the intake committed and its receipt arrived; the tombstone still says ``received`` and the
    cursor has not moved (the source must offer the package again and the intake answer 200);
``before-tombstone``
    the package's buffers are dropped after a receipt (stored/duplicate), but the tombstone's
    outcome and ``erased_at`` were not written;
``before-cursor`` / ``after-cursor``
    every package of a page has its final outcome; the page's cursor is about to be saved / was
    just saved.

Before dying it writes one JSON line ``{"event": "test.crash_point", …}`` to stderr (no package
data), so a test can tell an injected death from a bug.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from dmz_relay.forwarder import IntakeClient, IntakeReceipt
from dmz_relay.tombstones import Outcome, TombstoneStore
from handover import RelayReport

__all__ = ["POINTS", "install", "main", "parse_crash"]

POINTS = ("before-forward", "after-receipt", "before-tombstone", "before-cursor", "after-cursor")


def parse_crash(text: str) -> tuple[str, int]:
    """``"after-receipt:3"`` → ``("after-receipt", 3)``."""
    point, _, count = text.partition(":")
    if point not in POINTS:
        raise argparse.ArgumentTypeError(f"unknown crash point {point!r} (one of {', '.join(POINTS)})")
    try:
        n = int(count or "1")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a count: {count!r}") from exc
    if n < 1:
        raise argparse.ArgumentTypeError("the count must be at least 1")
    return point, n


def install(plan: Mapping[str, int]) -> None:
    """Wrap the relay's methods so that the process dies at the planned points."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def reached(point: str) -> None:
        if point not in plan:
            return
        with lock:
            counts[point] += 1
            if counts[point] != plan[point]:
                return
        print(json.dumps({"event": "test.crash_point", "point": point, "count": plan[point]}),
              file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    deliver = IntakeClient.deliver

    @functools.wraps(deliver)
    def crashing_deliver(self: IntakeClient, body: bytes, relay_report: RelayReport | None = None, *,
                         sha256: str | None = None) -> IntakeReceipt:
        reached("before-forward")
        receipt = deliver(self, body, relay_report, sha256=sha256)
        reached("after-receipt")
        return receipt

    finish = TombstoneStore.finish

    @functools.wraps(finish)
    def crashing_finish(self: TombstoneStore, tombstone_id: int, outcome: Outcome, *, erased_at: datetime,
                        reason_code: str | None = None) -> None:
        if outcome in (Outcome.STORED, Outcome.DUPLICATE):
            reached("before-tombstone")
        finish(self, tombstone_id, outcome, erased_at=erased_at, reason_code=reason_code)

    save_cursor = TombstoneStore.save_cursor

    @functools.wraps(save_cursor)
    def crashing_save_cursor(self: TombstoneStore, cursor: str, at: datetime) -> None:
        reached("before-cursor")
        save_cursor(self, cursor, at)
        reached("after-cursor")

    IntakeClient.deliver = crashing_deliver  # type: ignore[method-assign]
    TombstoneStore.finish = crashing_finish  # type: ignore[method-assign]
    TombstoneStore.save_cursor = crashing_save_cursor  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.crashing_relay", add_help=False)
    parser.add_argument("--crash", action="append", type=parse_crash, default=[], metavar="POINT:N")
    ours, rest = parser.parse_known_args(argv)
    install(dict(ours.crash))
    from dmz_relay.cli import main as relay_main

    return relay_main(rest)


if __name__ == "__main__":
    sys.exit(main())
