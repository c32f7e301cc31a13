"""The ward's procedure catalogue: which 手続ID it accepts, which department (所管課) owns each, and
which form fields carry a My Number under another name than 個人番号.

A JSON file (``SHINSEI_INTAKE_PROCEDURES_FILE``)::

    {"procedures": [{"id": "KOSODATE-JIDOTEATE-NINTEI", "name": "児童手当 認定請求",
                     "department": "kodomo-katei", "department_name": "子ども家庭支援部 子ども家庭課",
                     "my_number_paths": ["//配偶者/番号"]}]}

``my_number_paths`` (optional): form fields that hold a My Number although their element is not
called 個人番号 (every element whose local name is 個人番号 is one anyway). ``/様式/世帯員/番号`` names
a path from the document element; ``//世帯員/番号`` an element ``番号`` under ``世帯員`` anywhere.
Steps are local names (no prefixes, predicates or wildcards): a namespace never hides a field.

Without a file every procedure is accepted (development). A package for a procedure that is not in
the catalogue is stored and flagged for staff, never dropped, and is not forwarded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MyNumberPaths", "PathSyntaxError", "Procedure", "ProcedureCatalogue", "load_procedures"]

# One step of a declared path: an element's local name (no prefix, predicate, axis or wildcard).
_STEP = re.compile(r"[^\s/\[\]@:*()=\"'|,.]+")
_KEYS = {"id", "name", "department", "department_name", "my_number_paths"}


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
    my_number_paths: MyNumberPaths = field(default_factory=MyNumberPaths)


@dataclass(frozen=True)
class ProcedureCatalogue:
    procedures: dict[str, Procedure]
    configured: bool

    def knows(self, procedure_id: str) -> bool:
        return not self.configured or procedure_id in self.procedures

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
        declared = p.get("my_number_paths", [])
        if not isinstance(declared, list) or not all(isinstance(d, str) for d in declared):
            raise ValueError(f"procedure {p.get('id')!r}: my_number_paths must be a list of paths")
        proc = Procedure(str(p["id"]), str(p["name"]), str(p["department"]), str(p.get("department_name", "")),
                         MyNumberPaths(tuple(declared)))
        if proc.id in items:
            raise ValueError(f"procedure {proc.id!r} is listed twice")
        items[proc.id] = proc
    return ProcedureCatalogue(items, configured=True)
