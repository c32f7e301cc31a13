"""Who gets which daily mail, from where, how: built once from the settings and the procedure catalogue.

The departments file (``SHINSEI_INTAKE_MAIL__DEPARTMENTS_FILE``), UTF-8 JSON::

    {"departments": [
      {"id": "kodomo-katei", "name": "子ども家庭支援部 子ども家庭課",
       "recipients": ["kodomo-katei@ward.example.lg.jp"]},
      {"id": "joho-seisaku", "name": "情報政策課", "recipients": ["joho@ward.example.lg.jp"],
       "unassigned": true}
    ]}

A department owns the procedures that the catalogue (:mod:`intake.procedures`) gives its ``id`` as
``department``: there is one source for "who owns a procedure". The one department with
``"unassigned": true`` also gets the procedures nobody else owns (not in the catalogue, or owned by a
department without mail), so that every application is counted in some mail.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import date, time
from email.errors import HeaderParseError
from email.headerregistry import Address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from intake.mail.errors import MailConfigError, UnknownDepartment
from intake.procedures import Procedure, ProcedureCatalogue
from intake.settings import IntakeSettings, MailSettings
from intake.workdays import WardCalendar

__all__ = [
    "DEPARTMENT_ID_RE",
    "DEV_DEPARTMENT",
    "Department",
    "MailConfig",
    "RetryPolicy",
    "load_mail_config",
]

_log = logging.getLogger(__name__)

#: A department id is part of the Message-ID (dot-atom text) and of URLs and file names.
DEPARTMENT_ID_RE = re.compile(r"[A-Za-z0-9]+(?:[-_.][A-Za-z0-9]+)*", re.ASCII)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.ASCII)
_KEYS = {"id", "name", "recipients", "unassigned"}

#: The development default without a departments file: everything to one local address.
DEV_DEPARTMENT = {"id": "all", "name": "全部署（開発用）", "recipients": ["shinsei-dev@localhost"], "unassigned": True}


@dataclass(frozen=True)
class Department:
    id: str
    name: str
    recipients: tuple[str, ...]
    #: 手続ID this department owns (from the catalogue), in catalogue order.
    procedures: tuple[str, ...]
    #: Also gets the procedures nobody else owns.
    unassigned: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """In-call retries of one mail (tenacity): ``attempts`` in all, waits ``min(cap, base·2^(k-1))``."""

    attempts: int = 4
    base_seconds: float = 2.0
    cap_seconds: float = 60.0


@dataclass(frozen=True)
class MailConfig:
    departments: tuple[Department, ...]
    catalogue: ProcedureCatalogue
    sender: str
    sender_name: str
    message_id_domain: str
    send_time: time
    catch_up_days: int
    start_date: date | None
    staff_ui_base_url: str | None
    retry: RetryPolicy
    overdue_after_minutes: int
    #: business days of the ward (``calendar="business"``); None: a mail every calendar day
    calendar: WardCalendar | None = None
    #: dates in 和暦
    wareki: bool = False

    def department(self, department_id: str) -> Department:
        for d in self.departments:
            if d.id == department_id:
                return d
        raise UnknownDepartment(department_id)

    def owner(self, procedure_id: str | None) -> Department | None:
        """The department whose mail counts ``procedure_id`` (None: nobody's)."""
        for d in self.departments:
            if procedure_id is not None and procedure_id in d.procedures:
                return d
        return next((d for d in self.departments if d.unassigned), None)

    def procedure(self, procedure_id: str) -> Procedure | None:
        return self.catalogue.procedures.get(procedure_id)


def load_mail_config(settings: IntakeSettings, catalogue: ProcedureCatalogue) -> MailConfig:
    """Read and check the departments file and the mail settings; :class:`MailConfigError` names the
    department and field of the first problem."""
    mail = settings.mail
    if mail.departments_file is not None:
        raw = _read_json(mail.departments_file)
    elif settings.environment == "production":
        raise MailConfigError("a departments file is required in production", field="departments_file")
    else:
        raw = {"departments": [DEV_DEPARTMENT]}
    departments = _departments(raw, catalogue)
    _check_address(mail.sender, field="sender")
    domain = mail.message_id_domain or mail.sender.rpartition("@")[2]
    if not _DOMAIN_RE.fullmatch(domain):
        raise MailConfigError("not a domain usable in a Message-ID", field="message_id_domain")
    base = _base_url(mail)
    owned = {p for d in departments for p in d.procedures}
    orphans = sorted({p.department for p in catalogue.procedures.values() if p.id not in owned})
    if orphans:
        fallback = next((d.id for d in departments if d.unassigned), None)
        _log.warning("departments %s own procedures but get no daily mail; their counts go to %s", orphans,
                     repr(fallback) if fallback else "NOBODY (set \"unassigned\": true on one department)")
    return MailConfig(
        departments=departments, catalogue=catalogue, sender=mail.sender, sender_name=mail.sender_name,
        message_id_domain=domain, send_time=mail.send_time, catch_up_days=mail.catch_up_days,
        start_date=mail.start_date, staff_ui_base_url=base,
        retry=RetryPolicy(mail.retry_attempts, mail.retry_base_seconds, mail.retry_cap_seconds),
        overdue_after_minutes=mail.overdue_after_minutes,
        calendar=catalogue.calendar if mail.calendar == "business" else None, wareki=mail.wareki,
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MailConfigError(f"cannot read the departments file ({type(exc).__name__})",
                              field="departments_file") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise MailConfigError(f"the departments file is not UTF-8 JSON ({exc})", field="departments_file") from exc


def _departments(raw: Any, catalogue: ProcedureCatalogue) -> tuple[Department, ...]:
    if not isinstance(raw, dict) or set(raw) != {"departments"} or not isinstance(raw["departments"], list):
        raise MailConfigError('expected {"departments": [...]}', field="departments_file")
    result: list[Department] = []
    for i, item in enumerate(raw["departments"]):
        if not isinstance(item, dict):
            raise MailConfigError("expected an object", field=f"departments[{i}]")
        dept_id = item.get("id")
        if not isinstance(dept_id, str) or len(dept_id) > 64 or not DEPARTMENT_ID_RE.fullmatch(dept_id):
            raise MailConfigError("1–64 of A-Z a-z 0-9 with single - _ . between them", field=f"departments[{i}].id")
        unknown = set(item) - _KEYS
        if unknown:
            raise MailConfigError(f"unknown key(s) {sorted(unknown)}", department=dept_id)
        if any(d.id == dept_id for d in result):
            raise MailConfigError("listed twice", department=dept_id)
        recipients = item.get("recipients")
        if not isinstance(recipients, list) or not recipients or not all(isinstance(r, str) for r in recipients):
            raise MailConfigError("a non-empty list of addresses", department=dept_id, field="recipients")
        for r in recipients:
            _check_address(r, field="recipients", department=dept_id)
        unassigned = item.get("unassigned", False)
        if not isinstance(unassigned, bool):
            raise MailConfigError("true or false", department=dept_id, field="unassigned")
        owned = tuple(p.id for p in catalogue.procedures.values() if p.department == dept_id)
        name = item.get("name") or next((catalogue.procedures[p].department_name for p in owned
                                         if catalogue.procedures[p].department_name), dept_id)
        if not isinstance(name, str):
            raise MailConfigError("a string", department=dept_id, field="name")
        result.append(Department(dept_id, name, tuple(dict.fromkeys(recipients)), owned, unassigned))
    if sum(d.unassigned for d in result) > 1:
        raise MailConfigError('at most one department may have "unassigned": true', field="departments_file")
    return tuple(result)


def _check_address(value: str, *, field: str, department: str | None = None) -> None:
    try:
        address = Address(addr_spec=value)
    except (HeaderParseError, IndexError, ValueError) as exc:
        raise MailConfigError("not an e-mail address", department=department, field=field) from exc
    if not address.username or not address.domain or address.addr_spec != value:
        raise MailConfigError("not an e-mail address", department=department, field=field)


def _base_url(mail: MailSettings) -> str | None:
    if not mail.staff_ui_base_url:
        return None
    parts = urlsplit(mail.staff_ui_base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise MailConfigError("an http(s) URL without query or fragment", field="staff_ui_base_url")
    return mail.staff_ui_base_url.rstrip("/")
