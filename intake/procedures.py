"""The ward's procedure catalogue: which 手続ID it accepts, which department (所管課) owns each, and
which form fields carry a My Number under another name than 個人番号.

A JSON file (``SHINSEI_INTAKE_PROCEDURES_FILE``)::

    {"procedures": [{"id": "KOSODATE-JIDOTEATE-NINTEI", "name": "児童手当 認定請求",
                     "department": "kodomo-katei", "department_name": "子ども家庭支援部 子ども家庭課",
                     "standard_days": 20, "successors": ["KOSODATE-JIDOTEATE-NINTEI-R8"],
                     "my_number_paths": ["//配偶者/番号"]}],
     "closed_days": ["2026-12-28"], "open_days": []}

``standard_days`` is the procedure's 標準処理期間 in business days (行政手続法 第6条), counted from
the day after the portal's 到達日時 (:mod:`intake.applications.deadlines`); without it a procedure
has no due date. ``closed_days`` / ``open_days`` adjust the ward's business days beyond weekends,
祝日 and 年末年始 (:class:`intake.workdays.WardCalendar`).

``successors`` (optional): 手続IDs whose packages may continue a chain of this procedure (the
portal re-issued the procedure under a new ID). A version of any other procedure naming the chain is
held (:mod:`intake.applications.admission`).

``my_number_paths`` (optional): form fields that hold a My Number although their element is not
called 個人番号 (every element whose local name is 個人番号 is one anyway). ``/様式/世帯員/番号`` names
a path from the document element; ``//世帯員/番号`` an element ``番号`` under ``世帯員`` anywhere.
Steps are local names (no prefixes, predicates or wildcards): a namespace never hides a field.

A procedure with a key not named here is refused (a misspelt key must not silently mean "none").

Without a file every procedure is accepted (development). A package for a procedure that is not in
the catalogue is stored and flagged for staff, never dropped, and is not forwarded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from intake.workdays import WardCalendar

__all__ = ["MyNumberPaths", "PathSyntaxError", "Procedure", "ProcedureCatalogue", "load_procedures"]

# One step of a declared path: an element's local name (no prefix, predicate, axis or wildcard).
_STEP = re.compile(r"[^\s/\[\]@:*()=\"'|,.]+")
_KEYS = {"id", "name", "department", "department_name", "standard_days", "successors", "my_number_paths"}


class PathSyntaxError(ValueError):
    """A declared My Number path is not ``/a/b/c`` or ``//b/c`` of local names."""


@dataclass(frozen=True)
class MyNumberPaths:
    """Form fields a procedure declares as carrying a My Number (see the module's docstring)."""

    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for path in self.paths:
            steps = path[2:] if path.startswith("//") else path[1:] if path.startswith("/") else None
            if steps is None or not all(_STEP.fullmatch(step) for step in steps.split("/")):
                raise PathSyntaxError(f"not a My Number path of local names (/a/b or //a/b): {path!r}")

    def matches(self, chain: Sequence[str]) -> bool:
        """Whether an element whose local names from the root down to itself are ``chain`` is declared."""
        for path in self.paths:
            if path.startswith("//"):
                steps = path[2:].split("/")
                if len(chain) >= len(steps) and list(chain[-len(steps):]) == steps:
                    return True
            elif list(chain) == path[1:].split("/"):
                return True
        return False


@dataclass(frozen=True)
class Procedure:
    id: str
    name: str
    department: str
    department_name: str
    #: 標準処理期間 in business days; ``None``: no due date
    standard_days: int | None = None
    successors: frozenset[str] = frozenset()
    my_number_paths: MyNumberPaths = field(default_factory=MyNumberPaths)


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

    def my_number_paths(self, procedure_id: str) -> MyNumberPaths:
        """The procedure's declared My Number fields (none for a procedure the catalogue lacks)."""
        found = self.procedures.get(procedure_id)
        return found.my_number_paths if found is not None else MyNumberPaths()


def load_procedures(path: Path | None) -> ProcedureCatalogue:
    if path is None:
        return ProcedureCatalogue({}, configured=False)
    raw = json.loads(path.read_text(encoding="utf-8"))
    items = {}
    for p in raw["procedures"]:
        unknown = set(p) - _KEYS
        if unknown:
            raise ValueError(f"procedure {p.get('id')!r}: unknown key(s) {sorted(unknown)}")
        successors = p.get("successors", [])
        if not isinstance(successors, list) or not all(isinstance(x, str) for x in successors):
            raise ValueError(f"procedure {p.get('id')!r}: successors must be a list of 手続IDs")
        declared = p.get("my_number_paths", [])
        if not isinstance(declared, list) or not all(isinstance(d, str) for d in declared):
            raise ValueError(f"procedure {p.get('id')!r}: my_number_paths must be a list of paths")
        proc = Procedure(str(p["id"]), str(p["name"]), str(p["department"]), str(p.get("department_name", "")),
                         _standard_days(p), frozenset(successors), MyNumberPaths(tuple(declared)))
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
