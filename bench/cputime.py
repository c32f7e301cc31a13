"""CPU time per process while a benchmark runs: where a package's CPU goes, process by process.

A figure such as "deliveries per second" says how fast; it does not say which process spent the
machine's cores. :class:`CpuMeter` reads, from ``/proc``, the CPU time (user + system) of named
process trees — the intake server and its workers, PostgreSQL's postmaster and its backends, the
relay, clamd, portal_sim, this benchmark process (its client threads) — at the start and the end of
a measured stretch, and reports milliseconds of CPU per unit of work for each and in all. From the
total, the rate the machine's cores could carry if nothing waited is ``cores × 1000 / total ms``:
the ceiling a benchmark on this machine cannot pass, whatever the code does in one process.

A tree's CPU time is the sum, over its live processes, of their own time and the time of their
children they have already reaped (``utime + stime + cutime + cstime`` in ``/proc/<pid>/stat``):
every process of the tree is counted once, alive or reaped. Not counted: a process that was
reaped by a process outside the tree, and the time of a process that ended during the stretch
before the stretch began (it is counted in full); a PostgreSQL backend that lives for the whole
stretch, as a connection pool's do, is counted exactly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy.engine import make_url

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) state ppid …": comm may hold spaces and parentheses; the fields follow the last ")".
    return raw[raw.rindex(")") + 2:].split()


def _children() -> dict[int, list[int]]:
    """Every live process's children, by parent pid."""
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            out.setdefault(int(fields[1]), []).append(int(entry.name))
    return out


def tree_cpu_seconds(root: int, children: Mapping[int, list[int]] | None = None) -> float:
    """CPU seconds spent so far by ``root`` and every process under it (0.0 when ``root`` is gone)."""
    kids = _children() if children is None else children
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
        total += sum(int(f) for f in fields[11:15])
        todo.extend(kids.get(pid, ()))
    return total / _TICK


def postmaster_pid(database_url: str) -> int:
    """The postmaster of a PostgreSQL reached by a Unix socket (``…?host=<directory>``): the first line
    of the socket's lock file."""
    host = make_url(database_url).query["host"]
    lock = next(Path(str(host)).glob(".s.PGSQL.*.lock"))
    return int(lock.read_text().splitlines()[0])


class CpuMeter:
    """CPU time of named process trees between :meth:`start` and :meth:`stop`.

    ``roots`` maps a name to a function giving the tree's root pid now (``None``: not running, counted
    as 0 at that moment — a process started during the stretch is counted from its start). The name
    ``"benchmark"`` is always added: this process, its client threads included (``time.process_time``).
    """

    def __init__(self, roots: Mapping[str, Callable[[], int | None]]) -> None:
        self.roots = dict(roots)
        self._start: dict[str, float] | None = None
        self.seconds: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        kids = _children()
        out = {}
        for name, root in self.roots.items():
            pid = root()
            out[name] = tree_cpu_seconds(pid, kids) if pid is not None else 0.0
        out["benchmark"] = time.process_time()
        return out

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, float]:
        if self._start is None:
            raise RuntimeError("CpuMeter.stop() before start()")
        end = self._now()
        self.seconds = {name: max(0.0, end[name] - self._start[name]) for name in end}
        return self.seconds

    def per_unit_ms(self, units: int) -> dict[str, float]:
        """Milliseconds of CPU per unit of work for each process tree, ``total``, and
        ``ceiling_per_second_on_this_machine`` = cores × 1000 / total."""
        out = {name: round(1000 * s / units, 2) for name, s in self.seconds.items()}
        total = sum(self.seconds.values()) * 1000 / units
        out["total"] = round(total, 2)
        out["ceiling_per_second_on_this_machine"] = round((os.cpu_count() or 1) * 1000 / total, 1) if total else 0.0
        return out
