"""The delivery contract as documented (docs/intake.md, "Receiving deliveries"), over real HTTP on
SQLite and PostgreSQL: the key is checked against the bytes before anything is looked up, an aborted
upload is a 400 without a traceback, a value out of range is a documented refusal (never a 500), two
deliveries opening one chain at once both succeed, and a database error leaks nothing."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from handover import PACKAGE_REFUSALS, classify
from intake.api import create_app
from intake.db import make_engine, make_session_factory
from intake.deliveries.service import expected_key
from intake.models import Application, ApplicationVersion, Delivery, VersionState
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from tests.conftest import NOW, PackageFactory
from tests.intake.conftest import intake_process
from tests.support.servers import serve_in_thread


@pytest.fixture
def base_url(engine: Engine, runtime: Runtime) -> Iterator[str]:
    with serve_in_thread(create_app(runtime, make_session_factory(engine))) as url:
        yield url


def post(url: str, body: bytes, *, key: str | None = None) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/deliveries", content=body, timeout=60,
                      headers={"Content-Type": "application/zip", "Idempotency-Key": key or expected_key(body)})


def count(engine: Engine, model: type) -> int:
    with make_session_factory(engine)() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_the_same_key_with_other_bytes_is_422_even_after_the_first_was_stored(
    base_url: str, engine: Engine, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    body = make_package()
    assert post(base_url, body).status_code == 201
    other = make_package(spec=replace(spec, receipt_number="20261125-0000000002"))
    answer = post(base_url, other, key=expected_key(body))  # the stored one's key, other bytes
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "IDEMPOTENCY_KEY_MISMATCH"
    assert count(engine, Delivery) == 1


def test_an_aborted_upload_is_400_truncated_body_without_a_traceback(
    engine: Engine, runtime: Runtime, make_package: PackageFactory, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The client sends half its body and goes away. A client still listening gets 400
    TRUNCATED_BODY; one that is gone gets nothing — either way no traceback, nothing stored."""
    body = make_package()
    head = (f"POST /api/v1/deliveries HTTP/1.1\r\nHost: x\r\nContent-Type: application/zip\r\n"
            f"Idempotency-Key: {expected_key(body)}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with caplog.at_level(logging.INFO), serve_in_thread(create_app(runtime, make_session_factory(engine))) as url:
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(head + body[: len(body) // 2])
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    # The server has shut down: the request's handling, and its logging, are over.
    assert answer == b"" or (answer.startswith(b"HTTP/1.1 400") and b"TRUNCATED_BODY" in answer), answer[:200]
    printed = capfd.readouterr().err + caplog.text
    assert "Exception in ASGI application" not in printed
    assert "Traceback" not in printed
    assert "internal error" not in printed  # a refusal, not a crash contained by the last line of defence
    assert count(engine, Delivery) == 0


def test_a_value_out_of_range_is_a_documented_refusal(
    base_url: str, engine: Engine, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    body = make_package(spec=replace(spec, procedure_name="児童手当" * 100))  # 400 characters, the column holds 256
    answer = post(base_url, body)
    assert answer.status_code == 422
    code = answer.json()["error"]["code"]
    assert code == "PACKAGE_VALUE_OUT_OF_RANGE"
    assert code in PACKAGE_REFUSALS
    assert classify(answer.status_code, code) == "refused"  # the relay records it as refused, for good
    assert "児童手当" not in answer.text  # the refusal names the field, never the value
    assert count(engine, Delivery) == 0  # nothing half-stored


def test_two_deliveries_opening_one_chain_at_once_both_store(
    base_url: str, engine: Engine, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    """A 新規申請 and its 再申請 (which names it) race to open the chain: one wins, the other becomes
    the next version of the chain the first committed — no 500, one chain."""
    original = make_package()
    again = make_package(spec=replace(spec, receipt_number="20261125-0000000002", kind="再申請",
                                          first_receipt_number="20261125-0000000001"))
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def send(body: bytes) -> None:
        barrier.wait(10)
        statuses.append(post(base_url, body).status_code)

    threads = [threading.Thread(target=send, args=(b,)) for b in (original, again)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [201, 201]
    assert count(engine, Application) == 1
    assert count(engine, ApplicationVersion) == 2
    # Whichever opened the chain, each saw the other's admission: both admitted (the same signer),
    # the 再申請 current, the original superseded — the chain's opener takes no row lock, the joiner does.
    with Session(engine) as session:
        states = {v.receipt_number: (v.state, v.admitted_at is not None)
                  for v in session.scalars(select(ApplicationVersion))}
    assert states == {"20261125-0000000001": (VersionState.SUPERSEDED, True),
                      "20261125-0000000002": (VersionState.CURRENT, True)}


def test_a_database_error_leaks_nothing_to_the_log_or_the_answer(
    env: dict[str, str], database_url: str, make_package: PackageFactory,
) -> None:
    """The real intake process; a trigger makes storing the version fail. Its log and its answer hold
    none of the application's content, no SQL and no parameters."""
    engine = make_engine(database_url)
    with engine.begin() as c:
        if engine.dialect.name == "sqlite":
            c.execute(text("CREATE TRIGGER poison BEFORE INSERT ON application_versions "
                           "BEGIN SELECT RAISE(ABORT, 'poisoned'); END"))
        else:
            c.execute(text("CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                           "RAISE EXCEPTION 'poisoned'; END $$ LANGUAGE plpgsql"))
            c.execute(text("CREATE TRIGGER poison BEFORE INSERT ON application_versions "
                           "FOR EACH ROW EXECUTE FUNCTION poison()"))
    engine.dispose()
    body = make_package()
    canaries = ["港", "ハナコ", "芝公園", "hanako@example.jp", "03-3578-2111", "INSERT", "application_versions",
                "parameters", "Traceback", "poisoned"]
    with intake_process(env) as (url, _proc):
        answer = post(url, body)
    log = next(Path(env["SHINSEI_INTAKE_VAR_DIR"]).glob("serve-*.log")).read_text(encoding="utf-8", errors="replace")
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "INTERNAL_ERROR"
    for canary in canaries:
        assert canary not in answer.text, canary
        assert canary not in log, canary
    assert "internal error: " in log


def test_the_documented_refusals_are_the_contracts() -> None:
    assert {"PACKAGE_VALUE_OUT_OF_RANGE"} == PACKAGE_REFUSALS
    assert NOW  # (the pinned clock of the suite)
