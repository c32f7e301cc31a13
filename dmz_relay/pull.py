"""The pull channel: poll the portal for new 受付番号 and take each package through the pipeline.

The portal is the buffer. The cursor moves only past packages that have a final outcome — stored or
duplicate (the intake's receipt), or refused for good (by the relay or the intake) — and it is
saved in the tombstone database after each page. If anything stops a round (the intake or the
scanner unavailable, the portal gone, a shutdown, a crash), the next round starts from the saved
cursor, fetches the same packages again and the intake's idempotency makes the repeat harmless;
packages already finished are skipped by their tombstone (受付番号 + SHA-256) without a download.

Refusals are not reported to the portal: its status vocabulary (到達 受付 審査中 補正依頼 完了 却下 取下げ)
has no "could not be received", and 却下 is a decision of the ward's staff, not of a relay. A
refused package is tombstoned, logged (reason code) and counted; operators follow it up from the
metrics and logs (docs/relay.md).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from dmz_relay.errors import DownloadMismatch, PortalError
from dmz_relay.logs import event
from dmz_relay.metrics import Metrics
from dmz_relay.pipeline import Pipeline
from dmz_relay.portal import Listed, PortalClient, TooLarge
from dmz_relay.reasons import SHUTTING_DOWN
from dmz_relay.tombstones import FINAL_FOR_SOURCE, Channel, Outcome, TombstoneStore
from signature.report import ReasonCode

__all__ = ["PollResult", "Puller"]

@dataclass
class PollResult:
    """What one round did. ``stopped`` is a reason code when the round ended early."""

    outcomes: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    pages: int = 0
    cursor_saves: int = 0
    stopped: str | None = None

    def count(self, outcome: Outcome) -> int:
        return self.outcomes.get(outcome.value, 0)


class Puller:
    def __init__(self, *, portal: PortalClient, pipeline: Pipeline, tombstones: TombstoneStore,
                 slots: threading.BoundedSemaphore, metrics: Metrics, page_size: int = 50,
                 stop: threading.Event | None = None) -> None:
        self.portal = portal
        self.pipeline = pipeline
        self.tombstones = tombstones
        self.slots = slots
        self.metrics = metrics
        self.page_size = page_size
        self.stop = stop or pipeline.stop

    def poll_once(self) -> PollResult:
        """One round: pages until the portal has no more, or something stops the round."""
        result = PollResult()
        cursor = self.tombstones.cursor()
        try:
            while not self.stop.is_set():
                page = self.portal.list_applications(cursor=cursor, limit=self.page_size)
                result.pages += 1
                self.metrics.pull_backlog.set(len(page.items))
                for item in page.items:
                    if self.stop.is_set():
                        result.stopped = SHUTTING_DOWN
                        return result
                    stopped = self._one(item, result)
                    self.metrics.pull_backlog.dec()
                    if stopped is not None:
                        result.stopped = stopped
                        return result
                if page.next_cursor is not None and page.next_cursor != cursor:
                    # Every item of the page has a final outcome: now, and only now, move on.
                    self.tombstones.save_cursor(page.next_cursor, self.pipeline.clock())
                    result.cursor_saves += 1
                    cursor = page.next_cursor
                if not page.has_more:
                    break
            else:
                result.stopped = SHUTTING_DOWN
        except PortalError as exc:
            event("pull.stopped", level=logging.WARNING, portal_code=exc.code, http_status=exc.status)
            result.stopped = exc.code
        finally:
            self.metrics.pull_backlog.set(0)
        return result

    def _one(self, item: Listed, result: PollResult) -> str | None:
        """Handle one listed package; a reason code if the round must stop here."""
        if self.tombstones.done_for_source(item.receipt_number, item.sha256):
            result.skipped += 1
            return None
        cap = self.pipeline.max_package_bytes
        if item.size > cap:
            self._count(result, self.pipeline.refuse_unread(
                channel=Channel.PULL, reason_code=ReasonCode.ZIP_TOO_LARGE.value,
                receipt_hint=item.receipt_number, sha256=item.sha256).outcome)
            return None
        with self.slots:  # one package in memory per slot, shared with the push channel
            try:
                buffer = self.portal.download(item, cap=cap)
            except TooLarge:
                self._count(result, self.pipeline.refuse_unread(
                    channel=Channel.PULL, reason_code=ReasonCode.ZIP_TOO_LARGE.value,
                    receipt_hint=item.receipt_number, sha256=item.sha256).outcome)
                return None
            except DownloadMismatch as exc:
                # Transfer damage or a portal bug: never forward other bytes than listed; retry later.
                event("pull.download_mismatch", level=logging.WARNING, receipt_number=item.receipt_number,
                      portal_code=exc.code)
                return exc.code
            outcome = self.pipeline.process(buffer, channel=Channel.PULL,
                                            receipt_hint=item.receipt_number)
        self._count(result, outcome.outcome)
        if outcome.outcome not in FINAL_FOR_SOURCE:
            return outcome.reason_code or outcome.outcome.value.upper()
        return None

    @staticmethod
    def _count(result: PollResult, outcome: Outcome) -> None:
        result.outcomes[outcome.value] = result.outcomes.get(outcome.value, 0) + 1
