"""One package through the relay, in memory only: cap → verify → scan → forward once → erase.

:meth:`Pipeline.process` takes the package as a ``bytearray`` it then owns. It makes the one
immutable copy the verifier and httpx need, zeroes and empties the caller's buffer at once, and
drops every reference to package bytes (the copy, the ZIP entries, the verification report) before
it records ``erased_at`` — whatever the outcome. Python cannot scrub an immutable ``bytes`` object;
its memory goes back to the allocator when the last reference goes (docs/relay.md, "Erasure").

Decisions (docs/relay.md):

* not ``readable`` (hostile or malformed container or XML) or over the size cap → REFUSED, never
  forwarded, only a tombstone;
* readable but signature FAILED / INDETERMINATE → forwarded: the intake re-verifies, stores and
  flags it, so staff can contact the resident;
* malware: every file of the container is scanned. An infected file is **not** replaced: changing a
  byte breaks the applicant's signature (the intake would see DIGEST_MISMATCH and lose the evidence).
  The original package is forwarded unchanged with ``X-Relay-Report`` naming the infected files;
  the intake flags the delivery and quarantines those attachments (``malware_flagged``). A file too
  large for the scanner is flagged the same way (never treated as clean). A scanner that does not
  answer stops the package (FAILED, try later): nothing unscanned is forwarded;
* forward once: :class:`~dmz_relay.forwarder.IntakeClient` (capped retries), and only a receipt for
  these very bytes counts;
* a failure says whose it is (:class:`Failure`): this package's (``ITEM``: it counts against the
  package's attempt budget and the channel goes on), the channel's (``CHANNEL``: the intake or the
  scanner is unavailable, the relay is stopping: wait), or the configuration's (``CONFIGURATION``:
  relay and intake do not fit together — the channel stops, readiness turns red, nothing is marked
  done, and it resumes by itself once the intake answers right: :class:`IntakeChannel`).
"""

from __future__ import annotations

import enum
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from dmz_relay.errors import (
    IntakeFailed,
    IntakeMisconfigured,
    IntakeProtocolError,
    IntakeRejected,
    IntakeUnavailable,
)
from dmz_relay.forwarder import IntakeClient, IntakeReceipt
from dmz_relay.logs import event
from dmz_relay.metrics import Metrics
from dmz_relay.reasons import (
    INTERNAL_ERROR,
    MALWARE_FOUND,
    MALWARE_UNSCANNABLE,
    SCANNER_UNAVAILABLE,
    SHUTTING_DOWN,
    describe_code,
)
from dmz_relay.tombstones import Channel, Outcome, TombstoneStore
from handover import MalwareFindings, RelayReport, RelayVerdict
from malware import ScanLimitExceeded, Scanner, ScannerUnavailable
from signature.policy import VerificationPolicy
from signature.report import ReasonCode, VerificationReport
from signature.verify import TrustConfig, verify_and_read
from signature.zipreader import PackageFiles

__all__ = ["Clock", "Failure", "IntakeChannel", "PackageResult", "Pipeline", "wipe"]


_log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

_ZEROS = bytes(1024 * 1024)


def wipe(buffer: bytearray) -> None:
    """Overwrite ``buffer`` with zeros, then release its memory (a megabyte at a time: no
    zero-filled copy as large as the buffer)."""
    with memoryview(buffer) as view:
        for offset in range(0, len(view), len(_ZEROS)):
            piece = view[offset:offset + len(_ZEROS)]
            piece[:] = _ZEROS[:len(piece)]
            piece.release()
    buffer.clear()


class Failure(enum.StrEnum):
    """Whose a failed outcome is (see the module docstring)."""

    ITEM = "item"
    CHANNEL = "channel"
    CONFIGURATION = "configuration"


