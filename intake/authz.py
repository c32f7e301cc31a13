"""Authorisation: who is acting, with which roles, for which departments, from which terminal.

A leaf: it imports only the models, the procedure catalogue and :mod:`status` (for the role
names), so every domain may depend on it and it depends on none of them.

* **roles** (:class:`status.Role`) decide the functions: ``viewer`` reads applications,
  ``reviewer`` and ``department_admin`` also change status, set 宛名番号 and export the list as CSV,
  ``department_admin`` also re-queues failed forwards of its departments, ``auditor`` reads the
  access log only, ``system_admin`` sees operational counts and the outbox of every department but no
  application data, manages staff accounts and runs linkage imports (counts only on screen);
* **departments** decide the records: a procedure belongs to the department the procedure catalogue
  names (:mod:`intake.procedures`); a procedure missing from a configured catalogue belongs to
  :data:`UNASSIGNED`; without a catalogue (development) every procedure belongs to :data:`ALL`;
* **permissions** on top of roles: the My Number reveal (P14, :data:`REVEAL_PERMISSION`) is granted
  per person; setting a 宛名番号 (:data:`SET_ATENA_PERMISSION`) comes with the roles that work cases.

Refusals are :class:`intake.errors.AccessDenied` with a typed cause; a record out of scope is
:class:`intake.errors.NotFound`, exactly like a missing one (:func:`load_for`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, not_, or_, true
from sqlalchemy.orm import Session

from intake.errors import AccessDenied, Denial, NotFound
from intake.models import Application
from intake.procedures import ProcedureCatalogue
from status import Actor as StatusActor
from status import Role

__all__ = [
    "ADMIN_ROLES",
    "ALL",
    "APPLICATION_ROLES",
    "AUDIT_ROLES",
    "CHANGE_ROLES",
    "EXPORT_ROLES",
    "LINKAGE_IMPORT_ROLES",
    "OUTBOX_ROLES",
    "REVEAL_PERMISSION",
    "ROLE_LABELS",
    "ROLE_ORDER",
    "SET_ATENA_PERMISSION",
    "STAFF_ROLES",
    "UNASSIGNED",
    "Actor",
    "Principal",
    "department_of",
    "load_for",
]

#: The department of every procedure when no catalogue is configured (development).
ALL = "all"
#: The department of procedures a configured catalogue does not list (stored, flagged, not forwarded).
UNASSIGNED = "unassigned"

APPLICATION_ROLES = frozenset({Role.VIEWER, Role.REVIEWER, Role.DEPARTMENT_ADMIN})
CHANGE_ROLES = frozenset({Role.REVIEWER, Role.DEPARTMENT_ADMIN})
AUDIT_ROLES = frozenset({Role.AUDITOR})
#: The CSV export of the application list (logged): the roles that work cases, not viewer or auditor.
EXPORT_ROLES = frozenset({Role.REVIEWER, Role.DEPARTMENT_ADMIN})
OUTBOX_ROLES = frozenset({Role.DEPARTMENT_ADMIN, Role.SYSTEM_ADMIN})
#: Importing 番号紐付情報 (ward-wide, counts only on screen) and managing staff accounts.
LINKAGE_IMPORT_ROLES = frozenset({Role.SYSTEM_ADMIN})
ADMIN_ROLES = frozenset({Role.SYSTEM_ADMIN})
STAFF_ROLES = frozenset(Role) - {Role.SYSTEM}

#: The roles' names as staff read them.
ROLE_LABELS: Mapping[Role, str] = {
    Role.VIEWER: "閲覧者",
    Role.REVIEWER: "審査担当",
    Role.DEPARTMENT_ADMIN: "所属管理者",
    Role.SYSTEM_ADMIN: "システム管理者",
    Role.AUDITOR: "監査担当",
}
#: The order roles are listed in on every page.
ROLE_ORDER: tuple[Role, ...] = (Role.VIEWER, Role.REVIEWER, Role.DEPARTMENT_ADMIN, Role.AUDITOR, Role.SYSTEM_ADMIN)


#: Reading a My Number in the clear (the one gate is :func:`intake.mynumbers.service.reveal_my_number`).
REVEAL_PERMISSION = "my_number.reveal"
#: Setting a chain's 宛名番号 by hand (:func:`intake.linkage.service.set_atena_manually`).
SET_ATENA_PERMISSION = "linkage.set_atena"


@dataclass(frozen=True)
class Actor:
    """Who does something, from where, as the access log records it; ``permissions`` are checked by
    the services that guard personal data (a staff member's, or a machine's such as forwarding)."""

    staff_id: str
    department: str
    terminal: str
    permissions: frozenset[str] = frozenset()

    def require(self, permission: str, what: str) -> None:
        if permission not in self.permissions:
            raise AccessDenied(f"{what} needs the {permission} permission", cause=Denial.PERMISSION)


def department_of(procedure_id: str, catalogue: ProcedureCatalogue) -> str:
    if not catalogue.configured:
        return ALL
    proc = catalogue.procedures.get(procedure_id)
    return proc.department if proc is not None else UNASSIGNED


@dataclass(frozen=True)
class Principal:
    """An authenticated member of staff for one request. Built by the login session, never by a form."""

    login: str
    display_name: str
    roles: frozenset[Role]
    departments: frozenset[str]
    terminal: str
    may_reveal_my_number: bool
    catalogue: ProcedureCatalogue

    def __post_init__(self) -> None:
        if Role.SYSTEM in self.roles or not self.roles <= STAFF_ROLES:
            raise ValueError("staff cannot hold the system role")

    def has_any(self, roles: frozenset[Role]) -> bool:
        return bool(self.roles & roles)

    def require(self, roles: frozenset[Role], what: str) -> None:
        """:class:`AccessDenied` (cause ``ROLE``) unless one of ``roles`` is held."""
        if not self.has_any(roles):
            raise AccessDenied(f"this role does not {what}", cause=Denial.ROLE)

    @property
    def reads_applications(self) -> bool:
        return self.has_any(APPLICATION_ROLES)

    @property
    def department_label(self) -> str:
        """The 部署 written to the access log."""
        return ",".join(sorted(self.departments))[:128] or "-"

    def covers(self, procedure_id: str) -> bool:
        """Whether a record of ``procedure_id`` is in this user's departments."""
        return department_of(procedure_id, self.catalogue) in self.departments

    def procedure_clause(self) -> ColumnElement[bool]:
        """The SQL condition on :class:`Application` equivalent to :meth:`covers`."""
        if not self.catalogue.configured:
            return true() if ALL in self.departments else false()
        mine = [p.id for p in self.catalogue.procedures.values() if p.department in self.departments]
        clauses: list[ColumnElement[bool]] = []
        if mine:
            clauses.append(Application.procedure_id.in_(mine))
        if UNASSIGNED in self.departments:
            clauses.append(not_(Application.procedure_id.in_(list(self.catalogue.procedures))))
        return or_(*clauses) if clauses else false()

    @property
    def permissions(self) -> frozenset[str]:
        perms: set[str] = set()
        if self.has_any(CHANGE_ROLES):
            perms.add(SET_ATENA_PERMISSION)
        if self.may_reveal_my_number and self.reads_applications:
            perms.add(REVEAL_PERMISSION)
        return frozenset(perms)

    def access_actor(self) -> Actor:
        """The actor the access log and the permission-checking services take."""
        return Actor(staff_id=self.login, department=self.department_label, terminal=self.terminal,
                     permissions=self.permissions)

    def status_actor(self) -> StatusActor:
        return StatusActor(id=self.login, roles=self.roles)


def load_for(session: Session, principal: Principal, application_id: int, *, lock: bool = False) -> Application:
    """The application if it exists and is in ``principal``'s departments, else :class:`NotFound`
    (one answer for both, so ids cannot be probed across departments)."""
    if not principal.reads_applications:
        raise NotFound("no such application")
    app = session.get(Application, application_id, with_for_update=lock or None, populate_existing=lock)
    if app is None or not principal.covers(app.procedure_id):
        raise NotFound("no such application")
    return app
