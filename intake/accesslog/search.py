"""The auditor's access to the access log: search with paging, CSV export, the chain status and
the 「今すぐ検証」 check. Auditors only (:data:`AUDIT_ROLES`), checked here, not in the templates;
every view, export and check is itself an access-log row.

The page never re-hashes the log (that is O(rows) over 7 years of rows): it shows the latest
recorded check (:mod:`intake.accesslog.checks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.orm import Session

from intake.accesslog.checks import CheckRecord, latest_check, run_check, unchecked_rows
from intake.accesslog.errors import AtenaSearchInvalid
from intake.accesslog.service import append_access, newest_retention
from intake.atena import is_atena_number
from intake.authz import AUDIT_ROLES, Principal
from intake.errors import ExportTooLarge
from intake.jst import day_start
from intake.models import (
    AccessLogRetention,
    AccessLogRow,
    Application,
    ApplicationVersion,
    Attachment,
    ForwardItem,
    LinkageDecision,
)

__all__ = [
    "AccessLogFilters",
    "AccessLogSearch",
    "ChainStatus",
    "chain_status",
    "export_access_log",
    "require_auditor",
    "search_access_log",
    "verify_now",
]

_SUBJECT_MAX = 128  # AccessLogRow.subject


@dataclass(frozen=True)
class AccessLogFilters:
    """What the auditor searches by. ``action`` ending in ``.`` is a prefix (``application.``),
    otherwise exact; the dates are Asia/Tokyo calendar days, both inclusive."""

    staff_id: str | None = None
    atena_number: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    action: str | None = None
    terminal: str | None = None
    department: str | None = None
    subject: str | None = None

    def __post_init__(self) -> None:
        if self.atena_number and not is_atena_number(self.atena_number):
            raise AtenaSearchInvalid

    def conditions(self, session: Session) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        for column, value in ((AccessLogRow.staff_id, self.staff_id), (AccessLogRow.terminal, self.terminal),
                              (AccessLogRow.department, self.department), (AccessLogRow.subject, self.subject)):
            if value:
                found.append(column == value)
        if self.atena_number:
            found.append(or_(AccessLogRow.atena_number == self.atena_number,
                             _about_chains_of(session, self.atena_number)))
        if self.action:
            found.append(AccessLogRow.action.startswith(self.action, autoescape=True) if self.action.endswith(".")
                         else AccessLogRow.action == self.action)
        if self.date_from is not None:
            found.append(AccessLogRow.at >= day_start(self.date_from))
        if self.date_to is not None:
            found.append(AccessLogRow.at < day_start(self.date_to + timedelta(days=1)))
        return found

    def summary(self) -> str:
        """The filters for the access log. The 宛名番号 itself goes to the row's own column, not here."""
        parts = [f"{name}={value}" for name, value in (
            ("staff", self.staff_id), ("from", self.date_from), ("to", self.date_to), ("action", self.action),
            ("terminal", self.terminal), ("department", self.department), ("subject", self.subject)) if value]
        if self.atena_number:
            parts.append("atena=yes")
        return ";".join(parts) or "all"


def _about_chains_of(session: Session, atena_number: str) -> ColumnElement[bool]:
    """The rows about the chains of a person by their subject — the chain, its versions, attachments
    and forwarding items — also those written before the chain was linked (with no 宛名番号), or while
    it was linked to another number. A chain counts as the person's when it is linked to the number
    now or ever was (its linkage decisions)."""
    chains = set(session.scalars(select(Application.id).where(Application.atena_number == atena_number)))
    chains |= set(session.scalars(select(LinkageDecision.application_id)
                                  .where(LinkageDecision.atena_number == atena_number)))
    if not chains:
        return false()
    versions = set(session.scalars(select(ApplicationVersion.id).where(ApplicationVersion.application_id.in_(chains))))
    attachments: list[int] = list(session.scalars(select(Attachment.id).where(Attachment.version_id.in_(versions))))
    items: list[int] = list(session.scalars(select(ForwardItem.id).where(ForwardItem.version_id.in_(versions))))
    exact = ([f"application:{i}" for i in chains] + [f"version:{i}" for i in versions]
             + [f"attachment:{i}" for i in attachments] + [f"forward_item:{i}" for i in items])
    prefixes = [f"application:{i}:" for i in chains] + [f"version:{i}:" for i in versions]
    return or_(AccessLogRow.subject.in_(exact),
               *(AccessLogRow.subject.startswith(prefix, autoescape=True) for prefix in prefixes))