class IntakeChannel:
    """How the channel to the intake stands, from the answers packages got (thread-safe).

    ``ok`` until an answer says otherwise; ``misconfigured`` (with the code) from a configuration
    error until the next receipt; ``unavailable`` from an exhausted wait until the next receipt.
    """

    def __init__(self, metrics: Metrics, clock: Clock) -> None:
        self._lock = threading.Lock()
        self._metrics = metrics
        self._clock = clock
        self.state = "ok"
        self.code: str | None = None
        self.since: datetime | None = None
        metrics.intake_channel_ok.set(1)

    def note(self, result: PackageResult) -> None:
        if result.outcome in (Outcome.STORED, Outcome.DUPLICATE, Outcome.REJECTED):
            self._set("ok", None)
        elif result.failure is Failure.CONFIGURATION:
            self._set("misconfigured", result.reason_code)
        elif result.failure is Failure.CHANNEL and result.reason_code in _INTAKE_WAITS:
            self._set("unavailable", result.reason_code)

    def _set(self, state: str, code: str | None) -> None:
        with self._lock:
            if (state, code) == (self.state, self.code):
                return
            previous, self.state, self.code, self.since = self.state, state, code, self._clock()
        self._metrics.intake_channel_ok.set(1 if state == "ok" else 0)
        if state == "ok":
            event("intake.channel_resumed", detail=f"was {previous}")
        else:
            self._metrics.intake_channel_stops.labels(state).inc()
            event("intake.channel_stopped", level=logging.ERROR if state == "misconfigured" else logging.WARNING,
                  reason_code=code, detail=state)

    def readiness(self) -> str:
        with self._lock:
            return "ok" if self.state == "ok" else f"{self.state}: {self.code}"


_INTAKE_WAITS = frozenset({"INTAKE_UNAVAILABLE", "INTAKE_BUSY"})


@dataclass(frozen=True, slots=True)
class PackageResult:
    """What became of one package: enough to answer the source, nothing from inside the package."""

    outcome: Outcome
    tombstone_id: int
    channel: Channel
    receipt_number: str | None
    sha256: str | None
    reason_code: str | None = None
    receipt: IntakeReceipt | None = None
    #: The intake's HTTP status when it refused (REJECTED) or failed with one.
    intake_status: int | None = None
    infected: int = 0
    #: For FAILED and ABANDONED: whose failure it is.
    failure: Failure | None = None

    @property
    def reason_en(self) -> str:
        return describe_code(self.reason_code)[0] if self.reason_code else ""

    @property
    def reason_ja(self) -> str:
        return describe_code(self.reason_code)[1] if self.reason_code else ""


@dataclass
class _Work:
    """Mutable record of one run (no package bytes in it)."""

    tombstone_id: int
    channel: Channel
    sha256: str | None
    receipt_number: str | None
    infected: list[str]
    signatures: list[str]
    unscannable: list[str]
    #: entry indexes (central-directory order) flagged infected or unscannable
    flagged: list[int] = field(default_factory=list)


