"""The daily mail against a real SMTP server (aiosmtpd in this process), on SQLite and PostgreSQL:
content per department, Japanese encoding, Message-ID stability, retries, ambiguous failures, two
instances, catch-up after downtime, a zero day."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from intake.db import Base, make_engine, make_session_factory
from intake.jst import JST
from intake.mail.config import load_mail_config
from intake.mail.errors import InvalidMailDay, UnknownDepartment
from intake.mail.service import DailyMailer, MailRun
from intake.mail.transport import SendResult, Transport, make_transport
from intake.models import Event, MailSentLog, MailState
from intake.procedures import load_procedures
from intake.settings import IntakeSettings
from tests.intake.conftest import Clock
from tests.support.dailymail import HOIKU, JIDOTEATE, UI, add_application_event, mail_settings
from tests.support.smtp import SmtpSink, smtp_server

DAY = date(2026, 11, 24)  # a Tuesday; the pinned clock (tests.conftest.NOW) is 2026-11-25 12:00 JST
DOMAIN = "intake.ward.example.lg.jp"
DEPARTMENTS = ("kodomo-katei", "hoiku", "kuminka")


def mid(day: date, department: str) -> str:
    return f"<daily-{day:%Y%m%d}-{department}@{DOMAIN}>"


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with smtp_server() as sink:
        yield sink


@pytest.fixture
def mail_env(tmp_path: Path, smtp: SmtpSink) -> IntakeSettings:
    return mail_settings(None, tmp_path, smtp)


@pytest.fixture
def sleeps() -> list[float]:
    return []


def mailer_for(engine: Engine, settings: IntakeSettings, clock: Clock, sleeps: list[float], *,
               instance: str = "test:1", transport: Transport | None = None) -> DailyMailer:
    config = load_mail_config(settings, load_procedures(settings.procedures_file))
    return DailyMailer(make_session_factory(engine), config, transport or make_transport(settings), clock=clock,
                       sleep=sleeps.append, instance=instance)


@pytest.fixture
def mailer(engine: Engine, mail_env: IntakeSettings, clock: Clock, sleeps: list[float]) -> DailyMailer:
    return mailer_for(engine, mail_env, clock, sleeps)


def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=JST)


def by_department(smtp: SmtpSink) -> dict[str, EmailMessage]:
    result = {}
    for msg in smtp.messages():
        dept = str(msg["X-Shinsei-Mail"]).split("department=")[1]
        assert dept not in result, "two mails for one department"
        result[dept] = msg
    return result


def plain(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content()).replace("\r\n", "\n")


def html(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def sent_log(session: Session) -> list[tuple[date, str, MailState, int]]:
    session.expire_all()
    return [(r.day, r.department, r.state, r.attempts)
            for r in session.scalars(select(MailSentLog).order_by(MailSentLog.day, MailSentLog.id))]


def test_content_per_department(session: Session, mailer: DailyMailer, smtp: SmtpSink) -> None:
    add_application_event(session, "新規申請", at(DAY, 9), JIDOTEATE, n=3)
    add_application_event(session, "補正", at(DAY, 10), JIDOTEATE)
    add_application_event(session, "新規申請", at(DAY, 11), HOIKU, n=2)
    add_application_event(session, "取下げ", at(DAY, 12), HOIKU)
    session.commit()

    run = mailer.send(DAY)

    assert [(o.department, o.result) for o in run.outcomes] == [(d, "sent") for d in DEPARTMENTS]
    envelopes = {r.rcpt_tos: r for r in smtp.received}
    assert set(envelopes) == {("kodomo-katei@ward.example.lg.jp", "kacho@ward.example.lg.jp"),
                              ("hoiku@ward.example.lg.jp",), ("kuminka@ward.example.lg.jp",)}
    assert {r.mail_from for r in smtp.received} == {"shinsei-intake@ward.example.lg.jp"}
    mails = by_department(smtp)
    kodomo, hoiku, kuminka = (mails[d] for d in DEPARTMENTS)
    assert kodomo["To"] == "kodomo-katei@ward.example.lg.jp, kacho@ward.example.lg.jp"
    text = plain(kodomo)
    assert "子ども家庭支援部 子ども家庭課 御中" in text
    assert "2026年11月24日（火）の受付: 4件" in text
    assert "児童手当 認定請求［KOSODATE-JIDOTEATE-NINTEI］" in text
    assert "新規申請 3 ／ 再申請 0 ／ 補正 1 ／ 取下げ 0 ／ 計 4" in text
    assert "保育所等" not in text  # another department's procedure
    hoiku_text = plain(hoiku)
    assert "保育所等 入所申込［KOSODATE-HOIKU-NYUSHO］" in hoiku_text
    assert "新規申請 2 ／ 再申請 0 ／ 補正 0 ／ 取下げ 1 ／ 計 3" in hoiku_text
    assert "保育所等 変更届［KOSODATE-HOIKU-HENKO］" in hoiku_text  # owned, zero today: still listed
    assert "児童手当" not in hoiku_text
    assert "電子申請はありませんでした（0件）" in plain(kuminka)
    assert str(kodomo["Subject"]) == "【電子申請 日次件数】2026年11月24日（火） 4件 子ども家庭支援部 子ども家庭課"
    assert str(hoiku["Subject"]) == "【電子申請 日次件数】2026年11月24日（火） 3件 保育課"
    page = html(kodomo)
    assert "<td align=\"right\"><strong>4</strong></td>" in page
    assert f'href="{UI}/applications?queue=1"' not in page  # no open work
    assert sent_log(session) == [(DAY, d, MailState.SENT, 1) for d in DEPARTMENTS]
    assert session.scalar(select(func.count()).select_from(Event).where(Event.kind == "mail.sent")) == 3


def test_japanese_encoding_survives_a_7bit_path(session: Session, mailer: DailyMailer, smtp: SmtpSink) -> None:
    add_application_event(session, "再申請", at(DAY, 9), JIDOTEATE)
    session.commit()
    mailer.send(DAY, department="kodomo-katei")
    (received,) = smtp.received
    assert all(b < 0x80 for b in received.data), "the message must be 7-bit clean"
    raw_headers = received.data.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: =?utf-8?" in raw_headers  # RFC 2047 encoded words
    msg = received.parsed()
    assert str(msg["Subject"]) == "【電子申請 日次件数】2026年11月24日（火） 1件 子ども家庭支援部 子ども家庭課"
    assert str(msg["From"]) == "申請管理システム <shinsei-intake@ward.example.lg.jp>"
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert {p.get_content_charset() for p in parts} == {"utf-8"}
    assert {p["Content-Transfer-Encoding"] for p in parts} == {"base64"}
    assert "再申請 1" in plain(msg)
    assert "<h1" in html(msg)
    assert "電子申請 日次件数 2026年11月24日（火）" in html(msg)
    assert msg["Date"].datetime == datetime(2026, 11, 25, 12, 0, tzinfo=JST)  # the pinned clock
    assert msg["Auto-Submitted"] == "auto-generated"


def test_message_id_is_stable_and_a_sent_mail_is_not_sent_again(
    session: Session, mailer: DailyMailer, smtp: SmtpSink, clock: Clock
) -> None:
    add_application_event(session, "新規申請", at(DAY, 9), JIDOTEATE)
    session.commit()
    first = mailer.send(DAY, department="kodomo-katei", dry_run=True)
    clock.now += timedelta(minutes=5)
    second = mailer.send(DAY, department="kodomo-katei", dry_run=True)
    assert first.outcomes[0].message_id == second.outcomes[0].message_id == mid(DAY, "kodomo-katei")
    assert smtp.received == []
    assert sent_log(session) == []

    mailer.send(DAY, department="kodomo-katei")
    assert smtp.message_ids() == [mid(DAY, "kodomo-katei")]
    add_application_event(session, "新規申請", at(DAY, 10), JIDOTEATE)  # late data changes nothing sent
    session.commit()
    again = mailer.send(DAY, department="kodomo-katei")
    assert [o.result for o in again.outcomes] == ["already_sent"]
    assert len(smtp.received) == 1
    preview = mailer.send(DAY, department="kodomo-katei", dry_run=True).outcomes[0]
    assert preview.result == "already_sent"
    assert preview.preview == smtp.received[0].data  # what was sent, byte for byte


def test_lost_reply_resends_the_identical_mail(
    session: Session, mailer: DailyMailer, smtp: SmtpSink, sleeps: list[float]
) -> None:
    """The server stores the message and the connection dies before its 250: the client retries;
    the duplicate carries the same Message-ID and the same bytes."""
    add_application_event(session, "新規申請", at(DAY, 9), JIDOTEATE)
    session.commit()
    smtp.faults = ["accept-then-drop"]
    run = mailer.send(DAY, department="kodomo-katei")
    assert [(o.result, o.attempts) for o in run.outcomes] == [("sent", 2)]
    assert smtp.message_ids() == [mid(DAY, "kodomo-katei")] * 2
    assert smtp.received[0].data == smtp.received[1].data
    assert sleeps == [1.0]
    assert sent_log(session) == [(DAY, "kodomo-katei", MailState.SENT, 2)]


def test_temporary_refusals_are_retried_with_backoff(
    session: Session, mailer: DailyMailer, smtp: SmtpSink, sleeps: list[float]
) -> None:
    smtp.faults = ["451", "451"]
    run = mailer.send(DAY, department="hoiku")
    assert [(o.result, o.attempts) for o in run.outcomes] == [("sent", 3)]
    assert sleeps == [1.0, 2.0]  # base 1 s, doubling (cap 4 s)
    assert smtp.data_commands == 3
    assert smtp.message_ids() == [mid(DAY, "hoiku")]
    failed = session.scalars(select(Event).where(Event.kind == "mail.attempt_failed").order_by(Event.id)).all()
    assert [e.detail["code"] for e in failed] == ["SMTP_451", "SMTP_451"]


def test_server_down_stops_the_pass_and_the_next_pass_sends(
    session: Session, mailer: DailyMailer, smtp: SmtpSink, sleeps: list[float]
) -> None:
    add_application_event(session, "新規申請", at(DAY, 9), JIDOTEATE)
    session.commit()
    smtp.faults = ["451"] * 4  # retry_attempts defaults to 4
    first = mailer.run_due()
    assert [(o.department, o.result) for o in first.outcomes] == [
        ("kodomo-katei", "failed"), ("hoiku", "deferred"), ("kuminka", "deferred")]
    assert first.outcomes[0].transient
    assert first.outcomes[0].error == "SMTP_451: the server answered 451 during send"
    assert sleeps == [1.0, 2.0, 4.0]
    assert not first.ok
    assert smtp.received == []
    row = session.scalar(select(MailSentLog))
    assert row is not None
    assert (row.state, row.attempts, row.last_error) == (MailState.CLAIMED, 4, first.outcomes[0].error)

    second = mailer.run_due()
    assert [(o.department, o.result) for o in second.outcomes] == [(d, "sent") for d in DEPARTMENTS]
    assert smtp.message_ids() == [mid(DAY, d) for d in DEPARTMENTS]
    assert "計 1" in plain(smtp.messages()[0])
    assert mailer.run_due().outcomes == ()


def test_a_permanent_refusal_does_not_block_the_others(
    session: Session, mailer: DailyMailer, smtp: SmtpSink, sleeps: list[float]
) -> None:
    smtp.faults = ["550"]
    run = mailer.run_due()
    assert [(o.department, o.result, o.attempts) for o in run.outcomes] == [
        ("kodomo-katei", "failed", 1), ("hoiku", "sent", 1), ("kuminka", "sent", 1)]
    assert run.outcomes[0].error is not None
    assert run.outcomes[0].error.startswith("SMTP_550")
    assert sleeps == []  # a refusal is not retried in the call …
    assert [o.result for o in mailer.run_due().outcomes] == ["sent"]  # … but by the next pass
    assert smtp.message_ids() == [mid(DAY, "hoiku"), mid(DAY, "kuminka"), mid(DAY, "kodomo-katei")]


def test_a_zero_day_still_gets_a_mail(session: Session, mailer: DailyMailer, smtp: SmtpSink) -> None:
    add_application_event(session, "新規申請", at(DAY - timedelta(days=1), 15), JIDOTEATE, n=2)  # the day before
    session.commit()
    run = mailer.run_due()
    assert [o.result for o in run.outcomes] == ["sent"] * 3
    kodomo = by_department(smtp)["kodomo-katei"]
    assert str(kodomo["Subject"]) == "【電子申請 日次件数】2026年11月24日（火） 0件 子ども家庭支援部 子ども家庭課"
    text = plain(kodomo)
    assert "★ 2026年11月24日（火）の電子申請はありませんでした（0件）。" in text
    assert "直近7日間（11月18日（水）〜11月24日（火）） 2" in text
    assert "ありませんでした" in html(kodomo)


def test_open_work_links_into_the_staff_ui(
    session: Session, mailer: DailyMailer, smtp: SmtpSink, tmp_path: Path
) -> None:
    from intake.models import Application

    session.add(Application(first_receipt_number="r-1", procedure_id=JIDOTEATE, procedure_name="児童手当 認定請求",
                            created_at=at(DAY, 9), updated_at=at(DAY, 9)))  # unreviewed, unlinked
    session.commit()
    mailer.send(DAY, department="kodomo-katei")
    msg = by_department(smtp)["kodomo-katei"]
    text, page = plain(msg), html(msg)
    assert "・未審査: 1件  " + UI + "/applications?queue=1" in text
    assert f"児童手当 認定請求: 1件  {UI}/applications?procedure={JIDOTEATE}&linkage=unresolved" in text
    assert f'<a href="{UI}/applications?linkage=unresolved"><strong>1件</strong></a>' in page
    assert "・署名検証エラー: 0件\n" in text
    assert "（2026年11月25日（水） 12:00 現在）" in text


def test_only_days_that_have_ended(mailer: DailyMailer, smtp: SmtpSink) -> None:
    with pytest.raises(InvalidMailDay) as info:
        mailer.send(date(2026, 11, 25))
    assert (info.value.day, info.value.today) == (date(2026, 11, 25), date(2026, 11, 25))
    with pytest.raises(InvalidMailDay):
        mailer.send(date(2026, 11, 26), dry_run=True)
    assert [o.result for o in mailer.send(date(2026, 11, 25), dry_run=True).outcomes] == ["dry_run"] * 3
    with pytest.raises(UnknownDepartment):
        mailer.send(DAY, department="nope")
    assert smtp.received == []


def test_first_run_starts_with_the_latest_due_day(mailer: DailyMailer, smtp: SmtpSink, clock: Clock) -> None:
    """No mail of the week before the installation; the 24th is due at 08:30 on the 25th."""
    clock.now = at(date(2026, 11, 25), 8, 29, 59)
    assert [o.day for o in mailer.run_due().outcomes] == [date(2026, 11, 23)] * 3
    assert mailer.run_due().outcomes == ()
    clock.now = at(date(2026, 11, 25), 8, 30)
    assert [o.day for o in mailer.run_due().outcomes] == [DAY] * 3
    assert smtp.message_ids() == [mid(d, dept) for d in (date(2026, 11, 23), DAY) for dept in DEPARTMENTS]


def test_start_date_and_horizon_bound_the_catch_up(
    engine: Engine, tmp_path: Path, smtp: SmtpSink, clock: Clock, sleeps: list[float]
) -> None:
    settings = mail_settings(None, tmp_path, smtp, start_date=date(2026, 11, 10), catch_up_days=3)
    mailer = mailer_for(engine, settings, clock, sleeps)
    mailer.run_due(department="hoiku")
    # today is the 25th: 3 days back is the 22nd; the start date (10th) is older
    assert smtp.message_ids() == [mid(date(2026, 11, d), "hoiku") for d in (22, 23, 24)]


def test_downtime_over_two_days_is_caught_up_in_order(
    engine: Engine, session: Session, mail_env: IntakeSettings, smtp: SmtpSink, clock: Clock, sleeps: list[float]
) -> None:
    add_application_event(session, "新規申請", at(date(2026, 11, 22), 10), JIDOTEATE)
    add_application_event(session, "新規申請", at(date(2026, 11, 23), 10), JIDOTEATE, n=2)
    add_application_event(session, "新規申請", at(DAY, 10), JIDOTEATE, n=3)
    session.commit()
    clock.now = at(date(2026, 11, 23), 8, 30)
    mailer_for(engine, mail_env, clock, sleeps).run_due()
    assert smtp.message_ids() == [mid(date(2026, 11, 22), d) for d in DEPARTMENTS]
    # the intake is down on the 24th and the 25th at 08:30; it comes back on the 25th at noon
    clock.now = at(date(2026, 11, 25), 12, 0)
    fresh = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        run = mailer_for(fresh, mail_env, clock, sleeps, instance="test:2").run_due()
    finally:
        fresh.dispose()
    assert [(o.day, o.department, o.result) for o in run.outcomes] == [
        (d, dept, "sent") for d in (date(2026, 11, 23), DAY) for dept in DEPARTMENTS]
    assert smtp.message_ids()[3:] == [mid(d, dept) for d in (date(2026, 11, 23), DAY) for dept in DEPARTMENTS]
    counts = [plain(m).split("の受付: ")[1].split("件")[0] for m in smtp.messages()
              if str(m["X-Shinsei-Mail"]).endswith("kodomo-katei")]
    assert counts == ["1", "2", "3"]


def test_two_instances_send_one_mail_per_department(
    engine: Engine, session: Session, mail_env: IntakeSettings, smtp: SmtpSink, clock: Clock
) -> None:
    """Two intakes (own engines, own threads) run the same pass at the same moment, for three days."""
    add_application_event(session, "新規申請", at(DAY, 10), JIDOTEATE)
    session.commit()
    url = engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url), make_engine(url)]
    instances = [mailer_for(e, mail_env, clock, [], instance=f"instance-{i}") for i, e in enumerate(engines)]
    try:
        for day in (date(2026, 11, 22), date(2026, 11, 23), DAY):
            barrier = threading.Barrier(2)
            runs: list[MailRun] = []
            errors: list[BaseException] = []

            def go(m: DailyMailer, day: date = day, barrier: threading.Barrier = barrier, runs: list[MailRun] = runs,
                   errors: list[BaseException] = errors) -> None:
                try:
                    barrier.wait(10)
                    runs.append(m.send(day))
                except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                    errors.append(exc)

            threads = [threading.Thread(target=go, args=(m,)) for m in instances]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert errors == []
            results = sorted(o.result for r in runs for o in r.outcomes)
            assert results.count("sent") == 3
            assert set(results) <= {"sent", "already_sent", "busy"}
        ids = smtp.message_ids()
        assert sorted(ids) == sorted(mid(d, dept) for d in (date(2026, 11, 22), date(2026, 11, 23), DAY)
                                     for dept in DEPARTMENTS)
        assert {r[2] for r in sent_log(session)} == {MailState.SENT}
    finally:
        for e in engines:
            e.dispose()


class _Gate:
    """A transport that holds the first send until released (an attempt in progress), then sends."""

    name = "gate"

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def send(self, *, data: bytes, sender: str, recipients: list[str] | tuple[str, ...],
             message_id: str) -> SendResult:
        self.entered.set()
        assert self.release.wait(30)
        return self.inner.send(data=data, sender=sender, recipients=recipients, message_id=message_id)


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    eng = make_engine(postgres_url)
    Base.metadata.drop_all(eng)
    Base.metadata.create_all(eng)
    yield eng
    Base.metadata.drop_all(eng)
    eng.dispose()


def test_an_attempt_in_progress_is_skipped_by_the_other_instance(
    pg_engine: Engine, mail_env: IntakeSettings, smtp: SmtpSink, clock: Clock
) -> None:
    """PostgreSQL: while instance A is inside the SMTP conversation (row locked), instance B passes
    the mail by (SKIP LOCKED) instead of sending it a second time. (SQLite serialises the writers
    instead: B waits and then finds the mail sent — the race test above covers both.)"""
    engine = pg_engine
    gate = _Gate(make_transport(mail_env))
    a = mailer_for(engine, mail_env, clock, [], instance="a", transport=gate)
    b_engine = make_engine(engine.url.render_as_string(hide_password=False))
    b = mailer_for(b_engine, mail_env, clock, [], instance="b")
    result: list[MailRun] = []
    thread = threading.Thread(target=lambda: result.append(a.send(DAY, department="hoiku")))
    thread.start()
    try:
        assert gate.entered.wait(30)
        assert [o.result for o in b.send(DAY, department="hoiku").outcomes] == ["busy"]
        gate.release.set()
        thread.join(30)
        assert [o.result for o in result[0].outcomes] == ["sent"]
        assert [o.result for o in b.send(DAY, department="hoiku").outcomes] == ["already_sent"]
    finally:
        gate.release.set()
        thread.join(30)
        b_engine.dispose()
    assert smtp.message_ids() == [mid(DAY, "hoiku")]
