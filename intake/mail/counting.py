"""What the daily mail says, in numbers: arrivals by the day the resident applied, late arrivals,
what staff processed, and a snapshot of open work.

* **Arrivals** count by the portal's signed 到達日時 (``application_versions.arrived_at``, a JST
  calendar day, no DST), not by when the relay happened to pull: a night's outage does not move
  Monday's applications into Tuesday's numbers. A mail counts the versions *stored* by the moment
  it is composed (its ``as_of``, frozen in the sent-log).
* **Late arrivals**: an application of an earlier day that was stored after that day's mail was
  composed is reported in the next mail, under its own day (遅れて届いた申請).
* **Processed**: 完了・却下・補正依頼 made in the covered days (the append-only ``status.changed``
  events, so later changes never rewrite a past mail).
* **Open work** is :mod:`intake.applications.openwork` — the dashboard's definitions and numbers —
  including cases past their 標準処理期間.

A mail covers ``first_day``…``day``: one day, or every day since the previous business day's mail
(a Monday mail covers Friday to Sunday; after a 祝日, the 祝日 too).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.applications.openwork import OpenWork, open_work
from intake.events import KIND_BY_APPLICATION_KIND
from intake.jst import JST, day_bounds, jst_day, require_aware
from intake.mail.config import Department, MailConfig
from intake.models import Application, ApplicationVersion, Event, MailSentLog

__all__ = [
    "KindCounts",
    "LateArrival",
    "OpenWork",
    "ProcedureLine",
    "Processed",
    "Report",
    "build_report",
    "count_arrivals",
    "count_events",
    "count_processed",
]

_KIND_FIELD = {
    KIND_BY_APPLICATION_KIND["新規申請"]: "new",
    KIND_BY_APPLICATION_KIND["再申請"]: "reapplication",
    KIND_BY_APPLICATION_KIND["補正"]: "correction",
    KIND_BY_APPLICATION_KIND["取下げ"]: "withdrawal",
}
_VERSION_KIND_FIELD = {"新規申請": "new", "再申請": "reapplication", "補正": "correction", "取下げ": "withdrawal"}
_PROCESSED_FIELD = {"完了": "completed", "却下": "rejected", "補正依頼": "correction_requested"}


@dataclass(frozen=True)
class KindCounts:
    """新規申請, 再申請, 補正, 取下げ."""

    new: int = 0
    reapplication: int = 0
    correction: int = 0
    withdrawal: int = 0

    @property
    def total(self) -> int:
        return self.new + self.reapplication + self.correction + self.withdrawal

    def __add__(self, other: KindCounts) -> KindCounts:
        return KindCounts(self.new + other.new, self.reapplication + other.reapplication,
                          self.correction + other.correction, self.withdrawal + other.withdrawal)


@dataclass(frozen=True)
class Processed:
    """Status changes staff (or the system) made: 完了, 却下, 補正依頼."""

    completed: int = 0
    rejected: int = 0
    correction_requested: int = 0

    @property
    def total(self) -> int:
        return self.completed + self.rejected + self.correction_requested

    def __add__(self, other: Processed) -> Processed:
        return Processed(self.completed + other.completed, self.rejected + other.rejected,
                         self.correction_requested + other.correction_requested)


@dataclass(frozen=True)
class LateArrival:
    """Applications of an earlier ``day`` stored after that day's mail was composed."""

    day: date
    procedure_id: str
    name: str
    counts: KindCounts


def count_events(session: Session, first: date, last: date | None = None) -> dict[str, KindCounts]:
    """Application events per 手続ID on the days ``first``…``last`` (inclusive, JST)."""
    start, end = day_bounds(first, last)
    rows = session.execute(
        select(Event.procedure_id, Event.kind, func.count())
        .where(Event.kind.in_(list(_KIND_FIELD)), Event.at >= start, Event.at < end)
        .group_by(Event.procedure_id, Event.kind)
    ).all()
    acc: dict[str, dict[str, int]] = defaultdict(dict)
    for procedure_id, kind, n in rows:
        acc[procedure_id or ""][_KIND_FIELD[kind]] = int(n)
    return {p: KindCounts(**fields) for p, fields in acc.items()}


