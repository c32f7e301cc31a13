"""A throw-away PostgreSQL cluster for bench_ui.py: the tests' cluster (tests/support/postgres.py,
Debian's package, run as ``postgres``, Unix socket only, ``fsync=off``) with memory settings sized
for a million-row database instead of PostgreSQL's 128 MB defaults.

Stopped and removed when the block ends, also on Ctrl-C; SIGTERM and SIGHUP are turned into
``SystemExit`` while the cluster runs so that the same clean-up happens.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from tests.support.postgres import _as_postgres, _bindir

__all__ = ["SETTINGS", "bench_cluster"]

#: What a dedicated database server of this size would be given (24 GiB machine): a quarter of the
#: memory should go to shared_buffers in production; 2 GB hold the whole working set here.
SETTINGS: dict[str, str] = {
    "shared_buffers": "2GB",
    "effective_cache_size": "12GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "random_page_cost": "1.1",  # SSD-backed virtual disk
    "max_connections": "60",
    "fsync": "off",  # as the test cluster; reads are what is measured
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def _run(cmd: list[str], *, check: bool = True) -> None:
    subprocess.run(_as_postgres(cmd), check=check, capture_output=True, timeout=120)  # noqa: S603 - Debian's binaries


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def bench_cluster(settings: dict[str, str] | None = None) -> Iterator[tuple[str, Path]]:
    """Yield (SQLAlchemy URL, log file) of a fresh database; stop and remove the cluster afterwards."""
    bindir = _bindir()
    base = Path(tempfile.mkdtemp(prefix="shinsei-bench-ui-pg-"))
    data, sock, log = base / "data", base / "sock", base / "log"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    options = " ".join(f"-c {k}={v}" for k, v in {**SETTINGS, **(settings or {})}.items())
    previous = {s: signal.signal(s, _raise_exit) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        _run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
              "--locale=C.UTF-8"])
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(log),
              "-o", f"-k {sock} -c listen_addresses='' {options}", "start"])
        _run([str(bindir / "createdb"), "-h", str(sock), "-U", "postgres", "shinsei"])
        yield f"postgresql+psycopg://postgres@/shinsei?host={sock}", log
    finally:
        with contextlib.suppress(Exception):
            _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], check=False)
        shutil.rmtree(base, ignore_errors=True)
        for s, handler in previous.items():
            signal.signal(s, handler)
