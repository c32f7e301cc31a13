"""The push channel end to end: relay app and the real intake app, both served over HTTP."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import Engine, select

from dmz_relay.push import create_app
from dmz_relay.runtime import Relay
from dmz_relay.tombstones import Outcome
from intake.api import create_app as create_intake_app
from intake.db import make_session_factory
from intake.models import VerificationRecord
from intake.runtime import Runtime
from malware import ScanVerdict
from signature.testing.builder import ApplicationSpec, zip_package
from signature.testing.samples import sample_pdf
from tests.conftest import NOW, PackageFactory, World
from tests.dmz_relay.conftest import FixedClock, Intake, RelayFactory, Sleeps, push
from tests.signature import tamper
from tests.support.servers import free_port, serve_in_thread

XXE = b'<!DOCTYPE DataRoot [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


@pytest.fixture
def relay(intake: Intake, make_relay: RelayFactory) -> Relay:
    return make_relay(intake.url)


@pytest.fixture
def relay_url(relay: Relay) -> Iterator[str]:
    with serve_in_thread(create_app(relay)) as url:
        yield url


def test_happy_path_stores_once_and_leaves_an_erased_tombstone(
    relay_url: str, relay: Relay, intake: Intake, make_package: PackageFactory, relay_clock: FixedClock
) -> None:
    body = make_package()
    response = push(relay_url, body)
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["receipt_number"] == "20261125-0000000001"
    assert receipt["duplicate"] is False
    assert intake.deliveries() == 1
    [stone] = relay.tombstones.all()
    assert stone.outcome is Outcome.STORED
    assert stone.receipt_number == "20261125-0000000001"
    assert stone.sha256 == receipt["sha256"]
    assert stone.reason_code is None
    for moment in (stone.received_at, stone.verified_at, stone.scanned_at, stone.forwarded_at, stone.erased_at):
        assert moment == relay_clock.now


def test_duplicate_push_answers_200_with_the_same_receipt(
    relay_url: str, relay: Relay, intake: Intake, make_package: PackageFactory
) -> None:
    body = make_package()
    first = push(relay_url, body)
    again = push(relay_url, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {**first.json(), "duplicate": True}
    assert intake.deliveries() == 1
    assert [s.outcome for s in relay.tombstones.all()] == [Outcome.STORED, Outcome.DUPLICATE]


def _bomb(_make: PackageFactory, _spec: ApplicationSpec) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("kousei.xml", b"<DataRoot/>")
        zf.writestr("zeros.bin", bytes(8 * 1024 * 1024))
    return buf.getvalue()


def _xxe(make: PackageFactory, spec: ApplicationSpec) -> bytes:
    return make(spec=replace(spec, form_xml=tamper.with_doctype(spec.form_xml, XXE)))


def _traversal(make: PackageFactory, _spec: ApplicationSpec) -> bytes:
    return zip_package([*tamper.unpack(make()).entries, ("../evil.txt", b"owned")])


@pytest.mark.parametrize(
    ("build", "status", "code"),
    [
        pytest.param(_bomb, 422, "ZIP_BOMB", id="zip-bomb"),
        pytest.param(_xxe, 422, "XML_DTD", id="xxe-in-the-signed-form"),
        pytest.param(_traversal, 422, "ZIP_UNSAFE_PATH", id="path-traversal"),
        pytest.param(lambda _m, _s: sample_pdf("not a zip"), 422, "NOT_A_ZIP", id="not-a-zip"),
        pytest.param(lambda _m, _s: b"", 422, "EMPTY_INPUT", id="empty"),
        pytest.param(lambda _m, _s: b"PK" + bytes(300_000), 413, "ZIP_TOO_LARGE", id="oversized"),
    ],
)
def test_hostile_packages_are_refused_and_leave_only_a_tombstone(
    relay_url: str, relay: Relay, intake: Intake, make_package: PackageFactory, spec: ApplicationSpec,
    build: object, status: int, code: str,
) -> None:
    body = build(make_package, spec)  # type: ignore[operator]
    response = push(relay_url, body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message_ja"]
    assert intake.deliveries() == 0
    [stone] = relay.tombstones.all()
    assert (stone.outcome, stone.reason_code) == (Outcome.REFUSED, code)
    assert stone.forwarded_at is None
    assert stone.erased_at is not None


def test_oversized_chunked_upload_is_cut_off_at_the_cap(relay_url: str, relay: Relay, intake: Intake) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:  # no Content-Length: the relay must count as it reads
        nonlocal sent
        for _ in range(100):
            sent += 1
            yield b"PK" + bytes(65_534)

    response = httpx.post(f"{relay_url}/api/v1/packages", content=chunks(), timeout=60,
                          headers={"Content-Type": "application/zip"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "ZIP_TOO_LARGE"
    assert intake.deliveries() == 0
    [stone] = relay.tombstones.all()
    assert (stone.outcome, stone.reason_code, stone.sha256) == (Outcome.REFUSED, "ZIP_TOO_LARGE", None)


@pytest.mark.parametrize("content_type", ["application/octet-stream", "multipart/form-data; boundary=x", ""])
def test_only_raw_zip_bodies_are_accepted(
    relay_url: str, relay: Relay, intake: Intake, make_package: PackageFactory, content_type: str
) -> None:
    response = httpx.post(f"{relay_url}/api/v1/packages", content=make_package(), timeout=60,
                          headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert intake.deliveries() == 0
    assert relay.tombstones.all() == []


def test_signature_failed_package_is_forwarded_and_flagged_by_the_intake(
    relay_url: str, relay: Relay, intake: Intake, make_package: PackageFactory, world: World
) -> None:
    response = push(relay_url, make_package(signer=world.revoked_signer))
    assert response.status_code == 201, response.text
    with intake.session() as s:
        record = s.scalar(select(VerificationRecord))
        assert (record.indication, record.sub_indication, record.reason_code) == (
            "INDETERMINATE", "REVOKED_NO_POE", "CERT_REVOKED")
    [stone] = relay.tombstones.all()
    assert (stone.outcome, stone.reason_code) == (Outcome.STORED, "CERT_REVOKED")


def test_tampered_attachment_is_forwarded_for_staff_not_refused(
    relay_url: str, relay: Relay, intake: Intake, make_package: PackageFactory
) -> None:
    """DIGEST_MISMATCH is readable: staff must see it (and contact the resident)."""
    unpacked = tamper.unpack(make_package())
    unpacked.edit("保険証.pdf", lambda d: d.replace(b"insurance", b"INSURANCE"))
    response = push(relay_url, unpacked.zip())
    assert response.status_code == 201, response.text
    assert intake.deliveries() == 1
    [stone] = relay.tombstones.all()
    assert (stone.outcome, stone.reason_code) == (Outcome.STORED, "DIGEST_MISMATCH")


def test_intake_down_gives_503_after_the_capped_attempts(
    make_relay: RelayFactory, sleeps: Sleeps, make_package: PackageFactory, intake: Intake
) -> None:
    relay = make_relay(f"http://127.0.0.1:{free_port()}", forward_attempts=4)  # nothing listens there
    with serve_in_thread(create_app(relay)) as url:
        response = push(url, make_package())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert response.json()["error"]["code"] == "INTAKE_UNAVAILABLE"
    assert len(sleeps.waits) == 3  # four attempts, three waits: exponential, with jitter in [0, 0.5)
    for n, wait in enumerate(sleeps.waits, start=1):
        assert 0.5 * 2 ** (n - 1) <= wait < 0.5 * 2 ** (n - 1) + 0.5
    [stone] = relay.tombstones.all()
    assert (stone.outcome, stone.reason_code, stone.forwarded_at) == (Outcome.FAILED, "INTAKE_UNAVAILABLE", None)
    assert stone.erased_at is not None
    assert intake.deliveries() == 0


class _FlakyFront:
    """An ASGI app in front of the real intake: the first ``failures`` deliveries get ``status``."""

    def __init__(self, app: object, status: int, failures: int, code: str = "X") -> None:
        self.app = app
        self.status = status
        self.failures = failures
        self.code = code
        self.seen = 0

    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/v1/deliveries" and self.seen < self.failures:
            self.seen += 1
            body = b'{"error": {"code": "%s", "message": "injected"}}' % self.code.encode()
            await send({"type": "http.response.start", "status": self.status,  # type: ignore[operator]
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"3")]})
            await send({"type": "http.response.body", "body": body})  # type: ignore[operator]
            return
        await self.app(scope, receive, send)  # type: ignore[operator]


@pytest.mark.parametrize("status", [502, 503, 504, 409])
def test_transient_intake_answers_are_retried(
    make_relay: RelayFactory, sleeps: Sleeps, make_package: PackageFactory, intake_engine: Engine,
    intake_runtime: Runtime, status: int,
) -> None:
    front = _FlakyFront(create_intake_app(intake_runtime, make_session_factory(intake_engine)), status, 2)
    with serve_in_thread(front) as intake_url:
        relay = make_relay(intake_url)
        with serve_in_thread(create_app(relay)) as url:
            response = push(url, make_package())
    assert response.status_code == 201, response.text
    assert front.seen == 2
    assert len(sleeps.waits) == 2
    assert all(w >= 3 for w in sleeps.waits)  # Retry-After: 3 is respected (within the backoff cap)


@pytest.mark.parametrize(("status", "code", "outcome", "answer"), [
    # a failed attempt for this package: the client tries again later, nothing is marked done
    pytest.param(500, "X", Outcome.FAILED, 503, id="500-failed-attempt"),
    # any other 4xx is a configuration error between relay and intake, not the package's fault
    pytest.param(400, "X", Outcome.FAILED, 503, id="400-configuration"),
    pytest.param(403, "CLIENT_CERT_REFUSED", Outcome.FAILED, 503, id="403-configuration"),
    pytest.param(404, "NOT_FOUND", Outcome.FAILED, 503, id="404-configuration"),
    pytest.param(413, "BODY_TOO_LARGE", Outcome.FAILED, 503, id="413-configuration"),
    # only a documented package refusal is final
    pytest.param(422, "PACKAGE_VALUE_OUT_OF_RANGE", Outcome.REJECTED, 422, id="422-documented-refusal"),
    pytest.param(422, "IDEMPOTENCY_KEY_MISMATCH", Outcome.FAILED, 503, id="422-not-a-package-refusal"),
])
def test_other_intake_answers_are_not_retried(
    make_relay: RelayFactory, sleeps: Sleeps, make_package: PackageFactory, intake_engine: Engine,
    intake_runtime: Runtime, status: int, code: str, outcome: Outcome, answer: int,
) -> None:
    front = _FlakyFront(create_intake_app(intake_runtime, make_session_factory(intake_engine)), status, 1, code)
    with serve_in_thread(front) as intake_url:
        relay = make_relay(intake_url)
        with serve_in_thread(create_app(relay)) as url:
            response = push(url, make_package())
            ready = httpx.get(f"{url}/readyz", timeout=30).json()["checks"]["intake_channel"]
    assert front.seen == 1
    assert sleeps.waits == []
    [stone] = relay.tombstones.all()
    assert stone.outcome is outcome
    assert response.status_code == answer
    if outcome is Outcome.REJECTED:
        assert response.json()["error"]["refused_by"] == "intake"
        assert ready == "ok"
    elif status != 500:
        assert "Retry-After" in response.headers  # the terminal keeps its file and sends it again
        assert ready == f"misconfigured: {code}"  # readiness is red until the intake answers right
    else:
        assert ready == "ok"


class _GateScanner:
    """Holds the first scan until released, so a test can see the relay saturated (no sleeps)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def scan(self, name: str, data: bytes) -> ScanVerdict:
        self.entered.set()
        if not self.release.wait(30):
            raise AssertionError("the test never released the scanner")
        return ScanVerdict(infected=False, signature=None)

    def ping(self) -> bool:
        return True


