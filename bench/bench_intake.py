"""Deliveries stored per second (verify + encrypt + store + commit) with ~100 KB packages, through the
intake's real HTTP API, by 1 and by several concurrent clients, on SQLite and PostgreSQL.

**The server** (``--server``, default ``process``) is the production one: ``python -m intake serve``
as a child process (started by the chain tests' harness, ``tests/support/chain.py``: the database
migrated by ``intake db upgrade``, mutual TLS with the relay-only client CA exactly as the relay
connects, development settings, no mail). The intake's own malware scan (P11: production scans every
file with clamd) is off by default, as in the figures before issue 19; ``--scanner clamd`` turns it on
(the tests' clamd, tests/support/clamd.py). Each client is a thread of this
process with its own ``httpx.Client`` (one kept-alive TLS connection, like the relay's forwarder),
posting its own distinct packages with the relay's headers. The server then has a process (and an
interpreter lock) of its own: with the app in a thread of the benchmark process, four client threads
would compete with the server for one interpreter and the figure would measure the clients too.
``--server thread`` is the older measurement (uvicorn in a thread of this process, plain HTTP, the
clock pinned), kept because the figures before issue 19 were taken that way.

**The databases** (``--databases``, default all three): SQLite (WAL, ``synchronous=FULL``);
``postgresql``, the tests' throw-away cluster with ``fsync=off``; ``postgresql-durable``, the same
with durable commits (``fsync=on``, ``synchronous_commit=on``, ``full_page_writes=on``). Every
(database, clients) run starts from a fresh empty database and a fresh server.

Figures per run: deliveries per second over the wall time from the first request to the last answer,
and the per-request latency p50 / p99 seen by the clients.

Usage: ``python bench/bench_intake.py [--count 200] [--clients 1,4] [--server process|thread]
[--databases sqlite,postgresql,postgresql-durable] [--scanner none|clamd] [--json PATH]``; ``--count`` packages per run.
PostgreSQL comes from Debian's package (as in the tests). The test PKI is made for the real "now":
the intake process verifies at the system time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_relay import Maker, percentile, write_portal_dir

from bench.cputime import CpuMeter, postmaster_pid
from intake.api import create_app
from intake.db import Base, make_engine, make_session_factory
from intake.deliveries.service import expected_key
from intake.runtime import Runtime
from intake.settings import IntakeSettings
from signature.testing.samples import sample_pdf
from tests.support.chain import JST, Chain, ChainOptions, PortalData
from tests.support.clamd import ClamdInfo, clamd_daemon
from tests.support.postgres import postgres_cluster
from tests.support.servers import serve_in_thread

DATABASES = {
    "sqlite": "SQLite, WAL, synchronous=FULL",
    "postgresql": "PostgreSQL test cluster, fsync=off",
    "postgresql-durable": "PostgreSQL, fsync=on, synchronous_commit=on, full_page_writes=on",
}


def post_all(base_url: str, bodies: list[bytes], clients: int,
             make_client: Callable[[str], httpx.Client], meter: CpuMeter | None = None) -> dict[str, Any]:
    """Post ``bodies`` by ``clients`` threads (each its own share and its own client); the figures.
    ``meter``: the CPU time of its processes over the same stretch, per delivery (``cpu_ms``)."""
    shares = [bodies[i::clients] for i in range(clients)]
    latencies: list[float] = []
    answers: Counter[int] = Counter()
    problems: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(share: list[bytes]) -> None:
        try:
            with make_client(base_url) as http:
                http.get("/healthz")  # connect (and the TLS handshake) before the clock starts
                start.wait(120)
                for body in share:
                    began = time.perf_counter()
                    r = http.post("/api/v1/deliveries", content=body, headers={
                        "Content-Type": "application/zip", "Idempotency-Key": expected_key(body)})
                    took = time.perf_counter() - began
                    with lock:
                        latencies.append(took)
                        answers[r.status_code] += 1
                        if r.status_code != 201 and len(problems) < 3:
                            problems.append(f"{r.status_code}: {r.text[:300]}")
        except (httpx.HTTPError, OSError, threading.BrokenBarrierError) as exc:
            start.abort()  # nobody waits for a client that is gone
            with lock:
                problems.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a client failed: its problem is reported below
        if meter is not None:
            meter.start()
        start.wait(120)
    began = time.perf_counter()
    for t in threads:
        t.join(1800)
    wall = time.perf_counter() - began
    if meter is not None:
        meter.stop()
    if problems or answers[201] != len(bodies):
        raise RuntimeError(f"not every delivery was stored: {dict(answers)} {problems}")
    figures = {"deliveries_per_second": round(len(bodies) / wall, 1), "seconds": round(wall, 2),
               "latency_p50_ms": round(1000 * statistics.median(latencies), 1),
               "latency_p99_ms": round(1000 * percentile(latencies, 0.99), 1)}
    if meter is not None:
        figures["cpu_ms"] = meter.per_unit_ms(len(bodies))
    return figures


def run_process(url: str, bodies: list[bytes], clients: int, portal: PortalData, work: Path,
                clamd: ClamdInfo | None, workers: int = 1) -> dict[str, Any]:
    """``python -m intake serve`` on a fresh database ``url``, mutual TLS as the relay connects;
    ``workers`` > 1: ``serve --only api --workers N`` (PostgreSQL)."""
    scanner = {"SCANNER": "clamd", "CLAMD_SOCKET": str(clamd.socket_path)} if clamd else {}
    extra = ("--only", "api", "--workers", str(workers)) if workers > 1 else ()
    options = ChainOptions(database_url=url, proxy=False, tls=True, intake=scanner, intake_args=extra)
    with Chain(portal, work, options=options) as chain:
        chain.start_intake()
        context = chain.intake_ssl()  # the relay's client certificate, the intake's CA
        roots: dict[str, Callable[[], int | None]] = {"intake": lambda: chain.intake.pid}
        if url.startswith("postgresql"):
            postmaster = postmaster_pid(url)
            roots["postgresql"] = lambda: postmaster
        if clamd is not None:
            clamd_pid = clamd.pid
            roots["clamd"] = lambda: clamd_pid
        return post_all(f"https://127.0.0.1:{chain.intake_port}", bodies, clients,
                        lambda base: httpx.Client(base_url=base, timeout=120, verify=context, trust_env=False),
                        CpuMeter(roots))


def run_thread(url: str, bodies: list[bytes], clients: int, settings: IntakeSettings,
               now: datetime) -> dict[str, Any]:
    """The app in a uvicorn thread of this process (plain HTTP, clock pinned): the older measurement."""
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    app = create_app(Runtime.from_settings(settings, clock=lambda: now), make_session_factory(engine))
    try:
        with serve_in_thread(app) as base:
            return post_all(base, bodies, clients,
                            lambda b: httpx.Client(base_url=b, timeout=120, trust_env=False))
    finally:
        engine.dispose()


def cpu_line(run: dict[str, Any]) -> str:
    """``  CPU ms/delivery: intake 9.1 + postgresql 3.2 + benchmark 2.0 = 14.3 (ceiling 140/s)``, or ``""``."""
    cpu = run.get("cpu_ms")
    if not cpu:
        return ""
    ceiling = cpu["ceiling_per_second_on_this_machine"]
    processes = {k: v for k, v in cpu.items() if k not in {"total", "ceiling_per_second_on_this_machine"}}
    parts = " + ".join(f"{k} {v:.1f}" for k, v in processes.items())
    return f"\n{'':<22}CPU ms/delivery: {parts} = {cpu['total']:.1f} (ceiling {ceiling:.0f}/s)"


def filesystem_of(path: Path) -> str:
    """The type of the file system holding ``path`` (from /proc/mounts: the longest mount point)."""
    best, kind = "", "unknown"
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        point = fields[1].replace("\\040", " ")
        if (str(path) == point or str(path).startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best, kind = point, fields[2]
    return kind


@contextlib.contextmanager
def databases(kind: str, work: Path) -> Iterator[Callable[[str], str]]:
    """A factory of fresh empty databases (by name) of ``kind``."""
    if kind == "sqlite":
        yield lambda name: f"sqlite:///{work / (name + '.db')}"
        return
    with postgres_cluster(durable=kind == "postgresql-durable") as url:
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")

        def fresh(name: str) -> str:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            return sa.make_url(url).set(database=name).render_as_string(hide_password=False)

        try:
            yield fresh
        finally:
            admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--count", type=int, default=200, help="packages per run (default 200)")
    ap.add_argument("--clients", default="1,4", help="concurrent clients, one run each (default 1,4)")
    ap.add_argument("--server", choices=["process", "thread"], default="process")
    ap.add_argument("--databases", default=",".join(DATABASES), help=f"of {', '.join(DATABASES)}")
    ap.add_argument("--scanner", choices=["none", "clamd"], default="none",
                    help="the intake's own clamd scan (--server process only; default none)")
    ap.add_argument("--workers", default="1",
                    help="intake serve --workers, one run each on PostgreSQL with the most clients (default 1)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    client_counts = [int(c) for c in args.clients.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    kinds = [k.strip() for k in args.databases.split(",")]
    if unknown := set(kinds) - set(DATABASES):
        ap.error(f"unknown database {sorted(unknown)}")
    # The databases live under the temporary directory: durable commits on tmpfs would measure nothing.
    temp_fs = filesystem_of(Path(tempfile.gettempdir()).resolve())
    if temp_fs == "tmpfs":
        print(f"WARNING: {tempfile.gettempdir()} is tmpfs: fsync costs nothing there, so the durable figures "
              "are not durable (set TMPDIR to a directory on disk)", file=sys.stderr)
    if args.scanner == "clamd" and args.server == "thread":
        ap.error("--scanner clamd needs --server process")

    now = datetime.now(JST)
    results: dict[str, Any] = {"server": args.server, "tls": args.server == "process", "scanner": args.scanner,
                               "database_filesystem": temp_fs, "count": args.count,
                               "cpus": os.cpu_count() or 0, "databases": {k: DATABASES[k] for k in kinds}, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp, contextlib.ExitStack() as stack:
        base = Path(tmp)
        clamd = stack.enter_context(clamd_daemon(base / "clamd")) if args.scanner == "clamd" else None
        t0 = time.perf_counter()
        maker = Maker(base / "portal", now)
        filler = sample_pdf("scan") + random.Random(5).randbytes(100_000)  # incompressible: ~100 KB packages
        # Distinct packages for each client count; every run has a fresh database, so the sets are reused.
        sets = {n: [maker.package(k * 100_000 + i, filler)[1] for i in range(1, args.count + 1)]
                for k, n in enumerate(client_counts)}
        portal = write_portal_dir(base / "portal", now, [])
        results["package_bytes_avg"] = round(statistics.mean(len(b) for b in sets[client_counts[0]]))
        print(f"set-up: {args.count * len(client_counts)} packages of ~{results['package_bytes_avg'] // 1000} KB "
              f"built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        settings = IntakeSettings(
            environment="development", var_dir=base / "var", jpki_roots=[portal.jpki_roots],
            portal_roots=[portal.portal_roots], jpki_intermediates=[portal.intermediates],
            crls=[portal.crl_dir]) if args.server == "thread" else None
        for kind in kinds:
            with databases(kind, base) as fresh:
                for n in client_counts:
                    url = fresh(f"{kind.replace('-', '_')}_{n}")
                    if args.server == "process":
                        run = run_process(url, sets[n], n, portal, base / f"chain-{kind}-{n}", clamd)
                    else:
                        assert settings is not None
                        run = run_thread(url, sets[n], n, settings, now)
                    results["runs"].append({"database": kind, "clients": n, "workers": 1, **run})
                    print(f"{kind:<20} {n} client(s) {run['deliveries_per_second']:>7.1f} deliveries/s  "
                          f"p50 {run['latency_p50_ms']:>6.1f} ms  p99 {run['latency_p99_ms']:>6.1f} ms"
                          f"{cpu_line(run)}", flush=True)
                n = max(client_counts)
                for w in worker_counts:
                    if w == 1 or not kind.startswith("postgresql") or args.server != "process":
                        continue
                    url = fresh(f"{kind.replace('-', '_')}_{n}_w{w}")
                    run = run_process(url, sets[n], n, portal, base / f"chain-{kind}-{n}-w{w}", clamd, w)
                    results["runs"].append({"database": kind, "clients": n, "workers": w, **run})
                    print(f"{kind:<20} {n} client(s) {w} workers {run['deliveries_per_second']:>7.1f} deliveries/s  "
                          f"p50 {run['latency_p50_ms']:>6.1f} ms  p99 {run['latency_p99_ms']:>6.1f} ms"
                          f"{cpu_line(run)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
