"""Benchmark of ``python -m portal_sim generate``: 10 000 applications from 300 residents.

Prints the time of each phase and the total. Not a test: the issue asks that generating
10 000 applications takes "well under a minute" on this machine, with derived RSA keys cached
(deriving ~400 RSA-2048 keys from the seed with pycryptodome takes minutes, once per seed and
population; see portal_sim/keys.py). ``--cold`` uses an empty key cache to show that cost too.

Usage::

    python bench/bench_portal_generate.py [--applications 10000] [--residents 300] [--seed 7]
        [--jobs N] [--key-cache .bench-cache/portal-sim-keys] [--cold] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

# Run as `python bench/bench_portal_generate.py`: bench/, not the repository root, is on sys.path.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from portal_sim.generate import GenerateOptions, generate  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--applications", type=int, default=10_000)
    parser.add_argument("--residents", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--key-cache", type=Path, default=_ROOT / ".bench-cache" / "portal-sim-keys")
    parser.add_argument("--cold", action="store_true", help="start from an empty key cache")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args()

    options = GenerateOptions(start=date(2026, 11, 1), residents=args.residents, applications=args.applications,
                              seed=args.seed, days=30, defect_rate=0.05)
    with tempfile.TemporaryDirectory(prefix="bench-portal-sim-") as tmp:
        cache = Path(tmp) / "keys" if args.cold else args.key_cache
        timings: dict[str, float] = {}
        began = time.perf_counter()
        data = generate(Path(tmp) / "data", options, key_cache=cache, jobs=args.jobs, timings=timings)
        total = time.perf_counter() - began
        size = sum(a.size for a in data.applications())
    result = {
        "applications": args.applications,
        "residents": args.residents,
        "jobs": args.jobs,
        "key_cache": "cold" if args.cold else "as found",
        "seconds_total": round(total, 2),
        "seconds_by_phase": {k: round(v, 2) for k, v in timings.items()},
        "seconds_without_key_derivation": round(total - timings.get("keys", 0.0), 2),
        "applications_per_second": round(args.applications / total, 1),
        "package_bytes_total": size,
    }
    for key, value in result.items():
        print(f"{key:32} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
