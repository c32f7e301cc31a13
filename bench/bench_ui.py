"""Staff UI page latency (p50 / p95 / max) over real HTTP with a million applications in PostgreSQL.

* A private PostgreSQL cluster (Debian's package, run as ``postgres`` like the tests' cluster, with
  memory settings for this size: bench/ui_postgres.py), the alembic migrations, then ``--applications``
  chains generated inside PostgreSQL (bench/ui_data.py: INSERT … SELECT over generate_series) and full
  detail data (signer, sealed attachments and 個人番号, linkage decisions) for a ``--sample`` of them
  made in Python with the runtime's sealers; VACUUM (ANALYZE).
* The real app (``intake.api.create_app``, the procedure catalogue loaded from a JSON file as in
  production) served by uvicorn in a thread of this process (tests/support/servers.py, the same
  uvicorn settings as ``python -m intake serve``): in-process so that the clock is pinned (TOTP login,
  the dashboard's "today") and so that SQL can be timed per page with SQLAlchemy event hooks.
* A reviewer of one department (half of the data) logs in with password + TOTP; each page is fetched
  ``--requests`` times after ``--warmup`` with httpx, one request at a time.
* The slowest statement of each page is captured (statement + parameters) and the slowest ones are
  run again under ``EXPLAIN (ANALYZE, BUFFERS)``; the plans go to the JSON output.

Usage: ``python bench/bench_ui.py [--applications 1000000] [--quick] [--requests 50] [--proposals] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
from sqlalchemy import Engine, event, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ui_data import BENCH_DEPT, NOW, PROCEDURES, STAFF, Population, populate
from ui_postgres import SETTINGS, bench_cluster
from ui_proposals import INDEXES, apply_indexes, rewrites, time_rewrites

from intake.api import create_app
from intake.db import make_engine, make_session_factory
from intake.migrate import upgrade
from intake.runtime import Runtime
from intake.settings import IntakeSettings, MailSettings
from intake.staff.service import create_user
from signature.testing.pki import TestPKI
from tests.support.servers import serve_in_thread

PASSWORD = "bench password for the staff UI"  # noqa: S105 - a throw-away account in a throw-away cluster
REVIEWER = STAFF[BENCH_DEPT][0]
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_TOTAL = re.compile(r"<p>([\d,]+) 件(以上)?")  # "N 件", or "10,000 件以上" once the list stops counting


class Clock:
    """The server's pinned clock (moved on explicitly)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def log(msg: str) -> None:
    print(msg, flush=True)


# --- SQL capture ----------------------------------------------------------------------------------


@dataclass
class StatementStats:
    calls: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    params: Any = None  # of the slowest call


@dataclass
class SqlCapture:
    """Every statement the app runs, timed at the driver, attributed to the page being measured
    (requests are sequential, so the page is known)."""

    scenario: str | None = None
    stats: dict[tuple[str, str], StatementStats] = field(default_factory=dict)

    def attach(self, engine: Engine) -> None:
        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, _cursor: Any, _stmt: str, _params: Any, _ctx: Any, _many: bool) -> None:
            conn.info.setdefault("bench_t0", []).append(time.perf_counter())

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, _cursor: Any, stmt: str, params: Any, _ctx: Any, _many: bool) -> None:
            elapsed = (time.perf_counter() - conn.info["bench_t0"].pop()) * 1000
            if self.scenario is None:
                return
            s = self.stats.setdefault((self.scenario, stmt), StatementStats())
            s.calls += 1
            s.total_ms += elapsed
            if elapsed >= s.max_ms:
                s.max_ms, s.params = elapsed, params

    def of(self, scenario: str) -> list[tuple[str, StatementStats]]:
        return sorted(((stmt, s) for (sc, stmt), s in self.stats.items() if sc == scenario),
                      key=lambda x: -x[1].total_ms)


# --- pages ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    url: Callable[[int], str]  # request number → URL


