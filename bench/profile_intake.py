"""Where an intake delivery's time goes: per stage, per SQL statement, per process.

Builds the same ~106 KB packages as ``bench_intake.py`` and stores each through
:func:`intake.deliveries.service.store_once` in its own session and commit — the request's unit of
work without HTTP — under cProfile, on SQLite and PostgreSQL. Prints:

* the statements sent per delivery, by kind and table (SQLAlchemy's ``before_cursor_execute``);
* the time per delivery in each stage (the stage functions' cumulative time in the profile);
* the 25 functions with the most own time.

Usage: ``python bench/profile_intake.py [--count 200] [--engine sqlite|postgresql|both] [--json P]``.
A measurement tool, not part of ``make bench`` (cProfile's overhead distorts absolute figures;
the shares are what it is for).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import json
import pstats
import random
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_relay import Maker, write_portal_dir
from intake.db import Base, make_engine, make_session_factory
from intake.deliveries.service import DeliveryRequest, expected_key, store_once
from intake.runtime import Runtime
from intake.settings import IntakeSettings
from signature.testing.samples import sample_pdf
from tests.support.chain import JST
from tests.support.postgres import postgres_cluster


def packages(count: int, base: Path, now: datetime) -> tuple[list[bytes], IntakeSettings]:
    """``count`` ~106 KB packages as ``bench_intake.py`` builds them, and settings trusting their PKI."""
    maker = Maker(base / "portal", now)
    filler = sample_pdf("scan") + random.Random(5).randbytes(100_000)
    bodies = [maker.package(i, filler)[1] for i in range(1, count + 1)]
    portal = write_portal_dir(base / "portal", now, [])
    settings = IntakeSettings(
        environment="development", var_dir=base / "var", jpki_roots=[portal.jpki_roots],
        portal_roots=[portal.portal_roots], jpki_intermediates=[portal.intermediates], crls=[portal.crl_dir])
    return bodies, settings

#: (label, file suffix, function name): cumulative time of these functions = the stage's time.
STAGES = [
    ("verify_package (signature/)", "signature/verify.py", "verify_package"),
    ("  zip reading", "signature/zipreader.py", "read_package"),
    ("scan_delivery", "intake/deliveries/scanning.py", "scan_delivery"),
    ("seal_package (encrypt the package)", "intake/sealing.py", "seal_package"),
    ("add_version (chain, form, attachments)", "intake/applications/arrivals.py", "add_version"),
    ("record_event", "intake/events.py", "record_event"),
    ("resolve_stored", "intake/relayreports/service.py", "resolve_stored"),
    ("session.flush (all)", "sqlalchemy/orm/session.py", "flush"),
    ("session.commit", "sqlalchemy/orm/session.py", "commit"),
    ("cursor.execute (database round trips)", "sqlalchemy/engine/default.py", "do_execute"),
]

_TABLE = re.compile(r"^\s*(INSERT INTO|UPDATE|DELETE FROM|SELECT .*? FROM|SAVEPOINT|RELEASE SAVEPOINT)\s+(\S+)?",
                    re.S | re.I)


def kind(statement: str) -> str:
    m = _TABLE.match(statement)
    if not m:
        return statement.split()[0].upper()
    verb = m.group(1).split()[0].upper()
    if verb in {"SAVEPOINT", "RELEASE"}:
        return verb
    table = (m.group(2) or "").strip('"')
    return f"{verb} {table}"


def run(url: str, bodies: list[bytes], runtime: Runtime) -> dict[str, Any]:
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    counts: collections.Counter[str] = collections.Counter()

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, executemany: bool) -> None:
        counts[kind(statement) + (" (executemany)" if executemany else "")] += 1

    # warm-up: caches (keys, trust) and the first statements' compilation
    for body in bodies[:5]:
        with factory() as session, session.begin():
            store_once(session, runtime, DeliveryRequest(body, expected_key(body), "bench", None))
    counts.clear()
    measured = bodies[5:]
    profile = cProfile.Profile()
    wall = time.perf_counter()
    profile.enable()
    for body in measured:
        with factory() as session, session.begin():
            store_once(session, runtime, DeliveryRequest(body, expected_key(body), "bench", None))
    profile.disable()
    wall = time.perf_counter() - wall
    engine.dispose()
    n = len(measured)
    stats = pstats.Stats(profile)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    stages: dict[str, float] = {}
    for label, suffix, name in STAGES:
        total = sum(ct for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in raw.items()
                    if func == name and file.endswith(suffix))
        stages[label] = round(total / n * 1000, 3)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
    return {"deliveries": n, "ms_per_delivery_profiled": round(wall / n * 1000, 2),
            "statements_per_delivery": round(sum(counts.values()) / n, 2),
            "statements": {k: round(v / n, 2) for k, v in counts.most_common()},
            "stage_ms": stages, "top_own_time": out.getvalue()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--top", action="store_true", help="print the 25 functions with the most own time")
    args = ap.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        now = datetime.now(JST)
        bodies, settings = packages(args.count + 5, base, now)
        runtime = Runtime.from_settings(settings, clock=lambda: now)
        if args.engine in {"sqlite", "both"}:
            results["sqlite"] = run(f"sqlite:///{base / 'bench.db'}", bodies, runtime)
        if args.engine in {"postgresql", "both"}:
            with postgres_cluster() as url:
                results["postgresql"] = run(url, bodies, runtime)
    for name, r in results.items():
        print(f"== {name}: {r['deliveries']} deliveries, {r['ms_per_delivery_profiled']} ms each under cProfile, "
              f"{r['statements_per_delivery']} statements each")
        for k, v in r["statements"].items():
            print(f"   {v:>6}  {k}")
        print("   stage (cumulative ms per delivery):")
        for k, v in r["stage_ms"].items():
            print(f"   {v:>8}  {k}")
        if args.top:
            print(r["top_own_time"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
