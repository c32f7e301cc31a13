"""The staff's application list: filters, paging with a capped count, the CSV export, and the 担当者
filter's colleagues. The list shows the applicant's name (as typed, current version) and so every
view of a page with rows writes an access-log row (``application.list``); a search that names a
person (宛名番号, 氏名, フリガナ, 電話番号, 生年月日) writes one more per kind, without the search text
(P13). The due date and overdue filter follow :mod:`intake.applications.deadlines`. Services never
commit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, func, not_, select, union
from sqlalchemy.orm import Session, aliased, load_only

from intake.accesslog.service import append_access
from intake.applications.deadlines import overdue_clause
from intake.applications.errors import SearchByMyNumber
from intake.atena import is_atena_number
from intake.authz import APPLICATION_ROLES, CHANGE_ROLES, EXPORT_ROLES, Principal
from intake.errors import ExportTooLarge
from intake.jst import day_start, jst_day
from intake.kana import search_key
from intake.models import ApplicantKey, Application, ApplicationVersion, LinkageState, StaffUser, VersionState
from intake.personkeys import KIND_BIRTH, KIND_NAME, KIND_PHONE, birth_key, name_key, phone_key
from signature.mynumber import is_valid_my_number
from status import FINAL_STATUSES, Status

__all__ = [
    "ASSIGNED_TO_ME",
    "LIST_COUNT_CAP",
    "SORT_DUE",
    "UNASSIGNED",
    "ApplicationPage",
    "ApplicationRow",
    "ListFilters",
    "VersionFilter",
    "check_number_search",
    "colleagues",
    "export_applications",
    "export_summary",
    "list_applications",
]

_FINAL = [s.value for s in FINAL_STATUSES]


@dataclass(frozen=True)
class ListFilters:
    procedure: str | None = None
    status: Status | None = None
    date_from: date | None = None
    date_to: date | None = None
    linkage: LinkageState | None = None
    needs_review: bool = False
    signature_errors: bool = False
    #: chains with a version held for staff (「本人確認要」, :mod:`intake.applications.admission`)
    held: bool = False
    #: 受付番号 (any version of the chain) or 宛名番号, exact
    query: str | None = None
    #: a prefix of the applicant's フリガナ, compared as :func:`intake.kana.search_key`
    kana: str | None = None
    version: VersionFilter | None = None
    #: ``ASSIGNED_TO_ME``, ``UNASSIGNED`` or a login id
    assigned: str | None = None
    page: int = 1
    #: a prefix of the applicant's name, kanji or kana (:func:`intake.personkeys.name_key`)
    name: str | None = None
    #: a phone number, compared as digits (:func:`intake.personkeys.phone_key`)
    phone: str | None = None
    #: the certificate's 生年月日
    birth: date | None = None
    #: only cases past their due date (:func:`intake.applications.deadlines.overdue_clause`)
    overdue: bool = False
    #: ``SORT_DUE``: earliest due date first; otherwise newest arrival first
    sort: str | None = None

    @property
    def names_a_person(self) -> bool:
        """Whether the filters search for a person (they then travel only by POST or a search id)."""
        return bool((self.query or "").strip() or (self.kana or "").strip() or (self.name or "").strip()
                    or (self.phone or "").strip() or self.birth)


class VersionFilter(enum.StrEnum):
    """The list's 版 filter: whether a chain has more than its first submission."""

    SINGLE = "single"  # 初回の版のみ
    RESUBMITTED = "resubmitted"  # 再申請・補正あり
    NEW_UNREVIEWED = "new_unreviewed"  # 新しい版が届いて未確認（未完了）


ASSIGNED_TO_ME = "me"
UNASSIGNED = "none"
SORT_DUE = "due"


@dataclass(frozen=True)
class ApplicationRow:
    id: int
    first_receipt_number: str
    receipt_number: str
    procedure_name: str
    status: str
    created_at: datetime
    linkage_state: LinkageState
    needs_review: bool
    indication: str
    assigned_to: str | None = None
    applicant_name: str | None = None
    due_on: date | None = None


#: The list counts matching chains up to here and then says "more than": an exact count(*) of half
#: a million rows costs most of a second on every page view (docs/benchmarks.md, "Staff UI pages").
LIST_COUNT_CAP = 10_000


