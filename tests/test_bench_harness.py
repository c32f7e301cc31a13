"""The benchmark harness's own arithmetic and tables (bench/summary.py, bench/compare.py), on two
small synthetic results files in the shape bench/run.py writes. Nothing here is timed: this only
keeps the harness from rotting between the (long, manual) `make bench` runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MB = 1_000_000


def results(*, short: str, ours: float, signxml: float, xmlsec: float, intake: dict[tuple[str, int], float],
            pull: float, push: float, pull_p99: float, push_p99: float, big_bytes: int, increase_mib: float,
            failed: tuple[str, ...] = ()) -> dict[str, Any]:
    """A results file as bench/run.py writes it, raw benchmark outputs in their scripts' shapes."""
    return {
        "format": 1, "date": "2026-12-06T18:00:00+00:00", "quick": False, "failed": list(failed),
        "commit": {"id": short * 5, "short": short, "dirty": False},
        "machine": {"cpus": 2, "python": "3.11.7", "load_average_start": [0.5, 0.4, 0.3],
                    "load_average_end": [1.5, 1.0, 0.5]},
        "benchmarks": {
            "verify": {"results_per_second": {"ours_full_same_signer": ours, "ours_full_distinct_signers": ours - 4,
                                              "ours_full_carried_signing_ca": ours - 60,
                                              "python_xmlsec_plain": xmlsec, "signxml_plain_ascii": signxml}},
            "intake": {"server": "process", "count": 200, "runs": [
                {"database": db, "clients": n, "deliveries_per_second": v, "latency_p50_ms": 20.0,
                 "latency_p99_ms": 40.0} for (db, n), v in intake.items()]},
            "relay": {"pull": {"packages_per_second": pull, "receipt_to_erasure_p50_ms": 40.0,
                               "receipt_to_erasure_p99_ms": pull_p99},
                      "push": {"clients": 4, "packages_per_second": push, "receipt_to_erasure_p50_ms": 110.0,
                               "receipt_to_erasure_p99_ms": push_p99},
                      "big_package": {"package_bytes": big_bytes, "relay_rss_peak_increase_mib": increase_mib,
                                      "receipt_to_erasure_s": 13.0}},
            "revocation": [{"issuer": "configured", "entries": 1_000_000, "load_seconds": 4.4,
                            "peak_rss_increase_mb": 160.0, "index_lookups_per_s": 346_000,
                            "check_calls_per_s": 87_000},
                           {"issuer": "carried", "entries": 1_000_000, "load_seconds": 9.9,
                            "peak_rss_increase_mb": 999.0, "index_lookups_per_s": 1, "check_calls_per_s": 1}],
        },
    }


def run(script: str, *args: Path | str) -> str:
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def row(table: str, label: str) -> list[str]:
    """The cells of the one row whose first cell is ``label`` (cells are separated by 2+ spaces)."""
    found = [re.split(r"\s{2,}", line.strip()) for line in table.splitlines() if line.startswith(label + "  ")]
    assert len(found) == 1, f"{label!r}: {len(found)} rows in\n{table}"
    return found[0]


