"""The ward's procedure catalogue: which 手続ID it accepts and which department (所管課) owns each.

A JSON file (``SHINSEI_INTAKE_PROCEDURES_FILE``)::

    {"procedures": [{"id": "KOSODATE-JIDOTEATE-NINTEI", "name": "児童手当 認定請求",
                     "department": "kodomo-katei", "department_name": "子ども家庭支援部 子ども家庭課"}]}

Without a file every procedure is accepted (development). A package for a procedure that is not in
the catalogue is stored and flagged for staff, never dropped, and is not forwarded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Procedure", "ProcedureCatalogue", "load_procedures"]


@dataclass(frozen=True)
class Procedure:
    id: str
    name: str
    department: str
    department_name: str


@dataclass(frozen=True)
class ProcedureCatalogue:
    procedures: dict[str, Procedure]
    configured: bool

    def knows(self, procedure_id: str) -> bool:
        return not self.configured or procedure_id in self.procedures


def load_procedures(path: Path | None) -> ProcedureCatalogue:
    if path is None:
        return ProcedureCatalogue({}, configured=False)
    raw = json.loads(path.read_text(encoding="utf-8"))
    items = {}
    for p in raw["procedures"]:
        proc = Procedure(str(p["id"]), str(p["name"]), str(p["department"]), str(p.get("department_name", "")))
        if proc.id in items:
            raise ValueError(f"procedure {proc.id!r} is listed twice")
        items[proc.id] = proc
    return ProcedureCatalogue(items, configured=True)
