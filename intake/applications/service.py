"""What staff read: the scoped application list, the dashboard, the detail view, attachments and the
access log. Every function checks the principal's roles and departments itself (templates only
display), and every read of personal data writes an access-log row (P13). Services never commit.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import ColumnElement, Select, and_, func, not_, select, union
from sqlalchemy.orm import Session, aliased, load_only

from intake.accesslog.service import append_access
from intake.applications.status import history_of
from intake.authz import APPLICATION_ROLES, CHANGE_ROLES, EXPORT_ROLES, REVEAL_PERMISSION, Principal, load_for
from intake.crypto import Sealer
from intake.errors import AccessDenied, Denial, ExportTooLarge, NotFound, PermissionDenied
from intake.kana import search_key
from intake.linkage.service import set_atena_manually
from intake.models import (
    Application,
    ApplicationVersion,
    Attachment,
    ForwardItem,
    ForwardState,
    LinkageDecision,
    LinkageState,
    MyNumberRow,
    SignerIdentityRow,
    StaffUser,
    VerificationRecord,
    VersionState,
)
from intake.mynumbers.service import reveal_my_number
from intake.sealing import open_attachment
from signature.xmlparse import parse_xml
from status import FINAL_STATUSES, Action, Role, Status, StatusHistory, allowed_actions

__all__ = [
    "ASSIGNED_TO_ME",
    "CHART_DAYS",
    "JST",
    "LIST_COUNT_CAP",
    "UNASSIGNED",
    "ApplicationDetail",
    "ApplicationPage",
    "Dashboard",
    "FieldChange",
    "FormField",
    "ListFilters",
    "ProcedureTrend",
    "VersionFilter",
    "application_detail",
    "assign",
    "colleagues",
    "dashboard",
    "download_attachment",
    "export_applications",
    "export_summary",
    "flatten_form",
    "form_diff",
    "list_applications",
    "reveal",
    "set_atena",
    "version_of",
]

JST = timezone(timedelta(hours=9))
_FINAL = [s.value for s in FINAL_STATUSES]
_MY_NUMBER = "個人番号"


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=JST)


def _require_reader(principal: Principal) -> None:
    principal.require(APPLICATION_ROLES, "read applications")


# --- list -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListFilters:
    procedure: str | None = None
    status: Status | None = None
    date_from: date | None = None
    date_to: date | None = None
    linkage: LinkageState | None = None
    needs_review: bool = False
    signature_errors: bool = False
    #: 受付番号 (any version of the chain) or 宛名番号, exact
    query: str | None = None
    #: a prefix of the applicant's フリガナ, compared as :func:`intake.kana.search_key`
    kana: str | None = None
    version: VersionFilter | None = None
    #: ``ASSIGNED_TO_ME``, ``UNASSIGNED`` or a login id
    assigned: str | None = None
    page: int = 1


class VersionFilter(enum.StrEnum):
    """The list's 版 filter: whether a chain has more than its first submission."""

    SINGLE = "single"  # 初回の版のみ
    RESUBMITTED = "resubmitted"  # 再申請・補正あり
    NEW_UNREVIEWED = "new_unreviewed"  # 新しい版が届いて未確認（未完了）


ASSIGNED_TO_ME = "me"
UNASSIGNED = "none"


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


def _list_conditions(principal: Principal, filters: ListFilters, current: type[ApplicationVersion]
                     ) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [principal.procedure_clause()]
    if filters.procedure:
        conditions.append(Application.procedure_id == filters.procedure)
    if filters.status is not None:
        conditions.append(Application.status == filters.status.value)
    if filters.date_from is not None:
        conditions.append(Application.created_at >= _day_start(filters.date_from))
    if filters.date_to is not None:
        conditions.append(Application.created_at < _day_start(filters.date_to + timedelta(days=1)))
    if filters.linkage is not None:
        conditions.append(Application.linkage_state == filters.linkage)
    if filters.needs_review:
        conditions.extend([Application.needs_review.is_(True), Application.status.not_in(_FINAL)])
    if filters.signature_errors:
        conditions.extend([current.indication != "PASSED", Application.status.not_in(_FINAL)])
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
                       version.indication if version else "-", app.assigned_to)
        for app, version in session.execute(stmt)
    ]