def test_summary_and_compare_show_the_figures_ratios_and_changes(tmp_path: Path) -> None:
    before = results(short="aaaaaaa", ours=514, signxml=872, xmlsec=2617,
                     intake={("sqlite", 1): 57, ("postgresql", 1): 48, ("postgresql", 4): 60,
                             ("postgresql-durable", 1): 30, ("postgresql-durable", 4): 45},
                     pull=24, push=26, pull_p99=54, push_p99=164, big_bytes=100 * MB, increase_mib=384)
    after = results(short="bbbbbbb", ours=1800, signxml=860, xmlsec=2600,
                    intake={("sqlite", 1): 57, ("sqlite", 4): 90, ("postgresql", 1): 100, ("postgresql", 4): 300,
                            ("postgresql-durable", 1): 80, ("postgresql-durable", 4): 240},
                    pull=160, push=150, pull_p99=40, push_p99=120, big_bytes=100 * MB, increase_mib=250,
                    failed=("ui",))
    after["benchmarks"]["intake"]["database_filesystem"] = "tmpfs"
    a, b = tmp_path / "results-a.json", tmp_path / "results-b.json"
    a.write_text(json.dumps(before), encoding="utf-8")
    b.write_text(json.dumps(after), encoding="utf-8")

    table = run("summary.py", a)
    assert "commit aaaaaaa" in table
    assert "load 0.5 -> 1.5" in table
    assert row(table, "verify: ours, full package, same signer")[1] == "514.0"
    assert row(table, "verify: signxml plain verify (ASCII twin)")[1] == "872.0"
    assert row(table, "verify: python-xmlsec plain verify")[1] == "2,617"
    assert row(table, "verify: ours (same signer) / signxml")[1:] == ["0.59", "x", ">= 2x", "NO"]
    assert row(table, "verify: ours (same signer) / python-xmlsec")[1:] == ["0.20", "x", ">= 0.5x", "NO"]
    assert row(table, "intake: SQLite, 1 client")[1:] == ["57.0", "deliveries/s"]
    assert row(table, "intake: SQLite, 4 clients")[1] == "—"  # not measured in this run
    assert row(table, "intake: PostgreSQL fsync=off, 4 clients")[1:] == ["60.0", "deliveries/s", ">= 250/s", "NO"]
    assert row(table, "intake: PostgreSQL durable commits, 4 clients")[1:] == [
        "45.0", "deliveries/s", ">= 250/s", "NO"]
    assert row(table, "chain: pull")[1:] == ["24.0", "packages/s", ">= 150/s", "NO"]
    assert row(table, "chain: push, 4 clients")[1] == "26.0"
    assert row(table, "chain: push, receipt -> erasure p99")[1] == "164.0"
    # 100 MB = 95.4 MiB: +384 MiB is 4.03x the package, against a bound of 1.5 x 95.4 + 120 = 263 MiB.
    assert row(table, "relay memory: peak increase / package size")[1] == "4.03"
    assert row(table, "relay memory: peak increase (VmHWM - idle)")[1:] == ["384.0", "MiB", "<= 263 MiB", "NO"]
    assert row(table, "relay memory: peak increase / (1.5x size + 120 MiB)")[1:] == ["1.46", "x", "<= 1x", "NO"]
    assert row(table, "CRL store: load 1,000,000 entries")[1] == "4.4"  # the configured issuer, not the carried
    assert "tmpfs" not in table

    table = run("summary.py", b)
    assert row(table, "verify: ours (same signer) / signxml")[1:] == ["2.09", "x", ">= 2x", "yes"]
    assert row(table, "intake: PostgreSQL fsync=off, 4 clients")[-1] == "yes"
    assert row(table, "intake: PostgreSQL durable commits, 4 clients")[-1] == "NO"
    assert row(table, "relay memory: peak increase (VmHWM - idle)")[-1] == "yes"
    assert "FAILED: ui" in table
    assert "databases were on tmpfs" in table

    compared = run("compare.py", a, b)
    assert "A: commit aaaaaaa" in compared
    assert "B: commit bbbbbbb" in compared
    assert "WARNING: B: failed benchmarks ui" in compared
    assert row(compared, "verify: ours, full package, same signer")[1:5] == [
        "514.0", "1,800", "packages/s", "+250.2 % (better)"]
    assert row(compared, "verify: ours (same signer) / signxml")[1:5] == ["0.59", "2.09", "x", "+255.1 % (better)"]
    assert row(compared, "chain: pull, receipt -> erasure p99")[1:5] == ["54.0", "40.0", "ms", "-25.9 % (better)"]
    assert row(compared, "relay memory: peak increase (VmHWM - idle)")[1:5] == [
        "384.0", "250.0", "MiB", "-34.9 % (better)"]
    assert row(compared, "verify: signxml plain verify (ASCII twin)")[1:5] == [
        "872.0", "860.0", "packages/s", "-1.4 % (worse)"]
    assert row(compared, "intake: SQLite, 4 clients")[1:4] == ["—", "90.0", "deliveries/s"]


ENTRY_POINTS = sorted(p.name for p in (REPO / "bench").glob("*.py")
                      if p.name.startswith(("bench_", "profile_")) or p.name in {"run.py", "summary.py", "compare.py"})


def test_every_benchmark_entry_point_imports_and_parses_its_arguments() -> None:
    """Each script's ``--help`` runs its imports and its argument parser and nothing else: a script
    that imports a name another one no longer has (profile_intake.py did) fails here, not at the
    next manual run."""
    assert {"bench_intake.py", "bench_relay.py", "bench_verify.py", "profile_intake.py", "run.py"} <= set(ENTRY_POINTS)
    running = {script: subprocess.Popen([sys.executable, str(REPO / "bench" / script), "--help"], cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for script in ENTRY_POINTS}
    for script, proc in running.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{script}: exit {proc.returncode}\n{err[-2000:]}"
        assert "usage:" in out, f"{script}: {out[:200]}"