@dataclass(frozen=True)
class ApplicationPage:
    rows: list[ApplicationRow]
    total: int  # exact up to LIST_COUNT_CAP; when ``capped``, "more than LIST_COUNT_CAP"
    page: int
    pages: int  # when ``capped``: the pages known so far
    capped: bool = False
    has_next: bool = False


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _keyed(kind: str, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return Application.id.in_(select(ApplicantKey.application_id).where(ApplicantKey.kind == kind, condition))


def _list_conditions(principal: Principal, filters: ListFilters, current: type[ApplicationVersion], *,
                     today: date) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [principal.procedure_clause()]
    if filters.procedure:
        conditions.append(Application.procedure_id == filters.procedure)
    if filters.status is not None:
        conditions.append(Application.status == filters.status.value)
    if filters.date_from is not None:
        conditions.append(Application.created_at >= day_start(filters.date_from))
    if filters.date_to is not None:
        conditions.append(Application.created_at < day_start(filters.date_to + timedelta(days=1)))
    if filters.linkage is not None:
        conditions.append(Application.linkage_state == filters.linkage)
    if filters.needs_review:
        conditions.extend([Application.needs_review.is_(True), Application.status.not_in(_FINAL)])
    if filters.signature_errors:
        conditions.extend([current.indication != "PASSED", Application.status.not_in(_FINAL)])
    if filters.held:
        conditions.append(Application.id.in_(select(ApplicationVersion.application_id)
                                             .where(ApplicationVersion.state == VersionState.HELD)))
    query = (filters.query or "").strip()
    if query:
        # A UNION of three index lookups: an OR across them makes PostgreSQL scan every chain.
        conditions.append(Application.id.in_(union(
            select(Application.id).where(Application.first_receipt_number == query),
            select(ApplicationVersion.application_id).where(ApplicationVersion.receipt_number == query),
            select(Application.id).where(Application.atena_number == query))))
    kana = search_key(filters.kana or "")
    if kana:
        conditions.append(Application.applicant_kana.like(_like_prefix(kana), escape="\\"))
    name = name_key(filters.name or "")
    if name:
        conditions.append(_keyed(KIND_NAME, ApplicantKey.key.like(_like_prefix(name), escape="\\")))
    phone = phone_key(filters.phone or "")
    if (filters.phone or "").strip():
        conditions.append(_keyed(KIND_PHONE, ApplicantKey.key == (phone or "-")))
    if filters.birth is not None:
        conditions.append(_keyed(KIND_BIRTH, ApplicantKey.key == birth_key(filters.birth)))
    if filters.overdue:
        conditions.append(overdue_clause(today))
    if filters.version is not None:
        resubmitted = Application.id.in_(select(ApplicationVersion.application_id)
                                         .where(ApplicationVersion.state == VersionState.SUPERSEDED))
        if filters.version is VersionFilter.SINGLE:
            conditions.append(not_(resubmitted))
        else:
            conditions.append(resubmitted)
        if filters.version is VersionFilter.NEW_UNREVIEWED:
            conditions.extend([Application.needs_review.is_(True), Application.status.not_in(_FINAL)])
    if filters.assigned == ASSIGNED_TO_ME:
        conditions.append(Application.assigned_to == principal.login)
    elif filters.assigned == UNASSIGNED:
        conditions.append(Application.assigned_to.is_(None))
    elif filters.assigned:
        conditions.append(Application.assigned_to == filters.assigned)
    return conditions


def _list_rows(session: Session, stmt: Select[Application, ApplicationVersion]) -> list[ApplicationRow]:
    return [
        ApplicationRow(app.id, app.first_receipt_number,
                       version.receipt_number if version else app.first_receipt_number, app.procedure_name,
                       app.status, app.created_at, app.linkage_state, app.needs_review,
                       version.indication if version else "-", app.assigned_to,
                       _typed_name(version.applicant) if version else None, app.due_on)
        for app, version in session.execute(stmt)
    ]


def _typed_name(applicant: list[list[str]] | None) -> str | None:
    return next((str(pair[1]) for pair in applicant or [] if len(pair) == 2 and pair[0] == "氏名"), None)


def _list_query(principal: Principal, filters: ListFilters, *, today: date) -> Select[Application, ApplicationVersion]:
    current = aliased(ApplicationVersion)
    return (select(Application, current)
            .outerjoin(current, and_(current.application_id == Application.id, current.state == VersionState.CURRENT))
            .options(load_only(current.receipt_number, current.indication, current.applicant))  # not the form
            .where(*_list_conditions(principal, filters, current, today=today)))


def _ordered(stmt: Select[Application, ApplicationVersion], filters: ListFilters
             ) -> Select[Application, ApplicationVersion]:
    if filters.sort == SORT_DUE:
        return stmt.order_by(Application.due_on.is_(None), Application.due_on, Application.created_at,
                             Application.id)
    return stmt.order_by(Application.created_at.desc(), Application.id.desc())


def _count_upto(session: Session, principal: Principal, filters: ListFilters, cap: int, *, today: date) -> int:
    """How many chains the list matches, counting no further than ``cap + 1``. The current version
    is joined only when a filter needs it (署名エラー)."""
    if filters.signature_errors:
        ids = _list_query(principal, filters, today=today).with_only_columns(Application.id)
    else:
        ids = select(Application.id).where(*_list_conditions(principal, filters, ApplicationVersion, today=today))
    return session.scalar(select(func.count()).select_from(ids.limit(cap + 1).subquery())) or 0


def list_applications(
    session: Session, principal: Principal, filters: ListFilters, *, page_size: int, at: datetime,
    count_cap: int = LIST_COUNT_CAP,
) -> ApplicationPage:
    """One page of the principal's applications, newest first, counted up to ``count_cap``. The list
    shows no personal data; a search by 宛名番号 is itself logged (it tells who looked for whom)."""
    principal.require(APPLICATION_ROLES, "read applications")
    today = jst_day(at)
    _log_search(session, principal, filters, at=at)
    base = _list_query(principal, filters, today=today)
    total = _count_upto(session, principal, filters, count_cap, today=today)
    capped = total > count_cap
    pages = max(1, -(-min(total, count_cap) // page_size))
    page = max(1, filters.page) if capped else min(max(1, filters.page), pages)
    rows = _list_rows(session, _ordered(base, filters).limit(page_size + 1).offset((page - 1) * page_size))
    has_next = len(rows) > page_size
    if rows:  # the page shows applicants' names: who saw which page is itself a read (P13)
        append_access(session, actor=principal.access_actor(), at=at, action="application.list",
                      subject=f"list:page={page};rows={len(rows[:page_size])}")
    return ApplicationPage(rows[:page_size], min(total, count_cap), page, max(pages, page), capped, has_next)



def check_number_search(number: str) -> str:
    """``number`` if the list may be searched by it (a 受付番号 or a 宛名番号); a My Number is
    :class:`SearchByMyNumber` — refused before it is kept or logged anywhere."""
    if is_valid_my_number(number):
        raise SearchByMyNumber
    return number


def _log_search(session: Session, principal: Principal, filters: ListFilters, *, at: datetime) -> None:
    """A search that names a person is itself logged (who looked for whom). A searched 宛名番号 goes to
    the log's own column (any other number — a 受付番号 — is logged as searched, not kept there); a
    フリガナ is recorded as "a name was searched", never the name itself."""
    query = (filters.query or "").strip()
    if query:
        append_access(session, actor=principal.access_actor(), at=at, action="application.search",
                      subject="search:atena_or_receipt", atena_number=query if is_atena_number(query) else None)
    for kind, given in (("kana", search_key(filters.kana or "")), ("name", name_key(filters.name or "")),
                        ("phone", (filters.phone or "").strip()), ("birth", filters.birth)):
        if given:
            append_access(session, actor=principal.access_actor(), at=at, action="application.search",
                          subject=f"search:{kind}")


def export_summary(filters: ListFilters) -> str:
    """The filters of an export, for the access log: the search term itself is not written here (it
    may be a 宛名番号; that goes to the log's own 宛名番号 column)."""
    parts = [
        f"procedure={filters.procedure or '*'}", f"status={filters.status.value if filters.status else '*'}",
        f"from={filters.date_from or '*'}", f"to={filters.date_to or '*'}",
        f"linkage={filters.linkage.value if filters.linkage else '*'}",
        f"queue={int(filters.needs_review)}", f"sigerr={int(filters.signature_errors)}",
        f"held={int(filters.held)}",
        f"search={'yes' if (filters.query or '').strip() else 'no'}",
        f"kana={'yes' if search_key(filters.kana or '') else 'no'}",
        f"version={filters.version.value if filters.version else '*'}",
        f"assigned={'yes' if filters.assigned else '*'}",
        f"person={'yes' if (filters.name or filters.phone or filters.birth) else 'no'}",
        f"overdue={int(filters.overdue)}",
    ]
    return "export:" + ";".join(parts)


def export_applications(
    session: Session, principal: Principal, filters: ListFilters, *, at: datetime, max_rows: int,
) -> list[ApplicationRow]:
    """Every row of the list (all pages) for the CSV export; reviewer and department_admin only
    (:data:`EXPORT_ROLES`). Exactly one access-log row per export, whatever the filters; more than
    ``max_rows`` rows is :class:`ExportTooLarge` (an export is a copy leaving the system)."""
    principal.require(EXPORT_ROLES, "export applications")
    today = jst_day(at)
    if _count_upto(session, principal, filters, max_rows, today=today) > max_rows:
        raise ExportTooLarge(max_rows)
    query = (filters.query or "").strip()
    append_access(session, actor=principal.access_actor(), at=at, action="application.export",
                  subject=export_summary(filters), atena_number=query if is_atena_number(query) else None)
    return _list_rows(session, _ordered(_list_query(principal, filters, today=today), filters))


def colleagues(session: Session, principal: Principal) -> list[str]:
    """Logins of active members who work cases in one of the principal's departments (the list's
    担当者 filter)."""
    users = session.scalars(select(StaffUser).where(StaffUser.active.is_(True)).order_by(StaffUser.login))
    return [u.login for u in users
            if set(u.departments) & principal.departments and set(u.roles) & {r.value for r in CHANGE_ROLES}]
