"""Deliver one payload: HTTP POST (with short in-call retries) or an atomic file drop.

Both raise :class:`TransientSendError` (try again later) or :class:`RejectedError` (the same bytes
will not be taken); httpx and OS errors are translated here and carry no personal data.
"""

from __future__ import annotations

import errno
import random
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from intake.durable import publish_file
from intake.forwarding.backoff import in_call_wait
from intake.forwarding.errors import RejectedError, TransientSendError
from intake.forwarding.payload import Payload
from intake.forwarding.routes import Route

__all__ = ["HttpSender", "drop_file"]

#: Worth a quick retry within the attempt. 500, 408, 409, 425, 429 and other transport errors are
#: left to the outbox's slower schedule.
_IN_CALL_CODES = frozenset({"CONNECT_ERROR", "TIMEOUT", "HTTP_502", "HTTP_503", "HTTP_504"})
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})
_FILE_MODE = 0o640  # the business system's reader may be in our group; never world-readable


def _in_call_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientSendError) and exc.code in _IN_CALL_CODES


class HttpSender:
    """POSTs payloads to one HTTP route. Explicit timeouts, no proxies from the environment, no redirects."""

    def __init__(self, route: Route, *, rng: random.Random, sleep: Callable[[float], None]) -> None:
        self.route = route
        t = route.timeouts
        verify: ssl.SSLContext | bool = True
        if route.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(route.ca_file))
        self._client = httpx.Client(
            timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
            trust_env=False,  # never an HTTP(S)_PROXY from the environment: no way out of the zone
            follow_redirects=False,
            verify=verify,
            headers={"User-Agent": "shinsei-intake-forwarding/1"},
        )
        self._retrying = Retrying(
            stop=stop_after_attempt(route.retry.in_call_attempts),
            wait=in_call_wait(route.retry, rng),
            retry=retry_if_exception(_in_call_retryable),
            sleep=sleep,
            reraise=True,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, payload: Payload, *, idempotency_key: str) -> int:
        """POST ``payload``; the status code on success (2xx). Retries briefly on connect errors,
        timeouts and 502/503/504 — safe because the business system dedups on the key."""
        return int(self._retrying(self._post_once, payload, idempotency_key))

    def _post_once(self, payload: Payload, idempotency_key: str) -> int:
        headers = {"Content-Type": payload.media_type, "Idempotency-Key": idempotency_key}
        try:
            # Streamed and closed unread: the answer's body is neither needed nor kept (it might echo data).
            with self._client.stream("POST", self.route.target, content=payload.body, headers=headers) as response:
                status = response.status_code
        except httpx.ConnectError as exc:
            raise TransientSendError("cannot connect to the business system", code="CONNECT_ERROR") from exc
        except httpx.TimeoutException as exc:
            raise TransientSendError(f"timed out ({type(exc).__name__})", code="TIMEOUT") from exc
        except httpx.TransportError as exc:
            raise TransientSendError(f"transport error ({type(exc).__name__})", code="TRANSPORT_ERROR") from exc
        if 200 <= status < 300:
            return status
        if status >= 500 or status in _TRANSIENT_STATUS:
            raise TransientSendError(f"business system answered {status}", code=f"HTTP_{status}",
                                     status_code=status)
        raise RejectedError(f"business system refused the request with {status}", code=f"HTTP_{status}",
                            status_code=status)


def drop_file(directory: Path, payload: Payload) -> bool:
    """Write ``payload`` as ``directory/payload.file_name`` atomically; False if it is already there.

    temp file (dot-prefixed, same directory) → write → fsync → ``os.replace`` → fsync the directory.
    A file already present under the final name is a previous attempt's (the name is the idempotency
    key): it is left alone. If the directory cannot be synced, the published file is removed again and
    the attempt fails: an fsync error means we do not know what is on disk (docs/pitfalls).
    """
    final = directory / payload.file_name
    if final.exists():
        return False
    try:
        publish_file(directory, payload.file_name, payload.body, mode=_FILE_MODE)
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, "OSError")
        raise TransientSendError(f"cannot write to the drop directory ({name})", code="FILE_WRITE") from exc
    return True

