"""Relay fixtures: the real intake app on SQLite served over HTTP, a relay assembled from parts with
a pinned clock, recorded sleeps and seeded jitter, and helpers to look into both.

Nothing here sleeps: waits are recorded by :class:`Sleeps`; servers are started on their own
"started" flags (tests/support/servers.py).
"""

from __future__ import annotations

import contextlib
import random
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from dmz_relay.runtime import Relay
from dmz_relay.settings import RelaySettings
from intake.api import create_app as create_intake_app
from intake.db import Base, make_engine, make_session_factory
from intake.models import Delivery
from intake.runtime import Runtime
from intake.settings import IntakeSettings
from malware import NullScanner, Scanner
from signature.mynumber import is_valid_my_number
from tests.conftest import NOW, World
from tests.support.servers import serve_in_thread


class FixedClock:
    """A pinned clock tests advance explicitly."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Sleeps:
    """Records the waits the code under test asked for, instead of waiting."""

    waits: list[float] = field(default_factory=list)
    on_sleep: Callable[[float], None] | None = None

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)


@dataclass
class Intake:
    """The real intake app on SQLite, served by uvicorn in a thread."""

    url: str
    engine: Engine
    runtime: Runtime

    def deliveries(self) -> int:
        return count_deliveries(self.engine)

    def session(self) -> Any:
        return make_session_factory(self.engine)()


def count_deliveries(engine: Engine) -> int:
    with make_session_factory(engine)() as s:
        return int(s.scalar(select(func.count()).select_from(Delivery)) or 0)


@pytest.fixture
def intake_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def intake_runtime(world: World, tmp_path: Path) -> Runtime:
    settings = IntakeSettings(
        var_dir=tmp_path / "intake-var", jpki_roots=[world.jpki_roots], portal_roots=[world.portal_roots],
        crls=[world.crl_dir], jpki_intermediates=[world.intermediates],
    )
    return Runtime.from_settings(settings, clock=FixedClock(NOW))


@pytest.fixture
def intake(intake_engine: Engine, intake_runtime: Runtime) -> Iterator[Intake]:
    app = create_intake_app(intake_runtime, make_session_factory(intake_engine))
    with serve_in_thread(app) as url:
        yield Intake(url, intake_engine, intake_runtime)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def relay_clock() -> FixedClock:
    return FixedClock(NOW)


def relay_settings(world: World, tmp_path: Path, intake_url: str, **overrides: Any) -> RelaySettings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "relay", "intake_url": intake_url, "scanner": "none",
        "jpki_roots": [world.jpki_roots], "portal_roots": [world.portal_roots], "crls": [world.crl_dir],
        "jpki_intermediates": [world.intermediates], "forward_attempts": 3, "max_package_bytes": 200_000,
        "retry_after": 7,
    }
    values.update(overrides)
    return RelaySettings(**values)


RelayFactory = Callable[..., Relay]


@pytest.fixture
def make_relay(world: World, tmp_path: Path, sleeps: Sleeps, relay_clock: FixedClock) -> Iterator[RelayFactory]:
    """``make_relay(intake_url, scanner=…, portal_url=…, **settings)``: a relay built from parts."""
    built: list[Relay] = []

    def make(intake_url: str, *, scanner: Scanner | None = None, portal_url: str | None = None,
             intake_http: httpx.Client | None = None, **overrides: Any) -> Relay:
        if portal_url is not None:
            overrides.setdefault("portal_url", portal_url)
            overrides.setdefault("municipality_code", "131032")
            overrides.setdefault("portal_api_key", "0123456789abcdef0123456789abcdef")
        settings = relay_settings(world, tmp_path, intake_url, **overrides)
        relay = Relay.build(
            settings, trust=world.trust(), scanner=scanner or NullScanner(),
            intake_http=intake_http or httpx.Client(base_url=intake_url, timeout=30, trust_env=False),
            portal_http=httpx.Client(base_url=portal_url, timeout=30, trust_env=False) if portal_url else None,
            clock=relay_clock, sleep=sleeps, rng=random.Random(5),
        )
        built.append(relay)
        return relay

    yield make
    for relay in built:
        relay.close()


def push(relay_url: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(f"{relay_url}/api/v1/packages", content=body, timeout=60,
                      headers={"Content-Type": "application/zip", **headers})


# --- canaries: what must never reach the relay's disk or logs --------------------------------------

_TWELVE = re.compile(rb"(?<![0-9])[0-9]{12}(?![0-9])")


def my_numbers_in(package: bytes) -> set[str]:
    """Every valid-checksum 12-digit number in the package's files."""
    found: set[str] = set()
    with zipfile.ZipFile(BytesIO(package)) as zf:
        for info in zf.infolist():
            for match in _TWELVE.findall(zf.read(info)):
                if is_valid_my_number(match.decode()):
                    found.add(match.decode())
    return found


def canaries(world: World, packages: list[bytes]) -> set[str]:
    """Names, kana, addresses of every test resident and every My Number in ``packages``."""
    words: set[str] = set()
    for r in world.residents:
        words.update({r.name, r.name_kana, r.address})
        words.update(w for w in (r.name_alt, r.address_alt) if w)
        # The family name alone is a canary too (a log line might hold part of a name).
        words.add(r.name.split("　")[0].split(" ")[0])
    for package in packages:
        words.update(my_numbers_in(package))
    return {w for w in words if len(w) >= 2}


def find_canaries(blobs: dict[str, bytes], words: set[str]) -> list[tuple[str, str]]:
    """(where, word) for every canary found in any of ``blobs`` (UTF-8, UTF-16 and CP932 forms)."""
    hits = []
    for where, blob in blobs.items():
        for word in words:
            forms = {word.encode("utf-8"), word.encode("utf-16-le")}
            with contextlib.suppress(UnicodeEncodeError):
                forms.add(word.encode("cp932"))
            if any(form in blob for form in forms):
                hits.append((where, word))
    return hits


def files_under(*roots: Path) -> dict[str, bytes]:
    out = {}
    for root in roots:
        if root.is_file():
            out[str(root)] = root.read_bytes()
            continue
        for path in root.rglob("*"):
            if path.is_file():
                out[str(path)] = path.read_bytes()
    return out
