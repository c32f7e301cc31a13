"""Per-procedure routes to business systems, from a JSON configuration file (docs/operations.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Route", "load_routes"]


@dataclass(frozen=True)
class Route:
    name: str
    procedures: frozenset[str]
    kind: Literal["http", "file"]
    target: str  # URL for http, directory for file
    format: Literal["json", "xml"] = "json"
    #: Only entitled routes receive My Numbers; others get the form with 個人番号 emptied.
    my_number_entitled: bool = False

    def serves(self, procedure_id: str) -> bool:
        return procedure_id in self.procedures or "*" in self.procedures


def load_routes(path: Path | None) -> tuple[Route, ...]:
    if path is None:
        return ()
    raw = json.loads(path.read_text(encoding="utf-8"))
    routes = []
    for item in raw["routes"]:
        kind = item["kind"]
        fmt = item.get("format", "json")
        if kind not in ("http", "file") or fmt not in ("json", "xml"):
            raise ValueError(f"route {item.get('name')!r}: kind must be http|file and format json|xml")
        routes.append(Route(name=str(item["name"]), procedures=frozenset(item["procedures"]), kind=kind,
                            target=str(item["target"]), format=fmt,
                            my_number_entitled=bool(item.get("my_number_entitled", False))))
    names = [r.name for r in routes]
    if len(set(names)) != len(names):
        raise ValueError("route names must be unique")
    return tuple(routes)
