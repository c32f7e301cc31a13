"""The scheduler in the intake process and the status the dashboard and ``/readyz`` show."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from intake.db import make_engine, make_session_factory
from intake.jst import JST
from intake.mail.config import load_mail_config
from intake.mail.health import mail_health, mail_status
from intake.mail.schedule import JOB_DAILY, JOB_PASS, MailScheduler, start_mail_scheduler
from intake.mail.service import DailyMailer
from intake.mail.transport import make_transport
from intake.procedures import load_procedures
from intake.runtime import Runtime
from intake.settings import IntakeSettings, MailSettings
from tests.intake.conftest import Clock
from tests.support.dailymail import mail_settings
from tests.support.smtp import SmtpSink, smtp_server

DAY = date(2026, 11, 24)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with smtp_server() as sink:
        yield sink


def mailer(engine: Engine, settings: IntakeSettings, clock: Clock) -> DailyMailer:
    config = load_mail_config(settings, load_procedures(settings.procedures_file))
    return DailyMailer(make_session_factory(engine), config, make_transport(settings), clock=clock,
                       sleep=lambda _s: None)


def test_jobs_fire_at_the_send_time_in_tokyo(engine: Engine, tmp_path: Path, smtp: SmtpSink, clock: Clock) -> None:
    settings = mail_settings(None, tmp_path, smtp, send_time=time(7, 45))
    scheduler = MailScheduler(mailer(engine, settings, clock), interval_minutes=15, run_at_start=False)
    daily = scheduler.scheduler.get_job(JOB_DAILY)
    catch_up = scheduler.scheduler.get_job(JOB_PASS)
    assert daily.trigger.get_next_fire_time(None, datetime(2026, 11, 25, 7, 0, tzinfo=JST)) == datetime(
        2026, 11, 25, 7, 45, tzinfo=JST)
    assert daily.trigger.get_next_fire_time(None, datetime(2026, 11, 25, 7, 46, tzinfo=JST)) == datetime(
        2026, 11, 26, 7, 45, tzinfo=JST)
    # 22:00 UTC on the 25th is 07:00 on the 26th in Tokyo: the server's own zone does not matter
    assert daily.trigger.get_next_fire_time(None, datetime(2026, 11, 25, 22, 0, tzinfo=UTC)) == datetime(
        2026, 11, 26, 7, 45, tzinfo=JST)
    assert catch_up.trigger.interval.total_seconds() == 15 * 60


def test_a_pass_sends_and_a_broken_pass_is_recorded_not_raised(
    engine: Engine, session: Session, tmp_path: Path, smtp: SmtpSink, clock: Clock
) -> None:
    settings = mail_settings(None, tmp_path, smtp)
    scheduler = MailScheduler(mailer(engine, settings, clock), interval_minutes=10, run_at_start=False)
    record = scheduler.run_pass()
    assert record is not None
    assert record.run is not None
    assert record.run.summary() == "3 sent"
    assert scheduler.run_pass().run.outcomes == ()  # type: ignore[union-attr]
    broken = MailScheduler(mailer(make_engine(f"sqlite:///{tmp_path / 'absent' / 'x.db'}"), settings, clock),
                           interval_minutes=10, run_at_start=False)
    failed = broken.run_pass()
    assert failed is not None
    assert failed.run is None
    assert failed.error is not None
    assert failed.error.startswith("OperationalError")
    assert broken.last_pass is failed


def test_start_catches_up_at_once(
    engine: Engine, tmp_path: Path, smtp: SmtpSink, clock: Clock, runtime: Runtime
) -> None:
    """``start_mail_scheduler`` as ``serve`` calls it: the first pass runs right at start-up."""
    settings = mail_settings(runtime.settings, tmp_path, smtp)
    rt = replace(runtime, settings=settings, procedures=load_procedures(settings.procedures_file))
    done = threading.Event()
    events: list[JobExecutionEvent] = []
    scheduler = start_mail_scheduler(rt, make_session_factory(engine))
    assert scheduler is not None
    try:
        def listener(event: JobExecutionEvent) -> None:
            events.append(event)
            done.set()

        scheduler.scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        if scheduler.last_pass is None:  # the listener may come after the first pass
            assert done.wait(30)
        assert scheduler.last_pass is not None
        assert scheduler.last_pass.run is not None
    finally:
        scheduler.shutdown()
    assert all(e.exception is None for e in events)
    assert len(smtp.received) == 3
    assert start_mail_scheduler(replace(rt, settings=rt.settings.model_copy(
        update={"mail": MailSettings(enabled=False)})), make_session_factory(engine)) is None


def test_status_from_pending_to_ok_and_failing(
    engine: Engine, session: Session, tmp_path: Path, smtp: SmtpSink, clock: Clock
) -> None:
    settings = mail_settings(None, tmp_path, smtp)
    m = mailer(engine, settings, clock)
    config = m.config
    clock.now = datetime(2026, 11, 25, 8, 45, tzinfo=JST)
    # the 23rd has never been sent (first run): the floor is the latest due day, the 24th
    pending = mail_status(session, config, at=clock.now)
    assert pending.state == "pending"
    assert pending.pending == ((DAY, "kodomo-katei"), (DAY, "hoiku"), (DAY, "kuminka"))
    assert mail_status(session, config, at=datetime(2026, 11, 25, 9, 30, tzinfo=JST)).state == "overdue"

    smtp.faults = ["451"] * 4
    m.run_due()
    failing = mail_status(session, config, at=clock.now)
    assert failing.state == "failing"
    assert [(f.day, f.department, f.attempts) for f in failing.failing] == [(DAY, "kodomo-katei", 4)]
    assert failing.to_json()["failing"][0]["last_error"].startswith("SMTP_451")

    m.run_due()
    ok = mail_status(session, config, at=clock.now)
    assert (ok.state, ok.pending, ok.failing) == ("ok", (), ())
    assert ok.last_sent_at == clock.now


def test_mail_health_never_raises(engine: Engine, tmp_path: Path, runtime: Runtime, smtp: SmtpSink) -> None:
    settings = mail_settings(runtime.settings, tmp_path, smtp)
    rt = replace(runtime, settings=settings, procedures=load_procedures(settings.procedures_file))
    health = mail_health(make_session_factory(engine), rt)
    assert health["state"] == "overdue"  # the 24th was due at 08:30, it is noon
    broken = make_engine(f"sqlite:///{tmp_path / 'absent' / 'x.db'}")
    assert mail_health(make_session_factory(broken), rt) | {"checked_at": None} == {
        "state": "unknown", "checked_at": None, "last_sent_at": None, "pending": [], "overdue": [], "failing": [],
        "error": "OperationalError"}
    off = replace(rt, settings=settings.model_copy(update={"mail": MailSettings(enabled=False)}))
    assert mail_health(make_session_factory(engine), off)["state"] == "disabled"
