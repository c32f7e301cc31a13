"""The pull channel: poll the portal for new 受付番号 and take each package through the pipeline.

The portal is the buffer. Every listed 受付番号 becomes an *item* in the tombstone database
(:class:`~dmz_relay.tombstones.ItemState`): pending until it has a final state — stored (the
intake's receipt), refused for good (by the relay, or by the intake with a documented reason), or
**set aside** when it kept failing. The durable cursor moves only past items that have a final
state; a round walks on past a failing item (in memory), so one bad package never blocks the ones
behind it, and the next round starts again from the durable cursor: items already final are
skipped by their tombstone or item row without a download.

Whose failure it is decides what happens (:class:`~dmz_relay.pipeline.Failure`):

* the package's (the intake answered 500 for it, the download differs from the list, an internal
  error): one attempt is counted; an item over its budget — ``item_max_attempts`` attempts, or
  listed longer ago than ``item_max_age`` — is set aside with its last reason;
* the channel's (the intake unreachable, the scanner not answering, shutting down) or the
  configuration's (the intake's answer is not about the package: a wrong certificate, path or size
  limit): the round stops; no attempt is counted and nothing is marked done. A run of
  ``max_consecutive_failures`` package failures stops the round too (it is probably the channel).

After each round the portal is told what became of each settled 受付番号 (taken, refused with its
reason, failed when set aside) where ``report_reception`` is on, and the intake is told about items
set aside (and an operator's retry), so staff see them in the My Number zone. Reconciliation — how
many listed items are in each state, and the last round that ran to the end — is in the metrics and
``dmz_relay status``.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dmz_relay.errors import DownloadMismatch, IntakeError, PortalError
from dmz_relay.forwarder import IntakeClient
from dmz_relay.logs import event
from dmz_relay.metrics import Metrics
from dmz_relay.pipeline import Failure, PackageResult, Pipeline, wipe
from dmz_relay.portal import Listed, PortalClient, TooLarge
from dmz_relay.reasons import SHUTTING_DOWN
from dmz_relay.tombstones import Channel, Item, ItemState, Outcome, TombstoneStore
from handover import SetAsideBatch, SetAsideNotice
from signature.report import ReasonCode

__all__ = ["Budget", "PollResult", "Puller"]

#: The reason of a round stopped by a run of package failures.
REPEATED_FAILURES = "REPEATED_FAILURES"
#: The last reason of an item set aside for its age before any attempt failed.
TOO_OLD = "TOO_OLD"
_SETTLED_STATE = {Outcome.STORED: ItemState.STORED, Outcome.DUPLICATE: ItemState.STORED,
                  Outcome.REFUSED: ItemState.REFUSED, Outcome.REJECTED: ItemState.REFUSED}
_RECEPTION = {ItemState.STORED: "taken", ItemState.REFUSED: "refused", ItemState.SET_ASIDE: "failed"}


@dataclass(frozen=True)
class Budget:
    """How long one package may keep failing before it is set aside."""

    max_attempts: int = 5
    max_age: timedelta = timedelta(hours=72)
    #: package failures in a row that stop the round (the channel, not the packages, is failing)
    max_consecutive_failures: int = 3


@dataclass
class PollResult:
    """What one round did. ``stopped`` is a reason code when the round ended early."""

    outcomes: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    pages: int = 0
    cursor_saves: int = 0
    set_aside: int = 0
    failed: int = 0
    listed: int = 0
    stopped: str | None = None

    def count(self, outcome: Outcome) -> int:
        return self.outcomes.get(outcome.value, 0)


class _Stop(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class _Cancelled(Exception):
    """A download ahead that was no longer wanted before it got a slot."""


class _Ahead:
    """Downloads of the packages after the one being handled, ``count`` at most, in worker threads.

    They start once the current package holds its slot, and each waits for a free slot of its own
    (shared with the push channel) and holds it until its package has been handled, or wiped here
    when it is not wanted after all (the round stopped, or its item turned out to need no
    download). A current package whose download was not started ahead drops the ones ahead first,
    so a download ahead never keeps the current one from a slot. Nothing durable happens here: the
    tombstone, the attempt count and the item's state are written when a package's turn comes, in
    list order, by the round's own thread.
    """

    def __init__(self, puller: Puller, count: int) -> None:
        self.puller = puller
        self.count = count
        self.cancelled = threading.Event()
        self.futures: dict[tuple[int, int], Future[bytearray]] = {}
        self.executor = ThreadPoolExecutor(max_workers=count, thread_name_prefix="relay-pull-ahead") if count else None
        self.page, self.index = 0, 0
        self.items: tuple[Listed, ...] = ()

    def at(self, page: int, items: tuple[Listed, ...], index: int) -> None:
        """The current package is ``items[index]`` of the round's ``page``-th page."""
        self.page, self.items, self.index = page, items, index

    def take(self) -> Future[bytearray] | None:
        """The current package's download, if it was started ahead."""
        return self.futures.pop((self.page, self.index), None)

    def start_next(self) -> None:
        """Start the downloads of the ``count`` packages after the current one that will need one."""
        if self.executor is None:
            return
        for ahead in range(self.index + 1, min(len(self.items), self.index + 1 + self.count)):
            key = (self.page, ahead)
            if key not in self.futures and self.puller.needs_download(self.items[ahead]):
                self.futures[key] = self.executor.submit(self.puller.fetch, self.items[ahead], self.cancelled)

    def drop(self) -> None:
        """Wipe every download started ahead that nobody took (each frees its slot)."""
        for future in self.futures.values():
            future.cancel()
        for future in self.futures.values():
            discard(future, self.puller.slots)
        self.futures.clear()

    def close(self) -> None:
        """Drop what is left and stop the workers."""
        self.cancelled.set()
        self.drop()
        if self.executor is not None:
            self.executor.shutdown(wait=True)


