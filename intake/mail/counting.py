"""What the daily mail says, in numbers: counted from the append-only ``events`` table (history),
plus a snapshot of open work from the current rows.

A day is an Asia/Tokyo calendar day (no DST: a fixed +09:00). An application counts on the day its
event was written at the intake (``events.at``), not on the portal's 到達日時: a 補正 stored at
00:00:05 belongs to the new day, even if the resident sent it before midnight. Purges and later
corrections never change a past day, because events are never updated or deleted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.events import KIND_BY_APPLICATION_KIND
from intake.jst import JST, day_bounds, require_aware
from intake.mail.config import Department, MailConfig
from intake.models import (
    Application,
    ApplicationVersion,
    Event,
    ForwardItem,
    ForwardState,
    LinkageState,
    VerificationRecord,
)

__all__ = [
    "KindCounts",
    "OpenWork",
    "ProcedureLine",
    "Report",
    "build_report",
    "count_events",
    "open_work",
]

_KIND_FIELD = {
    KIND_BY_APPLICATION_KIND["新規申請"]: "new",
    KIND_BY_APPLICATION_KIND["再申請"]: "reapplication",
    KIND_BY_APPLICATION_KIND["補正"]: "correction",
    KIND_BY_APPLICATION_KIND["取下げ"]: "withdrawal",
}




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
class OpenWork:
    """Open work right now: chains not yet reviewed, chains waiting for a 宛名番号 (unresolved or
    conflict), versions with a signature that did not pass in chains not yet reviewed, failed forwards."""

    unreviewed: int = 0
    unlinked: int = 0
    signature_errors: int = 0
    failed_forwards: int = 0

    @property
    def total(self) -> int:
        return self.unreviewed + self.unlinked + self.signature_errors + self.failed_forwards

    def __add__(self, other: OpenWork) -> OpenWork:
        return OpenWork(self.unreviewed + other.unreviewed, self.unlinked + other.unlinked,
                        self.signature_errors + other.signature_errors, self.failed_forwards + other.failed_forwards)


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


def open_work(session: Session) -> dict[str, OpenWork]:
    """Open work per 手続ID, as the rows say now."""
    by_procedure = Application.procedure_id
    chain = Application.id == ApplicationVersion.application_id
    queries = {
        "unreviewed": select(by_procedure, func.count()).where(Application.needs_review.is_(True)),
        "unlinked": select(by_procedure, func.count())
        .where(Application.linkage_state.in_([LinkageState.UNRESOLVED, LinkageState.CONFLICT])),
        "signature_errors": select(by_procedure, func.count())
        .select_from(VerificationRecord)
        .join(ApplicationVersion, ApplicationVersion.delivery_id == VerificationRecord.delivery_id)
        .join(Application, chain)
        .where(VerificationRecord.indication != "PASSED", Application.needs_review.is_(True)),
        "failed_forwards": select(by_procedure, func.count())
        .select_from(ForwardItem)
        .join(ApplicationVersion, ApplicationVersion.id == ForwardItem.version_id)
        .join(Application, chain)
        .where(ForwardItem.state == ForwardState.FAILED),
    }
    acc: dict[str, dict[str, int]] = defaultdict(dict)
    for name, query in queries.items():
        for procedure_id, n in session.execute(query.group_by(by_procedure)):
            acc[procedure_id][name] = int(n)
    return {p: OpenWork(**fields) for p, fields in acc.items()}


@dataclass(frozen=True)
class ProcedureLine:
    procedure_id: str
    name: str
    day: KindCounts
    week: int  # the 7 days ending with the report's day
    month: int  # the 1st of the month to the report's day
    open: OpenWork


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
                 as_of: datetime) -> Report:
    """Count ``day`` (and the 7 days and the month up to it) for ``department``; open work as of now."""
    require_aware(as_of)

    def mine(counts: dict[str, KindCounts]) -> dict[str, KindCounts]:
        return {p: c for p, c in counts.items() if config.owner(p or None) == department}

    today = mine(count_events(session, day))
    days = [day - timedelta(days=i) for i in range(6, -1, -1)]
    per_day = [mine(count_events(session, d)) for d in days]
    week: dict[str, int] = defaultdict(int)
    for counts in per_day:
        for p, c in counts.items():
            week[p] += c.total
    month = mine(count_events(session, day.replace(day=1), day))
    work = {p: w for p, w in open_work(session).items() if config.owner(p or None) == department}
    seen = set(today) | set(week) | set(month) | set(work)
    ordered = [*department.procedures, *sorted(seen - set(department.procedures))]
    names = _names(session, config, [p for p in ordered if config.procedure(p) is None and p])
    lines = tuple(
        ProcedureLine(
            procedure_id=p, name=(proc.name if (proc := config.procedure(p)) else names.get(p, p or "（手続不明）")),
            day=today.get(p, KindCounts()), week=week.get(p, 0), month=month.get(p, KindCounts()).total,
            open=work.get(p, OpenWork()),
        )
        for p in ordered
    )
    return Report(
        day=day, department=department, as_of=as_of.astimezone(JST), lines=lines,
        series=tuple((d, sum(c.total for c in counts.values())) for d, counts in zip(days, per_day, strict=True)),
        day_total=sum((line.day for line in lines), KindCounts()),
        open_total=sum((line.open for line in lines), OpenWork()),
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
