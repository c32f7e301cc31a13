"""Is the daily mail going out? From the sent-log (shared by all instances), for the dashboard and
``/readyz``. Nothing here is personal data: days, department ids, counts, error codes.

States, worst first: ``failing`` (a due mail's last attempt failed), ``overdue`` (a due mail is not
sent ``overdue_after_minutes`` after its send time), ``pending`` (due, not sent yet, within that
grace), ``ok``; ``disabled`` when the mail is switched off, ``unknown`` when the status itself could
not be read (database down, configuration broken). The mail never makes the intake "not ready": the
HTTP status of ``/readyz`` stays as the database decides; the mail's state is in the body.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from intake.errors import IntakeError
from intake.jst import jst_day
from intake.mail.config import MailConfig, load_mail_config
from intake.mail.service import due_at, due_mails
from intake.models import MailSentLog, MailState
from intake.runtime import Runtime

__all__ = ["FailingMail", "MailStatus", "mail_health", "mail_status"]

_log = logging.getLogger(__name__)

State = Literal["ok", "pending", "overdue", "failing", "disabled", "unknown"]


@dataclass(frozen=True)
class FailingMail:
    day: date
    department: str
    attempts: int
    last_error: str
    last_attempt_at: datetime | None


@dataclass(frozen=True)
class MailStatus:
    state: State
    checked_at: datetime
    last_sent_at: datetime | None = None
    pending: tuple[tuple[date, str], ...] = ()
    overdue: tuple[tuple[date, str], ...] = ()
    failing: tuple[FailingMail, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "checked_at": self.checked_at.isoformat(),
            "last_sent_at": self.last_sent_at.isoformat() if self.last_sent_at else None,
            "pending": [{"day": d.isoformat(), "department": dept} for d, dept in self.pending],
            "overdue": [{"day": d.isoformat(), "department": dept} for d, dept in self.overdue],
            "failing": [{"day": f.day.isoformat(), "department": f.department, "attempts": f.attempts,
                         "last_error": f.last_error,
                         "last_attempt_at": f.last_attempt_at.isoformat() if f.last_attempt_at else None}
                        for f in self.failing],
        }


def mail_status(session: Session, config: MailConfig, *, at: datetime) -> MailStatus:
    """The daily mail's state at ``at``."""
    grace = timedelta(minutes=config.overdue_after_minutes)
    pending: list[tuple[date, str]] = []
    overdue: list[tuple[date, str]] = []
    for day, dept in due_mails(session, config, at=at):
        (overdue if at >= due_at(day, config) + grace else pending).append((day, dept.id))
    horizon = jst_day(at) - timedelta(days=config.catch_up_days)
    failing = tuple(
        FailingMail(r.day, r.department, r.attempts, r.last_error or "", r.last_attempt_at)
        for r in session.scalars(
            select(MailSentLog)
            .where(MailSentLog.state == MailState.CLAIMED, MailSentLog.last_error.is_not(None),
                   MailSentLog.day >= horizon)
            .order_by(MailSentLog.day, MailSentLog.department))
    )
    last_sent = session.scalar(select(func.max(MailSentLog.sent_at)))
    state: State = "failing" if failing else "overdue" if overdue else "pending" if pending else "ok"
    return MailStatus(state, at, last_sent, tuple(pending), tuple(overdue), failing)


_cache_lock = threading.Lock()
_cached: tuple[object, object, int | None, MailConfig] | None = None


def _config(runtime: Runtime) -> MailConfig:
    """The configuration, read again only when the runtime or the departments file changes (``/readyz``
    is polled: no file read and no configuration warning per request)."""
    global _cached
    path = runtime.settings.mail.departments_file
    try:
        mtime = path.stat().st_mtime_ns if path is not None else None
    except OSError:
        mtime = None  # load_mail_config reports it
    with _cache_lock:
        hit = _cached
        if hit is not None and hit[0] is runtime.settings and hit[1] is runtime.procedures and hit[2] == mtime:
            return hit[3]
        config = load_mail_config(runtime.settings, runtime.procedures)
        _cached = (runtime.settings, runtime.procedures, mtime, config)
        return config


def mail_health(session_factory: sessionmaker[Session], runtime: Runtime) -> dict[str, Any]:
    """``mail_status`` as JSON for ``/readyz`` and the dashboard; never raises."""
    at = runtime.clock()
    if not runtime.settings.mail.enabled:
        return MailStatus("disabled", at).to_json()
    try:
        config = _config(runtime)
        with session_factory() as session:
            return mail_status(session, config, at=at).to_json()
    except (IntakeError, SQLAlchemyError) as exc:
        _log.warning("daily mail status unavailable: %s", type(exc).__name__)
        return MailStatus("unknown", at).to_json() | {"error": type(exc).__name__}
