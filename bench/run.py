"""``make bench``: every benchmark in turn, then one results file and one table of the run.

Each benchmark runs as its own process (its own output on the terminal) and writes its raw figures
to ``bench/out/<name>.json`` (emptied at the start of every run, so a results file never holds a
piece of an earlier run). At the end the pieces go into one results file,
``bench/results-<UTC time>-<short commit>[-dirty][-quick].json``, with the commit measured (``git
rev-parse HEAD`` and whether the work tree had changes), the machine (cpus, memory, Python, load
average at the start and the end of the run and of each benchmark) and the date; then
``bench/summary.py`` prints the table beside the aims of issue 19. ``bench/compare.py A B`` sets two
runs side by side.

A benchmark that fails does not stop the others: the results file lists it under ``failed`` and
the run exits 1.

``--quick`` (``make bench-quick``) runs everything with small counts, in a few minutes, to check the
harness itself; its figures say nothing about speed (the results file is marked ``quick`` and its
name ends in ``-quick``).

Usage: ``python bench/run.py [--quick] [--only verify,intake,...] [--out-dir bench]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import summary

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PIECES = BENCH / "out"

#: name → (script, arguments of a full run, arguments of a quick run or None to skip it when quick).
BENCHMARKS: dict[str, tuple[str, list[str], list[str] | None]] = {
    "verify": ("bench_verify.py", [], ["--seconds", "0.3", "--signers", "20"]),
    "revocation": ("bench_revocation.py", [], ["--entries", "20000", "--lookups", "20000"]),
    "intake": ("bench_intake.py", ["--count", "200", "--clients", "1,4", "--workers", "1,2"],
               ["--count", "12", "--clients", "1,4", "--workers", "1,2"]),
    "portal_generate": ("bench_portal_generate.py", [], ["--applications", "30", "--residents", "4"]),
    "relay": ("bench_relay.py", [], ["--count", "12", "--big-mb", "5"]),
    "ui": ("bench_ui.py", [], ["--applications", "20000", "--sample", "200", "--requests", "3", "--warmup", "1"]),
}


def git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True,  # noqa: S603, S607
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def commit() -> dict[str, Any]:
    """The commit measured; ``dirty`` when the work tree differs from it (untracked files included)."""
    status = git("status", "--porcelain")
    return {"id": git("rev-parse", "HEAD") or "unknown", "short": git("rev-parse", "--short", "HEAD") or "unknown",
            "dirty": None if status is None else bool(status)}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    memory = 0
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
    return {"cpus": os.cpu_count() or 0, "memory_mib": memory, "python": platform.python_version(),
            "platform": platform.platform(), "load_average_start": load_average()}


def results_name(started: datetime, measured: dict[str, Any], quick: bool) -> str:
    return (f"results-{started:%Y%m%dT%H%M%SZ}-{measured['short']}" + ("-dirty" if measured["dirty"] else "")
            + ("-quick" if quick else "") + ".json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="small counts: check the harness in a few minutes")
    ap.add_argument("--only", help=f"a comma-separated subset of {', '.join(BENCHMARKS)}")
    ap.add_argument("--out-dir", type=Path, default=BENCH, help="where the results file goes (default bench/)")
    args = ap.parse_args(argv)
    names = list(BENCHMARKS) if not args.only else [n.strip() for n in args.only.split(",")]
    if unknown := set(names) - set(BENCHMARKS):
        ap.error(f"unknown benchmark {sorted(unknown)}")
    if args.quick:
        names = [n for n in names if BENCHMARKS[n][2] is not None]

    started = datetime.now(UTC)
    measured = commit()
    results: dict[str, Any] = {"format": 1, "date": started.isoformat(timespec="seconds"), "commit": measured,
                               "machine": machine(), "quick": args.quick, "benchmarks": {}, "runs": {}, "failed": []}
    PIECES.mkdir(exist_ok=True)
    for stale in PIECES.glob("*.json"):
        stale.unlink()
    for name in names:
        script, full, quick = BENCHMARKS[name]
        piece = PIECES / f"{name}.json"
        argv_ = [sys.executable, str(BENCH / script), *(quick if args.quick and quick is not None else full),
                 "--json", str(piece)]
        print(f"\n== {name}: {' '.join(argv_[1:])}", flush=True)
        load_before, began = load_average(), time.perf_counter()
        code = subprocess.run(argv_, cwd=REPO, check=False).returncode  # noqa: S603 (our own scripts)
        results["runs"][name] = {"seconds": round(time.perf_counter() - began, 1), "exit_code": code,
                                 "load_average_start": load_before, "load_average_end": load_average()}
        if code == 0 and piece.exists():
            results["benchmarks"][name] = json.loads(piece.read_text(encoding="utf-8"))
        else:
            results["failed"].append(name)
            print(f"== {name} FAILED (exit code {code})", file=sys.stderr, flush=True)
    results["machine"]["load_average_end"] = load_average()
    results["figures"] = {f.key: f.value for f in summary.figures(results["benchmarks"])}

    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / results_name(started, measured, args.quick)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\n{path}:")
    print(summary.render(results))
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    print(f"\ncompare with another run: python bench/compare.py OTHER.json {shown}")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
