"""Sending the daily mail: one (day, department), a chosen day, or every due day (the scheduler's pass).

For each (day, department):

1. **claim** — if the sent-log has no row, count, render and commit the CLAIMED row with the finished
   message (:mod:`intake.mail.sentlog`); a concurrent twin loses on the unique key and uses ours;
2. **send** — attempts with tenacity (``retry.attempts`` in all, exponential waits, ``sleep``
   injectable), each attempt holding the row (one sender at a time across instances), sending the
   stored bytes, and committing SENT — or the error — in the same transaction;
3. a transient failure that outlasts the retries ends the pass (the SMTP server is down: later days
   would fail too, and the next pass keeps the order); a permanent one (refused) is recorded and the
   pass goes on with the next mail. Both stay CLAIMED and are retried by the next pass.

Due days: with ``calendar="business"`` (the default) a mail goes out on each business day of the
ward (:class:`intake.workdays.WardCalendar`) at ``send_time`` (Asia/Tokyo) and covers every day since
the previous business day: Monday's covers Friday, Saturday and Sunday, the mail after a 祝日 covers
it too. Its key in the sent-log is its last day (the day before it is sent), ``first_day`` its first.
With ``calendar="every_day"`` the mail for day D goes out at D + 1 and covers D alone. A pass sends,
oldest first, every due mail not yet SENT that is at most ``catch_up_days`` old and not before the
department's first mail (or ``start_date`` when set) — so a restart after downtime catches up the
missed mails in order, and a new installation starts with the latest instead of a week of history.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from intake.events import record_event
from intake.jst import JST, jst_day
from intake.mail.config import Department, MailConfig, load_mail_config
from intake.mail.counting import build_report
from intake.mail.errors import InvalidMailDay, TransientTransportError, TransportError
from intake.mail.render import ComposedMail, compose
from intake.mail.sentlog import claim_row, find, lock_for_attempt, mark_sent, note_failure
from intake.mail.transport import Transport, make_transport
from intake.models import MailSentLog, MailState
from intake.procedures import ProcedureCatalogue
from intake.runtime import Clock, clock_for, system_clock
from intake.settings import IntakeSettings

__all__ = ["DailyMailer", "MailOutcome", "MailRun", "Result", "default_instance", "due_at", "due_mails", "period_of",
           "send_day_of"]

_log = logging.getLogger(__name__)

EVENT_SENT = "mail.sent"
EVENT_ATTEMPT_FAILED = "mail.attempt_failed"

Result = Literal["sent", "already_sent", "busy", "failed", "deferred", "dry_run"]


@dataclass(frozen=True)
class MailOutcome:
    """What happened to one (day, department). No personal data."""

    day: date
    department: str
    result: Result
    message_id: str | None = None
    attempts: int = 0
    error: str | None = None
    #: a failure the next attempt may overcome (server unreachable, 4xx), as opposed to a refusal
    transient: bool = False
    #: dry runs only: the message that would be sent (the stored one when a row exists).
    preview: ComposedMail | bytes | None = None


@dataclass(frozen=True)
class MailRun:
    outcomes: tuple[MailOutcome, ...] = ()

    def count(self, result: Result) -> int:
        return sum(1 for o in self.outcomes if o.result == result)

    @property
    def ok(self) -> bool:
        return not any(o.result in ("failed", "deferred") for o in self.outcomes)

    def summary(self) -> str:
        parts = [f"{self.count(r)} {r.replace('_', ' ')}" for r in
                 ("sent", "already_sent", "busy", "failed", "deferred", "dry_run") if self.count(r)]
        return ", ".join(parts) or "nothing due"


def default_instance() -> str:
    """Who claimed a row, for operators: host name and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


def is_send_day(day: date, config: MailConfig) -> bool:
    """Whether a mail goes out on ``day`` (every business day; every day without a calendar)."""
    return config.calendar is None or config.calendar.is_business_day(day)


def send_day_of(day: date, config: MailConfig) -> date:
    """The day the mail that covers ``day`` goes out."""
    return day + timedelta(days=1) if config.calendar is None else config.calendar.next_business_day(day)


def period_of(day: date, config: MailConfig) -> tuple[date, date]:
    """(first, last) day of the mail that covers ``day``; ``last`` is its key in the sent-log."""
    sent = send_day_of(day, config)
    last = sent - timedelta(days=1)
    first = last if config.calendar is None else config.calendar.previous_business_day(sent)
    return first, last


