"""POST /api/v1/deliveries over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine, func, select

from handover import MalwareFindings, RelayReport, RelayVerdict
from intake.api import create_app
from intake.db import make_session_factory
from intake.deliveries.service import expected_key
from intake.models import ApplicationVersion, Delivery, StatusNotice, VerificationRecord
from intake.runtime import Runtime
from intake.statusoutbox.service import enqueue_status
from tests.conftest import NOW, PackageFactory, World
from tests.support.servers import serve_in_thread


@pytest.fixture
def base_url(engine: Engine, runtime: Runtime) -> Iterator[str]:
    small = replace(runtime, settings=runtime.settings.model_copy(update={"max_package_bytes": 200_000}))
    with serve_in_thread(create_app(small, make_session_factory(engine))) as url:
        yield url


def post(base_url: str, body: bytes, *, key: str | None = None, content_type: str = "application/zip",
         headers: dict[str, str] | None = None) -> httpx.Response:
    h = {"Content-Type": content_type, "Idempotency-Key": key or expected_key(body), **(headers or {})}
    return httpx.post(f"{base_url}/api/v1/deliveries", content=body, headers=h, timeout=30)


def count(engine: Engine, model: type) -> int:
    with make_session_factory(engine)() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_first_201_then_200_with_the_same_receipt(base_url: str, engine: Engine, make_package: PackageFactory) -> None:
    body = make_package()
    first = post(base_url, body)
    assert first.status_code == 201, first.text
    receipt = first.json()
    assert receipt["receipt_number"] == "20261125-0000000001"
    assert receipt["duplicate"] is False
    assert receipt["sha256"] == expected_key(body).removeprefix("sha256:")
    assert receipt["stored_at"] == NOW.astimezone(UTC).isoformat()
    again = post(base_url, body)
    assert again.status_code == 200
    assert again.json() == {**receipt, "duplicate": True}
    assert count(engine, Delivery) == 1


def test_failed_package_is_stored_and_reported(
    base_url: str, engine: Engine, make_package: PackageFactory, world: World
) -> None:
    response = post(base_url, make_package(signer=world.revoked_signer))
    assert response.status_code == 201
    with make_session_factory(engine)() as s:
        record = s.scalar(select(VerificationRecord))
        assert record is not None
        assert (record.indication, record.sub_indication, record.reason_code) == (
            "INDETERMINATE", "REVOKED_NO_POE", "CERT_REVOKED")
        assert s.scalar(select(func.count()).select_from(ApplicationVersion)) == 1


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        pytest.param({"content_type": "application/octet-stream"}, 415, "UNSUPPORTED_MEDIA_TYPE", id="content-type"),
        pytest.param({"content_type": "multipart/form-data; boundary=x"}, 415, "UNSUPPORTED_MEDIA_TYPE",
                     id="multipart"),
        pytest.param({"key": "md5:abc"}, 400, "BAD_IDEMPOTENCY_KEY", id="bad-key-format"),
        pytest.param({"key": "sha256:" + "0" * 64}, 422, "IDEMPOTENCY_KEY_MISMATCH", id="key-for-other-bytes"),
        pytest.param({"headers": {"X-Relay-Report": "%%%"}}, 400, "BAD_RELAY_REPORT", id="bad-relay-report"),
    ],
)
def test_bad_requests(base_url: str, engine: Engine, make_package: PackageFactory, kwargs: dict[str, object],
                      status: int, code: str) -> None:
    response = post(base_url, make_package(), **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert count(engine, Delivery) == 0


def test_body_over_the_cap_is_413(base_url: str, engine: Engine) -> None:
    body = b"PK" + b"\0" * 300_000
    response = post(base_url, body)
    assert response.status_code == 413
    assert count(engine, Delivery) == 0


def test_body_over_the_cap_without_content_length_is_413(base_url: str, engine: Engine) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"\0" * 10_000

    response = httpx.post(f"{base_url}/api/v1/deliveries", content=chunks(), timeout=30,
                          headers={"Content-Type": "application/zip", "Idempotency-Key": "sha256:" + "a" * 64})
    assert response.status_code == 413
    assert count(engine, Delivery) == 0


def test_truncated_body_is_refused(base_url: str, engine: Engine, make_package: PackageFactory) -> None:
    body = make_package()
    parts = urlsplit(base_url)
    head = (f"POST /api/v1/deliveries HTTP/1.1\r\nHost: x\r\nContent-Type: application/zip\r\n"
            f"Idempotency-Key: {expected_key(body)}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + body[: len(body) // 2])
        sock.shutdown(socket.SHUT_WR)
        answer = sock.recv(65536)
    # Either uvicorn or we refuse it; what matters is that nothing is stored.
    assert not answer.startswith(b"HTTP/1.1 201")
    assert count(engine, Delivery) == 0


def test_relay_report_is_kept(base_url: str, engine: Engine, make_package: PackageFactory) -> None:
    report = RelayReport(relay=RelayVerdict(indication="PASSED", validation_time=NOW),
                         malware=MalwareFindings(scanner="clamd", infected_files=("保険証.pdf",)))
    assert post(base_url, make_package(), headers={"X-Relay-Report": report.encode()}).status_code == 201
    with make_session_factory(engine)() as s:
        delivery = s.scalar(select(Delivery))
        assert delivery is not None
        assert delivery.malware_flagged is True
        assert delivery.relay_report == report.to_json()
        assert delivery.relay_report["malware"]["infected_files"] == ["保険証.pdf"]


def test_a_report_outside_the_contract_is_refused(base_url: str, engine: Engine, make_package: PackageFactory
                                                  ) -> None:
    """The ad-hoc shape the first relays sent (no verdict, unknown keys) is not a report."""
    report = {"malware": {"infected_files": ["保険証.pdf"]}, "relay_indication": "PASSED"}
    header = base64.urlsafe_b64encode(json.dumps(report).encode()).decode().rstrip("=")
    response = post(base_url, make_package(), headers={"X-Relay-Report": header})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_RELAY_REPORT"
    assert "保険証" not in response.text  # the refusal names fields, never values
    assert count(engine, Delivery) == 0


def test_parallel_identical_deliveries_store_one(
    base_url: str, engine: Engine, make_package: PackageFactory
) -> None:
    body = make_package()
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def send() -> None:
        barrier.wait(10)
        statuses.append(post(base_url, body).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(statuses) == 8
    assert statuses.count(201) == 1
    assert set(statuses) <= {200, 201, 409}
    assert count(engine, Delivery) == 1


def test_status_outbox_list_and_ack(base_url: str, engine: Engine) -> None:
    with make_session_factory(engine)() as s:
        for i, status in enumerate(["受付", "補正依頼", "完了", "却下"]):
            enqueue_status(s, receipt_number=f"20261125-000000000{i}", status=status, at=NOW,
                           comment="添付書類を再提出してください。" if status == "補正依頼" else None)
        s.commit()
    page = httpx.get(f"{base_url}/api/v1/status-outbox", timeout=10).json()
    items = page["items"]
    assert page["version"] == 1
    assert [i["status"] for i in items] == ["受付", "補正依頼", "完了", "却下"]
    assert set(items[0]) == {"id", "receipt_number", "status", "at", "comment"}
    assert [i["comment"] for i in items[:2]] == [None, "添付書類を再提出してください。"]
    acked = httpx.post(f"{base_url}/api/v1/status-outbox/ack", json={"ids": [items[0]["id"], items[1]["id"]]},
                       timeout=10)
    assert acked.json() == {"acknowledged": 2}
    again = httpx.post(f"{base_url}/api/v1/status-outbox/ack", json={"ids": [items[0]["id"]]}, timeout=10)
    assert again.json() == {"acknowledged": 0}
    refused = httpx.post(f"{base_url}/api/v1/status-outbox/ack",
                         json={"refused": [{"id": items[3]["id"], "code": "ILLEGAL_TRANSITION"}]}, timeout=10)
    assert refused.json() == {"acknowledged": 1}
    left = httpx.get(f"{base_url}/api/v1/status-outbox", timeout=10).json()["items"]
    assert [i["status"] for i in left] == ["完了"]
    with make_session_factory(engine)() as s:
        outcomes = {n.status: (n.outcome, n.portal_code) for n in s.scalars(select(StatusNotice))}
    assert outcomes == {"受付": ("delivered", None), "補正依頼": ("delivered", None), "完了": (None, None),
                        "却下": ("refused", "ILLEGAL_TRANSITION")}
    bad = httpx.post(f"{base_url}/api/v1/status-outbox/ack", json={"refused": [{"id": 1, "code": "a b"}]}, timeout=10)
    assert bad.status_code == 422


def test_health(base_url: str) -> None:
    assert httpx.get(f"{base_url}/healthz", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(f"{base_url}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert "mail" in ready.json()  # the daily mail's health is reported, never a reason for 503
