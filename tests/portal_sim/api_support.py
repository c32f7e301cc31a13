"""Helpers for the portal API tests: a data directory in the generator's layout, a live server.

The data directory is written here directly from the documented contract (manifest.json,
applications.jsonl, packages/), independently of the generator, so the API is tested against the
contract rather than against whatever the generator happens to write. The server is real uvicorn
on 127.0.0.1 with an OS-chosen port, in a background thread, one per test module; each test mounts
its own app on it (:class:`Switchboard`) and talks to it with httpx.
"""

from __future__ import annotations

import hashlib
import json
import random
import ssl
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from portal_sim.api import ApiSettings, FixedClock, create_app
from signature.testing.builder import ApplicationSpec, build_package
from signature.testing.samples import sample_spec
from tests.conftest import NOW, World
from tests.support.servers import serve_in_thread

API_KEY = "0123456789abcdef0123456789abcdef"
MUNICIPALITY = "131032"


@dataclass(frozen=True)
class App:
    """One application of the test data set (what the list should say about it)."""

    receipt_number: str
    arrived_at: datetime
    kind: str
    first_receipt_number: str | None
    sha256: str
    size: int


# (receipt number suffix, minutes relative to NOW, kind, first receipt suffix). Two share an arrival
# time to exercise the tie-break by receipt number; the last two have not arrived at NOW.
PLAN: list[tuple[int, int, str, int | None]] = [
    (1, -180, "新規申請", None),
    (2, -150, "新規申請", None),
    (4, -120, "新規申請", None),
    (3, -120, "新規申請", None),
    (5, -90, "再申請", 1),
    (6, -60, "補正", 2),
    (7, -30, "取下げ", 4),
    (8, 30, "新規申請", None),
    (9, 60, "新規申請", None),
]


def receipt(suffix: int) -> str:
    return f"20261125-{suffix:010d}"


# Packages are immutable bytes; building them once per test PKI keeps each test's set-up to file writes.
_PACKAGES: dict[int, dict[int, tuple[ApplicationSpec, bytes]]] = {}


def _packages(world: World) -> dict[int, tuple[ApplicationSpec, bytes]]:
    if id(world) not in _PACKAGES:
        built = {}
        for suffix, minutes, kind, first in PLAN:
            spec = sample_spec(world.residents[0], random.Random(suffix), receipt_number=receipt(suffix),
                               arrived_at=NOW + timedelta(minutes=minutes), user_cert_serial="1A2B3C4D5E6F",
                               kind=kind, first_receipt_number=receipt(first) if first else None)
            built[suffix] = (spec, build_package(spec, signer=world.signer, portal=world.pki.portal_server))
        _PACKAGES[id(world)] = built
    return _PACKAGES[id(world)]


def write_data_dir(world: World, directory: Path) -> list[App]:
    """Write a data directory with one package per PLAN row; returns the rows sorted as the list is."""
    (directory / "packages").mkdir(parents=True)
    apps: list[App] = []
    lines: list[dict[str, Any]] = []
    packages = _packages(world)
    for suffix, minutes, kind, first in PLAN:
        number = receipt(suffix)
        arrived = NOW + timedelta(minutes=minutes)
        spec, data = packages[suffix]
        (directory / "packages" / f"{number}.zip").write_bytes(data)
        app = App(number, arrived, kind, receipt(first) if first else None, hashlib.sha256(data).hexdigest(),
                  len(data))
        apps.append(app)
        lines.append({
            "receipt_number": number, "arrived_at": arrived.isoformat(), "procedure_id": spec.procedure_id,
            "procedure_name": spec.procedure_name, "department": "子ども家庭支援課", "kind": kind,
            "first_receipt_number": app.first_receipt_number, "defect": None,
            "package": f"packages/{number}.zip", "sha256": app.sha256, "size": app.size,
            "resident_id": "R000001",
        })
    apps.sort(key=lambda a: (a.arrived_at, a.receipt_number))
    lines.sort(key=lambda d: (d["arrived_at"], d["receipt_number"]))
    manifest = {"format": 1, "seed": 1, "municipality_code": MUNICIPALITY, "api_key": API_KEY,
                "generated_for": NOW.date().isoformat(), "counts": {"applications": len(apps)}}
    (directory / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), "utf-8")
    (directory / "applications.jsonl").write_text(
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), "utf-8")
    return apps


class Switchboard:
    """An ASGI app that forwards to whichever app is mounted: one uvicorn server serves each test's own
    freshly built app in turn, so tests share a listening socket but never any portal state."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if app is None:
            raise RuntimeError("no portal app is mounted")
        await app(scope, receive, send)


@dataclass(frozen=True)
class Server:
    switchboard: Switchboard
    base_url: str


@contextmanager
def serving() -> Iterator[Server]:
    switchboard = Switchboard()
    with serve_in_thread(switchboard, ws="none", access_log=False) as base_url:
        yield Server(switchboard, base_url)


def login(client: httpx.Client, *, api_key: str = API_KEY, code: str = MUNICIPALITY) -> str:
    response = client.post("/api/v1/login", json={"municipality_code": code, "api_key": api_key})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Plain http on 127.0.0.1: one TLS context for every client instead of loading the CA bundle per test.
_PLAIN_HTTP = ssl.create_default_context()


@dataclass
class Harness:
    """A running portal over a fresh data directory, its pinned clock and an HTTP client."""

    client: httpx.Client
    clock: FixedClock
    data_dir: Path
    apps: list[App]

    def token(self) -> str:
        return login(self.client)

    def arrived(self) -> list[App]:
        now = self.clock.now()
        return [a for a in self.apps if a.arrived_at <= now]


def start_portal(stack: ExitStack, server: Server, world: World, data_dir: Path, **settings: Any) -> Harness:
    """Build a portal app on ``data_dir`` (written first if empty) and mount it on ``server`` until
    ``stack`` closes. Defaults: clock pinned at NOW, no rate limit, no faults; keyword arguments
    override :class:`ApiSettings` fields."""
    apps = write_data_dir(world, data_dir) if not (data_dir / "manifest.json").exists() else _read_apps(data_dir)
    clock = settings.pop("clock", None) or FixedClock(NOW)
    options: dict[str, Any] = {"clock": clock, "rate_limit": None, **settings}
    server.switchboard.app = create_app(data_dir, settings=ApiSettings(**options))
    stack.callback(setattr, server.switchboard, "app", None)
    client = stack.enter_context(httpx.Client(base_url=server.base_url, timeout=10, verify=_PLAIN_HTTP))
    return Harness(client, clock, data_dir, apps)


def _read_apps(data_dir: Path) -> list[App]:
    apps = []
    for line in (data_dir / "applications.jsonl").read_text("utf-8").splitlines():
        d = json.loads(line)
        apps.append(App(d["receipt_number"], datetime.fromisoformat(d["arrived_at"]), d["kind"],
                        d["first_receipt_number"], d["sha256"], d["size"]))
    return apps


#: ``start(**settings)`` builds a portal app over a fresh data directory on the shared server.
Start = Callable[..., Harness]
