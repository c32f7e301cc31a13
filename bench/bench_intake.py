"""Deliveries stored per second (verify + encrypt + store + commit) on SQLite and PostgreSQL,
with ~100 KB packages, through the real HTTP API (uvicorn in a thread, httpx client).

Usage: ``python bench/bench_intake.py [--count 200] [--json PATH]``. PostgreSQL comes from
Debian's package (a throw-away cluster, as in the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intake.api import create_app
from intake.db import Base, make_engine, make_session_factory
from intake.deliveries.service import expected_key
from intake.runtime import Runtime
from intake.settings import IntakeSettings
from signature.testing.builder import Attachment, build_package
from signature.testing.pki import TestPKI, sample_residents
from signature.testing.samples import sample_pdf, sample_spec
from tests.support.postgres import postgres_cluster
from tests.support.servers import serve_in_thread

JST = timezone(timedelta(hours=9))
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=JST)


def packages(count: int, base: Path) -> tuple[list[bytes], IntakeSettings]:
    pki = TestPKI.generate(now=NOW, seed=11)
    rng = random.Random(11)
    residents = sample_residents(rng, 20)
    signers = [pki.issue_signer(r) for r in residents]
    (base / "roots").mkdir()
    for i, root in enumerate(pki.jpki_roots):
        (base / "roots" / f"g{i}.pem").write_bytes(root.cert_pem())
        (base / f"g{i}.crl").write_bytes(pki.issue_crl(root, [], this_update=NOW - timedelta(hours=1),
                                                        next_update=NOW + timedelta(days=1)))
    (base / "portal.pem").write_bytes(pki.portal_root.cert_pem())
    filler = sample_pdf("scan") + rng.randbytes(100_000)  # incompressible: a ~100 KB package
    out = []
    for i in range(count):
        r = residents[i % len(residents)]
        spec = sample_spec(r, rng, receipt_number=f"20261125-{i:010d}", arrived_at=NOW,
                           user_cert_serial=format(i + 1, "X"))
        spec = replace(spec, attachments=(*spec.attachments, Attachment("スキャン", "スキャン.pdf", filler)))
        out.append(build_package(spec, signer=signers[i % len(signers)], portal=pki.portal_server))
    settings = IntakeSettings(environment="development", var_dir=base / "var", jpki_roots=[base / "roots"],
                              portal_roots=[base / "portal.pem"], crls=[base / "g0.crl", base / "g1.crl"])
    return out, settings


def run(url: str, bodies: list[bytes], settings: IntakeSettings) -> float:
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    app = create_app(Runtime.from_settings(settings, clock=lambda: NOW), make_session_factory(engine))
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=60) as client:
        start = time.perf_counter()
        for body in bodies:
            r = client.post("/api/v1/deliveries", content=body,
                            headers={"Content-Type": "application/zip", "Idempotency-Key": expected_key(body)})
            assert r.status_code == 201, r.text
        elapsed = time.perf_counter() - start
    engine.dispose()
    return len(bodies) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        bodies, settings = packages(args.count, base)
        size = sum(map(len, bodies)) / len(bodies)
        results = {"package_bytes_avg": round(size), "count": args.count,
                   "sqlite_per_second": round(run(f"sqlite:///{base / 'bench.db'}", bodies, settings), 1)}
        with postgres_cluster() as url:
            results["postgresql_per_second"] = round(run(url, bodies, settings), 1)
    results["cpus"] = os.cpu_count() or 0
    for k, v in results.items():
        print(f"{k:<24} {v}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
