"""Status relay: the intake's status outbox → the portal's status API → acknowledgement to the intake.

The intake never connects out of its zone, so its status notices (受付番号, status, time and the
comment staff wrote for the resident, :mod:`handover.status`) wait in its outbox. The comment may
name the resident: it exists here only in memory, between the intake's answer and the portal's
request — never in a log line, a metric, a tombstone or an exception text (the erasure tests search
the relay's disk and logs for it). Each round reads the pending notices, posts each one
to the portal with ``Idempotency-Key: shinsei-notice-<id>`` (derived from the notice id, so a repeat
after a lost reply is the portal's 200, not a second history line) and then acknowledges to the
intake the notices the portal took. The portal's transient answers (429/503) are waited out by the
portal client; if it stays unavailable the round stops and nothing more is acknowledged, so the
next round sends the rest again.

A notice the portal refuses for good (``409 ILLEGAL_TRANSITION``, ``404``, ``422``) is
acknowledged too — sending it again cannot succeed and must not block the notices behind it — as
*refused* with the portal's code, so the staff UI shows it was not delivered; it is also logged with
the code and counted (``relay_status_notices_total{result="refused"}``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from dmz_relay.errors import IntakeError, PortalError, PortalRefused
from dmz_relay.forwarder import IntakeClient
from dmz_relay.logs import event
from dmz_relay.metrics import Metrics
from dmz_relay.portal import PortalClient
from handover import NoticeRefused

__all__ = ["StatusRelay", "StatusRoundResult", "notice_key"]


def notice_key(notice_id: int) -> str:
    return f"shinsei-notice-{notice_id}"


@dataclass
class StatusRoundResult:
    delivered: int = 0
    repeated: int = 0
    refused: int = 0
    acknowledged: int = 0
    stopped: str | None = None


class StatusRelay:
    def __init__(self, *, intake: IntakeClient, portal: PortalClient, metrics: Metrics, batch: int = 100,
                 stop: threading.Event | None = None) -> None:
        self.intake = intake
        self.portal = portal
        self.metrics = metrics
        self.batch = batch
        self.stop = stop or threading.Event()

    def run_once(self) -> StatusRoundResult:
        """Relay pending notices until the outbox is empty, or something stops the round."""
        result = StatusRoundResult()
        while not self.stop.is_set():
            try:
                notices = self.intake.status_outbox(limit=self.batch)
            except IntakeError as exc:
                result.stopped = exc.code
                break
            if not notices:
                break
            done: list[int] = []
            refused: list[NoticeRefused] = []
            for notice in notices:
                if self.stop.is_set():
                    break
                try:
                    answer = self.portal.set_status(notice.receipt_number, notice.status, comment=notice.comment,
                                                    idempotency_key=notice_key(notice.id))
                except PortalRefused as exc:
                    result.refused += 1
                    self.metrics.statuses.labels("refused").inc()
                    event("status.refused", level=logging.WARNING, notice_id=notice.id,
                          receipt_number=notice.receipt_number, portal_code=exc.code, http_status=exc.status)
                    refused.append(NoticeRefused(id=notice.id, code=_code(exc.code, exc.status)))
                    continue
                except PortalError as exc:
                    result.stopped = exc.code
                    break
                if answer.created:
                    result.delivered += 1
                    self.metrics.statuses.labels("delivered").inc()
                else:
                    result.repeated += 1
                    self.metrics.statuses.labels("repeated").inc()
                event("status.delivered", notice_id=notice.id, receipt_number=notice.receipt_number,
                      ok=answer.created)
                done.append(notice.id)
            if done or refused:
                try:
                    result.acknowledged += self.intake.acknowledge(done, tuple(refused))
                except IntakeError as exc:
                    # Not acknowledged: the next round posts them again; the keys make that harmless.
                    result.stopped = exc.code
                    break
            if result.stopped is not None or len(notices) < self.batch:
                break
        return result


def _code(code: str | None, status: int | None) -> str:
    """The portal's refusal code as the intake stores it (upper-case letters, digits, ``_``)."""
    text = "".join(c for c in (code or "").upper() if c.isalnum() or c == "_")[:48]
    return text or f"HTTP_{status or 0}"
