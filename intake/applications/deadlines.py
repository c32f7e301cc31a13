"""標準処理期間: each case's due date, and what "overdue" means — one definition for the list, the
dashboard and the daily mail.

* **Due date.** A procedure with ``standard_days`` in the catalogue (:mod:`intake.procedures`) is
  due on the ``standard_days``-th business day (:class:`intake.workdays.WardCalendar`) after the JST
  day of the portal's signed 到達日時 of the chain's first version (初日不算入, 民法 第140条). It is
  set when the chain is stored (:func:`settle`), and kept when the catalogue changes later.
* **The clock stops during 補正依頼** (行政手続法: the time the applicant takes to correct is not part
  of the standard period): it stops when staff ask for a correction and, when the case leaves
  補正依頼 (the 補正 arrives, or staff move it on), the due date moves by the business days it stood.
* **Overdue** (:func:`overdue_clause`): a case not final (完了・却下・取下げ), not waiting for the
  resident (補正依頼), whose due date is before today (JST).

Services never commit.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from intake.jst import jst_day
from intake.models import Application, ApplicationVersion, VersionState
from intake.procedures import ProcedureCatalogue
from intake.workdays import WardCalendar
from status import FINAL_STATUSES, Status

__all__ = ["OPEN_STATUSES_SQL", "business_days_left", "due_date", "on_status_change", "overdue_clause", "settle"]

_FINAL = [s.value for s in FINAL_STATUSES]
#: statuses the clock runs in (for SQL): not final, not waiting for the resident
OPEN_STATUSES_SQL = [s.value for s in Status if s not in FINAL_STATUSES and s is not Status.CORRECTION_REQUESTED]


def due_date(arrived: datetime, standard_days: int, calendar: WardCalendar) -> date:
    """The due date of a case that arrived at ``arrived`` (aware) with ``standard_days``."""
    return calendar.add_business_days(jst_day(arrived), standard_days)


def settle(session: Session, app: Application, catalogue: ProcedureCatalogue, *, at: datetime) -> None:
    """After an arrival or an admission (:func:`intake.applications.admission.settle`): give a new
    chain its due date (from its first admitted or current version: never a held one), and restart a
    clock that a 補正 (or any move out of 補正依頼 by the system) has released."""
    procedure = catalogue.procedures.get(app.procedure_id)
    if app.due_on is None and procedure is not None and procedure.standard_days:
        first = session.scalar(select(func.min(ApplicationVersion.arrived_at)).where(  # never a held version's
            ApplicationVersion.application_id == app.id,
            ApplicationVersion.state.in_([VersionState.CURRENT, VersionState.SUPERSEDED])))
        if first is not None:
            app.due_on = due_date(first, procedure.standard_days, catalogue.calendar)
    if app.clock_stopped_at is not None and app.status != Status.CORRECTION_REQUESTED.value:
        _restart(app, catalogue.calendar, at=at)
    session.flush()


def on_status_change(session: Session, app: Application, *, source: Status, target: Status, at: datetime,
                     calendar: WardCalendar | None) -> None:
    """The workflow's part: 補正依頼 stops the clock; leaving it restarts the clock when the caller
    knows the ward's calendar (staff changes; an arrival's change is settled by :func:`settle`)."""
    del session  # the change is on ``app``; the caller's unit of work writes it
    if target is Status.CORRECTION_REQUESTED:
        if app.clock_stopped_at is None:
            app.clock_stopped_at = at
    elif source is Status.CORRECTION_REQUESTED and app.clock_stopped_at is not None and calendar is not None:
        _restart(app, calendar, at=at)


def _restart(app: Application, calendar: WardCalendar, *, at: datetime) -> None:
    stopped = app.clock_stopped_at
    if stopped is None:  # pragma: no cover - callers check
        return
    if app.due_on is not None:
        stood = calendar.business_days_between(jst_day(stopped), jst_day(at))
        app.due_on = calendar.add_business_days(app.due_on, stood)
    app.clock_stopped_at = None


def overdue_clause(today: date) -> ColumnElement[bool]:
    """Cases past their due date on ``today``: SQL on :class:`Application`."""
    return and_(Application.due_on.is_not(None), Application.due_on < today,
                Application.status.in_(OPEN_STATUSES_SQL))


def business_days_left(due: date | None, today: date, calendar: WardCalendar) -> int | None:
    """Business days from ``today`` to ``due`` (0 on the day; negative when overdue)."""
    if due is None:
        return None
    if due >= today:
        return calendar.business_days_between(today, due)
    return -calendar.business_days_between(due, today)
