"""One table of a benchmark run: the figures of issue 19 side by side, each beside its aim.

A results file (``bench/results-<UTC time>-<commit>.json``, written by ``bench/run.py``) holds the
raw output of every benchmark under ``benchmarks``; the table's figures and ratios are computed here
from those raw outputs, so an older results file is read with today's definitions (``compare.py``
relies on that). A benchmark missing from the run (``--only``, or it failed) shows as "—".

Usage: ``python bench/summary.py [RESULTS.json] [--markdown]`` (default: the newest
``bench/results-*.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
MiB = 1024 * 1024
#: The issue's aims (issue 19).
AIM_VERIFY_VS_SIGNXML = 2.0
AIM_VERIFY_VS_XMLSEC = 0.5
AIM_INTAKE_POSTGRESQL_4_CLIENTS = 250.0
AIM_CHAIN_PER_SECOND = 150.0
AIM_ERASURE_P99_MS = 100.0
AIM_MEMORY_FACTOR, AIM_MEMORY_FIXED_MIB = 1.5, 120.0


@dataclass(frozen=True)
class Figure:
    key: str  #: stable name, the same in every run (compare.py matches on it)
    label: str
    unit: str
    value: float | None
    aim: str = ""
    met: bool | None = None
    higher_is_better: bool = True


def _get(data: Any, *path: str | int) -> Any:
    for step in path:
        if isinstance(data, dict) and isinstance(step, str):
            data = data.get(step)
        elif isinstance(data, list) and isinstance(step, int) and -len(data) <= step < len(data):
            data = data[step]
        else:
            return None
    return data


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _at_least(value: float | None, aim: float) -> bool | None:
    return None if value is None else value >= aim


def _at_most(value: float | None, aim: float) -> bool | None:
    return None if value is None else value <= aim


def _verify(b: dict[str, Any]) -> list[Figure]:
    rates = _get(b, "verify", "results_per_second") or {}
    ours, signxml, xmlsec = (rates.get("ours_full_same_signer"), rates.get("signxml_plain_ascii"),
                             rates.get("python_xmlsec_plain"))
    vs_signxml, vs_xmlsec = _ratio(ours, signxml), _ratio(ours, xmlsec)
    return [
        Figure("verify.ours_same_signer", "verify: ours, full package, same signer", "packages/s", ours),
        Figure("verify.ours_distinct_signers", "verify: ours, full package, distinct signers", "packages/s",
               rates.get("ours_full_distinct_signers")),
        Figure("verify.ours_carried_signing_ca", "verify: ours, full package, carried signing CA", "packages/s",
               rates.get("ours_full_carried_signing_ca")),
        Figure("verify.signxml_plain", "verify: signxml plain verify (ASCII twin)", "packages/s", signxml),
        Figure("verify.python_xmlsec_plain", "verify: python-xmlsec plain verify", "packages/s", xmlsec),
        Figure("verify.ours_vs_signxml", "verify: ours (same signer) / signxml", "x", vs_signxml,
               f">= {AIM_VERIFY_VS_SIGNXML:g}x", _at_least(vs_signxml, AIM_VERIFY_VS_SIGNXML)),
        Figure("verify.ours_vs_python_xmlsec", "verify: ours (same signer) / python-xmlsec", "x", vs_xmlsec,
               f">= {AIM_VERIFY_VS_XMLSEC:g}x", _at_least(vs_xmlsec, AIM_VERIFY_VS_XMLSEC)),
    ]


INTAKE_DATABASES = {"sqlite": "SQLite", "postgresql": "PostgreSQL fsync=off",
                    "postgresql-durable": "PostgreSQL durable commits"}


def _intake(b: dict[str, Any]) -> list[Figure]:
    intake = b.get("intake") or {}
    runs = {(r["database"], r["clients"]): r for r in intake.get("runs", []) if r.get("workers", 1) == 1}
    clients = sorted({c for _, c in runs} | {1, 4})
    # The intake's own clamd scan (bench_intake --scanner clamd) is another measurement: its own keys.
    scan_key, scan_label = (".clamd", " + clamd") if intake.get("scanner") == "clamd" else ("", "")
    out = []
    for database, name in INTAKE_DATABASES.items():
        for n in clients:
            value = _get(runs.get((database, n)), "deliveries_per_second")
            aimed = database.startswith("postgresql") and n == 4
            out.append(Figure(f"intake.{database}.clients_{n}{scan_key}.per_second",
                              f"intake: {name}{scan_label}, {n} client{'s' if n > 1 else ''}", "deliveries/s", value,
                              f">= {AIM_INTAKE_POSTGRESQL_4_CLIENTS:g}/s" if aimed else "",
                              _at_least(value, AIM_INTAKE_POSTGRESQL_4_CLIENTS) if aimed else None))
    # ``intake serve --workers N`` runs (bench_intake --workers): PostgreSQL, the most clients.
    for r in intake.get("runs", []):
        w, n, database = r.get("workers", 1), r["clients"], r["database"]
        if w == 1 or database not in INTAKE_DATABASES:
            continue
        value = _get(r, "deliveries_per_second")
        out.append(Figure(f"intake.{database}.clients_{n}.workers_{w}{scan_key}.per_second",
                          f"intake: {INTAKE_DATABASES[database]}{scan_label}, {n} clients, {w} workers",
                          "deliveries/s", value, f">= {AIM_INTAKE_POSTGRESQL_4_CLIENTS:g}/s",
                          _at_least(value, AIM_INTAKE_POSTGRESQL_4_CLIENTS)))
    return out


def _chain(b: dict[str, Any]) -> list[Figure]:
    relay = b.get("relay") or {}
    out = []
    for channel in ("pull", "push"):
        rate = _get(relay, channel, "packages_per_second")
        clients = _get(relay, channel, "clients")
        how = f"push, {clients} clients" if channel == "push" and clients else channel
        p99 = _get(relay, channel, "receipt_to_erasure_p99_ms")
        out += [
            Figure(f"chain.{channel}.per_second", f"chain: {how}", "packages/s", rate,
                   f">= {AIM_CHAIN_PER_SECOND:g}/s", _at_least(rate, AIM_CHAIN_PER_SECOND)),
            Figure(f"chain.{channel}.erasure_p50_ms", f"chain: {channel}, receipt -> erasure p50", "ms",
                   _get(relay, channel, "receipt_to_erasure_p50_ms"), higher_is_better=False),
            Figure(f"chain.{channel}.erasure_p99_ms", f"chain: {channel}, receipt -> erasure p99", "ms", p99,
                   f"<= {AIM_ERASURE_P99_MS:g} ms at 100/s", _at_most(p99, AIM_ERASURE_P99_MS),
                   higher_is_better=False),
        ]
    # Pushed at a fixed offered rate (bench_relay --paced-rates): the aim's rate is 100/s.
    for paced in relay.get("push_paced") or []:
        rate = paced.get("offered_per_second")
        p99 = paced.get("receipt_to_erasure_p99_ms")
        at_aim = rate is not None and rate >= 100
        out.append(Figure(f"chain.push_paced_{rate:g}.erasure_p99_ms",
                          f"chain: push offered at {rate:g}/s, receipt -> erasure p99", "ms", p99,
                          f"<= {AIM_ERASURE_P99_MS:g} ms at 100/s" if at_aim else "",
                          _at_most(p99, AIM_ERASURE_P99_MS) if at_aim else None, higher_is_better=False))
    return out


def _cpu(b: dict[str, Any]) -> list[Figure]:
    """CPU per package, every process of the run together (bench/cputime.py), and the rate the run's
    cores could carry at that cost if nothing waited: where an aim is beyond that ceiling, no change
    inside one process reaches it on that machine."""
    out: list[Figure] = []
    intake = b.get("intake") or {}
    runs = {(r["database"], r["clients"]): r for r in intake.get("runs", []) if r.get("workers", 1) == 1}
    cpus = intake.get("cpus")
    cpu = _get(runs.get(("postgresql", 4)), "cpu_ms") or {}
    budget = None if not cpus else cpus * 1000 / AIM_INTAKE_POSTGRESQL_4_CLIENTS
    out += [
        Figure("cpu.intake.postgresql.clients_4.intake_ms", "CPU/delivery: intake process (PostgreSQL, 4 clients)",
               "ms", cpu.get("intake"), higher_is_better=False),
        Figure("cpu.intake.postgresql.clients_4.postgresql_ms", "CPU/delivery: PostgreSQL (the same run)", "ms",
               cpu.get("postgresql"), higher_is_better=False),
        Figure("cpu.intake.postgresql.clients_4.total_ms", "CPU/delivery: all processes, clients included", "ms",
               cpu.get("total"), f"<= {budget:.1f} ms for 250/s on {cpus} cores" if budget else "",
               _at_most(cpu.get("total"), budget) if budget and cpu else None, higher_is_better=False),
    ]
    relay = b.get("relay") or {}
    cpus = relay.get("cpus")
    budget = None if not cpus else cpus * 1000 / AIM_CHAIN_PER_SECOND
    for channel in ("pull", "push"):
        cpu = _get(relay, channel, "cpu_ms") or {}
        for process in ("relay", "intake", "clamd"):
            out.append(Figure(f"cpu.chain.{channel}.{process}_ms", f"CPU/package: chain {channel}, {process}", "ms",
                              cpu.get(process), higher_is_better=False))
        out.append(Figure(f"cpu.chain.{channel}.total_ms", f"CPU/package: chain {channel}, all processes", "ms",
                          cpu.get("total"), f"<= {budget:.1f} ms for 150/s on {cpus} cores" if budget else "",
                          _at_most(cpu.get("total"), budget) if budget and cpu else None, higher_is_better=False))
    return out


def _memory(b: dict[str, Any]) -> list[Figure]:
    big = _get(b, "relay", "big_package") or {}
    size = big.get("package_bytes")
    increase = big.get("relay_rss_peak_increase_mib")
    size_mib = None if size is None else size / MiB
    bound = None if size_mib is None else AIM_MEMORY_FACTOR * size_mib + AIM_MEMORY_FIXED_MIB
    per_size = _ratio(increase, size_mib)
    of_bound = _ratio(increase, bound)
    bound_text = f"<= {bound:,.0f} MiB" if bound is not None else ""
    return [
        Figure("memory.package_mib", "relay memory: the big package", "MiB", size_mib),
        Figure("memory.peak_increase_mib", "relay memory: peak increase (VmHWM - idle)", "MiB", increase,
               bound_text, _at_most(increase, bound) if bound is not None else None, higher_is_better=False),
        Figure("memory.peak_increase_per_package", "relay memory: peak increase / package size", "x", per_size,
               f"{AIM_MEMORY_FACTOR:g}x + {AIM_MEMORY_FIXED_MIB:g} MiB", higher_is_better=False),
        Figure("memory.peak_increase_of_bound",
               f"relay memory: peak increase / ({AIM_MEMORY_FACTOR:g}x size + {AIM_MEMORY_FIXED_MIB:g} MiB)",
               "x", of_bound, "<= 1x", _at_most(of_bound, 1.0), higher_is_better=False),
        Figure("memory.big_package_erasure_s", "relay memory: big package receipt -> erasure", "s",
               big.get("receipt_to_erasure_s"), higher_is_better=False),
    ]


def _others(b: dict[str, Any]) -> list[Figure]:
    revocation = b.get("revocation")
    if isinstance(revocation, list):  # both issuers: the configured one is the headline
        revocation = next((r for r in revocation if r.get("issuer") == "configured"), revocation[0])
    revocation = revocation or {}
    load = revocation.get("load_seconds")
    lookups = revocation.get("index_lookups_per_s")
    peak = revocation.get("peak_rss_increase_mb")
    entries = revocation.get("entries")
    pages = _get(b, "ui", "pages") or {}
    slowest = max(pages, key=lambda p: pages[p].get("p50_ms") or 0, default=None)
    return [
        Figure("revocation.load_s", f"CRL store: load {entries:,} entries" if entries else "CRL store: load",
               "s", load, "< 10 s (10^6 entries)", higher_is_better=False),
        Figure("revocation.peak_mib", "CRL store: peak memory while loading", "MiB", peak, "< 300 MB (10^6)",
               higher_is_better=False),
        Figure("revocation.index_lookups_per_s", "CRL store: index lookups", "/s", lookups, ">= 100,000/s",
               _at_least(lookups, 100_000)),
        Figure("revocation.check_per_s", "CRL store: check() end to end", "/s",
               revocation.get("check_calls_per_s")),
        Figure("portal_generate.per_second", "portal_sim: applications generated", "/s",
               _get(b, "portal_generate", "applications_per_second")),
        Figure("ui.dashboard_p50_ms", "staff UI: dashboard p50", "ms", _get(pages, "dashboard", "p50_ms"),
               higher_is_better=False),
        Figure("ui.slowest_page_p50_ms", f"staff UI: slowest page p50 ({slowest or '-'})", "ms",
               _get(pages, slowest, "p50_ms") if slowest else None, higher_is_better=False),
    ]


def figures(benchmarks: dict[str, Any]) -> list[Figure]:
    """Every headline figure of a run, in table order."""
    return [*_verify(benchmarks), *_intake(benchmarks), *_chain(benchmarks), *_cpu(benchmarks),
            *_memory(benchmarks), *_others(benchmarks)]


def number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "x":
        return f"{value:.2f}"
    return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool = False,
          right: Sequence[int] = ()) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def met_text(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: ""}[met]


def describe(results: dict[str, Any]) -> str:
    """One line: the commit, the date and the machine of a results file."""
    commit = results.get("commit") or {}
    machine = results.get("machine") or {}
    start, end = machine.get("load_average_start") or ["?"], machine.get("load_average_end") or ["?"]
    parts = [f"commit {commit.get('short', '?')}{' (dirty)' if commit.get('dirty') else ''}",
             str(results.get("date", "?")), f"{machine.get('cpus', '?')} cpus",
             f"load {start[0]} -> {end[0]}", f"Python {machine.get('python', '?')}"]
    if results.get("quick"):
        parts.append("QUICK run (small counts: checks the harness, not the speed)")
    if results.get("failed"):
        parts.append(f"FAILED: {', '.join(results['failed'])}")
    if _get(results, "benchmarks", "intake", "database_filesystem") == "tmpfs":
        parts.append("the intake's databases were on tmpfs: its durable-commit figures are not durable")
    return ", ".join(parts)


def render(results: dict[str, Any], *, markdown: bool = False) -> str:
    rows = [[f.label, number(f.value, f.unit), f.unit, f.aim, met_text(f.met)]
            for f in figures(results.get("benchmarks") or {})]
    return describe(results) + "\n\n" + table(["figure", "this run", "unit", "aim (issue 19)", "met"], rows,
                                               markdown=markdown, right=(1,))


def newest() -> Path:
    found = sorted(BENCH.glob("results-*.json"))
    if not found:
        sys.exit("no bench/results-*.json: run `make bench` (or `make bench-quick`) first")
    return found[-1]


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        sys.exit(f"{path}: cannot be read as a results file ({exc})")
    if not isinstance(data, dict) or "benchmarks" not in data:
        sys.exit(f"{path}: not a results file of bench/run.py (no 'benchmarks')")
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("results", nargs="?", type=Path, help="a results file (default: the newest bench/results-*.json)")
    ap.add_argument("--markdown", action="store_true", help="a Markdown table (for docs/benchmarks.md)")
    args = ap.parse_args(argv)
    path = args.results or newest()
    print(f"{path}:")
    print(render(load(path), markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
