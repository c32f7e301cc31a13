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
    # CPU per package by process (bench/cputime.py); 2 cores: 250/s allows 8 ms, 150/s 13.3 ms.
    before["benchmarks"]["intake"]["cpus"] = before["benchmarks"]["relay"]["cpus"] = 2
    before["benchmarks"]["intake"]["runs"][2]["cpu_ms"] = {"intake": 18.4, "postgresql": 4.1, "benchmark": 1.9,
                                                           "total": 24.4}
    before["benchmarks"]["relay"]["push"]["cpu_ms"] = {"relay": 12.2, "intake": 25.1, "clamd": 11.8, "total": 62.7}
    after["benchmarks"]["intake"]["cpus"] = after["benchmarks"]["relay"]["cpus"] = 2
    # Pushed at fixed offered rates: the p99 aim is judged at 100/s only.
    after["benchmarks"]["relay"]["push_paced"] = [
        {"offered_per_second": 10.0, "receipt_to_erasure_p99_ms": 61.5},
        {"offered_per_second": 100.0, "receipt_to_erasure_p99_ms": 140.0}]
    after["benchmarks"]["intake"]["runs"][3]["cpu_ms"] = {"intake": 3.0, "postgresql": 3.5, "benchmark": 1.4,
                                                          "total": 7.9}
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
    assert row(table, "CPU/delivery: intake process (PostgreSQL, 4 clients)")[1:] == ["18.4", "ms"]
    assert row(table, "CPU/delivery: all processes, clients included")[1:] == [
        "24.4", "ms", "<= 8.0 ms for 250/s on 2 cores", "NO"]
    assert row(table, "CPU/package: chain push, clamd")[1:] == ["11.8", "ms"]
    assert row(table, "CPU/package: chain push, all processes")[1:] == [
        "62.7", "ms", "<= 13.3 ms for 150/s on 2 cores", "NO"]
    assert row(table, "CPU/package: chain pull, all processes")[1] == "—"  # not measured in this run

    table = run("summary.py", b)
    assert row(table, "verify: ours (same signer) / signxml")[1:] == ["2.09", "x", ">= 2x", "yes"]
    assert row(table, "intake: PostgreSQL fsync=off, 4 clients")[-1] == "yes"
    assert row(table, "intake: PostgreSQL durable commits, 4 clients")[-1] == "NO"
    assert row(table, "relay memory: peak increase (VmHWM - idle)")[-1] == "yes"
    assert "FAILED: ui" in table
    assert "databases were on tmpfs" in table
    assert row(table, "CPU/delivery: all processes, clients included")[-1] == "yes"
    assert row(table, "CPU/package: chain push, all processes")[1] == "—"
    assert row(table, "chain: push offered at 10/s, receipt -> erasure p99")[1:] == ["61.5", "ms"]
    assert row(table, "chain: push offered at 100/s, receipt -> erasure p99")[1:] == [
        "140.0", "ms", "<= 100 ms at 100/s", "NO"]

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


_BURN = """
import os, sys, time
def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
print("started", flush=True)
sys.stdin.readline()  # "go": the meter has taken its first reading
if sys.argv[1] == "parent":
    child = os.fork()
    if child == 0:  # the grandchild: burns, ends, and is reaped by the parent (its time becomes the parent's)
        burn(0.4)
        os._exit(0)
    os.waitpid(child, 0)
    burn(0.3)
    print("ready", flush=True)
    sys.stdin.read()  # alive until told
"""


def test_cpu_meter_counts_a_tree_alive_and_reaped_and_nothing_outside_it() -> None:
    """bench/cputime.py: a process's own CPU and that of a child it reaped are counted; a process
    outside the tree is not. The amounts are fixed by the processes themselves (each burns until its
    own CPU clock reaches them), so nothing here depends on how fast the machine is."""
    sys.path.insert(0, str(REPO))
    from bench.cputime import CpuMeter, tree_cpu_seconds

    inside = subprocess.Popen([sys.executable, "-c", _BURN, "parent"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    outside = subprocess.Popen([sys.executable, "-c", _BURN, "parent"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert inside.stdin is not None
        assert outside.stdin is not None
        assert inside.stdout is not None
        assert outside.stdout is not None
        assert inside.stdout.readline().strip() == outside.stdout.readline().strip() == "started"
        meter = CpuMeter({"inside": lambda: inside.pid, "gone": lambda: None})
        meter.start()
        for proc in (inside, outside):
            proc.stdin.write("go\n")
            proc.stdin.flush()
        assert inside.stdout.readline().strip() == outside.stdout.readline().strip() == "ready"
        seconds = meter.stop()
        # 0.4 s of the reaped grandchild + 0.3 s of its parent (less clock ticks of rounding, 10 ms each),
        # a fork and a few lines more; the other tree's 0.7 s is not there
        assert 0.65 <= seconds["inside"] < 1.0, seconds
        assert seconds["gone"] == 0.0
        assert tree_cpu_seconds(outside.pid) >= 0.65
        per = meter.per_unit_ms(10)
        assert per["inside"] == round(seconds["inside"] * 100, 2)
        assert per["total"] == round(sum(seconds.values()) * 100, 2)
    finally:
        for proc in (inside, outside):
            proc.kill()
            proc.communicate(timeout=30)