def due_at(day: date, config: MailConfig) -> datetime:
    """When the mail that covers ``day`` is due: its send day at ``send_time``, Asia/Tokyo."""
    return datetime.combine(send_day_of(day, config), config.send_time, JST)


def _due_keys(at: datetime, config: MailConfig) -> list[date]:
    """Key days (last covered days) of every mail due by ``at`` within ``catch_up_days``, oldest first."""
    today = jst_day(at)
    keys = []
    for back in range(config.catch_up_days, -1, -1):
        sent = today - timedelta(days=back)
        if is_send_day(sent, config) and at >= datetime.combine(sent, config.send_time, JST):
            keys.append(sent - timedelta(days=1))
    return keys


def due_mails(session: Session, config: MailConfig, *, at: datetime,
              department: str | None = None) -> list[tuple[date, Department]]:
    """Every (key day, department) due at ``at`` and not SENT yet, oldest first, departments in
    configuration order."""
    keys = _due_keys(at, config)
    if not keys:
        return []
    last = keys[-1]
    horizon = jst_day(at) - timedelta(days=config.catch_up_days)
    departments = [config.department(department)] if department else list(config.departments)
    first_logged: dict[str, date] = {
        dept: day for dept, day in session.execute(
            select(MailSentLog.department, func.min(MailSentLog.day)).group_by(MailSentLog.department))
    }
    sent: set[tuple[date, str]] = {
        (day, dept) for day, dept in session.execute(
            select(MailSentLog.day, MailSentLog.department)
            .where(MailSentLog.state == MailState.SENT, MailSentLog.day >= horizon))
    }
    pending: list[tuple[date, Department]] = []
    for dept in departments:
        floor = max(config.start_date or first_logged.get(dept.id) or last, horizon)
        pending.extend((day, dept) for day in keys if day >= floor and (day, dept.id) not in sent)
    order = {d.id: i for i, d in enumerate(config.departments)}
    return sorted(pending, key=lambda p: (p[0], order[p[1].id]))