def _list_query(principal: Principal, filters: ListFilters) -> Select[Application, ApplicationVersion]:
    current = aliased(ApplicationVersion)
    return (select(Application, current)
            .outerjoin(current, and_(current.application_id == Application.id, current.state == VersionState.CURRENT))
            .options(load_only(current.receipt_number, current.indication))  # not the form or applicant
            .where(*_list_conditions(principal, filters, current)))


def _count_upto(session: Session, principal: Principal, filters: ListFilters, cap: int) -> int:
    """How many chains the list matches, counting no further than ``cap + 1``. The current version
    is joined only when a filter needs it (署名エラー)."""
    if filters.signature_errors:
        ids = _list_query(principal, filters).with_only_columns(Application.id)
    else:
        ids = select(Application.id).where(*_list_conditions(principal, filters, ApplicationVersion))
    return session.scalar(select(func.count()).select_from(ids.limit(cap + 1).subquery())) or 0


def list_applications(
    session: Session, principal: Principal, filters: ListFilters, *, page_size: int, at: datetime,
    count_cap: int = LIST_COUNT_CAP,
) -> ApplicationPage:
    """One page of the principal's applications, newest first, counted up to ``count_cap``. The list
    shows no personal data; a search by 宛名番号 is itself logged (it tells who looked for whom)."""
    _require_reader(principal)
    _log_search(session, principal, filters, at=at)
    base = _list_query(principal, filters)
    total = _count_upto(session, principal, filters, count_cap)
    capped = total > count_cap
    pages = max(1, -(-min(total, count_cap) // page_size))
    page = max(1, filters.page) if capped else min(max(1, filters.page), pages)
    rows = _list_rows(session, base.order_by(Application.created_at.desc(), Application.id.desc())
                      .limit(page_size + 1).offset((page - 1) * page_size))
    has_next = len(rows) > page_size
    return ApplicationPage(rows[:page_size], min(total, count_cap), page, max(pages, page), capped, has_next)



def _log_search(session: Session, principal: Principal, filters: ListFilters, *, at: datetime) -> None:
    """A search that names a person is itself logged (who looked for whom). The 宛名番号 goes to the
    log's own column; a フリガナ is recorded as "a name was searched", never the name itself."""
    query = (filters.query or "").strip()
    if query.isdigit():
        append_access(session, actor=principal.access_actor(), at=at, action="application.search",
                      subject="search:atena_or_receipt", atena_number=query[:32])
    if search_key(filters.kana or ""):
        append_access(session, actor=principal.access_actor(), at=at, action="application.search",
                      subject="search:kana")


def export_summary(filters: ListFilters) -> str:
    """The filters of an export, for the access log: the search term itself is not written here (it
    may be a 宛名番号; that goes to the log's own 宛名番号 column)."""
    parts = [
        f"procedure={filters.procedure or '*'}", f"status={filters.status.value if filters.status else '*'}",
        f"from={filters.date_from or '*'}", f"to={filters.date_to or '*'}",
        f"linkage={filters.linkage.value if filters.linkage else '*'}",
        f"queue={int(filters.needs_review)}", f"sigerr={int(filters.signature_errors)}",
        f"search={'yes' if (filters.query or '').strip() else 'no'}",
        f"kana={'yes' if search_key(filters.kana or '') else 'no'}",
        f"version={filters.version.value if filters.version else '*'}",
        f"assigned={'yes' if filters.assigned else '*'}",
    ]
    return "export:" + ";".join(parts)


def export_applications(
    session: Session, principal: Principal, filters: ListFilters, *, at: datetime, max_rows: int,
) -> list[ApplicationRow]:
    """Every row of the list (all pages) for the CSV export; reviewer and department_admin only
    (:data:`EXPORT_ROLES`). Exactly one access-log row per export, whatever the filters; more than
    ``max_rows`` rows is :class:`ExportTooLarge` (an export is a copy leaving the system)."""
    principal.require(EXPORT_ROLES, "export applications")
    if _count_upto(session, principal, filters, max_rows) > max_rows:
        raise ExportTooLarge(max_rows)
    query = (filters.query or "").strip()
    append_access(session, actor=principal.access_actor(), at=at, action="application.export",
                  subject=export_summary(filters), atena_number=query[:32] if query.isdigit() else None)
    return _list_rows(session, _list_query(principal, filters)
                      .order_by(Application.created_at.desc(), Application.id.desc()))


# --- dashboard --------------------------------------------------------------------------------------


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
    days: list[date]
    trends: list[ProcedureTrend]

    @property
    def peak(self) -> int:
        return max((c for t in self.trends for c in t.counts), default=0)


def dashboard(session: Session, principal: Principal, *, at: datetime) -> Dashboard | None:
    """Counts only (no personal data); ``None`` for roles that read no applications."""
    if not principal.reads_applications:
        return None
    scope = principal.procedure_clause()
    today = _day_start(at.astimezone(JST).date())
    open_ = Application.status.not_in(_FINAL)

    def count(stmt: ColumnElement[bool], *, versions: bool = False) -> int:
        if versions:
            q = select(func.count()).select_from(ApplicationVersion).join(Application).where(scope, stmt)
        else:
            q = select(func.count()).select_from(Application).where(scope, stmt)
        return session.scalar(q) or 0

    days, trends = _trends(session, scope, at=at)
    failed = session.scalar(
        select(func.count()).select_from(ForwardItem).join(ApplicationVersion).join(Application)
        .where(scope, ForwardItem.state == ForwardState.FAILED)) or 0
    return Dashboard(
        today_arrivals=count(ApplicationVersion.arrived_at >= today, versions=True),
        my_queue=count(and_(Application.needs_review.is_(True), open_)),
        assigned_to_me=count(and_(Application.assigned_to == principal.login, open_)),
        unlinked=count(and_(Application.linkage_state.in_([LinkageState.UNRESOLVED, LinkageState.CONFLICT]), open_)),
        signature_errors=count(and_(ApplicationVersion.state == VersionState.CURRENT,
                                    ApplicationVersion.indication != "PASSED", open_), versions=True),
        failed_forwards=failed,
        days=days,
        trends=trends,
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
        .where(scope, ApplicationVersion.arrived_at >= _day_start(days[0]),
               ApplicationVersion.arrived_at < _day_start(today + timedelta(days=1))))
    for procedure_id, name, arrived in rows:
        slot = index.get(arrived.astimezone(JST).date())
        if slot is None:  # pragma: no cover - the query bounds the days
            continue
        counts.setdefault(procedure_id, [0] * CHART_DAYS)[slot] += 1
        names.setdefault(procedure_id, name)
    trends = [ProcedureTrend(p, names[p], c) for p, c in counts.items()]
    trends.sort(key=lambda t: (-t.total, t.procedure_id))
    return days, trends


# --- detail -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormField:
    key: str  # the element path, stable between versions of the same form
    label: str  # 「請求者 / 氏名」
    value: str
    my_number_position: int | None = None  # a 個人番号 field: revealed only on request


@dataclass(frozen=True)
class FieldChange:
    label: str
    before: str | None  # None: the field did not exist
    after: str | None


def flatten_form(form_xml: str) -> list[FormField]:
    """The leaves of a (masked) form in document order, labelled by their element path."""
    root = parse_xml(form_xml.encode())
    tree = root.getroottree()
    fields: list[FormField] = []
    position = 0
    for el in root.iter():
        if not isinstance(el.tag, str) or len(el):
            continue
        names = [str(a.tag) for a in reversed(list(el.iterancestors())) if a is not root] + [str(el.tag)]
        value = (el.text or "").strip()
        number = None
        if el.tag == _MY_NUMBER:
            number, value = position, ""
            position += 1
        fields.append(FormField(tree.getpath(el), " / ".join(names), value, number))
    return fields


def form_diff(before: list[FormField], after: list[FormField]) -> list[FieldChange]:
    """Field-level changes between two versions (個人番号 values are not compared: they are masked)."""
    old = {f.key: f for f in before}
    new = {f.key: f for f in after}
    changes = []
    for key, f in new.items():
        if key not in old:
            changes.append(FieldChange(f.label, None, f.value))
        elif old[key].value != f.value:
            changes.append(FieldChange(f.label, old[key].value, f.value))
    changes.extend(FieldChange(f.label, f.value, None) for key, f in old.items() if key not in new)
    return changes


def _norm(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


@dataclass(frozen=True)
class IdentityCheck:
    """The signer's 基本4情報 (from the verified certificate) beside what the applicant typed."""

    signer: SignerIdentityRow | None
    applicant: list[tuple[str, str]]
    name_matches: bool | None
    address_matches: bool | None


@dataclass(frozen=True)
class ApplicationDetail:
    app: Application
    versions: list[ApplicationVersion]
    version: ApplicationVersion  # the one shown
    compare_with: ApplicationVersion | None
    fields: list[FormField]
    changes: list[FieldChange]
    attachments: list[Attachment]
    verification: VerificationRecord | None
    identity: IdentityCheck
    my_number_positions: list[int]
    history: StatusHistory
    actions: list[Action]
    may_change: bool
    may_set_atena: bool
    may_reveal: bool
    decisions: list[LinkageDecision] = field(default_factory=list)


def application_detail(
    session: Session, principal: Principal, application_id: int, *, at: datetime,
    version_id: int | None = None, compare_id: int | None = None,
) -> ApplicationDetail:
    """Everything the detail page shows; one access-log row for the view."""
    app = load_for(session, principal, application_id)
    versions = sorted(app.versions, key=lambda v: v.arrived_at)
    if not versions:  # pragma: no cover - a chain always has its first version
        raise NotFound("no such application")
    by_id = {v.id: v for v in versions}
    current = next((v for v in versions if v.state is VersionState.CURRENT), versions[-1])
    shown = by_id.get(version_id or current.id)
    if shown is None:
        raise NotFound("no such version")
    index = versions.index(shown)
    compare = by_id.get(compare_id) if compare_id is not None else (versions[index - 1] if index > 0 else None)
    if compare_id is not None and compare is None:
        raise NotFound("no such version")
    fields = flatten_form(shown.form_xml)
    changes = form_diff(flatten_form(compare.form_xml), fields) if compare is not None else []
    verification = session.scalar(select(VerificationRecord).where(VerificationRecord.delivery_id == shown.delivery_id))
    applicant = [(str(k), str(v)) for k, v in shown.applicant]
    typed = dict(applicant)
    signer = shown.signer
    identity = IdentityCheck(
        signer, applicant,
        _norm(signer.name) == _norm(typed["氏名"]) if signer and "氏名" in typed else None,
        _norm(signer.address) == _norm(typed["住所"]) if signer and "住所" in typed else None,
    )
    positions = list(session.scalars(select(MyNumberRow.position).where(MyNumberRow.version_id == shown.id)
                                     .order_by(MyNumberRow.position)))
    history = history_of(session, app)
    decisions = list(session.scalars(select(LinkageDecision).where(LinkageDecision.application_id == app.id)
                                     .order_by(LinkageDecision.id)))
    append_access(session, actor=principal.access_actor(), at=at, action="application.view",
                  subject=f"application:{app.id}:version:{shown.id}", atena_number=app.atena_number)
    may_change = principal.has_any(CHANGE_ROLES)
    return ApplicationDetail(
        app=app, versions=versions, version=shown, compare_with=compare, fields=fields, changes=changes,
        attachments=list(shown.attachments), verification=verification, identity=identity,
        my_number_positions=positions, history=history,
        actions=allowed_actions(history.current, principal.roles) if may_change else [],
        may_change=may_change, may_set_atena=may_change, may_reveal=REVEAL_PERMISSION in principal.permissions,
        decisions=decisions,
    )


def version_of(session: Session, principal: Principal, application_id: int, version_id: int) -> ApplicationVersion:
    """A version of an application in scope (for the My Number reveal form), else :class:`NotFound`."""
    app = load_for(session, principal, application_id)
    version = session.get(ApplicationVersion, version_id)
    if version is None or version.application_id != app.id:
        raise NotFound("no such version")
    return version


@dataclass(frozen=True)
class Download:
    name: str
    media_type: str
    data: bytes


def download_attachment(
    session: Session, principal: Principal, attachment_id: int, *, at: datetime, sealer: Sealer,
) -> Download:
    """An attachment's bytes, logged; a malware-flagged file is never handed out."""
    att = session.get(Attachment, attachment_id)
    if att is None:
        raise NotFound("no such attachment")
    app = load_for(session, principal, att.version.application_id)
    if att.malware_flagged:
        raise PermissionDenied("the relay flagged this file as malware", code="MALWARE_FLAGGED")
    append_access(session, actor=principal.access_actor(), at=at, action="attachment.download",
                  subject=f"attachment:{att.id}", atena_number=app.atena_number)
    return Download(att.name, att.media_type, open_attachment(sealer, att.id, att.data))


def colleagues(session: Session, principal: Principal) -> list[str]:
    """Logins of active members who work cases in one of the principal's departments (the list's
    担当者 filter)."""
    users = session.scalars(select(StaffUser).where(StaffUser.active.is_(True)).order_by(StaffUser.login))
    return [u.login for u in users
            if set(u.departments) & principal.departments and set(u.roles) & {r.value for r in CHANGE_ROLES}]


# --- scoped changes ---------------------------------------------------------------------------------


def set_atena(
    session: Session, principal: Principal, application_id: int, *, atena_number: str, reason: str, at: datetime,
) -> LinkageDecision:
    """:func:`intake.linkage.service.set_atena_manually`, for an application in the principal's scope."""
    load_for(session, principal, application_id)
    return set_atena_manually(session, application_id=application_id, atena_number=atena_number,
                              actor=principal.access_actor(), reason=reason, at=at)


def assign(
    session: Session, principal: Principal, application_id: int, *, to_me: bool, at: datetime,
) -> None:
    """Take over a chain (担当する) or release it (担当を外す); reviewer and department_admin only.
    Releasing someone else's chain is a department_admin's call."""
    principal.require(CHANGE_ROLES, "work applications")
    app = load_for(session, principal, application_id, lock=True)
    if not to_me and app.assigned_to not in (None, principal.login) and Role.DEPARTMENT_ADMIN not in principal.roles:
        raise AccessDenied("only a department admin releases another member's case", cause=Denial.ROLE)
    before = app.assigned_to
    app.assigned_to = principal.login if to_me else None
    app.updated_at = at
    append_access(session, actor=principal.access_actor(), at=at, action="application.assign",
                  subject=f"application:{app.id}", reason=f"担当変更: {before or '-'} → {app.assigned_to or '-'}",
                  atena_number=app.atena_number)


def reveal(
    session: Session, principal: Principal, application_id: int, *, version_id: int, position: int, reason: str,
    at: datetime, sealer: Sealer,
) -> str:
    """:func:`intake.mynumbers.service.reveal_my_number`, for a version in the principal's scope."""
    version = version_of(session, principal, application_id, version_id)
    return reveal_my_number(session, actor=principal.access_actor(), version_id=version.id, position=position,
                            reason=reason, at=at, sealer=sealer, atena_number=version.application.atena_number)
