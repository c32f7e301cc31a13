"""The relay in the whole chain, as real processes: throughput, receipt → erasure times, peak memory.

* **Throughput**: ``--count`` packages of ~100 KB through ``dmz_relay serve`` into ``intake serve``
  (PostgreSQL, a throw-away cluster from Debian's package, as in the tests; mutual TLS; no fault
  proxy), by the pull channel (portal_sim serve, one package at a time, as the relay pulls) and by the
  push channel (``--clients`` concurrent uploads to ``POST /api/v1/packages``).
* **Receipt → erasure**: per package, ``erased_at − received_at`` from the relay's own tombstones
  (read → verified → scanned → forwarded → the intake's receipt → buffers dropped); p50 / p99. As
  fast as the channels go, packages queue for the cores behind each other; ``--paced-rates`` pushes
  ``--count`` more packages at each fixed offered rate (open loop, default 10/s), which shows the
  time a package takes when it does not wait for others.
* **CPU per package** of every process (``bench/cputime.py``: relay, intake, PostgreSQL, clamd,
  portal_sim, the push clients), and the rate the machine's cores could carry at that cost.
* **Peak memory**: a fresh relay process takes one ~100 MB package by push; ``VmHWM`` (peak resident
  set, from ``/proc/<pid>/status``) against the idle ``VmRSS`` before it.

The scanner is clamd (tests/support/clamd.py, ``StreamMaxLength`` 128 MiB so the big attachment is
really scanned) unless ``--scanner none``. Usage:
``python bench/bench_relay.py [--count 200] [--clients 4] [--big-mb 100] [--scanner clamd|none]
[--paced-rates 10,20] [--json PATH]``.
The test PKI is made for the real "now": relay and intake verify at the system time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cputime import CpuMeter, postmaster_pid
from signature.testing.builder import Attachment, build_package
from signature.testing.pki import Issued, TestPKI, sample_residents
from signature.testing.samples import sample_pdf, sample_spec
from tests.support.chain import JST, Chain, ChainOptions, PortalData, wait_until
from tests.support.clamd import clamd_daemon
from tests.support.postgres import postgres_cluster

MiB = 1024 * 1024
MUNICIPALITY = "131032"
API_KEY = "0123456789abcdef0123456789abcdef"


class Maker:
    """Packages signed by a test PKI made for ``now`` (trust files written under ``base``)."""

    def __init__(self, base: Path, now: datetime) -> None:
        self.now = now
        self.pki = TestPKI.generate(now=now, seed=11)
        self.rng = random.Random(11)
        self.residents = sample_residents(self.rng, 20)
        self.signers: list[Issued] = [self.pki.issue_signer(r) for r in self.residents]
        pki_dir, crl_dir = base / "pki", base / "crl"
        (pki_dir / "jpki-roots").mkdir(parents=True)
        (pki_dir / "portal-roots").mkdir()
        crl_dir.mkdir()
        for i, root in enumerate(self.pki.jpki_roots):
            (pki_dir / "jpki-roots" / f"g{i + 1}.pem").write_bytes(root.cert_pem())
            (crl_dir / f"g{i + 1}.crl").write_bytes(self.pki.issue_crl(
                root, [], this_update=now - timedelta(hours=2), next_update=now + timedelta(days=1)))
        (pki_dir / "portal-roots" / "portal-root.pem").write_bytes(self.pki.portal_root.cert_pem())
        (pki_dir / "jpki-intermediate.pem").write_bytes(self.pki.jpki_intermediate.cert_pem())

    def package(self, number: int, filler: bytes) -> tuple[str, bytes]:
        """(受付番号, package) with ``filler`` as an extra attachment."""
        i = number % len(self.residents)
        receipt = f"{self.now:%Y%m%d}-{number:010d}"
        spec = sample_spec(self.residents[i], self.rng, receipt_number=receipt,
                           arrived_at=self.now - timedelta(hours=1), user_cert_serial=format(number + 1, "X"))
        spec = replace(spec, attachments=(*spec.attachments, Attachment("スキャン", "スキャン.pdf", filler)))
        return receipt, build_package(spec, signer=self.signers[i], portal=self.pki.portal_server)


def write_portal_dir(base: Path, now: datetime, bodies: list[tuple[str, bytes]]) -> PortalData:
    """A portal_sim data directory (docs/portal-sim.md) holding ``bodies``, all arrived an hour ago."""
    (base / "packages").mkdir(parents=True)
    lines = []
    for number, body in bodies:
        (base / "packages" / f"{number}.zip").write_bytes(body)
        lines.append({"receipt_number": number, "arrived_at": (now - timedelta(hours=1)).isoformat(),
                      "procedure_id": "KOSODATE-JIDOTEATE-NINTEI", "procedure_name": "児童手当 認定請求",
                      "department": "子ども家庭支援部 子ども家庭課", "kind": "新規申請", "first_receipt_number": None,
                      "defect": None, "package": f"packages/{number}.zip", "sha256": hashlib.sha256(body).hexdigest(),
                      "size": len(body), "resident_id": "R000001"})
    lines.sort(key=lambda d: (d["arrived_at"], d["receipt_number"]))
    manifest = {"format": 1, "seed": 11, "municipality_code": MUNICIPALITY, "api_key": API_KEY,
                "generated_for": (now - timedelta(days=1)).isoformat(), "days": 1,
                "counts": {"applications": len(bodies)}}
    (base / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), "utf-8")
    (base / "applications.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), "utf-8")
    return PortalData.open(base)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def erasure_times(stones: list[dict[str, Any]], numbers: set[str]) -> list[float]:
    """Seconds from receipt to erasure of each finished tombstone of ``numbers``."""
    out = []
    for t in stones:
        if t["receipt_number"] in numbers and t["erased_at"] and t["outcome"] in ("stored", "duplicate"):
            out.append((datetime.fromisoformat(t["erased_at"]) - datetime.fromisoformat(t["received_at"]))
                       .total_seconds())
    return out


def span(stones: list[dict[str, Any]], numbers: set[str]) -> float:
    """From the first package's receipt to the last package's erasure (the relay's clock)."""
    mine = [t for t in stones if t["receipt_number"] in numbers and t["erased_at"]]
    first = min(datetime.fromisoformat(t["received_at"]) for t in mine)
    last = max(datetime.fromisoformat(t["erased_at"]) for t in mine)
    return (last - first).total_seconds()


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def push(url: str, body: bytes, timeout: float = 600, client: httpx.Client | None = None) -> httpx.Response:
    """``POST /api/v1/packages`` as an LGWAN terminal does; ``client``: on that kept-alive client.
    (A new ``httpx.Client`` per request costs ~15–25 ms of CPU here — mostly building its TLS context —
    which the push clients' threads would take from the two cores the chain runs on.)"""
    if client is not None:
        return client.post(f"{url}/api/v1/packages", content=body, headers={"Content-Type": "application/zip"},
                           timeout=timeout)
    return httpx.post(f"{url}/api/v1/packages", content=body, headers={"Content-Type": "application/zip"},
                      timeout=timeout, trust_env=False)


def push_channel(chain: Chain, relay_url: str, packages: list[tuple[str, bytes]], clients: int, cpu: CpuMeter,
                 rate: float | None = None) -> dict[str, Any]:
    """``packages`` pushed by ``clients`` threads (each one kept-alive ``httpx.Client``): as fast as the
    relay answers, or with ``rate`` the n-th package sent at n / ``rate`` seconds from the start (an
    open-loop schedule: a client that is late sends at once, and the lateness is reported, since a
    schedule the clients could not keep was not offered). Waits until every package is final."""
    numbers = {n for n, _ in packages}
    queue = list(enumerate(b for _, b in packages))
    queue.reverse()
    lock = threading.Lock()
    statuses: Counter[int] = Counter()
    late: list[float] = []
    began = time.perf_counter()

    def client() -> None:
        with httpx.Client(trust_env=False) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    index, body = queue.pop()
                if rate is not None:
                    due = began + index / rate
                    ahead = due - time.perf_counter()
                    if ahead > 0:
                        time.sleep(ahead)  # the schedule, not a wait for a result
                    with lock:
                        late.append(max(0.0, time.perf_counter() - due))
                code = push(relay_url, body, client=http).status_code
                with lock:
                    statuses[code] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    cpu.start()
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(1800)
    wall = time.perf_counter() - began
    wait_until(lambda: numbers <= {n for n, _ in chain.final_pairs()}, timeout=600,
               what="every pushed package final", interval=0.1, on_timeout=chain.tails)
    cpu.stop()
    stones = chain.tombstones()
    times = erasure_times(stones, numbers)
    out: dict[str, Any] = {
        "answers": dict(statuses),
        "packages_per_second": round(len(packages) / wall, 1),
        "receipt_to_erasure_p50_ms": round(1000 * statistics.median(times), 1),
        "receipt_to_erasure_p99_ms": round(1000 * percentile(times, 0.99), 1),
        "cpu_ms": cpu.per_unit_ms(len(packages)),
    }
    if rate is not None:
        out["send_late_p99_ms"] = round(1000 * percentile(late, 0.99), 1)
        out["send_late_max_ms"] = round(1000 * max(late), 1)
    return out


def run(args: argparse.Namespace, base: Path, stack: ExitStack) -> dict[str, Any]:
    now = datetime.now(JST)  # the edge: relay and intake are real processes on the system clock
    t0 = time.perf_counter()
    maker = Maker(base / "portal", now)  # trust files in the layout PortalData expects
    rng = random.Random(5)
    filler = sample_pdf("scan") + rng.randbytes(100_000)  # incompressible: a ~100 KB package
    pulled = [maker.package(n, filler) for n in range(1, args.count + 1)]
    pushed = [maker.package(n, filler) for n in range(args.count + 1, 2 * args.count + 1)]
    paced_sets = [[maker.package(n, filler) for n in range((k + 2) * args.count + 1, (k + 3) * args.count + 1)]
                  for k in range(len(args.paced_rates))]
    _, big = maker.package(9_000_000, sample_pdf("big") + rng.randbytes(args.big_mb * 1_000_000))
    portal = write_portal_dir(base / "portal", now, pulled)
    print(f"set-up: {2 * args.count} packages of ~{len(pulled[0][1]) // 1000} KB and one of "
          f"{len(big) / 1e6:.1f} MB built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    database_url = stack.enter_context(postgres_cluster())
    options = ChainOptions(database_url=database_url, scanner=args.scanner, proxy=False,
                           portal_args=("--rate", "0"),
                           relay={"INTAKE_READ_TIMEOUT": "600", "INTAKE_WRITE_TIMEOUT": "600", "PAGE_SIZE": "50",
                                  "MAX_CONCURRENT_PACKAGES": str(max(4, args.clients)), "CLAMD_TIMEOUT": "300"})
    clamd_pid: int | None = None
    if args.scanner == "clamd":
        clamd = stack.enter_context(clamd_daemon(base / "clamd", stream_max_length=128 * MiB))
        options.clamd_socket, clamd_pid = clamd.socket_path, clamd.pid
    chain = stack.enter_context(Chain(portal, base / "chain", options=options))
    chain.start_intake()
    postmaster = postmaster_pid(database_url)

    def alive(service: Any) -> int | None:
        return service.pid if service.running() else None

    def meter() -> CpuMeter:
        """CPU per process over a channel's stretch: the four services, PostgreSQL, and this process."""
        return CpuMeter({"relay": lambda: alive(chain.relay), "intake": lambda: alive(chain.intake),
                         "postgresql": lambda: postmaster, "clamd": lambda: clamd_pid,
                         "portal_sim": lambda: alive(chain.portal)})
    results: dict[str, Any] = {"scanner": args.scanner, "database": "postgresql", "count": args.count,
                               "package_bytes_avg": round(sum(len(b) for _, b in pulled) / len(pulled)),
                               "cpus": os.cpu_count() or 0, "load_average_at_start": round(os.getloadavg()[0], 2)}

    # Pull: the relay takes the portal's list one package at a time.
    pulled_numbers = {n for n, _ in pulled}
    chain.start_portal()
    cpu = meter()
    cpu.start()  # the relay's own start (imports, trust, ~1 s of CPU) is counted in the pull's figures
    started = time.perf_counter()
    chain.start_relay()
    wait_until(lambda: pulled_numbers <= {n for n, _ in chain.final_pairs()}, timeout=1800,
               what="every pulled package final", interval=0.1, on_timeout=chain.tails)
    wall = time.perf_counter() - started
    cpu.stop()
    stones = chain.tombstones()
    times = erasure_times(stones, pulled_numbers)
    results["pull"] = {
        "packages_per_second": round(len(pulled) / span(stones, pulled_numbers), 1),
        "wall_seconds_incl_relay_start": round(wall, 1),
        "receipt_to_erasure_p50_ms": round(1000 * statistics.median(times), 1),
        "receipt_to_erasure_p99_ms": round(1000 * percentile(times, 0.99), 1),
        "outcomes": dict(Counter(t["outcome"] for t in stones)),
        "cpu_ms": cpu.per_unit_ms(len(pulled)),
    }

    # Push: several LGWAN terminals at once, as fast as they are answered.
    relay_url = f"http://127.0.0.1:{chain.relay_port}"
    results["push"] = {"clients": args.clients, **push_channel(chain, relay_url, pushed, args.clients, meter())}
    # The same at fixed offered rates: receipt → erasure when packages do not queue behind each other.
    results["push_paced"] = []
    for k, rate in enumerate(args.paced_rates):
        packages = paced_sets[k]
        results["push_paced"].append({"offered_per_second": rate, "clients": args.clients,
                                      **push_channel(chain, relay_url, packages, args.clients, meter(), rate=rate)})

    # Peak memory: a fresh relay process, idle, then one big package by push.
    chain.relay.terminate()
    chain.portal.terminate()  # no pull rounds during the measurement
    chain.start_relay()
    pid = chain.relay.pid
    wait_until(lambda: chain.relay_ready(), timeout=60, what="relay ready")
    idle = proc_status(pid)
    started = time.perf_counter()
    response = push(relay_url, big)
    seconds = time.perf_counter() - started
    peak = proc_status(pid)
    stone = chain.tombstones()[-1]
    # The same bytes again (the intake answers 200): does the process keep growing, or was the first
    # package's memory reusable? (Python returns freed memory to its allocator, not always to the OS.)
    again = push(relay_url, big)
    second = proc_status(pid)
    results["big_package"] = {
        "package_bytes": len(big), "answer": response.status_code, "seconds": round(seconds, 1),
        "relay_rss_idle_mib": round(idle["VmRSS"] / MiB, 1),
        "relay_rss_peak_mib": round(peak["VmHWM"] / MiB, 1),
        "relay_rss_peak_increase_mib": round((peak["VmHWM"] - idle["VmRSS"]) / MiB, 1),
        "peak_increase_per_package_byte": round((peak["VmHWM"] - idle["VmRSS"]) / len(big), 2),
        "relay_rss_after_mib": round(peak["VmRSS"] / MiB, 1),
        "second_push_answer": again.status_code,
        "relay_rss_peak_after_second_mib": round(second["VmHWM"] / MiB, 1),
        "relay_rss_after_second_mib": round(second["VmRSS"] / MiB, 1),
        "receipt_to_erasure_s": round((datetime.fromisoformat(stone["erased_at"])
                                       - datetime.fromisoformat(stone["received_at"])).total_seconds(), 1),
        "outcome": stone["outcome"], "reason_code": stone["reason_code"],
    }
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--count", type=int, default=200, help="packages per channel (default 200)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent push clients (default 4)")
    ap.add_argument("--big-mb", type=int, default=100, help="size of the big package's attachment in MB")
    ap.add_argument("--scanner", choices=["clamd", "none"], default="clamd")
    ap.add_argument("--paced-rates", default="10",
                    help="push again at these offered rates (packages/s, comma-separated; '' for none; default 10)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.paced_rates = [float(r) for r in args.paced_rates.split(",") if r.strip()]
    if any(r <= 0 for r in args.paced_rates):
        ap.error("--paced-rates must be positive")
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp, ExitStack() as stack:
        results = run(args, Path(tmp), stack)
    print(json.dumps(results, ensure_ascii=False, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")


if __name__ == "__main__":
    main()
