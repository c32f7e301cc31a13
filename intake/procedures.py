"""The ward's procedure catalogue: which 手続ID it accepts and which department (所管課) owns each.

A JSON file (``SHINSEI_INTAKE_PROCEDURES_FILE``)::

    {"procedures": [{"id": "KOSODATE-JIDOTEATE-NINTEI", "name": "児童手当 認定請求",
                     "department": "kodomo-katei", "department_name": "子ども家庭支援部 子ども家庭課",
                     "standard_days": 20, "successors": ["KOSODATE-JIDOTEATE-NINTEI-R8"]}],
     "closed_days": ["2026-12-28"], "open_days": []}

``standard_days`` is the procedure's 標準処理期間 in business days (行政手続法 第6条), counted from
the day after the portal's 到達日時 (:mod:`intake.applications.deadlines`); without it a procedure
has no due date. ``closed_days`` / ``open_days`` adjust the ward's business days beyond weekends,
祝日 and 年末年始 (:class:`intake.workdays.WardCalendar`).

``successors`` (optional): 手続IDs whose packages may continue a chain of this procedure (the
portal re-issued the procedure under a new ID). A version of any other procedure naming the chain is
held (:mod:`intake.applications.admission`).

Without a file every procedure is accepted (development). A package for a procedure that is not in
the catalogue is stored and flagged for staff, never dropped, and is not forwarded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from intake.workdays import WardCalendar

__all__ = ["Procedure", "ProcedureCatalogue", "load_procedures"]


@dataclass(frozen=True)
class Procedure:
    id: str
    name: str
    department: str
    department_name: str
    #: 標準処理期間 in business days; ``None``: no due date
    standard_days: int | None = None
    successors: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProcedureCatalogue:
    procedures: dict[str, Procedure]
    configured: bool
    calendar: WardCalendar = field(default_factory=WardCalendar)

    def knows(self, procedure_id: str) -> bool:
        return not self.configured or procedure_id in self.procedures

    def continues(self, chain_procedure: str, version_procedure: str) -> bool:
        """May a package of ``version_procedure`` continue a chain of ``chain_procedure``?"""
        if version_procedure == chain_procedure:
            return True
        proc = self.procedures.get(chain_procedure)
        return proc is not None and version_procedure in proc.successors


def load_procedures(path: Path | None) -> ProcedureCatalogue:
    if path is None:
        return ProcedureCatalogue({}, configured=False)
    raw = json.loads(path.read_text(encoding="utf-8"))
    items = {}
    for p in raw["procedures"]:
        successors = p.get("successors", [])
        if not isinstance(successors, list) or not all(isinstance(x, str) for x in successors):
            raise ValueError(f"procedure {p.get('id')!r}: successors must be a list of 手続IDs")
        proc = Procedure(str(p["id"]), str(p["name"]), str(p["department"]), str(p.get("department_name", "")),
                         _standard_days(p), frozenset(successors))
        if proc.id in items:
            raise ValueError(f"procedure {proc.id!r} is listed twice")
        items[proc.id] = proc
    calendar = WardCalendar.of(_days(raw, "closed_days"), _days(raw, "open_days"))
    return ProcedureCatalogue(items, configured=True, calendar=calendar)


def _standard_days(p: dict[str, Any]) -> int | None:
    value = p.get("standard_days")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 730:
        raise ValueError(f"procedure {p.get('id')!r}: standard_days must be a whole number of business days, 1-730")
    return value


def _days(raw: dict[str, Any], key: str) -> list[date]:
    values = raw.get(key, [])
    if not isinstance(values, list):
        raise ValueError(f"{key} must be a list of YYYY-MM-DD dates")
    try:
        return [date.fromisoformat(str(v)) for v in values]
    except ValueError:
        raise ValueError(f"{key} must be a list of YYYY-MM-DD dates") from None
