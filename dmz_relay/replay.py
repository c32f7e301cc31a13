"""``python -m dmz_relay replay --since T``: after the intake was restored from a backup, forward
again every package the portal offered since ``T``.

The portal keeps applications for a while (docs/portal-api.md: ``GET /api/v1/applications?since=``).
The relay's tombstones say "done" for packages the restored intake no longer has, so the replay
ignores them: it lists every application that arrived at or after ``T``, downloads each, and runs
it through the normal pipeline (verify, scan, forward with its Idempotency-Key, erase). The intake
answers 201 for a package it lost with the restore and 200 for one it still has — nothing is lost,
nothing is stored twice. The pull cursor is not moved. Exit 0 when every listed package ended with
a final outcome, 1 otherwise (run it again: it is idempotent).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from dmz_relay.errors import PortalError
from dmz_relay.logs import event
from dmz_relay.portal import TooLarge
from dmz_relay.runtime import Relay
from dmz_relay.tombstones import Channel, Outcome

__all__ = ["ReplayResult", "replay", "run_replay"]

_FINAL = {Outcome.STORED, Outcome.DUPLICATE, Outcome.REFUSED, Outcome.REJECTED}


@dataclass
class ReplayResult:
    listed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)  # 受付番号 without a final outcome
    stopped: str | None = None

    @property
    def ok(self) -> bool:
        return not self.unfinished and self.stopped is None


def replay(relay: Relay, *, since: datetime) -> ReplayResult:
    if relay.portal is None:
        raise ValueError("no portal configured (SHINSEI_RELAY_PORTAL_URL)")
    result = ReplayResult()
    cursor: str | None = None
    cap = relay.pipeline.max_package_bytes
    try:
        while True:
            page = relay.portal.list_applications(cursor=cursor, limit=relay.settings.page_size, since=since)
            for item in page.items:
                result.listed += 1
                with relay.slots:
                    try:
                        buffer = relay.portal.download(item, cap=cap)
                    except TooLarge:
                        outcome = relay.pipeline.refuse_unread(channel=Channel.PULL, reason_code="ZIP_TOO_LARGE",
                                                               receipt_hint=item.receipt_number,
                                                               sha256=item.sha256).outcome
                    except PortalError:
                        result.unfinished.append(item.receipt_number)
                        continue
                    else:
                        outcome = relay.pipeline.process(buffer, channel=Channel.PULL,
                                                         receipt_hint=item.receipt_number).outcome
                result.outcomes[outcome.value] = result.outcomes.get(outcome.value, 0) + 1
                if outcome not in _FINAL:
                    result.unfinished.append(item.receipt_number)
            if not page.has_more or page.next_cursor is None or page.next_cursor == cursor:
                break
            cursor = page.next_cursor
    except PortalError as exc:
        result.stopped = exc.code
    event("replay.finished", level=logging.INFO if result.ok else logging.WARNING, count=result.listed,
          detail="complete" if result.ok else "incomplete")
    return result


def run_replay(relay: Relay, since_text: str) -> int:
    try:
        since = datetime.fromisoformat(since_text)
    except ValueError:
        print("--since must be an ISO 8601 time with an offset", flush=True)
        return 2
    if since.tzinfo is None:
        print("--since needs an offset (e.g. +09:00): a naive time is ambiguous", flush=True)
        return 2
    result = replay(relay, since=since)
    print(json.dumps({"listed": result.listed, "outcomes": result.outcomes, "unfinished": result.unfinished,
                      "stopped": result.stopped}, ensure_ascii=False))
    return 0 if result.ok else 1
