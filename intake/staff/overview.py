"""The read-only configuration overview of the admin pages, for ``system_admin`` only: the role
matrix, departments, procedures and forwarding routes.

Procedures and routes are shown, never edited here: they are configuration files deployed by the
operators (a route decides where My Numbers go, so it changes only through a reviewed deployment).
The overview reads what the runtime loaded at start-up; it does not re-read the files. Services
never commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.authz import (
    ADMIN_ROLES,
    APPLICATION_ROLES,
    AUDIT_ROLES,
    CHANGE_ROLES,
    EXPORT_ROLES,
    LINKAGE_IMPORT_ROLES,
    OUTBOX_ROLES,
    ROLE_LABELS,
    ROLE_ORDER,
    Principal,
)
from intake.forwarding.routes import RetryPolicy, Route, Timeouts
from intake.models import StaffUser
from intake.procedures import Procedure, ProcedureCatalogue
from intake.staff.admin import known_departments, require_admin, roles_of
from status import Role

__all__ = [
    "CAPABILITIES",
    "Capability",
    "DepartmentRow",
    "ProcedureRow",
    "RoleMatrix",
    "RouteRow",
    "department_overview",
    "procedure_overview",
    "role_matrix",
    "route_overview",
]


@dataclass(frozen=True)
class Capability:
    """One row of the role matrix, generated from the role sets of :mod:`intake.authz`."""

    label: str
    roles: frozenset[Role]
    note: str = ""


CAPABILITIES: tuple[Capability, ...] = (
    Capability("申請の閲覧（添付ファイルを含む）", APPLICATION_ROLES, "所属部署の手続の申請のみ"),
    Capability("ステータス変更・宛名番号の設定", CHANGE_ROLES, "所属部署の手続の申請のみ"),
    Capability("申請一覧のCSV出力", EXPORT_ROLES, "出力のたびにアクセスログに記録"),
    Capability("個人番号の表示", APPLICATION_ROLES,
               "役割に加えて、職員ごとの「個人番号の表示」権限が必要（表示のたびに処理事由を記録）"),
    Capability("転送失敗の確認と再送", OUTBOX_ROLES, "所属管理者は所属部署の手続のみ、システム管理者は全部署"),
    Capability("アクセスログの閲覧・検索", AUDIT_ROLES),
    Capability("番号紐付情報の取込", LINKAGE_IMPORT_ROLES, "画面には件数のみ表示"),
    Capability("職員アカウントの管理・設定の確認（この管理画面）", ADMIN_ROLES),
)


@dataclass(frozen=True)
class RoleMatrix:
    roles: tuple[Role, ...]
    labels: Mapping[Role, str]
    capabilities: tuple[Capability, ...]
    active_users: Mapping[Role, int]


def _active_users(session: Session) -> list[StaffUser]:
    return list(session.scalars(select(StaffUser).where(StaffUser.active.is_(True))))


def role_matrix(session: Session, principal: Principal) -> RoleMatrix:
    require_admin(principal)
    counts = dict.fromkeys(ROLE_ORDER, 0)
    for user in _active_users(session):
        for role in roles_of(user):
            counts[role] += 1
    return RoleMatrix(ROLE_ORDER, ROLE_LABELS, CAPABILITIES, counts)


@dataclass(frozen=True)
class DepartmentRow:
    id: str
    name: str
    procedures: tuple[Procedure, ...]
    active_users: int
    #: ``False``: a department some account holds that the catalogue no longer knows
    known: bool


def department_overview(session: Session, principal: Principal, catalogue: ProcedureCatalogue) -> list[DepartmentRow]:
    require_admin(principal)
    counts: dict[str, int] = {}
    for user in _active_users(session):
        for dept in set(user.departments):
            counts[dept] = counts.get(dept, 0) + 1
    known = known_departments(catalogue)
    rows = [DepartmentRow(d, name, tuple(sorted((p for p in catalogue.procedures.values() if p.department == d),
                                                key=lambda p: p.id)), counts.get(d, 0), True)
            for d, name in known.items()]
    rows += [DepartmentRow(d, "", (), n, False) for d, n in sorted(counts.items()) if d not in known]
    return rows


@dataclass(frozen=True)
class ProcedureRow:
    procedure: Procedure
    routes: tuple[str, ...]
    my_numbers_sent: bool


def procedure_overview(principal: Principal, catalogue: ProcedureCatalogue,
                       routes: Sequence[Route]) -> list[ProcedureRow]:
    require_admin(principal)
    return [ProcedureRow(p, tuple(r.name for r in routes if r.serves(p.id)),
                         any(r.my_number_entitled for r in routes if r.serves(p.id)))
            for p in sorted(catalogue.procedures.values(), key=lambda p: (p.department, p.id))]


@dataclass(frozen=True)
class RouteRow:
    name: str
    #: (procedure id, its catalogue name or ``None`` when the catalogue does not list it)
    procedures: tuple[tuple[str, str | None], ...]
    every_procedure: bool
    kind: str
    #: ``scheme://host[:port]`` for http (no path, no query: they may carry tokens), the directory for file
    destination: str
    format: str
    my_number_entitled: bool
    ca_file: str | None
    timeouts: Timeouts
    retry: RetryPolicy


def _destination(route: Route) -> str:
    if route.kind != "http":
        return route.target
    url = urlsplit(route.target)
    return f"{url.scheme}://{url.netloc.rpartition('@')[2]}"


def route_overview(principal: Principal, routes: Sequence[Route], catalogue: ProcedureCatalogue) -> list[RouteRow]:
    require_admin(principal)
    rows = []
    for r in routes:
        procs = tuple((p, catalogue.procedures[p].name if p in catalogue.procedures else None)
                      for p in sorted(r.procedures) if p != "*")
        rows.append(RouteRow(r.name, procs, "*" in r.procedures, r.kind, _destination(r), r.format,
                             r.my_number_entitled, str(r.ca_file) if r.ca_file else None, r.timeouts, r.retry))
    return rows
