"""Unit tests of the backoff policy and the relay report header (no network)."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime

from dmz_relay.forwarder import BackoffPolicy, idempotency_key
from handover import MalwareFindings, RelayReport, RelayVerdict


def test_backoff_is_exponential_capped_with_jitter_and_honours_retry_after() -> None:
    policy = BackoffPolicy(attempts=6, initial=0.5, max=4.0, jitter=0.25)
    rng = random.Random(1)
    waits = [policy.wait(n, rng) for n in range(1, 6)]
    for n, wait in enumerate(waits, start=1):
        base = min(4.0, 0.5 * 2 ** (n - 1))
        assert base <= wait < base + 0.25
    assert policy.wait(1, random.Random(1), retry_after=3) >= 3
    assert policy.wait(1, random.Random(1), retry_after=3600) < 4.0 + 0.25  # a huge Retry-After is capped


def test_the_same_seed_gives_the_same_waits() -> None:
    policy = BackoffPolicy()
    assert [policy.wait(n, random.Random(9)) for n in range(1, 4)] == \
        [policy.wait(n, random.Random(9)) for n in range(1, 4)]


def test_report_header_is_base64url_json_the_intake_reads() -> None:
    report = RelayReport(
        relay=RelayVerdict(indication="PASSED", validation_time=datetime(2026, 11, 25, 12, tzinfo=UTC)),
        malware=MalwareFindings(scanner="clamd", infected_files=("その他.txt",), signatures=("Eicar",)))
    header = report.encode()
    assert "=" not in header
    assert "+" not in header
    assert "/" not in header
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))) == report.to_json()
    assert report.to_json()["malware"]["infected_files"] == ["その他.txt"]


def test_idempotency_key_is_the_bodys_sha256() -> None:
    assert idempotency_key(b"abc") == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
