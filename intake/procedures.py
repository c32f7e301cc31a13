"""The ward's procedure catalogue: which 手続ID it accepts and which department (所管課) owns each.

A JSON file (``SHINSEI_INTAKE_PROCEDURES_FILE``)::

    {"procedures": [{"id": "KOSODATE-JIDOTEATE-NINTEI", "name": "児童手当 認定請求",
                     "department": "kodomo-katei", "department_name": "子ども家庭支援部 子ども家庭課",
                     "successors": ["KOSODATE-JIDOTEATE-NINTEI-R8"]}]}

``successors`` (optional): 手続IDs whose packages may continue a chain of this procedure (the
portal re-issued the procedure under a new ID). A version of any other procedure naming the chain is
held (:mod:`intake.applications.admission`).

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
    successors: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProcedureCatalogue:
    procedures: dict[str, Procedure]
    configured: bool

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
                         frozenset(successors))
        if proc.id in items:
            raise ValueError(f"procedure {proc.id!r} is listed twice")
        items[proc.id] = proc
    return ProcedureCatalogue(items, configured=True)
