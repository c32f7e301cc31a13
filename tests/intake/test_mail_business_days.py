"""The daily mail a department head wants: one mail per business day covering every day since the
previous one — across a weekend and a 祝日 (2026-11-23 勤労感謝の日, a Monday) — late arrivals in the
next mail, processed counts, 和暦, and the development clock (refused in production)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from intake.db import make_session_factory
from intake.events import record_event
from intake.jst import JST
from intake.mail.config import load_mail_config
from intake.mail.service import DailyMailer, due_mails, period_of
from intake.mail.transport import make_transport
from intake.models import MailSentLog
from intake.procedures import load_procedures
from intake.runtime import Runtime, clock_for
from intake.settings import IntakeSettings
from tests.intake.conftest import Clock
from tests.intake.test_mail_send import by_department, html, mid, plain
from tests.support.dailymail import JIDOTEATE, add_application_event, mail_settings
from tests.support.smtp import SmtpSink, smtp_server

FRI, SAT, SUN, MON_HOLIDAY, TUE, WED = (date(2026, 11, d) for d in (20, 21, 22, 23, 24, 25))


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=JST)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with smtp_server() as sink:
        yield sink


def business_mailer(engine: Engine, tmp_path: Path, smtp: SmtpSink, clock: Clock, **mail: object) -> DailyMailer:
    settings = mail_settings(None, tmp_path, smtp, calendar="business", **mail)
    config = load_mail_config(settings, load_procedures(settings.procedures_file))
    return DailyMailer(make_session_factory(engine), config, make_transport(settings), clock=clock,
                       sleep=lambda _s: None, instance="test:1")


def test_periods_over_a_weekend_and_a_holiday(tmp_path: Path) -> None:
    settings = mail_settings(None, tmp_path, calendar="business")
    config = load_mail_config(settings, load_procedures(settings.procedures_file))
    # Thursday's mail goes out Friday; Friday … Monday (祝日) go out together on Tuesday.
    assert period_of(date(2026, 11, 19), config) == (date(2026, 11, 19), date(2026, 11, 19))
    for day in (FRI, SAT, SUN, MON_HOLIDAY):
        assert period_of(day, config) == (FRI, MON_HOLIDAY)
    assert period_of(TUE, config) == (TUE, TUE)
    # over the year end: 12/28 (Mon) … 1/3 go out on 1/4
    assert period_of(date(2026, 12, 31), config) == (date(2026, 12, 28), date(2027, 1, 3))


def test_the_mail_after_a_weekend_and_a_holiday_covers_every_day_since_the_last(
    engine: Engine, session: Session, tmp_path: Path, smtp: SmtpSink, clock: Clock
) -> None:
    for day, n in ((FRI, 1), (SAT, 2), (SUN, 3), (MON_HOLIDAY, 4), (TUE, 5)):
        add_application_event(session, "新規申請", at(day, 11), JIDOTEATE, n=n)
    record_event(session, "status.changed", at=at(SAT, 10), procedure_id=JIDOTEATE, target="完了")
    session.commit()
    mailer = business_mailer(engine, tmp_path, smtp, clock, start_date=FRI)
    # Saturday, Sunday and the holiday: nothing goes out.
    for moment in (at(SAT, 9), at(SUN, 9), at(MON_HOLIDAY, 9)):
        clock.now = moment
        with make_session_factory(engine)() as s:
            assert [d for d, _ in due_mails(s, mailer.config, at=moment)] == []
    # Tuesday 08:30: one mail per department, Friday to Monday, 1 + 2 + 3 + 4 = 10 applications.
    clock.now = at(TUE, 8, 31)
    run = mailer.run_due(department="kodomo-katei")
    assert [(o.day, o.result) for o in run.outcomes] == [(MON_HOLIDAY, "sent")]
    msg = by_department(smtp)["kodomo-katei"]
    assert msg["Message-ID"] == mid(MON_HOLIDAY, "kodomo-katei")
    assert "2026年11月20日（金）〜11月23日（月） 10件" in str(msg["Subject"])
    text = plain(msg)
    assert "11月21日（土）は土曜日、11月22日（日）は日曜日、11月23日（月）は勤労感謝の日のため" in text
    assert "完了 1 ／ 却下 0 ／ 補正依頼 0" in text
    assert "勤労感謝の日" in html(msg)
    with make_session_factory(engine)() as s:
        row = s.scalar(select(MailSentLog).where(MailSentLog.department == "kodomo-katei"))
        assert row is not None
        assert (row.first_day, row.day, row.total) == (FRI, MON_HOLIDAY, 10)
    # Wednesday's mail covers Tuesday alone.
    clock.now = at(WED, 8, 31)
    mailer.run_due(department="kodomo-katei")
    assert "2026年11月24日（火） 5件" in str(smtp.messages()[-1]["Subject"])


def test_a_late_arrival_goes_into_the_next_mail(
    engine: Engine, session: Session, tmp_path: Path, smtp: SmtpSink, clock: Clock
) -> None:
    mailer = business_mailer(engine, tmp_path, smtp, clock, start_date=TUE)
    add_application_event(session, "新規申請", at(TUE, 10), JIDOTEATE)
    session.commit()
    clock.now = at(WED, 8, 31)
    mailer.run_due(department="kodomo-katei")
    # Tuesday 23:50's application reaches the intake only on Wednesday 09:15 (the relay was down).
    add_application_event(session, "補正", at(TUE, 23, 50), JIDOTEATE, stored_at=at(WED, 9, 15))
    add_application_event(session, "新規申請", at(WED, 10), JIDOTEATE)
    session.commit()
    clock.now = at(date(2026, 11, 26), 8, 31)
    mailer.run_due(department="kodomo-katei")
    first, second = smtp.messages()
    assert "1件" in str(first["Subject"])
    assert "■ 遅れて届いた申請" not in plain(first)
    text = plain(second)
    assert "2026年11月25日（水） 1件" in str(second["Subject"])  # its own day only
    assert "■ 遅れて届いた申請" in text
    assert "・11月24日（火） 児童手当 認定請求: 1件" in text or "・2026年11月24日（火） 児童手当 認定請求: 1件" in text


def test_wareki_option(engine: Engine, session: Session, tmp_path: Path, smtp: SmtpSink, clock: Clock) -> None:
    add_application_event(session, "新規申請", at(TUE, 10), JIDOTEATE, n=2)
    session.commit()
    mailer = business_mailer(engine, tmp_path, smtp, clock, start_date=TUE, wareki=True)
    clock.now = at(WED, 8, 31)
    mailer.run_due(department="kodomo-katei")
    msg = smtp.messages()[0]
    assert "【電子申請 日次件数】令和8年11月24日（火） 2件" in str(msg["Subject"])
    assert "令和8年11月24日（火）の電子申請" in plain(msg)


def test_the_development_clock_runs_from_its_setting_and_is_refused_in_production(
    tmp_path: Path, settings: IntakeSettings
) -> None:
    settings = settings.model_copy(update={"dev_clock": datetime(2026, 11, 24, 8, 31, tzinfo=JST)})
    clock = clock_for(settings)
    first = clock()
    assert timedelta(0) <= first - datetime(2026, 11, 24, 8, 31, tzinfo=JST) < timedelta(seconds=5)
    assert clock() >= first  # it runs on
    # A runtime made from the settings runs on the same setting (its own clock starts at it when made:
    # not necessarily later than ``first``, which has run on since its own start).
    made = Runtime.from_settings(settings).clock()
    assert timedelta(0) <= made - datetime(2026, 11, 24, 8, 31, tzinfo=JST) < timedelta(seconds=5)
    with pytest.raises(ValidationError, match="dev_clock is for development only"):
        IntakeSettings(environment="production", dev_clock=datetime(2026, 11, 24, 8, 31, tzinfo=JST))
    with pytest.raises(ValidationError):
        IntakeSettings(var_dir=tmp_path, dev_clock="2026-11-24T08:31:00")  # a moment must say its offset
