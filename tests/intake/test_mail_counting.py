"""Counting for the daily mail, on SQLite and PostgreSQL: Asia/Tokyo days of the portal's signed
到達日時, late arrivals, processed counts, 7-day and month-to-date totals, departments, open work."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from intake.jst import JST, day_bounds, jst_day
from intake.mail.config import MailConfig, load_mail_config
from intake.mail.counting import (
    KindCounts,
    OpenWork,
    Processed,
    build_report,
    count_arrivals,
    count_events,
    count_processed,
)
from intake.models import (
    Application,
    ApplicationVersion,
    Delivery,
    Event,
    ForwardItem,
    ForwardState,
    LinkageState,
    MailSentLog,
    VerificationRecord,
    VersionState,
)
from intake.procedures import load_procedures
from tests.support.dailymail import HOIKU, JIDOTEATE, TENSHUTSU, add_application_event, mail_settings

DAY = date(2026, 11, 24)  # a Tuesday
AS_OF = datetime(2026, 11, 25, 8, 30, tzinfo=JST)


@pytest.fixture
def config(tmp_path: Path) -> MailConfig:
    settings = mail_settings(None, tmp_path)
    return load_mail_config(settings, load_procedures(settings.procedures_file))


def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=JST)


def test_day_bounds_are_tokyo_midnights() -> None:
    start, end = day_bounds(DAY)
    assert start == datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    assert end == datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    assert jst_day(datetime(2026, 11, 24, 14, 59, 59, tzinfo=UTC)) == DAY
    assert jst_day(datetime(2026, 11, 24, 15, 0, 0, tzinfo=UTC)) == DAY + timedelta(days=1)
    with pytest.raises(ValueError, match="naive"):
        jst_day(datetime(2026, 11, 24, 12, 0))  # noqa: DTZ001 - the refusal is the point


def test_235959_and_000000_land_on_different_days(session: Session) -> None:
    add_application_event(session, "新規申請", at(DAY, 23, 59, 59), JIDOTEATE)
    add_application_event(session, "補正", at(DAY + timedelta(days=1), 0, 0, 0), JIDOTEATE)
    session.commit()
    assert count_events(session, DAY) == {JIDOTEATE: KindCounts(new=1)}
    assert count_events(session, DAY + timedelta(days=1)) == {JIDOTEATE: KindCounts(correction=1)}
    assert count_events(session, DAY, DAY + timedelta(days=1)) == {JIDOTEATE: KindCounts(new=1, correction=1)}


def test_only_application_events_count(session: Session) -> None:
    add_application_event(session, "新規申請", at(DAY, 10), JIDOTEATE)
    session.add(Event(at=at(DAY, 10), kind="delivery.stored", receipt_number="x", detail={}))
    session.add(Event(at=at(DAY, 10), kind="version.superseded", procedure_id=JIDOTEATE, detail={}))
    session.add(Event(at=at(DAY, 10), kind="forwarding.failed", procedure_id=JIDOTEATE, detail={}))
    session.commit()
    assert count_events(session, DAY) == {JIDOTEATE: KindCounts(new=1)}


def test_report_counts_per_department_week_and_month(session: Session, config: MailConfig) -> None:
    add_application_event(session, "新規申請", at(DAY, 9), JIDOTEATE, n=3)
    add_application_event(session, "再申請", at(DAY, 10), JIDOTEATE)
    add_application_event(session, "補正", at(DAY, 11), JIDOTEATE, n=2)
    add_application_event(session, "取下げ", at(DAY, 12), JIDOTEATE)
    add_application_event(session, "新規申請", at(DAY, 13), HOIKU, n=5)  # another department
    add_application_event(session, "新規申請", at(DAY - timedelta(days=6), 9), JIDOTEATE, n=2)  # in the week
    add_application_event(session, "新規申請", at(DAY - timedelta(days=7), 9), JIDOTEATE, n=4)  # not in the week
    add_application_event(session, "新規申請", at(date(2026, 11, 1), 0, 0, 0), JIDOTEATE)  # month's first second
    add_application_event(session, "新規申請", at(date(2026, 10, 31), 23, 59, 59), JIDOTEATE)  # last month
    add_application_event(session, "新規申請", at(DAY + timedelta(days=1), 0, 0, 1), JIDOTEATE)  # the next day
    session.commit()
    report = build_report(session, config, config.department("kodomo-katei"), DAY, as_of=AS_OF)
    assert [line.procedure_id for line in report.lines] == [JIDOTEATE]
    line = report.lines[0]
    assert line.name == "児童手当 認定請求"
    assert line.day == KindCounts(new=3, reapplication=1, correction=2, withdrawal=1)
    assert line.day.total == 7
    assert line.week == 7 + 2
    assert line.month == 7 + 2 + 4 + 1
    assert report.week_total == 9
    assert report.month_total == 14
    assert report.series == tuple((DAY - timedelta(days=6 - i), n) for i, n in enumerate([2, 0, 0, 0, 0, 0, 7]))

    hoiku = build_report(session, config, config.department("hoiku"), DAY, as_of=AS_OF)
    assert [(line.procedure_id, line.day.total) for line in hoiku.lines] == [(HOIKU, 5), ("KOSODATE-HOIKU-HENKO", 0)]
    assert hoiku.day_total == KindCounts(new=5)


def test_unknown_procedures_go_to_the_unassigned_department(session: Session, config: MailConfig) -> None:
    add_application_event(session, "新規申請", at(DAY, 9), "SOMETHING-NEW", n=2)
    session.add(Application(first_receipt_number="r-1", procedure_id="SOMETHING-NEW", procedure_name="新しい手続",
                            created_at=at(DAY, 9), updated_at=at(DAY, 9)))
    session.commit()
    kuminka = build_report(session, config, config.department("kuminka"), DAY, as_of=AS_OF)
    assert [(line.procedure_id, line.name, line.day.total) for line in kuminka.lines] == [
        (TENSHUTSU, "転出届", 0), ("SOMETHING-NEW", "新しい手続", 2)]
    kodomo = build_report(session, config, config.department("kodomo-katei"), DAY, as_of=AS_OF)
    assert kodomo.day_total.total == 0


def _chain(session: Session, n: int, procedure_id: str, *, needs_review: bool, linkage: LinkageState,
           indication: str = "PASSED", forward: ForwardState | None = None) -> None:
    moment = at(DAY - timedelta(days=40), 10)  # old chains: open work, not arrivals of the day
    delivery = Delivery(idempotency_key=f"k{n}", sha256="0" * 64, size=1, package=b"", received_at=moment,
                        client_id="relay")
    app = Application(first_receipt_number=f"r{n}", procedure_id=procedure_id, procedure_name="x",
                      created_at=moment, updated_at=moment, needs_review=needs_review, linkage_state=linkage)
    session.add_all([delivery, app])
    session.flush()
    session.add(VerificationRecord(delivery_id=delivery.id, indication=indication, reason_en="", reason_ja="",
                                   checks=[], readable=True, revocation_checked=True, validation_time=moment))
    version = ApplicationVersion(application_id=app.id, delivery_id=delivery.id, receipt_number=f"r{n}",
                                 kind="新規申請", arrived_at=moment, stored_at=moment, state=VersionState.CURRENT,
                                 indication=indication, form_xml="", form_file="f.xml", applicant=[])
    session.add(version)
    session.flush()
    if forward is not None:
        session.add(ForwardItem(version_id=version.id, route="r", idempotency_key=f"r{n}:r", state=forward,
                                next_attempt_at=moment))


def test_open_work(session: Session, config: MailConfig) -> None:
    _chain(session, 1, JIDOTEATE, needs_review=True, linkage=LinkageState.UNRESOLVED)
    _chain(session, 2, JIDOTEATE, needs_review=True, linkage=LinkageState.CONFLICT, indication="FAILED")
    _chain(session, 3, JIDOTEATE, needs_review=False, linkage=LinkageState.AUTO, indication="INDETERMINATE",
           forward=ForwardState.FAILED)  # reviewed, still not final: its signature error is still open work
    _chain(session, 4, JIDOTEATE, needs_review=False, linkage=LinkageState.MANUAL, forward=ForwardState.DELIVERED)
    _chain(session, 5, HOIKU, needs_review=True, linkage=LinkageState.AUTO, forward=ForwardState.FAILED)
    session.commit()
    report = build_report(session, config, config.department("kodomo-katei"), DAY, as_of=AS_OF)
    assert report.open_total == OpenWork(unreviewed=2, unlinked=2, signature_errors=2, failed_forwards=1)
    hoiku = build_report(session, config, config.department("hoiku"), DAY, as_of=AS_OF)
    assert hoiku.open_total == OpenWork(unreviewed=1, failed_forwards=1)
    assert report.day_total.total == 0  # open work is not a count of the day


def test_arrivals_count_by_the_portals_arrival_day_not_the_storing_day(session: Session, config: MailConfig) -> None:
    """A night's relay outage: Monday 23:50's application stored on Tuesday 06:00 is Monday's."""
    add_application_event(session, "新規申請", at(DAY, 23, 50), JIDOTEATE, stored_at=at(DAY + timedelta(days=1), 6))
    add_application_event(session, "補正", at(DAY + timedelta(days=1), 0, 0, 5), JIDOTEATE)
    session.commit()
    report = build_report(session, config, config.department("kodomo-katei"), DAY, as_of=AS_OF)
    assert report.day_total == KindCounts(new=1)
    assert count_arrivals(session, DAY + timedelta(days=1), stored_by=AS_OF) == {JIDOTEATE: KindCounts(correction=1)}
    # what was stored after the mail was composed is not in it (it goes to the next mail as late)
    early = build_report(session, config, config.department("kodomo-katei"), DAY, as_of=at(DAY + timedelta(days=1), 5))
    assert early.day_total == KindCounts()