@dataclass(frozen=True)
class ChainStatus:
    """The chain panel: the latest recorded check, rows appended since, the retention in force."""

    last_check: CheckRecord | None
    unchecked: int
    last_purge: AccessLogRetention | None


@dataclass(frozen=True)
class AccessLogSearch:
    rows: list[AccessLogRow]
    total: int
    page: int
    pages: int
    status: ChainStatus



def _require_auditor(principal: Principal) -> None:
    principal.require(AUDIT_ROLES, "read the access log")


def require_auditor(principal: Principal) -> None:
    """The auditor role, for a page that prepares a search (the search itself checks it again)."""
    _require_auditor(principal)


def _log_subject(prefix: str, filters: AccessLogFilters) -> tuple[str, str | None]:
    """``(subject, reason)``: the whole filter summary when it fits the subject column, else a
    shortened subject and the whole summary as the reason (nothing is lost)."""
    subject = f"{prefix}:{filters.summary()}"
    if len(subject) <= _SUBJECT_MAX:
        return subject, None
    return subject[:_SUBJECT_MAX - 1] + "…", subject


def chain_status(session: Session, principal: Principal) -> ChainStatus:
    """Constant work whatever the log's size: one event lookup, one primary-key range count."""
    _require_auditor(principal)
    check = latest_check(session)
    return ChainStatus(check, unchecked_rows(session, check), newest_retention(session))


def search_access_log(
    session: Session, principal: Principal, filters: AccessLogFilters, *, at: datetime, page: int = 1,
    page_size: int = 50,
) -> AccessLogSearch:
    """One page of the log, newest first, and the chain status. Writes one ``audit.view`` row."""
    _require_auditor(principal)
    conditions = filters.conditions(session)
    total = session.scalar(select(func.count()).select_from(AccessLogRow).where(*conditions)) or 0
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    rows = list(session.scalars(select(AccessLogRow).where(*conditions).order_by(AccessLogRow.id.desc())
                                .limit(page_size).offset((page - 1) * page_size)))
    status = chain_status(session, principal)
    subject, reason = _log_subject("access_log", filters)
    append_access(session, actor=principal.access_actor(), at=at, action="audit.view", subject=subject,
                  reason=reason, atena_number=filters.atena_number or None)
    return AccessLogSearch(rows, total, page, pages, status)


def export_access_log(
    session: Session, principal: Principal, filters: AccessLogFilters, *, at: datetime, max_rows: int,
) -> list[AccessLogRow]:
    """Every matching row, newest first, for the CSV export; :class:`ExportTooLarge` (nothing
    logged, nothing leaves) when more than ``max_rows`` match. One ``audit.export`` row per export."""
    _require_auditor(principal)
    rows = list(session.scalars(select(AccessLogRow).where(*filters.conditions(session))
                                .order_by(AccessLogRow.id.desc()).limit(max_rows + 1)))
    if len(rows) > max_rows:
        raise ExportTooLarge(max_rows)
    subject, reason = _log_subject("export", filters)
    append_access(session, actor=principal.access_actor(), at=at, action="audit.export", subject=subject,
                  reason=reason, atena_number=filters.atena_number or None)
    return rows


def verify_now(session: Session, principal: Principal, *, at: datetime) -> CheckRecord:
    """The 「今すぐ検証」 button: the full check (O(rows), on demand only), recorded under the
    auditor's login, and an ``audit.verify`` row."""
    _require_auditor(principal)
    record = run_check(session, at=at, by=principal.login)
    append_access(session, actor=principal.access_actor(), at=at, action="audit.verify",
                  subject=f"access_log:check={record.event_id}")
    return record
