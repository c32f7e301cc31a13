"""Fixtures of the chain tests: generated portal data (per size, once per session) and the knobs.

The portal's data comes from ``portal_sim``'s own generator (residents, chains of 再申請/補正/取下げ,
defective packages). Relay and intake are real processes that verify at the real time, so the
generated period is the three days before yesterday (JST) — the only place these tests read the
wall clock. Derived RSA keys are cached where ``python -m portal_sim generate`` caches them
(``$XDG_CACHE_HOME/shinsei/portal-sim-keys``): the cache changes the speed, never the output
(docs/portal-sim.md, "Reproducibility").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import date, datetime

import pytest

from portal_sim.cli import default_key_cache
from tests.support.chain import JST, PortalData, generate_portal_data
from tests.support.postgres import postgres_cluster

#: Set to run the full-size proof (issue 5 asks for 1 000 packages), e.g. ``SHINSEI_CHAIN_N=1000``.
BIG_N_ENV = "SHINSEI_CHAIN_N"
SEED = 20261126

PortalDataFactory = Callable[..., PortalData]


@pytest.fixture(scope="session")
def chain_today() -> date:
    return datetime.now(JST).date()


@pytest.fixture(scope="session")
def portal_data_factory(tmp_path_factory: pytest.TempPathFactory, chain_today: date) -> PortalDataFactory:
    """``factory(applications=…, residents=…, defect_rate=…)``: one generated directory per set of options
    for the whole session (tests copy it: the portal writes status updates into it)."""
    made: dict[tuple[int, int, float], PortalData] = {}

    def factory(*, applications: int, residents: int, defect_rate: float = 0.08) -> PortalData:
        key = (applications, residents, defect_rate)
        if key not in made:
            out = tmp_path_factory.mktemp(f"portal-{applications}") / "data"
            made[key] = generate_portal_data(out, today=chain_today, applications=applications, residents=residents,
                                             seed=SEED, defect_rate=defect_rate, key_cache=default_key_cache(),
                                             jobs=min(2, os.cpu_count() or 1))
        return made[key]

    return factory


@pytest.fixture(scope="session")
def chain_postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL cluster (Debian's package) for the chain's intake; started only when asked."""
    with postgres_cluster() as url:
        yield url


def big_n() -> int | None:
    """The package count asked for by ``SHINSEI_CHAIN_N`` (None when unset)."""
    value = os.environ.get(BIG_N_ENV, "").strip()
    return int(value) if value else None

