"""The intake client: deliver a package once (mutual TLS, ``Idempotency-Key``), read the status outbox.

Retries (tenacity) only for what waiting can fix: connection failures (refused, reset, a reply lost
after the request was sent), timeouts, 502/503/504 and 409 (the same key is being stored right
now). The ``Idempotency-Key`` is the SHA-256 of the body, so a repeat after a lost reply gets the
intake's 200 with the first receipt, never a second record. Attempts are capped; then
:class:`IntakeUnavailable` goes to the caller, which tells the source — the relay never holds a
package waiting for the intake. Waits are exponential with jitter; time and randomness are injected.

Every other answer is classified by the contract (:func:`handover.classify`): a receipt; a
documented package refusal (:class:`IntakeRejected`, final); a configuration error between relay
and intake — any other 4xx, or a TLS handshake that fails (:class:`IntakeMisconfigured`: nothing is
marked done, the channel stops); or a failed attempt for this package (:class:`IntakeFailed`: 500).
"""

from __future__ import annotations

import hashlib
import random
import ssl
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_when_event_set

from dmz_relay.errors import IntakeFailed, IntakeMisconfigured, IntakeProtocolError, IntakeRejected, IntakeUnavailable
from dmz_relay.metrics import Metrics
from dmz_relay.settings import RelaySettings
from handover import (
    CRL_MEDIA_TYPE,
    REPORT_HEADER,
    CrlReceipt,
    NoticeRefused,
    OutboxRefused,
    RelayReport,
    SetAsideBatch,
    StatusAck,
    StatusNoticeItem,
    StatusOutboxPage,
    classify,
    classify_crl_answer,
    crl_path,
)
from tlsreload.alerting import tls_refusal

__all__ = [
    "BackoffPolicy",
    "IntakeClient",
    "IntakeReceipt",
    "build_intake_http",
    "idempotency_key",
]

RETRY_STATUSES = frozenset({409, 502, 503, 504})

Sleep = Callable[[float], None]


#: The package goes to httpx in pieces of this size: h11 joins each piece with its framing into new
#: bytes, so one piece, not the whole package, is copied at a time.
SEND_CHUNK = 1024 * 1024