def test_saturated_relay_answers_503_busy(
    make_relay: RelayFactory, intake: Intake, make_package: PackageFactory, spec: ApplicationSpec
) -> None:
    gate = _GateScanner()
    relay = make_relay(intake.url, scanner=gate, max_concurrent_packages=1)
    with serve_in_thread(create_app(relay)) as url:
        answers: list[httpx.Response] = []
        first = threading.Thread(target=lambda: answers.append(push(url, make_package())))
        first.start()
        assert gate.entered.wait(30)
        second = push(url, make_package(spec=replace(spec, receipt_number="20261125-0000000002")))
        gate.release.set()
        first.join(60)
    assert second.status_code == 503
    assert second.json()["error"]["code"] == "BUSY"
    assert second.headers["Retry-After"] == "7"
    assert answers[0].status_code == 201
    assert intake.deliveries() == 1


def test_a_stopping_relay_abandons_what_it_has_not_forwarded(
    make_relay: RelayFactory, intake: Intake, make_package: PackageFactory
) -> None:
    gate = _GateScanner()
    relay = make_relay(intake.url, scanner=gate)
    with serve_in_thread(create_app(relay)) as url:
        answers: list[httpx.Response] = []
        first = threading.Thread(target=lambda: answers.append(push(url, make_package())))
        first.start()
        assert gate.entered.wait(30)
        relay.stop.set()  # what the lifespan does on shutdown
        gate.release.set()
        first.join(60)
        later = push(url, make_package())
    assert answers[0].status_code == 503
    assert answers[0].json()["error"]["code"] == "SHUTTING_DOWN"
    assert later.status_code == 503
    assert intake.deliveries() == 0
    [stone] = relay.tombstones.all()
    assert (stone.outcome, stone.forwarded_at) == (Outcome.ABANDONED, None)