def scenarios(data: dict[str, list[Any]]) -> list[Scenario]:
    own = PROCEDURES[0].id
    month_from = (NOW - timedelta(days=55)).date().replace(day=1)
    month_to = (month_from + timedelta(days=32)).replace(day=1) - timedelta(days=1)

    def pick(key: str) -> Callable[[int], str]:
        values = data[key]
        return lambda k: values[k % len(values)]

    receipt, atena, detail = pick("receipts"), pick("atena"), pick("detail")

    def fixed(url: str) -> Callable[[int], str]:
        return lambda _k: url

    return [
        Scenario("list_default", "一覧 1ページ目（絞り込みなし）", fixed("/staff/applications")),
        Scenario("list_page_200", "一覧 200ページ目（深いページ）", fixed("/staff/applications?page=200")),
        Scenario("list_procedure", f"手続 = {own}", fixed(f"/staff/applications?procedure={own}")),
        Scenario("list_status", "ステータス = 審査中", fixed("/staff/applications?status=審査中")),
        Scenario("list_date_range", f"到達日 {month_from} 〜 {month_to}",
                 fixed(f"/staff/applications?from={month_from}&to={month_to}")),
        Scenario("list_linkage_unresolved", "宛名番号 = 未設定", fixed("/staff/applications?linkage=unresolved")),
        Scenario("list_queue", "要確認のみ (queue=1)", fixed("/staff/applications?queue=1")),
        Scenario("list_sigerr", "署名エラーのみ (sigerr=1)", fixed("/staff/applications?sigerr=1")),
        Scenario("list_search_receipt", "受付番号検索（毎回別の番号）",
                 lambda k: f"/staff/applications?q={receipt(k)}"),
        Scenario("list_search_atena", "宛名番号検索（毎回別の番号）", lambda k: f"/staff/applications?q={atena(k)}"),
        Scenario("list_kana_prefix", "フリガナ前方一致 kana=ミナト", fixed("/staff/applications?kana=ミナト")),
        Scenario("list_assigned_me", "担当 = 自分 (assigned=me)", fixed("/staff/applications?assigned=me")),
        Scenario("list_version_resubmitted", "再申請・補正あり (version=resubmitted)",
                 fixed("/staff/applications?version=resubmitted")),
        Scenario("detail", "詳細（毎回別の申請）", lambda k: f"/staff/applications/{detail(k)}"),
        Scenario("dashboard", "ダッシュボード", fixed("/staff/")),
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def measure(client: httpx.Client, sc: Scenario, capture: SqlCapture, *, warmup: int, requests: int,
            budget: float) -> dict[str, Any]:
    for k in range(warmup):
        r = client.get(sc.url(requests + k))
        assert r.status_code == 200, (sc.name, r.status_code, r.text[:300])
    capture.scenario = sc.name
    times: list[float] = []
    total: int | None = None
    capped = False
    size = 0
    started = time.perf_counter()
    try:
        for k in range(requests):
            t = time.perf_counter()
            r = client.get(sc.url(k))
            times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, (sc.name, r.status_code, r.text[:300])
            found = _TOTAL.search(r.text)
            total = int(found.group(1).replace(",", "")) if found else None
            capped = bool(found and found.group(2))
            size = len(r.content)
            if time.perf_counter() - started > budget:
                break
    finally:
        capture.scenario = None
    stmts = capture.of(sc.name)
    db_ms = sum(s.total_ms for _, s in stmts) / len(times)
    return {
        "what": sc.what, "example_url": sc.url(0), "n": len(times),
        "p50_ms": round(percentile(times, 0.5), 1), "p95_ms": round(percentile(times, 0.95), 1),
        "max_ms": round(max(times), 1), "mean_ms": round(sum(times) / len(times), 1),
        "db_ms_per_request": round(db_ms, 1),
        "statements_per_request": round(sum(s.calls for _, s in stmts) / len(times), 1),
        "total_rows_shown": total, "total_capped": capped, "bytes": size,
        "top_statements": [{"sql": " ".join(stmt.split())[:160], "calls_per_request": round(st.calls / len(times), 2),
                            "mean_ms": round(st.total_ms / st.calls, 2)} for stmt, st in stmts[:4]],
    }


# --- set-up -------------------------------------------------------------------------------------------


def write_trust(base: Path) -> dict[str, Any]:
    """Trust files (the runtime needs anchors even though no package is verified here) and the
    procedure catalogue, as files the way production configures them."""
    pki = TestPKI.generate(now=NOW, seed=11)
    (base / "roots").mkdir()
    for i, root in enumerate(pki.jpki_roots):
        (base / "roots" / f"g{i}.pem").write_bytes(root.cert_pem())
    (base / "portal.pem").write_bytes(pki.portal_root.cert_pem())
    (base / "procedures.json").write_text(json.dumps({"procedures": [
        {"id": p.id, "name": p.name, "department": p.department, "department_name": p.department_name}
        for p in PROCEDURES]}, ensure_ascii=False), encoding="utf-8")
    return {"jpki_roots": [base / "roots"], "portal_roots": [base / "portal.pem"],
            "procedures_file": base / "procedures.json"}


def make_staff(engine: Engine, runtime: Runtime) -> str:
    """Accounts for every assignee login; returns the benchmark reviewer's TOTP secret."""
    sessions = make_session_factory(engine)
    secret = None
    with sessions() as session:
        for dept, logins in STAFF.items():
            for login in logins:
                new = create_user(session, login=login, display_name=f"職員 {login}", roles=["reviewer"],
                                  departments=[dept], at=NOW - timedelta(days=800), sealer=runtime.package_sealer,
                                  password=PASSWORD)
                if login == REVIEWER:
                    secret = new.totp_secret
        session.commit()
    assert secret is not None
    return secret


def request_data(engine: Engine, pop: Population, needed: int) -> dict[str, list[Any]]:
    """Per-request values: detail ids from the sample, receipt numbers (first and later versions) and
    宛名番号 of applications in the reviewer's scope."""
    rng = random.Random(5)
    ids = list(pop.sample_ids)
    rng.shuffle(ids)
    with engine.connect() as conn:
        receipts = list(conn.execute(text(
            "SELECT v.receipt_number FROM application_versions v WHERE v.application_id = ANY(:ids)"
            " ORDER BY v.id"), {"ids": ids[:needed]}).scalars())
        atena = list(conn.execute(text(
            "SELECT atena_number FROM applications WHERE id = ANY(:ids) AND atena_number IS NOT NULL ORDER BY id"),
            {"ids": ids}).scalars())
    rng.shuffle(receipts)
    rng.shuffle(atena)
    assert len(ids) >= needed, f"the sample ({len(ids)}) is smaller than the requests per page ({needed})"
    return {"detail": ids, "receipts": receipts, "atena": atena}


def login(client: httpx.Client, secret: str, clock: Clock) -> None:
    page = client.get("/staff/login")
    found = _CSRF.search(page.text)
    assert found is not None, page.text[:300]
    r = client.post("/staff/login", data={"csrf": found.group(1), "login": REVIEWER, "password": PASSWORD,
                                          "totp": pyotp.TOTP(secret).at(clock.now)})
    assert r.status_code == 303, r.text[:300]
    clock.now += timedelta(seconds=30)


def explain(engine: Engine, capture: SqlCapture, results: dict[str, dict[str, Any]], top: int
            ) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) of the slowest SELECTs (by mean time per call), one per page."""
    candidates = []
    for name in results:
        for stmt, s in capture.of(name):
            if stmt.lstrip().upper().startswith("SELECT") and "pg_advisory" not in stmt:
                candidates.append((s.total_ms / s.calls, name, stmt, s))
    candidates.sort(key=lambda c: -c[0])
    chosen, seen = [], set()
    for mean, name, stmt, s in candidates:
        if stmt in seen:
            continue
        seen.add(stmt)
        chosen.append((mean, name, stmt, s))
        if len(chosen) == top:
            break
    out = []
    with engine.connect() as conn:
        for mean, name, stmt, s in chosen:
            plan = [r[0] for r in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + stmt, s.params)]
            conn.rollback()
            out.append({"page": name, "mean_ms": round(mean, 1), "calls": s.calls, "statement": stmt,
                        "params": {k: str(v) for k, v in (s.params or {}).items()}, "plan": plan})
    return out


def measure_all(args: argparse.Namespace, engine: Engine, runtime: Runtime, capture: SqlCapture,
                data: dict[str, list[Any]], secret: str, clock: Clock) -> dict[str, dict[str, Any]]:
    """Every page over real HTTP, one logged-in reviewer, one request at a time."""
    results: dict[str, dict[str, Any]] = {}
    app = create_app(runtime, make_session_factory(engine))
    with serve_in_thread(app, proxy_headers=False) as base_url, \
            httpx.Client(base_url=base_url, timeout=300, follow_redirects=False) as client:
        login(client, secret, clock)
        for sc in scenarios(data):
            if args.only and sc.name not in args.only:
                continue
            results[sc.name] = r = measure(client, sc, capture, warmup=args.warmup, requests=args.requests,
                                           budget=args.budget)
            log(f"  {sc.name:<26} p50 {r['p50_ms']:8.1f}  p95 {r['p95_ms']:8.1f}  max {r['max_ms']:8.1f} ms"
                f"  (n={r['n']}, db {r['db_ms_per_request']:.1f} ms, rows {r['total_rows_shown']}"
                f"{'+' if r['total_capped'] else ''})")
    default_total = results.get("list_default", {}).get("total_rows_shown")
    for name, r in results.items():
        r["filter_ignored"] = (name.startswith("list_") and name not in ("list_default", "list_page_200")
                               and not r["total_capped"] and r["total_rows_shown"] is not None
                               and r["total_rows_shown"] == default_total)
    return results


def try_proposals(args: argparse.Namespace, engine: Engine, runtime: Runtime, capture: SqlCapture,
                  data: dict[str, list[Any]], secret: str, clock: Clock) -> dict[str, Any]:
    """The query rewrites timed against what the app sent, then the proposed indexes created and
    every page measured again (bench/ui_proposals.py)."""
    scope = [p.id for p in PROCEDURES if p.department == BENCH_DEPT]
    page_size = runtime.settings.ui.page_size
    with engine.connect() as conn:
        # the last row before page 200 (or before the last page, on a small run: the app clamps the page)
        total = conn.execute(text("SELECT count(*) FROM applications WHERE procedure_id = ANY(:p)"),
                             {"p": scope}).scalar_one()
        offset = min(199, -(-total // page_size) - 1) * page_size - 1
        key = conn.execute(text(
            "SELECT created_at, id FROM applications WHERE procedure_id = ANY(:p)"
            " ORDER BY created_at DESC, id DESC OFFSET :o LIMIT 1"), {"p": scope, "o": offset}).one()
        version = conn.execute(text("SELECT v.id FROM application_versions v WHERE v.application_id = :a"
                                    " AND v.state = 'current'"), {"a": data["detail"][0]}).scalar_one()
    items = rewrites(scope, receipt=data["receipts"][0], page_key=(key[0], key[1]), detail_version=version,
                     page_size=page_size)

    def captured(page: str, pick: Callable[[str], bool]) -> tuple[str, Any] | None:
        return next(((stmt, st.params) for stmt, st in capture.of(page) if pick(stmt)), None)

    log("query rewrites (EXPLAIN ANALYZE, median of 5) …")
    before = time_rewrites(engine, items, captured)
    for r in before:
        o, n = r.get("original", {}), r["rewritten"]
        log(f"  {r['name']:<28} exec {o.get('exec_ms', float('nan')):8.1f} → {n['exec_ms']:8.1f} ms;"
            f" fetch {o.get('fetch_ms', float('nan')):8.1f} → {n['fetch_ms']:8.1f} ms")
    log("creating the proposed indexes …")
    took = apply_indexes(engine)
    log(f"  {took}")
    after = SqlCapture()
    after.attach(engine)
    pages = measure_all(args, engine, runtime, after, data, secret, clock)

    def captured_after(page: str, pick: Callable[[str], bool]) -> tuple[str, Any] | None:
        return next(((stmt, st.params) for stmt, st in after.of(page) if pick(stmt)), None)

    with_indexes = time_rewrites(engine, items, captured_after)
    return {
        "indexes": [{"name": n, "ddl": ddl, "why": why, "build_seconds": took[n]} for n, ddl, why in INDEXES],
        "pages_with_indexes": pages,
        "slow_statements_with_indexes": explain(engine, after, pages, args.explain_top),
        "rewrites_before_indexes": before,
        "rewrites_with_indexes": with_indexes,
    }


def commit() -> str:
    """The commit measured (``+dirty`` when intake/ has uncommitted changes)."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,  # noqa: S607
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "intake"], cwd=repo,  # noqa: S607
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    mem = 0
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    return {"cpus": os.cpu_count() or 0, "memory_mib": mem, "python": platform.python_version(),
            "kernel": platform.release(), "load_at_start": os.getloadavg()[0]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    wall = time.perf_counter()
    result: dict[str, Any] = {"machine": machine(), "applications": args.applications, "sample": args.sample,
                              "commit": commit()}
    with tempfile.TemporaryDirectory(prefix="shinsei-bench-ui-") as tmp, bench_cluster() as (url, _pglog):
        base = Path(tmp)
        settings = IntakeSettings(environment="development", var_dir=base / "var", database_url=url,
                                  mail=MailSettings(enabled=False),
                                  **write_trust(base))
        clock = Clock(NOW)
        runtime = Runtime.from_settings(settings, clock=clock)
        upgrade(url)
        engine = make_engine(url)
        with engine.connect() as conn:
            result["postgresql"] = conn.exec_driver_sql("SHOW server_version").scalar_one()
        result["postgresql_settings"] = SETTINGS
        log(f"populating {args.applications:,} applications (sample with full detail: {args.sample:,}) …")
        pop = populate(engine, runtime, args.applications, sample=args.sample, attachment_kb=args.attachment_kb,
                       log=log)
        log(f"population took {pop.seconds:.1f} s ({pop.versions:,} versions); sizes: {pop.sizes}")
        result["population"] = {"seconds": pop.seconds, "versions": pop.versions, "steps": pop.steps,
                                "sizes": pop.sizes}
        secret = make_staff(engine, runtime)
        needed = args.warmup + args.requests
        data = request_data(engine, pop, needed)
        capture = SqlCapture()
        capture.attach(engine)
        results = measure_all(args, engine, runtime, capture, data, secret, clock)
        result["pages"] = results
        log("EXPLAIN (ANALYZE, BUFFERS) of the slowest statements …")
        result["slow_statements"] = explain(engine, capture, results, args.explain_top)
        if args.proposals:
            result["proposals"] = try_proposals(args, engine, runtime, capture, data, secret, clock)
        engine.dispose()
    result["wall_seconds"] = round(time.perf_counter() - wall, 1)
    result["machine"]["load_at_end"] = os.getloadavg()[0]
    return result


def report(result: dict[str, Any]) -> None:
    pop = result["population"]
    log("")
    log(f"{result['applications']:,} applications ({pop['versions']:,} versions) in PostgreSQL "
        f"{result['postgresql']}; population {pop['seconds']} s; database {pop['sizes'].get('database')}")
    log(f"full detail data (signer, attachments, 個人番号, linkage decisions) only for a sample of "
        f"{result['sample']:,} applications; the rest have minimal rows")
    log(f"{'page':<26} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'db ms':>7} {'rows':>8}  note")
    for name, r in result["pages"].items():
        note = "filter IGNORED (same total as unfiltered)" if r.get("filter_ignored") else ""
        rows = "" if r["total_rows_shown"] is None else str(r["total_rows_shown"]) + ("+" if r["total_capped"] else "")
        log(f"{name:<26} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['max_ms']:8.1f} {r['db_ms_per_request']:7.1f}"
            f" {rows:>8}  {note}")
    log("")
    for s in result["slow_statements"]:
        timing = next((line for line in reversed(s["plan"]) if line.startswith("Execution Time")), "")
        log(f"[{s['page']}] mean {s['mean_ms']} ms/call; {timing}")
        log("  " + " ".join(s["statement"].split())[:300])
        for line in s["plan"][:3]:
            log("    " + line)
    log(f"wall time {result['wall_seconds']} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--applications", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="20 000 applications, 200 in the sample, 20 requests")
    ap.add_argument("--sample", type=int, default=2000, help="applications with full detail data")
    ap.add_argument("--attachment-kb", type=int, default=240, help="size of a sample version's two attachments")
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--budget", type=float, default=120.0, help="seconds per page at most (then fewer requests)")
    ap.add_argument("--explain-top", type=int, default=8)
    ap.add_argument("--only", nargs="*", help="only these pages")
    ap.add_argument("--proposals", action="store_true",
                    help="also time the query rewrites and measure every page again with the proposed indexes")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.applications, args.sample, args.requests, args.warmup = 20_000, 200, 20, 3
    result = run(args)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