def idempotency_key(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _pieces(body: bytes) -> Generator[memoryview, None, None]:
    """``body`` as read-only views of ``SEND_CHUNK`` bytes (views, not copies)."""
    with memoryview(body) as view:
        for offset in range(0, len(view), SEND_CHUNK):
            yield view[offset:offset + SEND_CHUNK]


@dataclass(frozen=True, slots=True)
class IntakeReceipt:
    """The intake's answer that it holds the package (docs/intake.md)."""

    delivery_id: int
    receipt_number: str | None
    sha256: str
    stored_at: str
    duplicate: bool
    status: int  # 201 first time, 200 repeat

    def to_json(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "receipt_number": self.receipt_number, "sha256": self.sha256,
                "stored_at": self.stored_at, "duplicate": self.duplicate}


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """``attempts`` in all; the wait before attempt n+1 is min(max, initial·2^(n-1)) + U(0, jitter),
    and at least the server's Retry-After (capped at ``max``)."""

    attempts: int = 5
    initial: float = 0.5
    max: float = 10.0
    jitter: float = 0.5

    def wait(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        base = min(self.max, self.initial * 2 ** (attempt - 1))
        if retry_after is not None:
            base = max(base, min(self.max, retry_after))
        return float(base + rng.uniform(0, self.jitter))


class _Retryable(Exception):
    """An answer worth another attempt."""

    def __init__(self, code: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
        code = body["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP_{response.status_code}"
    return str(code) if isinstance(code, str) and code.isascii() and len(code) <= 64 else f"HTTP_{response.status_code}"


def build_intake_http(settings: RelaySettings) -> httpx.Client:
    """The mutual-TLS client for the intake: its CA only (never the public web CAs), our client
    certificate, four explicit timeouts, no proxies from the environment, no redirects."""
    verify: ssl.SSLContext | bool = False
    if settings.intake_url.startswith("https://"):
        if settings.intake_ca is None:
            raise ValueError("an https intake_url needs intake_ca")
        ctx = ssl.create_default_context(cafile=str(settings.intake_ca))
        if settings.client_cert is not None and settings.client_key is not None:
            ctx.load_cert_chain(str(settings.client_cert), str(settings.client_key))
        verify = ctx
    timeout = httpx.Timeout(connect=settings.intake_connect_timeout, read=settings.intake_read_timeout,
                            write=settings.intake_write_timeout, pool=settings.intake_connect_timeout)
    return httpx.Client(base_url=settings.intake_url, verify=verify, timeout=timeout, trust_env=False,
                        follow_redirects=False)


def _raise_unless_receipt(kind: str, what: str, status: int, code: str) -> None:
    """The intake's answer, classified by the handover contract: a receipt, or the matching error
    (``refused``: final for these bytes; ``configuration``: the channel stops; else a failure)."""
    if kind == "refused":
        raise IntakeRejected(f"the intake refused the {what}", code=code, status=status)
    if kind == "configuration":
        raise IntakeMisconfigured(f"the intake's answer is not about the {what}: check the relay-intake "
                                  "configuration", code=code, status=status)
    if kind != "receipt":
        raise IntakeFailed("the intake answered with an error", code=f"HTTP_{status}", status=status)


class IntakeClient:
    """Talks to the intake's machine API over ``http`` (built by :func:`build_intake_http`)."""

    def __init__(self, http: httpx.Client, *, backoff: BackoffPolicy | None = None, sleep: Sleep,
                 rng: random.Random | None = None, metrics: Metrics | None = None,
                 stop: threading.Event | None = None) -> None:
        self.http = http
        self.backoff = backoff or BackoffPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._metrics = metrics
        self._stop = stop or threading.Event()

    # --- deliveries --------------------------------------------------------------------------

    def deliver(self, body: bytes, relay_report: RelayReport | None = None, *,
                sha256: str | None = None) -> IntakeReceipt:
        """POST the package; return the intake's receipt for exactly these bytes.

        ``sha256`` is ``body``'s digest when the caller has it already (the pipeline: the verifier's,
        of this very object); it becomes the ``Idempotency-Key``. A wrong one cannot pass unnoticed:
        only a receipt whose SHA-256 — the intake's own digest of what it stored — equals it counts.

        Raises :class:`IntakeUnavailable` (try later), :class:`IntakeRejected` (4xx: never with these
        bytes) or :class:`IntakeProtocolError` (a 2xx that is not a receipt for these bytes).
        """
        key = "sha256:" + sha256 if sha256 is not None else idempotency_key(body)
        headers = {"Content-Type": "application/zip", "Idempotency-Key": key, "Content-Length": str(len(body))}
        if relay_report is not None:
            headers[REPORT_HEADER] = relay_report.encode()
        # Views of the bytes, a megabyte at a time, with an explicit Content-Length: h11 joins each
        # piece it sends with its framing into new bytes, so ``content=body`` would copy the whole
        # package once more. And an iterator, not the bytes: httpx keeps the request on the
        # response, and response and stream reference each other, so ``content=body`` would keep
        # the package alive until the cycle collector ran — after the tombstone already said
        # "erased". An exhausted generator holds nothing; one left unfinished (a failed attempt) is
        # closed here; a retry gets a new one.
        sent: list[Generator[memoryview, None, None]] = []

        def request() -> dict[str, Any]:
            sent.append(_pieces(body))
            return {"content": sent[-1], "headers": headers}

        try:
            response, attempts = self._exchange("POST", "/api/v1/deliveries", request, summary_code=True)
        finally:
            for pieces in sent:
                pieces.close()
            sent.clear()
        return self._receipt(response, key.removeprefix("sha256:"), attempts)

    def _exchange(self, method: str, path: str, request: Callable[[], dict[str, Any]], *,
                  summary_code: bool = False) -> tuple[httpx.Response, int]:
        """One request with the retry rules of the module docstring; ``request`` gives httpx's
        keyword arguments afresh for each attempt. Returns the final answer (not 409/502/503/504)
        and the number of attempts; :class:`IntakeUnavailable` when no attempt got one, coded by the
        last attempt's failure, or with ``summary_code`` INTAKE_BUSY (409) / INTAKE_UNAVAILABLE."""
        attempts = 0

        def send() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            try:
                response = self.http.request(method, path, **request())
            except httpx.TimeoutException as exc:
                raise _Retryable("TIMEOUT") from exc
            except (httpx.ConnectError, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if tls_refusal(exc) is not None:
                    # A certificate the other side refuses (or ours refuses theirs) does not heal
                    # by waiting: a configuration error, at once.
                    raise IntakeMisconfigured("the TLS handshake with the intake failed", code="TLS_HANDSHAKE",
                                              status=None) from exc
                # Refused, reset, or the reply lost after the intake may have committed: the
                # Idempotency-Key (deliveries) and idempotent reads/acks make the next attempt safe.
                raise _Retryable("CONNECT_ERROR") from exc
            except httpx.HTTPError as exc:
                raise IntakeUnavailable("transport error", code="TRANSPORT_ERROR", attempts=attempts) from exc
            if response.status_code in RETRY_STATUSES:
                code = _error_code(response) if response.status_code == 409 else f"HTTP_{response.status_code}"
                raise _Retryable(code, response.status_code, _retry_after(response))
            return response

        try:
            return self._retrying().__call__(send), attempts
        except _Retryable as exc:
            code = exc.code if not summary_code else "INTAKE_BUSY" if exc.status == 409 else "INTAKE_UNAVAILABLE"
            raise IntakeUnavailable("the intake did not answer within the capped attempts", code=code,
                                    attempts=attempts, status=exc.status) from exc

    def _retrying(self) -> Retrying:
        def wait(state: RetryCallState) -> float:
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None else None
            retry_after = exc.retry_after if isinstance(exc, _Retryable) else None
            return self.backoff.wait(state.attempt_number, self._rng, retry_after)

        def before_sleep(_state: RetryCallState) -> None:
            if self._metrics is not None:
                self._metrics.forward_retries.inc()

        return Retrying(
            stop=stop_after_attempt(self.backoff.attempts) | stop_when_event_set(self._stop),
            wait=wait, retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
            sleep=self._sleep, before_sleep=before_sleep, reraise=True,
        )

    def _receipt(self, response: httpx.Response, sha256: str, attempts: int) -> IntakeReceipt:
        status = response.status_code
        code = _error_code(response)
        _raise_unless_receipt(classify(status, code), "package", status, code)
        try:
            body = response.json()
            receipt = IntakeReceipt(
                delivery_id=int(body["delivery_id"]), receipt_number=body["receipt_number"],
                sha256=str(body["sha256"]), stored_at=str(body["stored_at"]), duplicate=bool(body["duplicate"]),
                status=status)
        except (ValueError, KeyError, TypeError) as exc:
            raise IntakeProtocolError("the answer is not a receipt", code="BAD_RECEIPT", status=status) from exc
        if receipt.sha256 != sha256:
            # Erase only on a receipt for these very bytes.
            raise IntakeProtocolError("the receipt is for other bytes", code="RECEIPT_MISMATCH", status=status)
        return receipt

    # --- CRLs (handover.crls) ---------------------------------------------------------------------

    def deliver_crl(self, name: str, der: bytes) -> CrlReceipt:
        """PUT one installed CRL; the intake's receipt for exactly these bytes.

        Retried like a delivery (409/502/503/504, connection errors). Raises
        :class:`IntakeRejected` (422 with a CRL refusal code: never with these bytes),
        :class:`IntakeMisconfigured` (any other 4xx, a TLS failure), :class:`IntakeFailed` (500),
        :class:`IntakeUnavailable` or :class:`IntakeProtocolError`.
        """
        headers = {"Content-Type": CRL_MEDIA_TYPE, "Content-Length": str(len(der))}
        response, _ = self._exchange("PUT", crl_path(name), lambda: {"content": der, "headers": headers})
        status, code = response.status_code, _error_code(response)
        _raise_unless_receipt(classify_crl_answer(status, code), "CRL", status, code)
        try:
            receipt = CrlReceipt.model_validate(response.json())
        except ValueError as exc:
            raise IntakeProtocolError("the answer is not a CRL receipt", code="BAD_RECEIPT", status=status) from exc
        if receipt.name != name or receipt.sha256 != hashlib.sha256(der).hexdigest():
            raise IntakeProtocolError("the receipt is for another CRL", code="RECEIPT_MISMATCH", status=status)
        return receipt

    # --- status outbox -------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A status-outbox request: :meth:`_exchange`, then 4xx raise :class:`IntakeRejected`."""
        response, attempts = self._exchange(method, path, lambda: kwargs)
        if 400 <= response.status_code < 500:
            raise IntakeRejected("the intake refused the request", code=_error_code(response),
                                 status=response.status_code)
        if response.status_code != 200:
            raise IntakeUnavailable("the intake answered with an error", code=f"HTTP_{response.status_code}",
                                    attempts=attempts, status=response.status_code)
        return response

    def report_set_aside(self, batch: SetAsideBatch) -> int:
        """Tell the intake which 受付番号 were set aside (or retried); returns how many it recorded."""
        response = self._call("POST", "/api/v1/relay/set-aside", content=batch.model_dump_json().encode(),
                              headers={"Content-Type": "application/json"})
        try:
            return int(response.json()["recorded"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntakeProtocolError("the set-aside answer is malformed", code="BAD_SET_ASIDE_ANSWER") from exc

    def status_outbox(self, *, after_id: int = 0, limit: int = 100) -> tuple[StatusNoticeItem, ...]:
        """Pending status notices (:mod:`handover.status`), oldest first. Their comments are held in
        memory only: never logged, never written."""
        response = self._call("GET", "/api/v1/status-outbox", params={"after_id": after_id, "limit": limit})
        try:
            return StatusOutboxPage.decode(response.json()).items
        except (ValueError, OutboxRefused) as exc:
            raise IntakeProtocolError("the outbox answer is malformed", code="BAD_OUTBOX") from exc

    def acknowledge(self, ids: list[int], refused: tuple[NoticeRefused, ...] = ()) -> int:
        body = StatusAck(ids=tuple(ids), refused=refused)
        response = self._call("POST", "/api/v1/status-outbox/ack", json=body.model_dump(mode="json"))
        try:
            return int(response.json()["acknowledged"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntakeProtocolError("the ack answer is malformed", code="BAD_ACK") from exc

    def ready(self) -> bool:
        """The intake answers its /readyz over our (mutual-TLS) connection."""
        return self.readiness() == "ok"

    def readiness(self) -> str:
        """``ok``; ``not ready`` when the intake answers but its /readyz is red (e.g. its CRLs are
        expiring: its own /readyz says why); ``unreachable`` when it does not answer."""
        try:
            status = self.http.get("/readyz").status_code
        except httpx.HTTPError:
            return "unreachable"
        return "ok" if status == 200 else "not ready"



