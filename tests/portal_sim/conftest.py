"""Fixtures of the generator tests: one generated data directory per session, verified once.

The generation is small (12 residents, 80 applications) but covers every card history (the
pattern repeats every 10 residents) and every defect kind (15 % defective, kinds in rotation).
Derived RSA keys are cached in a session directory shared by the tests that generate.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from portal_sim.datadir import DataDir
from portal_sim.generate import generate
from signature.report import VerificationReport
from signature.verify import verify_package
from tests.conftest import World
from tests.portal_sim.api_support import Harness, Server, Start, serving, start_portal
from tests.portal_sim.generated_support import OPTIONS


@pytest.fixture(scope="session")
def key_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("portal-sim-keys")


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory, key_cache: Path) -> DataDir:
    return generate(tmp_path_factory.mktemp("generated") / "data", OPTIONS, key_cache=key_cache, jobs=2)


@pytest.fixture(scope="session")
def reports(generated: DataDir) -> dict[str, VerificationReport]:
    """Every package verified at its own arrival time with the directory's trust anchors and CRLs."""
    trust = generated.trust_config()
    return {
        a.receipt_number: verify_package(generated.package_bytes(a.receipt_number), trust, at=a.arrived_at)
        for a in generated.applications()
    }


# The served portal API: one uvicorn server per test module, a fresh app and data directory per test.


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serving() as running:
        yield running


@pytest.fixture
def start(server: Server, world: World, tmp_path: Path) -> Iterator[Start]:
    with ExitStack() as stack:
        yield lambda **settings: start_portal(stack, server, world, tmp_path / "data", **settings)


@pytest.fixture
def portal(start: Start) -> Harness:
    return start()