@dataclass
class DailyMailer:
    """Sends the daily mail. ``clock`` stamps claims and attempts and decides what is due; ``sleep``
    waits between in-call retries (tests inject both)."""

    session_factory: sessionmaker[Session]
    config: MailConfig
    transport: Transport
    clock: Clock = system_clock
    sleep: Callable[[float], None] = time.sleep
    instance: str = field(default_factory=default_instance)

    @classmethod
    def from_settings(cls, settings: IntakeSettings, catalogue: ProcedureCatalogue,
                      session_factory: sessionmaker[Session], *, clock: Clock | None = None) -> DailyMailer:
        """The mailer of ``settings``; without ``clock``, the process's clock (:func:`clock_for`: the
        development clock when one is set)."""
        return cls(session_factory, load_mail_config(settings, catalogue), make_transport(settings),
                   clock=clock if clock is not None else clock_for(settings))

    def run_due(self, *, department: str | None = None) -> MailRun:
        """Send every due, unsent (day, department) in order (the scheduler's pass and catch-up)."""
        at = self.clock()
        with self.session_factory() as session:
            pending = due_mails(session, self.config, at=at, department=department)
        return self._send_all(pending)

    def send(self, day: date, *, department: str | None = None, dry_run: bool = False) -> MailRun:
        """Send the mail that covers ``day`` (a Saturday: the Monday mail's Friday–Sunday) to every
        department (or one), unless already sent. Its days must have ended in Asia/Tokyo
        (:class:`InvalidMailDay`); a dry run may also show today so far."""
        today = jst_day(self.clock())
        if day > today or (day == today and not dry_run):
            raise InvalidMailDay(day, today)
        _, key = period_of(day, self.config)
        if key >= today and not dry_run:  # the mail that covers ``day`` also covers days not yet over
            raise InvalidMailDay(key, today)
        day = key
        departments = [self.config.department(department)] if department else list(self.config.departments)
        if dry_run:
            return MailRun(tuple(self._preview(day, d) for d in departments))
        return self._send_all([(day, d) for d in departments])

    def _send_all(self, pending: list[tuple[date, Department]]) -> MailRun:
        outcomes: list[MailOutcome] = []
        for i, (day, dept) in enumerate(pending):
            outcome = self.send_one(day, dept)
            outcomes.append(outcome)
            _log.info("daily mail %s/%s: %s%s", day.isoformat(), dept.id, outcome.result,
                      f" [{outcome.error}]" if outcome.error else "")
            if outcome.result == "failed" and outcome.transient:
                outcomes.extend(MailOutcome(d, p.id, "deferred") for d, p in pending[i + 1:])
                break
        return MailRun(tuple(outcomes))

    def send_one(self, day: date, department: Department) -> MailOutcome:
        """Claim (or find) the row for (``day``, ``department``) and send it; never raises for
        transport errors (they are recorded and returned)."""
        row_id, message_id, state = self._claim(day, department)
        if state is MailState.SENT:
            return MailOutcome(day, department.id, "already_sent", message_id)
        retry = self.config.retry
        attempts = 0

        def attempt() -> Result:
            nonlocal attempts
            attempts += 1
            return self._attempt(row_id)

        try:
            result: Result = Retrying(
                stop=stop_after_attempt(retry.attempts),
                wait=wait_exponential(multiplier=retry.base_seconds, max=retry.cap_seconds),
                retry=retry_if_exception_type(TransientTransportError),
                sleep=self.sleep, reraise=True,
            )(attempt)
        except TransportError as exc:
            return MailOutcome(day, department.id, "failed", message_id, attempts, f"{exc.code}: {exc}",
                               transient=exc.transient)
        return MailOutcome(day, department.id, result, message_id, attempts)

    def _claim(self, day: date, department: Department) -> tuple[int, str, MailState]:
        with self.session_factory() as session:
            row = find(session, day, department.id)
            if row is None:
                at = self.clock()
                mail = compose(build_report(session, self.config, department, day, as_of=at,
                                            first_day=period_of(day, self.config)[0]), self.config)
                try:
                    row = claim_row(session, mail, at=at, instance=self.instance)
                    session.commit()
                except IntegrityError:
                    # Another instance committed its claim first: its content is the mail.
                    session.rollback()
                    row = find(session, day, department.id)
                    if row is None:  # pragma: no cover - the unique key said it exists
                        raise
            return row.id, row.message_id, row.state

    def _attempt(self, row_id: int) -> Result:
        with self.session_factory() as session:
            at = self.clock()
            try:
                row = lock_for_attempt(session, row_id, at=at, instance=self.instance)
            except OperationalError as exc:
                if session.get_bind().dialect.name == "sqlite" and "locked" in str(exc):
                    # Another instance held SQLite's writer lock longer than the busy timeout: it is sending.
                    return "busy"
                raise
            if row is None:
                session.rollback()
                state = session.scalar(select(MailSentLog.state).where(MailSentLog.id == row_id))
                return "already_sent" if state is MailState.SENT else "busy"
            try:
                sent = self.transport.send(data=row.message, sender=self.config.sender, recipients=row.recipients,
                                           message_id=row.message_id)
            except TransportError as exc:
                note_failure(session, row, error=f"{exc.code}: {exc}")
                record_event(session, EVENT_ATTEMPT_FAILED, at=at, day=row.day.isoformat(),
                             department=row.department, message_id=row.message_id, code=exc.code,
                             attempts=row.attempts, transient=exc.transient)
                session.commit()
                _log.warning("daily mail %s: attempt %d failed: %s %s", row.message_id, row.attempts, exc.code, exc)
                raise
            mark_sent(session, row, at=self.clock())
            record_event(session, EVENT_SENT, at=at, day=row.day.isoformat(), department=row.department,
                         message_id=row.message_id, attempts=row.attempts, transport=self.transport.name,
                         refused_recipients=sent.refused, total=row.total)
            session.commit()
            return "sent"

    def _preview(self, day: date, department: Department) -> MailOutcome:
        with self.session_factory() as session:
            row = find(session, day, department.id)
            if row is not None:
                result: Result = "already_sent" if row.state is MailState.SENT else "dry_run"
                return MailOutcome(day, department.id, result, row.message_id, row.attempts, row.last_error,
                                   preview=row.message)
            mail = compose(build_report(session, self.config, department, day, as_of=self.clock(),
                                        first_day=period_of(day, self.config)[0]), self.config)
            session.rollback()
        return MailOutcome(day, department.id, "dry_run", mail.message_id, preview=mail)
