"""The forwarding outbox against a real business system (uvicorn on 127.0.0.1), on SQLite and PostgreSQL.

Time is the ``at`` passed to the worker and randomness a pinned ``random.Random``; in-call waits go to
a recording ``sleep`` — nothing here sleeps and hopes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from intake.accesslog.service import verify_chain
from intake.db import make_session_factory
from intake.deliveries.service import expected_key, store_delivery
from intake.errors import IllegalStateChange, NotFound
from intake.forwarding.payload import SCHEMA, drop_file_name
from intake.forwarding.routes import RetryPolicy, Route, Timeouts
from intake.forwarding.service import retry_failed
from intake.forwarding.worker import WorkerResult, run_once
from intake.models import AccessLogRow, Application, Event, ForwardItem, ForwardState
from intake.mynumbers.service import extract_my_numbers
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from signature.xmlparse import parse_xml
from tests.conftest import NOW, PackageFactory
from tests.support.servers import free_port, serve_in_thread

# ---------------------------------------------------------------------------------------------------
# The business system: records every request, keeps one record per Idempotency-Key, fails on demand.


@dataclass
class Seen:
    path: str
    key: str | None
    content_type: str | None
    body: bytes
    status: int


@dataclass
class BusinessSystem:
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[Seen] = field(default_factory=list)
    records: dict[str, bytes] = field(default_factory=dict)
    fail_next: int = 0  # answer `fail_status` to this many requests, then behave
    fail_status: int = 503
    always_status: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    hang: bool = False  # hold each answer until `release` is set (timeout tests)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.records.clear()
            self.fail_next, self.fail_status, self.always_status, self.hang = 0, 503, None, False
            self.release = threading.Event()

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        key = request.headers.get("idempotency-key")
        with self.lock:
            if self.always_status is not None:
                status = self.always_status
            elif self.fail_next > 0:
                self.fail_next -= 1
                status = self.fail_status
            elif key is None:
                status = 400
            elif key in self.records:
                status = 200  # the same record again: dedup on the key
            else:
                self.records[key] = body
                status = 201
            self.requests.append(Seen(request.url.path, key, request.headers.get("content-type"), body, status))
            release, hang = self.release, self.hang
        if hang:
            await anyio.to_thread.run_sync(release.wait, 5.0)
        if status in (200, 201):
            return JSONResponse({"record": key, "duplicate": status == 200}, status_code=status)
        return Response(status_code=status)

    def bodies(self, path: str) -> list[bytes]:
        return [s.body for s in self.requests if s.path == path and s.status in (200, 201)]


@pytest.fixture(scope="session")
def _business_server() -> Iterator[BusinessSystem]:
    system = BusinessSystem()
    app = Starlette(routes=[StarletteRoute("/{name}", system.receive, methods=["POST"])])
    with serve_in_thread(app) as url:
        system.url = url
        yield system
        system.release.set()


@pytest.fixture
def biz(_business_server: BusinessSystem) -> Iterator[BusinessSystem]:
    _business_server.reset()
    yield _business_server
    _business_server.release.set()


# ---------------------------------------------------------------------------------------------------
# Helpers

FAST = RetryPolicy(max_attempts=4, backoff_base_seconds=10, backoff_factor=2, backoff_cap_seconds=30, jitter=0.5,
                   in_call_attempts=1)


def http_route(biz: BusinessSystem, name: str = "biz", **kw: Any) -> Route:
    kw.setdefault("retry", FAST)
    return Route(name=name, procedures=frozenset({"*"}), kind="http", target=f"{biz.url}/{name}",
                 timeouts=Timeouts(connect=2, read=5, write=5, pool=2), **kw)


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


Deliver = Callable[..., Runtime]


@pytest.fixture
def deliver(session: Session, runtime: Runtime, make_package: PackageFactory) -> Deliver:
    """Store one package with ``routes`` configured; return the runtime the worker should use."""

    def go(*routes: Route, **package: Any) -> Runtime:
        rt = replace(runtime, routes=routes)
        body = make_package(**package)
        store_delivery(session, rt, body=body, key=expected_key(body), client_id="relay-test", relay_report=None)
        session.commit()
        return rt

    return go


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def work(sessions: sessionmaker[Session], rt: Runtime, at: datetime, rng: random.Random | None = None,
         sleep: Sleeps | None = None) -> WorkerResult:
    return run_once(sessions, rt, at=at, rng=rng or random.Random(1), sleep=sleep if sleep is not None else Sleeps())


def items(session: Session) -> list[ForwardItem]:
    session.expire_all()
    return list(session.scalars(select(ForwardItem).order_by(ForwardItem.id)))


def only_item(session: Session) -> ForwardItem:
    (item,) = items(session)
    return item


def event_kinds(session: Session, prefix: str = "forwarding.") -> list[str]:
    return [k for k in session.scalars(select(Event.kind).order_by(Event.id)) if k.startswith(prefix)]


def my_numbers_of(spec: ApplicationSpec) -> list[str]:
    values = [n.value for n in extract_my_numbers(spec.form_xml)[1]]
    assert len(values) == 2
    return values


class SimulatedCrash(Exception):
    pass


def crash_before_marking_delivered(sessions: sessionmaker[Session]) -> Callable[[], None]:
    """Make the commit that would record DELIVERED fail, as if the worker died right there."""

    def before_commit(s: Session) -> None:
        if any(isinstance(o, ForwardItem) and o.state is ForwardState.DELIVERED for o in s.identity_map.values()):
            raise SimulatedCrash

    event.listen(sessions, "before_commit", before_commit)
    return lambda: event.remove(sessions, "before_commit", before_commit)


# ---------------------------------------------------------------------------------------------------
# Delivery, retries, failure, manual retry


def test_delivered_once_with_its_idempotency_key(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, biz: BusinessSystem, spec: ApplicationSpec
) -> None:
    rt = deliver(http_route(biz))
    app = session.scalar(select(Application))
    assert app is not None
    app.atena_number = "0000123456"  # linked meanwhile: the payload is built at send time
    session.commit()

    result = work(sessions, rt, NOW)

    assert (result.delivered, result.rescheduled, result.failed) == (1, 0, 0)
    item = only_item(session)
    assert (item.state, item.attempts, item.delivered_at, item.last_error) == (ForwardState.DELIVERED, 1, NOW, None)
    assert item.idempotency_key == f"{spec.receipt_number}:biz"
    assert [(s.key, s.status) for s in biz.requests] == [(item.idempotency_key, 201)]
    assert biz.requests[0].content_type == "application/json; charset=utf-8"
    doc = json.loads(biz.requests[0].body)
    assert doc["schema"] == SCHEMA
    assert doc["application"] == {
        "receipt_number": spec.receipt_number, "first_receipt_number": spec.receipt_number,
        "application_kind": "新規申請", "procedure_id": spec.procedure_id, "procedure_name": spec.procedure_name,
        "arrived_at": spec.arrived_at.isoformat(), "atena_number": "0000123456",
    }
    assert doc["form"]["file_name"] == spec.form_file
    assert "<個人番号/>" in doc["form"]["xml"]
    assert "my_numbers" not in doc
    sent = {a["file_name"]: base64.b64decode(a["data_base64"]) for a in doc["attachments"]}
    assert sent == {a.file_name: a.data for a in spec.attachments}
    assert all(a["sha256"] == hashlib.sha256(sent[a["file_name"]]).hexdigest() for a in doc["attachments"])
    assert event_kinds(session) == ["forwarding.delivered"]

    assert work(sessions, rt, NOW + timedelta(days=1)).outcomes == ()  # nothing is sent twice
    assert len(biz.requests) == 1


def test_in_call_retries_ride_out_a_brief_503(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, biz: BusinessSystem
) -> None:
    policy = replace(FAST, in_call_attempts=3, in_call_base_seconds=0.5, in_call_cap_seconds=5)
    rt = deliver(http_route(biz, retry=policy))
    biz.fail_next = 2
    sleeps = Sleeps()

    result = work(sessions, rt, NOW, rng=random.Random(5), sleep=sleeps)

    assert result.delivered == 1
    assert only_item(session).attempts == 1  # one outbox attempt, three requests
    assert [s.status for s in biz.requests] == [503, 503, 201]
    assert len({s.key for s in biz.requests}) == 1
    pinned = random.Random(5)
    assert sleeps == [0.5 * (1 - 0.5 * pinned.random()), 1.0 * (1 - 0.5 * pinned.random())]


def test_transient_failure_then_success_on_the_outbox_schedule(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, biz: BusinessSystem
) -> None:
    rt = deliver(http_route(biz))
    biz.fail_next = 1

    first = work(sessions, rt, NOW, rng=random.Random(9))

    item = only_item(session)
    expected_next = NOW + timedelta(seconds=10 * (1 - 0.5 * random.Random(9).random()))
    assert first.rescheduled == 1
    assert (item.state, item.attempts, item.next_attempt_at) == (ForwardState.PENDING, 1, expected_next)
    assert item.last_error == "HTTP_503: business system answered 503"
    assert work(sessions, rt, expected_next - timedelta(microseconds=1)).outcomes == ()  # not due yet

    assert work(sessions, rt, expected_next).delivered == 1
    item = only_item(session)
    assert (item.state, item.attempts, item.delivered_at, item.last_error) == (
        ForwardState.DELIVERED, 2, expected_next, None)
    assert [s.status for s in biz.requests] == [503, 201]
    assert len(biz.records) == 1
    assert event_kinds(session) == ["forwarding.attempt_failed", "forwarding.delivered"]


def test_permanent_failure_is_failed_after_max_attempts_with_capped_backoff(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, biz: BusinessSystem, spec: ApplicationSpec
) -> None:
    rt = deliver(http_route(biz))  # FAST: 4 attempts, 10 s doubling, capped at 30 s, jitter 0.5
    biz.always_status = 503
    rng = random.Random(42)
    pinned = random.Random(42)
    at = NOW
    for attempt, nominal in enumerate([10, 20, 30], start=1):  # the third would be 40 s: capped
        result = work(sessions, rt, at, rng=rng)
        assert result.rescheduled == 1
        item = only_item(session)
        expected = at + timedelta(seconds=nominal * (1 - 0.5 * pinned.random()))
        assert (item.state, item.attempts, item.next_attempt_at) == (ForwardState.PENDING, attempt, expected)
        at = expected

    result = work(sessions, rt, at, rng=rng)

    assert result.failed == 1
    item = only_item(session)
    assert (item.state, item.attempts, item.delivered_at) == (ForwardState.FAILED, 4, None)
    assert item.last_error == "HTTP_503: business system answered 503"
    for personal in (*my_numbers_of(spec), spec.applicant.name, spec.applicant.address):
        assert personal not in item.last_error
    assert len(biz.requests) == 4
    assert biz.records == {}
    assert event_kinds(session) == ["forwarding.attempt_failed"] * 3 + ["forwarding.failed"]
    assert work(sessions, rt, at + timedelta(days=30)).outcomes == ()  # FAILED waits for an operator


def test_a_refusal_fails_at_once(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, biz: BusinessSystem
) -> None:
    rt = deliver(http_route(biz))
    biz.always_status = 422

    assert work(sessions, rt, NOW).failed == 1

    item = only_item(session)
    assert (item.state, item.attempts) == (ForwardState.FAILED, 1)
    assert item.last_error == "HTTP_422: business system refused the request with 422"
    failed = session.scalars(select(Event).where(Event.kind == "forwarding.failed")).one()
    assert failed.detail["reason"] == "refused"


def test_manual_retry_resets_the_counter_and_is_an_event(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, biz: BusinessSystem, spec: ApplicationSpec
) -> None:
    rt = deliver(http_route(biz, retry=replace(FAST, max_attempts=2)))
    biz.always_status = 503
    work(sessions, rt, NOW)
    work(sessions, rt, only_item(session).next_attempt_at)
    item = only_item(session)
    assert (item.state, item.attempts) == (ForwardState.FAILED, 2)
    later = NOW + timedelta(hours=3)

    assert retry_failed(session, item_id=item.id, at=later) == 1
    session.commit()

    item = only_item(session)
    assert (item.state, item.attempts, item.next_attempt_at) == (ForwardState.PENDING, 0, later)
    retried = session.scalars(select(Event).where(Event.kind == "forwarding.retried")).one()
    assert retried.receipt_number == spec.receipt_number
    assert retried.detail == {"item_id": item.id, "route": "biz", "previous_attempts": 2,
                              "previous_error": "HTTP_503"}
    biz.always_status = None
    assert work(sessions, rt, later).delivered == 1
    item = only_item(session)
    assert (item.state, item.attempts) == (ForwardState.DELIVERED, 1)

    with pytest.raises(IllegalStateChange) as info:
        retry_failed(session, item_id=item.id, at=later)
    assert (info.value.from_, info.value.to) == ("delivered", "pending")
    with pytest.raises(NotFound):
        retry_failed(session, item_id=item.id + 1000, at=later)
    assert retry_failed(session, item_id=None, at=later) == 0


def test_retry_all_failed_items(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, biz: BusinessSystem
) -> None:
    rt = deliver(http_route(biz, "one", retry=replace(FAST, max_attempts=1)),
                 http_route(biz, "two", retry=replace(FAST, max_attempts=1)))
    biz.always_status = 500
    assert work(sessions, rt, NOW).failed == 2

    assert retry_failed(session, item_id=None, at=NOW) == 2
    session.commit()

    assert {(i.state, i.attempts) for i in items(session)} == {(ForwardState.PENDING, 0)}


# ---------------------------------------------------------------------------------------------------
# Network errors and timeouts


def test_connection_refused_is_retried_in_call_then_rescheduled(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, spec: ApplicationSpec
) -> None:
    nobody = Route(name="down", procedures=frozenset({spec.procedure_id}), kind="http",
                   target=f"http://127.0.0.1:{free_port()}/in", retry=replace(FAST, in_call_attempts=3, jitter=0))
    rt = deliver(nobody)
    sleeps = Sleeps()

    assert work(sessions, rt, NOW, sleep=sleeps).rescheduled == 1

    assert sleeps == [0.5, 1.0]
    item = only_item(session)
    assert item.last_error == "CONNECT_ERROR: cannot connect to the business system"
    assert item.next_attempt_at == NOW + timedelta(seconds=10)


def test_a_hanging_business_system_times_out(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, biz: BusinessSystem
) -> None:
    rt = deliver(replace(http_route(biz), timeouts=Timeouts(connect=2, read=0.2, write=2, pool=2)))
    biz.hang = True
    try:
        assert work(sessions, rt, NOW).rescheduled == 1
    finally:
        biz.release.set()
    assert only_item(session).last_error == "TIMEOUT: timed out (ReadTimeout)"


# ---------------------------------------------------------------------------------------------------
# Crash between "the business system accepted" and "we recorded it"


def test_crash_after_acceptance_resends_with_the_same_key_and_one_record_stays(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, biz: BusinessSystem
) -> None:
    rt = deliver(http_route(biz))
    undo = crash_before_marking_delivered(sessions)
    try:
        with pytest.raises(SimulatedCrash):
            work(sessions, rt, NOW)
    finally:
        undo()
    item = only_item(session)
    assert (item.state, item.attempts) == (ForwardState.PENDING, 0)  # nothing was recorded
    assert len(biz.records) == 1

    assert work(sessions, rt, NOW).delivered == 1

    item = only_item(session)
    assert (item.state, item.attempts) == (ForwardState.DELIVERED, 1)
    assert [(s.key, s.status) for s in biz.requests] == [(item.idempotency_key, 201), (item.idempotency_key, 200)]
    assert list(biz.records) == [item.idempotency_key]
    assert event_kinds(session) == ["forwarding.delivered"]


def test_two_workers_never_send_a_locked_item(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, biz: BusinessSystem, engine: Engine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks (FOR UPDATE SKIP LOCKED) exist on PostgreSQL; SQLite runs one worker")
    rt = deliver(http_route(biz))
    with sessions() as other_worker:
        held = other_worker.scalar(select(ForwardItem).with_for_update())
        assert held is not None

        assert work(sessions, rt, NOW).outcomes == ()  # skipped, not waited for

        other_worker.rollback()
    assert biz.requests == []
    assert work(sessions, rt, NOW).delivered == 1


def test_an_item_whose_route_is_gone_fails_with_a_reason(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, biz: BusinessSystem
) -> None:
    rt = deliver(http_route(biz))

    assert work(sessions, replace(rt, routes=()), NOW).failed == 1

    assert only_item(session).last_error == "ROUTE_UNKNOWN: route 'biz' is not configured"
    assert biz.requests == []


# ---------------------------------------------------------------------------------------------------
# File drop


def test_file_drop_is_atomic_and_written_once(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, tmp_path: Path, spec: ApplicationSpec
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    rt = deliver(Route(name="files", procedures=frozenset({spec.procedure_id}), kind="file", target=str(drop)))
    undo = crash_before_marking_delivered(sessions)
    try:
        with pytest.raises(SimulatedCrash):
            work(sessions, rt, NOW)
    finally:
        undo()
    key = only_item(session).idempotency_key
    path = drop / drop_file_name(key, "json")
    assert os.listdir(drop) == [path.name]  # no temporary file left behind
    first = path.stat()
    assert stat.S_IMODE(first.st_mode) == 0o640
    assert json.loads(path.read_bytes())["idempotency_key"] == key

    assert work(sessions, rt, NOW).delivered == 1

    assert os.listdir(drop) == [path.name]
    again = path.stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # not rewritten
    delivered = session.scalars(select(Event).where(Event.kind == "forwarding.delivered")).one()
    assert delivered.detail["file"] == "already_present"


def test_a_missing_drop_directory_is_a_transient_failure(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, tmp_path: Path
) -> None:
    rt = deliver(Route(name="files", procedures=frozenset({"*"}), kind="file", target=str(tmp_path / "absent"),
                       retry=FAST))

    assert work(sessions, rt, NOW).rescheduled == 1

    assert only_item(session).last_error == "FILE_WRITE: cannot write to the drop directory (ENOENT)"
    assert not (tmp_path / "absent").exists()  # never created behind the operator's back


# ---------------------------------------------------------------------------------------------------
# My Numbers only for entitled routes; XML shape


def _decoded_strings(doc: Any) -> Iterator[bytes]:
    """Every string in a JSON document, and the base64 payloads decoded."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k == "data_base64":
                yield base64.b64decode(v)
            else:
                yield from _decoded_strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _decoded_strings(v)
    elif isinstance(doc, str):
        yield doc.encode()


