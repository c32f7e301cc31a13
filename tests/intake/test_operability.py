"""Issue 17 §5: the intake as an operable service — ``/metrics`` with every metric the docs name
(behind its token), JSON log lines that hold no personal data, ``db current|history|downgrade``.

Real ``intake serve`` processes with an operations listener, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx

from intake.deliveries.service import expected_key
from intake.logs import DROPPED, JsonFormatter
from intake.metrics import METRIC_NAMES
from signature.testing.samples import sample_spec
from tests.conftest import NOW, PackageFactory, World
from tests.support.servers import free_port

TOKEN = "operability-test-metrics-token-0123456789"  # noqa: S105 - a test value, 32+ characters


@contextlib.contextmanager
def _serving(env: dict[str, str]) -> Iterator[tuple[str, str, Path]]:
    port, ops = free_port(), free_port()
    log = Path(env["SHINSEI_INTAKE_VAR_DIR"]) / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "intake", "serve", "--port", str(port), "--ops-port", str(ops)],
                                env={**env, "SHINSEI_INTAKE_METRICS_TOKEN": TOKEN}, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        for _ in range(600):  # bounded: the ops listener answers, or the process ends
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{ops}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.05)
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ops}", log
    finally:
        proc.terminate()
        proc.wait(30)


def _sample(value: str, name: str) -> float:
    """The value of one sample line (``name{labels} value``) of a scrape."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", value, re.MULTILINE)
    assert found, name
    return float(found.group(1))


def test_metrics_name_everything_the_docs_name_and_count_a_delivery(
        env: dict[str, str], world: World, make_package: PackageFactory) -> None:
    resident = world.residents[0]
    body = make_package(spec=sample_spec(resident, random.Random(5), receipt_number="20261125-0000000501",
                                         arrived_at=NOW - timedelta(minutes=5), user_cert_serial="1A2B0501"))
    with _serving(env) as (url, ops, log):
        assert httpx.get(f"{ops}/metrics", timeout=10).status_code == 401  # a token is configured: it is needed
        assert httpx.get(f"{ops}/metrics", timeout=10, headers={"Authorization": "Bearer wrong"}).status_code == 401
        answer = httpx.post(f"{url}/api/v1/deliveries", content=body, timeout=60,
                            headers={"Content-Type": "application/zip", "Idempotency-Key": expected_key(body)})
        assert answer.status_code == 201, answer.text
        scrape = httpx.get(f"{ops}/metrics", timeout=10, headers={"Authorization": f"Bearer {TOKEN}"})
        assert scrape.status_code == 200
        text = scrape.text
        exposed = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
        exposed |= {f"{n}_total" for n in exposed}  # a counter's family is typed without the suffix
        assert set(METRIC_NAMES) <= exposed, set(METRIC_NAMES) - exposed
        assert _sample(text, 'intake_deliveries_total{outcome="stored"}') == 1
        assert _sample(text, "intake_verification_seconds_count") >= 1
        assert _sample(text, "intake_access_log_rows_total") >= 0
        assert _sample(text, "intake_metrics_scrape_errors_total") == 0
        for secret in (resident.name, resident.address):
            assert secret not in text
    lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert {"time", "level", "logger", "message"} <= set(record)
    for secret in (resident.name, resident.address, resident.name_kana):
        assert secret not in "\n".join(lines)


def test_a_value_that_is_not_a_plain_token_never_reaches_the_log() -> None:
    record = logging.LogRecord("intake.test", logging.INFO, __file__, 1, "looked up %s for %s at %s",
                               ("20261125-0000000501", "山田 太郎", "/staff/applications?q=ヤマダ"), None)
    out = json.loads(JsonFormatter().format(record))
    assert out["message"] == "looked up %s for %s at %s"  # the template, never the formatted text
    assert out["args"] == ["20261125-0000000501", DROPPED, DROPPED]


def test_db_current_history_downgrade(env: dict[str, str]) -> None:
    def db(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "intake", "db", *args], env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    history = db("history").splitlines()
    assert len(history) >= 2
    head, previous = history[0].split(" <- ")[0], history[1].split(" <- ")[0]
    assert db("current") == head  # the env fixture migrated to the newest revision
    assert db("downgrade", "--revision", "-1") == f"database is at revision {previous}"
    assert db("current") == previous
    assert db("upgrade") == f"database is at revision {head}"