def count_arrivals(session: Session, first: date, last: date | None = None, *, stored_by: datetime,
                   stored_after: datetime | None = None) -> dict[str, KindCounts]:
    """Versions per 手続ID whose signed 到達日時 is on ``first``…``last`` (JST, inclusive) and that were
    stored by ``stored_by`` (and after ``stored_after``)."""
    start, end = day_bounds(first, last)
    query = (select(Application.procedure_id, ApplicationVersion.kind, func.count())
             .join(Application, Application.id == ApplicationVersion.application_id)
             .where(ApplicationVersion.arrived_at >= start, ApplicationVersion.arrived_at < end,
                    ApplicationVersion.stored_at <= stored_by))
    if stored_after is not None:
        query = query.where(ApplicationVersion.stored_at > stored_after)
    acc: dict[str, dict[str, int]] = defaultdict(dict)
    for procedure_id, kind, n in session.execute(query.group_by(Application.procedure_id, ApplicationVersion.kind)):
        name = _VERSION_KIND_FIELD.get(kind)
        if name is not None:
            acc[procedure_id or ""][name] = acc[procedure_id or ""].get(name, 0) + int(n)
    return {p: KindCounts(**fields) for p, fields in acc.items()}


def count_processed(session: Session, first: date, last: date | None = None) -> dict[str, Processed]:
    """完了・却下・補正依頼 per 手続ID on ``first``…``last`` (the ``status.changed`` events)."""
    start, end = day_bounds(first, last)
    acc: dict[str, dict[str, int]] = defaultdict(dict)
    for procedure_id, detail in session.execute(
            select(Event.procedure_id, Event.detail).where(Event.kind == "status.changed", Event.at >= start,
                                                           Event.at < end)):
        name = _PROCESSED_FIELD.get(str((detail or {}).get("target", "")))
        if name is not None:
            acc[procedure_id or ""][name] = acc[procedure_id or ""].get(name, 0) + 1
    return {p: Processed(**fields) for p, fields in acc.items()}


def _late(session: Session, before: date, *, stored_after: datetime, stored_by: datetime
          ) -> dict[tuple[date, str], KindCounts]:
    start, _ = day_bounds(before)
    acc: dict[tuple[date, str], dict[str, int]] = defaultdict(dict)
    for procedure_id, kind, arrived in session.execute(
            select(Application.procedure_id, ApplicationVersion.kind, ApplicationVersion.arrived_at)
            .join(Application, Application.id == ApplicationVersion.application_id)
            .where(ApplicationVersion.arrived_at < start, ApplicationVersion.stored_at > stored_after,
                   ApplicationVersion.stored_at <= stored_by)):
        name = _VERSION_KIND_FIELD.get(kind)
        if name is not None:
            key = (jst_day(arrived), procedure_id or "")
            acc[key][name] = acc[key].get(name, 0) + 1
    return {k: KindCounts(**v) for k, v in acc.items()}


def previous_mail_at(session: Session, department: Department, before: date) -> datetime | None:
    """When the department's latest mail for a day before ``before`` was composed (its claim)."""
    return session.scalar(select(func.max(MailSentLog.claimed_at)).where(
        MailSentLog.department == department.id, MailSentLog.day < before))


@dataclass(frozen=True)
class ProcedureLine:
    procedure_id: str
    name: str
    day: KindCounts
    week: int  # the 7 days ending with the report's day
    month: int  # the 1st of the month to the report's day
    open: OpenWork
    processed: Processed = field(default_factory=Processed)


