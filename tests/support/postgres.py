"""A throw-away PostgreSQL cluster from Debian's package, for the test session.

PostgreSQL refuses to run as root, so as root the cluster is created and run as the ``postgres``
user (Debian's package creates it). It listens only on a Unix socket in its own directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PostgresUnavailable", "postgres_cluster"]


class PostgresUnavailable(Exception):
    pass


def _bindir() -> Path:
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / "initdb").exists():
            return base
    raise PostgresUnavailable("Debian's postgresql package is not installed (make install does it)")


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def postgres_cluster(*, durable: bool = False) -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh database; stop and remove the cluster afterwards.

    The tests' cluster runs with ``fsync=off``. ``durable=True`` (benchmarks) starts it with durable
    commits instead: ``fsync=on``, ``synchronous_commit=on``, ``full_page_writes=on``.
    """
    durability = ("-c fsync=on -c synchronous_commit=on -c full_page_writes=on" if durable else "-c fsync=off")
    bindir = _bindir()
    base = Path(tempfile.mkdtemp(prefix="shinsei-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    try:
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                                     "-E", "UTF8", "--locale=C.UTF-8"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l",
                                     str(base / "log"), "-o",
                                     f"-k {sock} -c listen_addresses='' {durability} -c max_connections=60",
                                     "start"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(_as_postgres([str(bindir / "createdb"), "-h", str(sock), "-U", "postgres", "shinsei"]),
                       check=True, capture_output=True, timeout=60)
        yield f"postgresql+psycopg://postgres@/shinsei?host={sock}"
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60, check=False)
        shutil.rmtree(base, ignore_errors=True)