def test_my_numbers_go_only_to_entitled_routes_and_each_read_is_logged(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, biz: BusinessSystem, tmp_path: Path,
    spec: ApplicationSpec,
) -> None:
    drop = tmp_path / "xml-drop"
    drop.mkdir()
    rt = deliver(
        http_route(biz, "plain-json"),
        http_route(biz, "plain-xml", format="xml"),
        Route(name="plain-file", procedures=frozenset({"*"}), kind="file", target=str(drop), format="xml"),
        http_route(biz, "entitled", my_number_entitled=True),
    )

    assert work(sessions, rt, NOW).delivered == 4

    numbers = my_numbers_of(spec)
    plain = [*biz.bodies("/plain-json"), *biz.bodies("/plain-xml"), *(p.read_bytes() for p in drop.iterdir())]
    assert len(plain) == 3
    for body in plain:
        for n in numbers:
            assert n.encode() not in body
    for decoded in _decoded_strings(json.loads(biz.bodies("/plain-json")[0])):
        for n in numbers:
            assert n.encode() not in decoded
    for body in plain[1:]:
        for att in parse_xml(body).iter("attachment"):
            for n in numbers:
                assert n.encode() not in base64.b64decode(att.text or "")

    (entitled,) = biz.bodies("/entitled")
    doc = json.loads(entitled)
    assert [m["value"] for m in doc["my_numbers"]] == numbers
    assert all(m["valid_check_digit"] for m in doc["my_numbers"])
    assert "<個人番号/>" in doc["form"]["xml"]  # the form stays masked; the numbers travel beside it

    rows = session.scalars(select(AccessLogRow).order_by(AccessLogRow.id)).all()
    reveals = [r for r in rows if r.action == "my_number.reveal"]
    assert [(r.staff_id, r.department, r.terminal) for r in reveals] == [
        ("system:forwarding", "system", "entitled")] * 2
    assert {r.subject for r in reveals} == {f"version:{only_version_id(session)}:my_number:{i}" for i in (0, 1)}
    reads = [r for r in rows if r.action == "forwarding.read"]
    assert sorted(r.terminal for r in reads) == ["entitled", "plain-file", "plain-json", "plain-xml"]
    assert all(r.staff_id == "system:forwarding" for r in reads)
    assert verify_chain(session) == []
    delivered = session.scalars(select(Event).where(Event.kind == "forwarding.delivered")).all()
    assert {e.detail["route"]: e.detail["my_numbers"] for e in delivered} == {
        "plain-json": 0, "plain-xml": 0, "plain-file": 0, "entitled": 2}


