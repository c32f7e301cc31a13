"""Shared fixtures: one pinned clock, one test PKI per session, trust configuration, packages.

Time is pinned (NOW); serial numbers and residents come from seeded RNGs. RSA keys are random,
which does not change any outcome.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from signature.testing.builder import ApplicationSpec, SigningOptions, build_package
from signature.testing.pki import Issued, Resident, TestPKI, sample_residents
from signature.testing.samples import sample_spec
from signature.verify import TrustConfig
from tests.support.browser import chromium_watchdog as browser_watchdog
from tests.support.parallel import make_scheduler

# No environment means production rules (issue 16). The suite builds its settings for development
# explicitly; a test of production rules sets environment="production" itself.
os.environ.setdefault("SHINSEI_INTAKE_ENVIRONMENT", "development")
os.environ.setdefault("SHINSEI_RELAY_ENVIRONMENT", "development")

JST = timezone(timedelta(hours=9))
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=JST)


@dataclass(frozen=True)
class World:
    """A test PKI, its files on disk, current CRLs, and a few residents with certificates."""

    pki: TestPKI
    dir: Path
    residents: list[Resident]
    signer: Issued  # residents[0], issued by the current root generation directly
    revoked_signer: Issued  # residents[1], listed in the current CRL
    jpki_roots: Path
    portal_roots: Path
    crl_dir: Path
    intermediates: Path

    def trust(self, *, crls: bool = True) -> TrustConfig:
        return TrustConfig.load(
            jpki_roots=[self.jpki_roots], portal_roots=[self.portal_roots],
            crls=[self.crl_dir] if crls else [], intermediates=[self.intermediates],
        )


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("world")
    pki = TestPKI.generate(now=NOW, seed=20261125)
    residents = sample_residents(random.Random(7), 4)
    signer = pki.issue_signer(residents[0])
    revoked = pki.issue_signer(residents[1])
    roots = base / "jpki-roots"
    roots.mkdir()
    for i, root in enumerate(pki.jpki_roots):
        (roots / f"jpki-root-g{i + 1}.pem").write_bytes(root.cert_pem())
    portal = base / "portal-roots"
    portal.mkdir()
    (portal / "portal-root.pem").write_bytes(pki.portal_root.cert_pem())
    crl_dir = base / "crl"
    crl_dir.mkdir()
    window = {"this_update": NOW - timedelta(hours=6), "next_update": NOW + timedelta(days=1)}
    for i, root in enumerate(pki.jpki_roots):
        revoked_list = [(revoked.cert.serial_number, NOW - timedelta(days=3))] if root is pki.jpki_roots[1] else []
        (crl_dir / f"jpki-g{i + 1}.crl").write_bytes(pki.issue_crl(root, revoked_list, **window))
    (crl_dir / "jpki-intermediate.crl").write_bytes(pki.issue_crl(pki.jpki_intermediate, [], **window))
    intermediates = base / "jpki-intermediate.pem"
    intermediates.write_bytes(pki.jpki_intermediate.cert_pem())
    return World(pki, base, residents, signer, revoked, roots, portal, crl_dir, intermediates)


@pytest.fixture(scope="session")
def trust(world: World) -> TrustConfig:
    return world.trust()


@pytest.fixture
def spec(world: World) -> ApplicationSpec:
    return sample_spec(
        world.residents[0], random.Random(3), receipt_number="20261125-0000000001",
        arrived_at=NOW - timedelta(minutes=30), user_cert_serial="1A2B3C4D5E6F",
    )


PackageFactory = Callable[..., bytes]


@pytest.fixture
def make_package(world: World, spec: ApplicationSpec) -> PackageFactory:
    """``make_package(spec=…, signer=…, options=…, tool=…, folder=…, cp932_names=…)``."""

    def make(
        *, spec: ApplicationSpec = spec, signer: Issued | None = None,
        options: SigningOptions | None = None, **kwargs: object,
    ) -> bytes:
        return build_package(spec, signer=signer or world.signer, portal=world.pki.portal_server,
                             options=options, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """One worker per test file, the machine-wide tests together (tests/support/parallel.py)."""
    return make_scheduler(config, log)


#: The names of the threads our services start (probes, intake/crls/watcher.py, tlsreload,
#: dmz_relay/push.py, intake/linkage/jobs.py).
SERVICE_THREADS = ("readiness", "crl-watch", "crl-reverify", "tls-reload", "relay-pull", "relay-status",
                   "relay-crls", "linkage-import-")


@pytest.fixture(scope="module", autouse=True)
def no_service_thread_outlives_its_module() -> Iterator[None]:
    """A service thread a test module started ends with the module. One left behind keeps working on
    a server, a database or files that are gone for the rest of the worker's session: CI's log once
    filled with a dropped database's errors from readiness schedules nobody stopped."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and t.name.startswith(SERVICE_THREADS)]
    deadline = time.monotonic() + 15.0
    for thread in left:  # stopping threads finish their current round first (bounded)
        thread.join(max(0.0, deadline - time.monotonic()))
    assert [t.name for t in left if t.is_alive()] == [], "service threads left running by this module"


#: Longer than any browser test takes on a loaded 2-core machine (the longest takes ~15 s).
BROWSER_TEST_BOUND_S = 300.0


@pytest.fixture
def chromium_watchdog() -> Iterator[None]:
    """For the browser tests (``pytestmark``): a test still running after BROWSER_TEST_BOUND_S gets
    its Chromium killed and fails, instead of hanging the suite in a Playwright call that has no
    timeout (tests/support/browser.py)."""
    with browser_watchdog(BROWSER_TEST_BOUND_S) as fired:
        yield
    assert not fired.is_set(), f"the test ran past {BROWSER_TEST_BOUND_S} s: its Chromium was killed"