@dataclass(frozen=True)
class Report:
    """One department's numbers for one day. Nothing in it is personal data."""

    day: date
    department: Department
    as_of: datetime  # when open work was counted (JST)
    lines: tuple[ProcedureLine, ...]
    #: (day, total) for the 7 days ending with ``day``, oldest first: the bar chart.
    series: tuple[tuple[date, int], ...]
    day_total: KindCounts = field(default_factory=KindCounts)
    open_total: OpenWork = field(default_factory=OpenWork)
    #: the first day the mail covers (``day`` for a one-day mail)
    first_day: date | None = None
    late: tuple[LateArrival, ...] = ()
    processed_total: Processed = field(default_factory=Processed)

    @property
    def period_start(self) -> date:
        return self.first_day or self.day

    @property
    def late_total(self) -> int:
        return sum(a.counts.total for a in self.late)

    @property
    def week_total(self) -> int:
        return sum(n for _, n in self.series)

    @property
    def month_total(self) -> int:
        return sum(line.month for line in self.lines)

    @property
    def week_start(self) -> date:
        return self.day - timedelta(days=6)

    @property
    def month_start(self) -> date:
        return self.day.replace(day=1)


def build_report(session: Session, config: MailConfig, department: Department, day: date, *,
                 as_of: datetime, first_day: date | None = None) -> Report:
    """Count ``first_day``…``day`` (and the 7 days and the month up to ``day``) for ``department`` as
    stored by ``as_of``; late arrivals since the department's previous mail; open work as of now."""
    require_aware(as_of)
    first = first_day or day

    def mine(counts: dict[str, KindCounts]) -> dict[str, KindCounts]:
        return {p: c for p, c in counts.items() if config.owner(p or None) == department}

    period = mine(count_arrivals(session, first, day, stored_by=as_of))
    days = [day - timedelta(days=i) for i in range(6, -1, -1)]
    per_day = [mine(count_arrivals(session, d, stored_by=as_of)) for d in days]
    week: dict[str, int] = defaultdict(int)
    for counts in per_day:
        for p, c in counts.items():
            week[p] += c.total
    month = mine(count_arrivals(session, day.replace(day=1), day, stored_by=as_of))
    processed = {p: c for p, c in count_processed(session, first, day).items()
                 if config.owner(p or None) == department}
    work = {p: w for p, w in open_work(session, today=jst_day(as_of)).items() if config.owner(p or None) == department}
    previous = previous_mail_at(session, department, first)
    late_raw = ({k: c for k, c in _late(session, first, stored_after=previous, stored_by=as_of).items()
                 if config.owner(k[1] or None) == department} if previous is not None else {})
    seen = set(period) | set(week) | set(month) | set(work) | set(processed) | {p for _, p in late_raw}
    ordered = [*department.procedures, *sorted(seen - set(department.procedures))]
    names = _names(session, config, [p for p in ordered if config.procedure(p) is None and p])

    def name_of(p: str) -> str:
        proc = config.procedure(p)
        return proc.name if proc else names.get(p, p or "（手続不明）")

    lines = tuple(
        ProcedureLine(
            procedure_id=p, name=name_of(p), day=period.get(p, KindCounts()), week=week.get(p, 0),
            month=month.get(p, KindCounts()).total, open=work.get(p, OpenWork()),
            processed=processed.get(p, Processed()),
        )
        for p in ordered
    )
    late = tuple(LateArrival(d, p, name_of(p), c) for (d, p), c in sorted(late_raw.items()))
    return Report(
        day=day, department=department, as_of=as_of.astimezone(JST), lines=lines,
        series=tuple((d, sum(c.total for c in counts.values())) for d, counts in zip(days, per_day, strict=True)),
        day_total=sum((line.day for line in lines), KindCounts()),
        open_total=sum((line.open for line in lines), OpenWork()),
        first_day=first if first != day else None, late=late,
        processed_total=sum((line.processed for line in lines), Processed()),
    )


def _names(session: Session, config: MailConfig, procedure_ids: list[str]) -> dict[str, str]:
    """Names of procedures outside the catalogue, as their manifests gave them (手続名称, not personal)."""
    if not procedure_ids:
        return {}
    rows = session.execute(
        select(Application.procedure_id, func.max(Application.procedure_name))
        .where(Application.procedure_id.in_(procedure_ids)).group_by(Application.procedure_id)
    ).all()
    return {p: n for p, n in rows}