def test_a_late_arrival_is_reported_in_the_next_mail_under_its_own_day(session: Session, config: MailConfig) -> None:
    kodomo = config.department("kodomo-katei")
    monday, tuesday = DAY - timedelta(days=1), DAY
    # Monday's mail was composed on Tuesday 08:30; an application of Monday 22:00 reached the intake only at 09:00.
    session.add(MailSentLog(day=monday, department=kodomo.id, message_id="<m>", recipients=["x@y"], message=b"",
                            total=0, claimed_at=at(tuesday, 8, 30), claimed_by="t"))
    add_application_event(session, "新規申請", at(monday, 22), JIDOTEATE, stored_at=at(tuesday, 9))
    add_application_event(session, "新規申請", at(monday, 21), JIDOTEATE, stored_at=at(monday, 21))  # in Monday's mail
    add_application_event(session, "再申請", at(tuesday, 10), JIDOTEATE)
    session.commit()
    report = build_report(session, config, kodomo, tuesday, as_of=AS_OF)
    assert report.day_total == KindCounts(reapplication=1)
    assert [(a.day, a.procedure_id, a.counts) for a in report.late] == [(monday, JIDOTEATE, KindCounts(new=1))]
    assert report.late_total == 1
    assert build_report(session, config, config.department("hoiku"), tuesday, as_of=AS_OF).late == ()


