"""The daily mail inside the intake process: APScheduler (3.x, ``BackgroundScheduler``).

Two jobs run the same pass (:meth:`DailyMailer.run_due`): one at ``send_time`` every day (Asia/Tokyo)
and one every ``pass_interval_minutes``, first right at start-up — which catches up the days missed
while the intake was down, and retries mails that failed. A pass that finds nothing due is a few
cheap queries. Passes never overlap in one process (a lock); across instances the sent-log decides
who sends (:mod:`intake.mail.sentlog`), so every instance may run the scheduler.

``serve`` starts it with ``start_mail_scheduler(runtime, session_factory)``; deployments driven by
cron use ``python -m intake mail send`` instead (and set ``mail.enabled`` as they like: the sent-log
keeps the two from sending twice).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from intake.errors import IntakeError
from intake.jst import JST
from intake.mail.service import DailyMailer, MailRun
from intake.runtime import Runtime

__all__ = ["JOB_DAILY", "JOB_PASS", "MailScheduler", "PassRecord", "start_mail_scheduler"]

_log = logging.getLogger(__name__)

JOB_DAILY = "daily-mail"
JOB_PASS = "daily-mail-catch-up"  # noqa: S105 - a job id, not a password


@dataclass(frozen=True)
class PassRecord:
    """The last pass of this process (the dashboard may show it beside the sent-log status)."""

    started_at: datetime
    run: MailRun | None
    error: str | None = None


class MailScheduler:
    def __init__(self, mailer: DailyMailer, *, interval_minutes: int, run_at_start: bool = True) -> None:
        self.mailer = mailer
        self.last_pass: PassRecord | None = None
        self._lock = threading.Lock()
        send = mailer.config.send_time
        self.scheduler = BackgroundScheduler(
            timezone=JST, daemon=True,
            # coalesce: after a stall run once, not once per missed firing; one pass at a time per job.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        )
        self.scheduler.add_job(self.run_pass, CronTrigger(hour=send.hour, minute=send.minute, second=send.second,
                                                          timezone=JST), id=JOB_DAILY, name="daily count e-mail")
        # APScheduler runs on the real clock (its triggers do); the passes decide with mailer.clock.
        pass_kwargs = {"next_run_time": datetime.now(JST)} if run_at_start else {}
        self.scheduler.add_job(self.run_pass, IntervalTrigger(minutes=interval_minutes, timezone=JST), id=JOB_PASS,
                               name="daily count e-mail: catch-up and retries", **pass_kwargs)

    def run_pass(self) -> PassRecord | None:
        """One pass; None if another pass of this process is still running. Never raises: the error is
        logged and kept in ``last_pass`` (the scheduler thread must survive a database outage)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            started = self.mailer.clock()
            try:
                run = self.mailer.run_due()
                record = PassRecord(started, run)
                if run.outcomes:
                    _log.info("daily mail pass: %s", run.summary())
            except (IntakeError, SQLAlchemyError, OSError) as exc:
                _log.exception("daily mail pass failed")
                record = PassRecord(started, None, f"{type(exc).__name__}: {exc}"[:500])
            self.last_pass = record
            return record
        finally:
            self._lock.release()

    def start(self) -> MailScheduler:
        self.scheduler.start()
        return self

    def shutdown(self, *, wait: bool = True) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)


def start_mail_scheduler(runtime: Runtime, session_factory: sessionmaker[Session]) -> MailScheduler | None:
    """Start the daily mail in this process (``serve``), or return None when ``mail.enabled`` is off.
    The configuration is checked now: a broken departments file stops the start-up."""
    settings = runtime.settings
    if not settings.mail.enabled:
        _log.info("daily mail is disabled (mail.enabled=false)")
        return None
    mailer = DailyMailer.from_settings(settings, runtime.procedures, session_factory, clock=runtime.clock)
    scheduler = MailScheduler(mailer, interval_minutes=settings.mail.pass_interval_minutes).start()
    _log.info("daily mail: %d department(s), sent at %s JST via %s", len(mailer.config.departments),
              mailer.config.send_time.strftime("%H:%M"), mailer.transport.name)
    return scheduler
