"""How ``make test`` spreads the suite over pytest-xdist workers (``-n 2 --dist loadfile``).

Each test file runs whole on one worker, in file order: its module-scoped fixtures are built once,
and files whose tests are the steps of one story (the clerk's day in Chromium) keep their order.
The directories whose tests use something the whole machine shares — the Docker engine they start,
network namespaces, the firewall — count as one file, so they run on one worker, one after another.
Everything else a test uses (temporary directories, ports, the PostgreSQL cluster, clamd) is its
worker's own.

A scheduler of our own rather than ``xdist_group`` marks with ``--dist loadgroup``: with pytest 9.2
loadgroup silently stops grouping — xdist writes the group into ``item._nodeid``, which the node id
no longer comes from (pytest-dev/pytest-xdist#1386). tests/test_parallel_runs.py shows both: this
scheduler holding, and loadgroup not grouping on the pytest we run (when that test fails, xdist is
fixed and marks would do).
"""

from __future__ import annotations

from typing import Any

#: Node id prefixes of the tests that must not run beside each other.
MACHINE_WIDE = ("tests/deploy/", "tests/docker/", "tests/zones/")


def make_scheduler(config: Any, log: Any, machine_wide: tuple[str, ...] = MACHINE_WIDE) -> Any:
    """For ``pytest_xdist_make_scheduler``: with ``--dist loadfile``, xdist's file scheduler with the
    ``machine_wide`` prefixes as one scope; otherwise ``None`` (xdist's own choice)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class MachineWideTogether(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "machine-wide" if path.startswith(machine_wide) else path

    return MachineWideTogether(config, log)
