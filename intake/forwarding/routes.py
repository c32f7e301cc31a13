"""Per-procedure routes to business systems, from a JSON configuration file (docs/intake.md).

A route says which procedures it serves, where their applications go (an HTTP endpoint or a file-drop
directory), in which body format (JSON or XML), whether the business system is entitled to My Numbers,
and its timeouts and retry schedule. Everything is checked when the file is loaded; unknown keys are
refused so that a typo (``"my_number_entitiled"``) cannot silently change behaviour.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from intake.forwarding.errors import RouteConfigError

__all__ = ["RetryPolicy", "Route", "Timeouts", "load_routes", "parse_routes"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Timeouts:
    """Seconds per phase of one HTTP request. Every phase has a finite timeout: none can be turned off."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 5.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value <= 600):
                raise RouteConfigError("must be a number of seconds in (0, 600]", field=f"timeouts.{name}")


@dataclass(frozen=True)
class RetryPolicy:
    """The outbox's schedule (between attempts) and the short in-call retries (within one attempt).

    Attempt *n* failing (n = 1, 2, …) schedules the next one after
    ``min(cap, base * factor**(n-1)) * (1 - jitter * r)`` with ``r`` in [0, 1) from the worker's random
    source; after ``max_attempts`` failed attempts the item is FAILED. Within one attempt, connect errors,
    timeouts and 502/503/504 are retried up to ``in_call_attempts`` requests in all, waiting
    ``min(in_call_cap, in_call_base * 2**(k-1))`` (same jitter) before request k+1.
    """

    max_attempts: int = 12
    backoff_base_seconds: float = 60.0
    backoff_factor: float = 2.0
    backoff_cap_seconds: float = 6 * 3600.0
    jitter: float = 0.2
    in_call_attempts: int = 3
    in_call_base_seconds: float = 0.5
    in_call_cap_seconds: float = 5.0

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, what: str) -> None:
            if not ok:
                raise RouteConfigError(what, field=f"retry.{name}")

        for name in ("max_attempts", "in_call_attempts"):
            value = getattr(self, name)
            check(name, isinstance(value, int) and not isinstance(value, bool), "must be an integer")
        for name in ("backoff_base_seconds", "backoff_factor", "backoff_cap_seconds", "jitter",
                     "in_call_base_seconds", "in_call_cap_seconds"):
            value = getattr(self, name)
            check(name, isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value),
                  "must be a number")
        check("max_attempts", 1 <= self.max_attempts <= 100, "must be in 1..100")
        check("in_call_attempts", 1 <= self.in_call_attempts <= 10, "must be in 1..10")
        check("backoff_base_seconds", self.backoff_base_seconds > 0, "must be > 0")
        check("backoff_factor", self.backoff_factor >= 1, "must be >= 1")
        check("backoff_cap_seconds", self.backoff_cap_seconds >= self.backoff_base_seconds,
              "must be >= backoff_base_seconds")
        check("jitter", 0 <= self.jitter < 1, "must be in [0, 1)")
        check("in_call_base_seconds", self.in_call_base_seconds >= 0, "must be >= 0")
        check("in_call_cap_seconds", 0 <= self.in_call_cap_seconds <= 60, "must be in [0, 60]")


@dataclass(frozen=True)
class Route:
    name: str
    procedures: frozenset[str]
    kind: Literal["http", "file"]
    target: str  # URL for http, directory for file
    format: Literal["json", "xml"] = "json"
    #: Only entitled routes receive My Numbers; others get the form with 個人番号 emptied and nothing else.
    my_number_entitled: bool = False
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: CA bundle (PEM) that verifies an https business system. Required for https: the intake never
    #: falls back to a public web CA bundle.
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise RouteConfigError("name must be 1-64 of A-Z a-z 0-9 _ - (it is part of idempotency keys "
                                   "and file names)", route=str(self.name), field="name")
        if self.kind not in ("http", "file"):
            raise RouteConfigError("must be 'http' or 'file'", route=self.name, field="kind")
        if self.format not in ("json", "xml"):
            raise RouteConfigError("must be 'json' or 'xml'", route=self.name, field="format")
        if not self.procedures or not all(isinstance(p, str) and p for p in self.procedures):
            raise RouteConfigError("must be a non-empty list of procedure ids (or '*')", route=self.name,
                                   field="procedures")
        if not isinstance(self.my_number_entitled, bool):
            raise RouteConfigError("must be true or false", route=self.name, field="my_number_entitled")
        if self.kind == "http":
            url = urlsplit(self.target)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise RouteConfigError("must be an http:// or https:// URL", route=self.name, field="target")
            if url.username or url.password:
                raise RouteConfigError("must not carry credentials", route=self.name, field="target")
            if url.scheme == "https" and self.ca_file is None:
                raise RouteConfigError("https needs ca_file (no fallback to a public CA bundle)",
                                       route=self.name, field="ca_file")
        else:
            if not Path(self.target).is_absolute():
                raise RouteConfigError("must be an absolute directory path", route=self.name, field="target")
            if self.ca_file is not None:
                raise RouteConfigError("only for https routes", route=self.name, field="ca_file")

    def serves(self, procedure_id: str) -> bool:
        return procedure_id in self.procedures or "*" in self.procedures