def only_version_id(session: Session) -> int:
    return int(session.scalar(select(func.min(ForwardItem.version_id))) or 0)


def test_xml_payload_is_well_formed_and_complete(
    session: Session, sessions: sessionmaker[Session], deliver: Deliver, biz: BusinessSystem, spec: ApplicationSpec
) -> None:
    rt = deliver(http_route(biz, "xml", format="xml", my_number_entitled=True))

    assert work(sessions, rt, NOW).delivered == 1

    (body,) = biz.bodies("/xml")
    assert biz.requests[0].content_type == "application/xml; charset=utf-8"
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = parse_xml(body)  # the project's hardened parser
    assert (root.tag, root.get("schema")) == ("forwarded_application", SCHEMA)
    assert root.findtext("idempotency_key") == f"{spec.receipt_number}:xml"
    app = root.find("application")
    assert app is not None
    assert {el.tag: el.text for el in app} == {
        "receipt_number": spec.receipt_number, "first_receipt_number": spec.receipt_number,
        "application_kind": "新規申請", "procedure_id": spec.procedure_id, "procedure_name": spec.procedure_name,
        "arrived_at": spec.arrived_at.isoformat(),
    }  # no atena_number element: not linked
    form = root.find("form")
    assert form is not None
    assert form.get("file_name") == spec.form_file
    assert [el.text for el in form.iter("個人番号")] == [None, None]
    numbers = root.findall("my_numbers/my_number")
    assert [(n.get("position"), n.text) for n in numbers] == [("0", my_numbers_of(spec)[0]),
                                                               ("1", my_numbers_of(spec)[1])]
    attachments = {a.get("file_name"): a for a in root.iterfind("attachments/attachment")}
    for original in spec.attachments:
        el = attachments[original.file_name]
        data = base64.b64decode(el.text or "")
        assert data == original.data
        assert (el.get("sha256"), el.get("size"), el.get("malware_flagged")) == (
            hashlib.sha256(data).hexdigest(), str(len(data)), "false")