def test_receipt_time_is_the_injected_clock(
    relay_url: str, relay: Relay, make_package: PackageFactory, relay_clock: FixedClock
) -> None:
    assert relay_clock.now == NOW
    assert push(relay_url, make_package()).status_code == 201
    assert relay.tombstones.all()[0].received_at == NOW


def test_the_callers_buffer_is_zeroed_and_emptied(relay: Relay, make_package: PackageFactory) -> None:
    from dmz_relay.tombstones import Channel

    buffer = bytearray(make_package())
    result = relay.pipeline.process(buffer, channel=Channel.PUSH)
    assert result.outcome is Outcome.STORED
    assert buffer == bytearray()


def test_wipe_overwrites_before_it_releases() -> None:
    from dmz_relay.pipeline import wipe

    buffer = bytearray(b"secret My Number 123456789018")
    seen: list[bytes] = []

    class Spy(bytearray):
        def clear(self) -> None:
            seen.append(bytes(self))
            super().clear()

    spy = Spy(buffer)
    wipe(spy)
    assert seen == [bytes(len(buffer))]
    assert spy == bytearray()


@pytest.mark.parametrize(
    ("build", "outcome", "fsynced", "unsynced"),
    [
        # open, verified (the 受付番号 and SHA-256 that link the tombstone to its package), scanned
        # (before the forward), outcome + links (one transaction) | forwarded
        pytest.param(lambda make, _spec: make(), Outcome.STORED, 4, 1, id="forwarded"),
        # open, verified, outcome | nothing
        pytest.param(_xxe, Outcome.REFUSED, 3, 0, id="refused"),
    ],
)
def test_a_package_costs_few_fsyncs_and_each_comes_before_what_others_see(
    relay: Relay, make_package: PackageFactory, spec: ApplicationSpec, monkeypatch: pytest.MonkeyPatch,
    build: object, outcome: Outcome, fsynced: int, unsynced: int,
) -> None:
    """Issue 19: an fsync costs the relay ~0.05–0.15 ms of CPU; a package took six commits at
    ``synchronous=FULL`` (one per step, and one more for the links). Now only what comes before
    something others see, or links the tombstone to its package, is fsync'd: the tombstone opened,
    ``verified`` (where a pushed package's tombstone learns its 受付番号 and SHA-256: lost to a power
    cut during the scan, the tombstone left behind could never be linked to the outcome of the
    package sent again), ``scanned`` before the forward, the outcome before the answer."""
    from dmz_relay.tombstones import Channel
    from tests.dmz_relay.commits import CommitLog

    log = CommitLog(relay.tombstones)
    deliver = relay.intake.deliver

    def forward(*args: object, **kwargs: object) -> object:
        log.mark("forward")
        return deliver(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(relay.intake, "deliver", forward)
    result = relay.pipeline.process(bytearray(build(make_package, spec)), channel=Channel.PUSH)  # type: ignore[operator]
    log.mark("answer")
    assert result.outcome is outcome
    tally = log.tally()
    assert (tally.fsynced, tally.unsynced, tally.exposed) == (fsynced, unsynced, [])
    [stone] = relay.tombstones.all()
    assert (stone.sha256, stone.outcome) == (result.sha256, outcome)
    assert None not in (stone.verified_at, stone.erased_at)
