"""The dashboard: counts only (no personal data) for the principal's departments — today's arrivals,
my cases, and the open work of :mod:`intake.applications.openwork` (the review queue, unlinked
chains, signature errors, failed forwards, overdue cases: the daily mail's definitions and numbers)
— and a 14-day chart of arrivals per procedure. Services never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from intake.applications.openwork import OpenWork, open_work
from intake.authz import Principal
from intake.jst import JST, day_start, jst_day
from intake.models import Application, ApplicationVersion
from status import FINAL_STATUSES

__all__ = ["CHART_DAYS", "Dashboard", "ProcedureTrend", "dashboard"]

_FINAL = [s.value for s in FINAL_STATUSES]


CHART_DAYS = 14


@dataclass(frozen=True)
class ProcedureTrend:
    """Arrivals (versions) of one procedure per JST day, oldest day first."""

    procedure_id: str
    procedure_name: str
    counts: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Dashboard:
    today_arrivals: int
    my_queue: int
    assigned_to_me: int
    unlinked: int
    signature_errors: int
    failed_forwards: int
    #: versions held for staff (「本人確認要」): they change nothing until accepted
    held: int
    days: list[date]
    trends: list[ProcedureTrend]
    overdue: int = 0

    @property
    def peak(self) -> int:
        return max((c for t in self.trends for c in t.counts), default=0)


def dashboard(session: Session, principal: Principal, *, at: datetime) -> Dashboard | None:
    """Counts only (no personal data); ``None`` for roles that read no applications."""
    if not principal.reads_applications:
        return None
    scope = principal.procedure_clause()
    today = day_start(at.astimezone(JST).date())
    open_ = Application.status.not_in(_FINAL)

    def count(stmt: ColumnElement[bool], *, versions: bool = False) -> int:
        if versions:
            q = select(func.count()).select_from(ApplicationVersion).join(Application).where(scope, stmt)
        else:
            q = select(func.count()).select_from(Application).where(scope, stmt)
        return session.scalar(q) or 0

    days, trends = _trends(session, scope, at=at)
    work = sum(open_work(session, today=jst_day(at), scope=scope).values(), OpenWork())
    return Dashboard(
        today_arrivals=count(ApplicationVersion.arrived_at >= today, versions=True),
        my_queue=work.unreviewed,
        assigned_to_me=count(and_(Application.assigned_to == principal.login, open_)),
        unlinked=work.unlinked,
        signature_errors=work.signature_errors,
        failed_forwards=work.failed_forwards,
        held=work.held,
        days=days,
        trends=trends,
        overdue=work.overdue,
    )


def _trends(session: Session, scope: ColumnElement[bool], *, at: datetime) -> tuple[list[date], list[ProcedureTrend]]:
    """Arrivals per procedure and JST day over the last :data:`CHART_DAYS` days, today included.
    Bucketed here rather than in SQL: the day boundary is Asia/Tokyo on SQLite and PostgreSQL alike,
    and the rows are two narrow columns of two weeks."""
    today = at.astimezone(JST).date()
    days = [today - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    index = {d: i for i, d in enumerate(days)}
    counts: dict[str, list[int]] = {}
    names: dict[str, str] = {}
    rows = session.execute(
        select(Application.procedure_id, Application.procedure_name, ApplicationVersion.arrived_at)
        .join(Application, ApplicationVersion.application_id == Application.id)
        .where(scope, ApplicationVersion.arrived_at >= day_start(days[0]),
               ApplicationVersion.arrived_at < day_start(today + timedelta(days=1))))
    for procedure_id, name, arrived in rows:
        slot = index.get(arrived.astimezone(JST).date())
        if slot is None:  # pragma: no cover - the query bounds the days
            continue
        counts.setdefault(procedure_id, [0] * CHART_DAYS)[slot] += 1
        names.setdefault(procedure_id, name)
    trends = [ProcedureTrend(p, names[p], c) for p, c in counts.items()]
    trends.sort(key=lambda t: (-t.total, t.procedure_id))
    return days, trends