def test_processed_counts_come_from_status_changes(session: Session, config: MailConfig) -> None:
    for target, n in (("完了", 3), ("却下", 1), ("補正依頼", 2), ("受付", 5)):
        for _ in range(n):
            session.add(Event(at=at(DAY, 15), kind="status.changed", procedure_id=JIDOTEATE,
                              detail={"action": "x", "source": "審査中", "target": target, "by": "staff"}))
    session.add(Event(at=at(DAY + timedelta(days=1), 0, 0, 1), kind="status.changed", procedure_id=JIDOTEATE,
                      detail={"target": "完了"}))  # the next day
    session.commit()
    assert count_processed(session, DAY) == {JIDOTEATE: Processed(completed=3, rejected=1, correction_requested=2)}
    report = build_report(session, config, config.department("kodomo-katei"), DAY, as_of=AS_OF)
    assert report.processed_total == Processed(3, 1, 2)
    assert report.day_total.total == 0


def test_a_multi_day_mail_counts_every_day_it_covers(session: Session, config: MailConfig) -> None:
    friday, sunday = date(2026, 11, 20), date(2026, 11, 22)
    for d in (friday, date(2026, 11, 21), sunday, date(2026, 11, 23)):
        add_application_event(session, "新規申請", at(d, 12), JIDOTEATE)
    session.commit()
    report = build_report(session, config, config.department("kodomo-katei"), sunday,
                          as_of=datetime(2026, 11, 24, 8, 30, tzinfo=JST), first_day=friday)
    assert report.day_total == KindCounts(new=3)
    assert (report.period_start, report.day, report.first_day) == (friday, sunday, friday)