def discard(future: Future[bytearray], slots: threading.BoundedSemaphore) -> None:
    """Drop a download ahead: cancelled before it ran, or its package wiped and its slot freed."""
    if future.cancel():
        return
    try:
        buffer = future.result()
    except BaseException:  # noqa: BLE001 - it failed: it released its slot and holds nothing
        return
    wipe(buffer)
    slots.release()


class Puller:
    def __init__(self, *, portal: PortalClient, pipeline: Pipeline, tombstones: TombstoneStore,
                 slots: threading.BoundedSemaphore, metrics: Metrics, page_size: int = 50,
                 stop: threading.Event | None = None, budget: Budget | None = None,
                 intake: IntakeClient | None = None, report_reception: bool = True, prefetch: int = 0) -> None:
        self.portal = portal
        self.pipeline = pipeline
        self.tombstones = tombstones
        self.slots = slots
        self.metrics = metrics
        self.page_size = page_size
        self.stop = stop or pipeline.stop
        self.budget = budget or Budget()
        self.intake = intake
        self.report_reception = report_reception
        #: packages downloaded ahead while one is verified, scanned and forwarded
        self.prefetch = prefetch

    def _now(self) -> datetime:
        return self.pipeline.clock()

    def poll_once(self) -> PollResult:
        """One round: every page the portal has now, then the reports; see the module docstring."""
        result = PollResult()
        round_id = self.tombstones.start_round(self._now())
        durable = self.tombstones.cursor()
        cursor, settled_so_far, in_a_row = durable, True, 0
        ahead = _Ahead(self, self.prefetch)
        try:
            while True:
                if self.stop.is_set():
                    raise _Stop(SHUTTING_DOWN)
                page = self.portal.list_applications(cursor=cursor, limit=self.page_size)
                result.pages += 1
                self.metrics.pull_backlog.set(len(page.items))
                for index, listed in enumerate(page.items):
                    if self.stop.is_set():
                        raise _Stop(SHUTTING_DOWN)
                    ahead.at(result.pages, page.items, index)
                    final = self._one(listed, result, ahead)
                    self.metrics.pull_backlog.dec()
                    if final:
                        in_a_row = 0
                        continue
                    settled_so_far = False
                    in_a_row += 1
                    if in_a_row >= self.budget.max_consecutive_failures:
                        raise _Stop(REPEATED_FAILURES)
                if page.next_cursor is not None and page.next_cursor != cursor:
                    if settled_so_far:
                        # Every item up to here has a final state: now, and only now, move on.
                        self.tombstones.save_cursor(page.next_cursor, self._now())
                        result.cursor_saves += 1
                    cursor = page.next_cursor
                if not page.has_more:
                    break
        except _Stop as stop:
            result.stopped = stop.code
        except PortalError as exc:
            event("pull.stopped", level=logging.WARNING, portal_code=exc.code, http_status=exc.status)
            result.stopped = exc.code
        finally:
            ahead.close()
            self.metrics.pull_backlog.set(0)
            self._finish_round(round_id, result)
        self.tell()
        return result

    def _finish_round(self, round_id: int, result: PollResult) -> None:
        now = self._now()
        settled = sum(result.outcomes.get(o.value, 0) for o in _SETTLED_STATE) + result.set_aside
        self.tombstones.finish_round(round_id, now, stopped=result.stopped, listed=result.listed,
                                     settled=settled, failed=result.failed)
        self.metrics.rounds.labels("stopped" if result.stopped else "completed").inc()
        if result.stopped is None:
            self.metrics.last_completed_round.set(now.timestamp())
        self.update_gauges()

    def update_gauges(self) -> None:
        for state, count in self.tombstones.reconciliation().items():
            self.metrics.items.labels(state.value).set(count)

    # --- one item ------------------------------------------------------------------------------

    def _one(self, listed: Listed, result: PollResult, ahead: _Ahead | None = None) -> bool:
        """Handle one listed package; True if it has a final state now. Raises :class:`_Stop`.

        ``ahead``: the round's downloads ahead (:class:`_Ahead`), positioned at this package."""
        fetched = ahead.take() if ahead is not None else None
        try:
            decided = self._decide(listed, result)
        except BaseException:
            if fetched is not None:
                discard(fetched, self.slots)
            raise
        if decided is not None:
            if fetched is not None:
                discard(fetched, self.slots)
            return decided
        if fetched is None and ahead is not None:
            ahead.drop()  # this package's download comes first
        try:
            # One package in memory per slot, shared with the push channel: held from here on.
            buffer = fetched.result() if fetched is not None else self.fetch(listed)
        except _Cancelled as exc:
            raise _Stop(SHUTTING_DOWN) from exc
        except TooLarge:
            return self._settle(listed, result, self._refuse_too_large(listed))
        except DownloadMismatch as exc:
            # Transfer damage or a portal bug: never forward other bytes than listed; an attempt.
            event("pull.download_mismatch", level=logging.WARNING, receipt_number=listed.receipt_number,
                  portal_code=exc.code)
            self._failed(listed, result, exc.code)
            return False
        if ahead is not None:
            try:
                ahead.start_next()  # now that this package holds its slot
            except BaseException:
                wipe(buffer)
                self.slots.release()
                raise
        try:
            outcome = self.pipeline.process(buffer, channel=Channel.PULL, receipt_hint=listed.receipt_number,
                                            sha256=listed.sha256)  # what the download was checked against
        finally:
            self.slots.release()
        return self._settle(listed, result, outcome)

    def _decide(self, listed: Listed, result: PollResult) -> bool | None:
        """What can be decided about a listed package without its bytes (None: it needs them)."""
        result.listed += 1
        item = self.tombstones.note_listed(listed.receipt_number, listed.sha256, self._now())
        if item.state is not ItemState.PENDING:
            result.skipped += 1
            return True
        done = self.tombstones.final_outcome(listed.receipt_number, listed.sha256)
        if done is not None:  # settled on the push channel, or before items were kept
            self.tombstones.settle(listed.receipt_number, _SETTLED_STATE[done], self._now())
            result.skipped += 1
            return True
        if self._over_budget(item):
            self._set_aside(item, result)
            return True
        if listed.size > self.pipeline.max_package_bytes:
            return self._settle(listed, result, self._refuse_too_large(listed))
        return None

    def _refuse_too_large(self, listed: Listed) -> PackageResult:
        return self.pipeline.refuse_unread(channel=Channel.PULL, reason_code=ReasonCode.ZIP_TOO_LARGE.value,
                                           receipt_hint=listed.receipt_number, sha256=listed.sha256)

    def needs_download(self, listed: Listed) -> bool:
        """Whether :meth:`_one` will download ``listed`` (as far as can be told before its turn)."""
        if listed.size > self.pipeline.max_package_bytes:
            return False
        item = self.tombstones.item(listed.receipt_number)
        if item is not None and (item.state is not ItemState.PENDING or self._over_budget(item)):
            return False
        return self.tombstones.final_outcome(listed.receipt_number, listed.sha256) is None

    def fetch(self, listed: Listed, cancelled: threading.Event | None = None) -> bytearray:
        """Take a package slot, then download ``listed``; the slot stays held when this returns (the
        caller releases it once the package is handled) and is released when it raises."""
        if cancelled is None:
            self.slots.acquire()
        else:
            # A download ahead waits for a slot only as long as it is wanted.
            while not self.slots.acquire(timeout=0.2):
                if cancelled.is_set() or self.stop.is_set():
                    raise _Cancelled
        try:
            return self.portal.download(listed, cap=self.pipeline.max_package_bytes)
        except BaseException:
            self.slots.release()
            raise

    def _settle(self, listed: Listed, result: PollResult, outcome: PackageResult) -> bool:
        result.outcomes[outcome.outcome.value] = result.outcomes.get(outcome.outcome.value, 0) + 1
        state = _SETTLED_STATE.get(outcome.outcome)
        if state is not None:
            self.tombstones.settle(listed.receipt_number, state, self._now(), outcome.reason_code)
            return True
        if outcome.failure is Failure.ITEM:
            self._failed(listed, result, outcome.reason_code or "FAILED")
            return False
        raise _Stop(outcome.reason_code or outcome.outcome.value.upper())

    def _failed(self, listed: Listed, result: PollResult, reason_code: str) -> None:
        result.failed += 1
        self.tombstones.count_attempt(listed.receipt_number, self._now(), reason_code)

    def _over_budget(self, item: Item) -> bool:
        return (item.attempts >= self.budget.max_attempts
                or self._now() - item.first_seen_at >= self.budget.max_age)

    def _set_aside(self, item: Item, result: PollResult) -> None:
        reason = item.reason_code or TOO_OLD
        self.tombstones.settle(item.receipt_number, ItemState.SET_ASIDE, self._now(), reason)
        result.set_aside += 1
        self.metrics.set_aside.inc()
        event("pull.set_aside", level=logging.ERROR, receipt_number=item.receipt_number, sha256=item.sha256,
              reason_code=reason, attempts=item.attempts)

    # --- reports and the operator's retry --------------------------------------------------------

    def tell(self) -> None:
        """Best effort, repeated every round until it gets through: the portal learns what became of
        each settled 受付番号, the intake which ones were set aside (or retried)."""
        now = self._now()
        if self.report_reception:
            for item in self.tombstones.untold_portal():
                try:
                    self.portal.report_reception(item.receipt_number, _RECEPTION[item.state],
                                                 None if item.state is ItemState.STORED else item.reason_code)
                except PortalError as exc:
                    event("pull.report_failed", level=logging.WARNING, portal_code=exc.code, http_status=exc.status)
                    break
                self.tombstones.mark_portal_told(item.receipt_number, now)
        if self.intake is not None:
            untold = self.tombstones.untold_intake()
            if untold:
                batch = SetAsideBatch(items=tuple(SetAsideNotice(
                    receipt_number=i.receipt_number, sha256=i.sha256,
                    state="set_aside" if i.state is ItemState.SET_ASIDE else "retried",
                    reason_code=i.reason_code or TOO_OLD, attempts=i.attempts, first_seen_at=i.first_seen_at,
                    at=i.settled_at or i.last_attempt_at or now) for i in untold))
                try:
                    self.intake.report_set_aside(batch)
                except IntakeError as exc:
                    event("pull.report_failed", level=logging.WARNING, intake_code=exc.code, http_status=exc.status)
                else:
                    for i in untold:
                        self.tombstones.mark_intake_told(i.receipt_number, now)

    def retry(self, receipt_number: str) -> tuple[Item | None, bool]:
        """An operator's retry of a set-aside 受付番号: back in the queue with a fresh budget, and one
        attempt now. Returns the item afterwards and whether it has a final state."""
        item = self.tombstones.reopen(receipt_number, self._now())
        if item is None or item.state is not ItemState.PENDING:
            return item, False
        event("pull.retry", receipt_number=receipt_number, detail="operator retry of a set-aside item")
        listed = self.portal.application(receipt_number)
        final = False
        try:
            final = self._one(listed, PollResult())
        except _Stop as stop:
            event("pull.retry_stopped", level=logging.WARNING, receipt_number=receipt_number, reason_code=stop.code)
        self.update_gauges()
        self.tell()
        return self.tombstones.item(receipt_number), final