_ROUTE_KEYS = {"name", "procedures", "kind", "target", "format", "my_number_entitled", "timeouts", "retry",
               "ca_file"}
_TIMEOUT_KEYS = {"connect", "read", "write", "pool"}
_RETRY_KEYS = {"max_attempts", "backoff_base_seconds", "backoff_factor", "backoff_cap_seconds", "jitter",
               "in_call_attempts", "in_call_base_seconds", "in_call_cap_seconds"}


def _object(value: Any, *, route: str | None, field: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RouteConfigError("must be an object", route=route, field=field)
    unknown = sorted(set(value) - keys)
    if unknown:
        raise RouteConfigError(f"unknown keys {unknown}", route=route, field=field)
    return value


def parse_routes(raw: Mapping[str, Any], *, base_dir: Path | None = None) -> tuple[Route, ...]:
    """Routes from the decoded configuration. ``defaults`` (timeouts, retry) apply to every route
    and are overridden key by key by the route's own. Relative ``ca_file`` paths are taken from
    ``base_dir`` (the configuration file's directory)."""
    top = _object(dict(raw), route=None, field="(top level)", keys={"defaults", "routes"})
    defaults = _object(top.get("defaults", {}), route=None, field="defaults", keys={"timeouts", "retry"})
    default_timeouts = _object(defaults.get("timeouts", {}), route=None, field="defaults.timeouts",
                               keys=_TIMEOUT_KEYS)
    default_retry = _object(defaults.get("retry", {}), route=None, field="defaults.retry", keys=_RETRY_KEYS)
    items = top.get("routes")
    if not isinstance(items, list):
        raise RouteConfigError("must be a list", field="routes")
    routes: list[Route] = []
    for index, item in enumerate(items):
        label = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else f"#{index}"
        item = _object(item, route=label, field="(route)", keys=_ROUTE_KEYS)
        missing = sorted({"name", "procedures", "kind", "target"} - set(item))
        if missing:
            raise RouteConfigError(f"missing keys {missing}", route=label, field="(route)")
        timeouts = {**default_timeouts,
                    **_object(item.get("timeouts", {}), route=label, field="timeouts", keys=_TIMEOUT_KEYS)}
        retry = {**default_retry, **_object(item.get("retry", {}), route=label, field="retry", keys=_RETRY_KEYS)}
        procedures = item["procedures"]
        if not isinstance(procedures, list):
            raise RouteConfigError("must be a list", route=label, field="procedures")
        ca_file = item.get("ca_file")
        if ca_file is not None and not isinstance(ca_file, str):
            raise RouteConfigError("must be a path", route=label, field="ca_file")
        ca_path = None if ca_file is None else (base_dir / ca_file if base_dir else Path(ca_file))
        if ca_path is not None and not ca_path.is_file():
            raise RouteConfigError(f"{ca_path} is not a file", route=label, field="ca_file")
        try:
            route = Route(
                name=item["name"], procedures=frozenset(procedures), kind=item["kind"], target=str(item["target"]),
                format=item.get("format", "json"), my_number_entitled=item.get("my_number_entitled", False),
                timeouts=Timeouts(**timeouts), retry=RetryPolicy(**retry), ca_file=ca_path,
            )
        except RouteConfigError as exc:
            if exc.route is None:  # raised by Timeouts / RetryPolicy, which do not know the route
                raise RouteConfigError(exc.detail, route=label, field=exc.field) from exc
            raise
        except TypeError as exc:  # unhashable procedure ids and the like
            raise RouteConfigError("malformed route", route=label) from exc
        routes.append(route)
    names = [r.name for r in routes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RouteConfigError(f"route names must be unique: {duplicates}", field="routes")
    return tuple(routes)


def load_routes(path: Path | None) -> tuple[Route, ...]:
    """Read and check the routes file; ``None`` means forwarding is off (no routes)."""
    if path is None:
        return ()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RouteConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RouteConfigError(f"{path} is not UTF-8 JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise RouteConfigError(f"{path}: the top level must be an object with 'routes'")
    return parse_routes(raw, base_dir=path.parent)