class Pipeline:
    """Verify, scan, forward and erase packages. Thread-safe; one instance per relay process."""

    def __init__(
        self, *, trust: TrustConfig, policy: VerificationPolicy, scanner: Scanner, scanner_name: str,
        intake: IntakeClient, tombstones: TombstoneStore, clock: Clock, metrics: Metrics,
        max_package_bytes: int, stop: threading.Event | None = None,
    ) -> None:
        self.trust = trust
        self.policy = policy
        self.scanner = scanner
        self.scanner_name = scanner_name
        self.intake = intake
        self.tombstones = tombstones
        self.clock = clock
        self.metrics = metrics
        self.max_package_bytes = max_package_bytes
        self.stop = stop or threading.Event()
        self.channel = IntakeChannel(metrics, clock)

    # --- entry points ------------------------------------------------------------------------

    def refuse_unread(self, *, channel: Channel, reason_code: str, receipt_hint: str | None = None,
                      sha256: str | None = None) -> PackageResult:
        """Tombstone a package refused before it was read whole (over the size cap)."""
        now = self.clock()
        tid = self.tombstones.open(channel=channel, received_at=now, receipt_number=receipt_hint, sha256=sha256)
        self.tombstones.finish(tid, Outcome.REFUSED, erased_at=self.clock(), reason_code=reason_code)
        result = PackageResult(Outcome.REFUSED, tid, channel, receipt_hint, sha256, reason_code)
        self._account(result, 0.0)
        return result

    def process(self, buffer: bytearray, *, channel: Channel, receipt_hint: str | None = None,
                sha256: str | None = None) -> PackageResult:
        """Take ``buffer`` (the package; zeroed and emptied here), run it through, erase it.

        ``sha256`` is the digest the caller already checked the bytes against (the pull channel: the
        portal's list); the tombstone carries it from the start. It is compared with the verifier's
        own digest of the copy, and a difference stops the package (never forwarded). Without it the
        tombstone learns the digest from the verifier. The package is hashed once here: by the
        verifier, whose digest is the tombstone's, the answer's and the ``Idempotency-Key``.
        """
        started = time.monotonic()
        received_at = self.clock()
        self.metrics.in_flight.inc()
        try:
            body = bytes(buffer)
            wipe(buffer)
            work = _Work(self.tombstones.open(channel=channel, received_at=received_at,
                                              receipt_number=receipt_hint, sha256=sha256),
                         channel, sha256, receipt_hint, [], [], [])
            try:
                result = self._run(body, work)
            except Exception:  # noqa: BLE001 - any bug still ends in a tombstone and an answer
                _log.exception("internal error while handling a package")
                result = self._result(work, Outcome.FAILED, INTERNAL_ERROR, failure=Failure.ITEM)
            # The last reference to the package bytes: after this, only the allocator has them.
            del body
            self.tombstones.finish(work.tombstone_id, result.outcome, erased_at=self.clock(),
                                   reason_code=result.reason_code)
        finally:
            self.metrics.in_flight.dec()
        self._account(result, time.monotonic() - started)
        return result

    # --- the stages ----------------------------------------------------------------------------

    def _run(self, body: bytes, work: _Work) -> PackageResult:
        if len(body) > self.max_package_bytes:
            if work.sha256 is None:
                work.sha256 = hashlib.sha256(body).hexdigest()
                self.tombstones.learn_sha256(work.tombstone_id, work.sha256)
            return self._result(work, Outcome.REFUSED, ReasonCode.ZIP_TOO_LARGE.value)

        with self._timed("verify"):
            # One reading of the ZIP for verification and the scan; one hash of the package.
            verified = verify_and_read(body, self.trust, at=self.clock(), policy=self.policy)
        report, files = verified.report, verified.files
        del verified
        if work.sha256 is not None and work.sha256 != report.package_sha256:
            # The bytes verified are not those the caller checked: a relay bug. Nothing forwarded.
            _log.error("the verifier's digest differs from the one the package was checked against")
            return self._result(work, Outcome.FAILED, INTERNAL_ERROR, failure=Failure.ITEM)
        work.sha256 = report.package_sha256
        if work.receipt_number is None and report.arrival is not None:
            work.receipt_number = report.arrival.receipt_number
        self.tombstones.mark(work.tombstone_id, "verified", self.clock(), receipt_number=work.receipt_number,
                             sha256=work.sha256)
        if not report.readable:
            return self._result(work, Outcome.REFUSED, _code(report))
        if files is None:  # readable means the container was read: fail closed all the same
            return self._result(work, Outcome.FAILED, INTERNAL_ERROR, failure=Failure.ITEM)

        with self._timed("scan"):
            failure = self._scan(files, work)
        del files  # the inflated files are not needed to forward (the report's go below)
        if failure is not None:
            return failure
        self.tombstones.mark(work.tombstone_id, "scanned", self.clock())

        if self.stop.is_set():
            return self._result(work, Outcome.ABANDONED, SHUTTING_DOWN, failure=Failure.CHANNEL)
        relay_report = self._relay_report(report, work)
        reason = (MALWARE_FOUND if work.infected else MALWARE_UNSCANNABLE if work.unscannable
                  else _code(report) if not report.passed else None)
        del report  # holds the package's files and the signer's identity

        with self._timed("forward"):
            try:
                receipt = self.intake.deliver(body, relay_report, sha256=work.sha256)
            except IntakeUnavailable as exc:
                event("intake.unavailable", level=logging.WARNING, sha256=work.sha256, intake_code=exc.code,
                      attempts=exc.attempts, http_status=exc.status)
                return self._result(work, Outcome.FAILED, _safe_code(exc.code), intake_status=exc.status,
                                    failure=Failure.CHANNEL)
            except IntakeMisconfigured as exc:
                return self._result(work, Outcome.FAILED, _safe_code(exc.code), intake_status=exc.status,
                                    failure=Failure.CONFIGURATION)
            except IntakeRejected as exc:
                return self._result(work, Outcome.REJECTED, _safe_code(exc.code), intake_status=exc.status)
            except (IntakeFailed, IntakeProtocolError) as exc:
                return self._result(work, Outcome.FAILED, _safe_code(exc.code), intake_status=exc.status,
                                    failure=Failure.ITEM)
        self.tombstones.mark(work.tombstone_id, "forwarded", self.clock(),
                             receipt_number=receipt.receipt_number)
        if work.receipt_number is None:
            work.receipt_number = receipt.receipt_number
        outcome = Outcome.DUPLICATE if receipt.status == 200 else Outcome.STORED
        return self._result(work, outcome, reason, receipt=receipt)

    def _scan(self, files: PackageFiles, work: _Work) -> PackageResult | None:
        """Scan every file of the container (signed or not), from the files the verifier inflated
        (streamed to the scanner without a copy). None when every file was scanned or flagged; a
        FAILED result when the scanner is unavailable."""
        try:
            for index, (name, data) in enumerate(files.entries):
                try:
                    verdict = self.scanner.scan(name, data)
                except ScannerUnavailable as exc:
                    if isinstance(exc, ScanLimitExceeded) or not exc.retryable:
                        # This file cannot be scanned (too long, or clamd said ERROR for it): it
                        # is flagged like an infected one, never passed as clean, and the package
                        # goes on — one unscannable file must not stop the channel.
                        work.unscannable.append(name)
                        work.flagged.append(index)
                        continue
                    event("scanner.unavailable", level=logging.WARNING, sha256=work.sha256, detail="retryable")
                    return self._result(work, Outcome.FAILED, SCANNER_UNAVAILABLE, failure=Failure.CHANNEL)
                if verdict.infected:
                    work.infected.append(name)
                    work.flagged.append(index)
                    work.signatures.append(verdict.signature or "unknown")
        finally:
            del files
        self.metrics.malware.inc(len(work.infected))
        return None

    def _relay_report(self, report: VerificationReport, work: _Work) -> RelayReport:
        """``X-Relay-Report`` (:class:`handover.RelayReport`): the relay's own findings; file names go
        to the intake only (never to logs or tombstones: a name can hold personal data)."""
        flagged = [*work.infected, *(n for n in work.unscannable if n not in work.infected)]
        return RelayReport(
            relay=RelayVerdict(indication=report.indication.value, reason_code=_code(report),
                               validation_time=report.validation_time),
            malware=MalwareFindings(scanner=self.scanner_name, infected_files=tuple(flagged),
                                    signatures=tuple(sorted(set(work.signatures))),
                                    unscannable_files=tuple(work.unscannable),
                                    flagged_entries=MalwareFindings.bitmap(work.flagged)),
        ).fitted()

    # --- helpers -------------------------------------------------------------------------------

    def _result(self, work: _Work, outcome: Outcome, reason: str | None, *, receipt: IntakeReceipt | None = None,
                intake_status: int | None = None, failure: Failure | None = None) -> PackageResult:
        return PackageResult(outcome, work.tombstone_id, work.channel, work.receipt_number, work.sha256, reason,
                             receipt, intake_status, len(work.infected) + len(work.unscannable), failure)

    def _account(self, result: PackageResult, seconds: float) -> None:
        self.channel.note(result)
        self.metrics.packages.labels(result.channel.value, result.outcome.value).inc()
        self.metrics.receipt_to_erasure.labels(result.channel.value).observe(seconds)
        event("package.erased", channel=result.channel.value, receipt_number=result.receipt_number,
              sha256=result.sha256, outcome=result.outcome.value, reason_code=result.reason_code,
              infected=result.infected, duration_ms=round(seconds * 1000, 1),
              level=logging.WARNING if result.outcome in (Outcome.FAILED, Outcome.ABANDONED) else logging.INFO)

    def _timed(self, stage: str) -> _Timer:
        return _Timer(self.metrics, stage)


class _Timer:
    def __init__(self, metrics: Metrics, stage: str) -> None:
        self.metrics = metrics
        self.stage = stage
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, *_exc: object) -> None:
        self.metrics.stage.labels(self.stage).observe(time.monotonic() - self.started)


def _code(report: VerificationReport) -> str | None:
    return report.reason_code.value if report.reason_code is not None else None


def _safe_code(code: str) -> str:
    """An intake error code as a tombstone reason (upper-case code form), else a generic one."""
    cleaned = code.upper()
    return cleaned if cleaned.replace("_", "").isalnum() and cleaned.isascii() and len(cleaned) <= 64 \
        else "INTAKE_REJECTED"
