"""Client of the portal's receiving API (docs/portal-api.md): log in, list, download, set status.

What the portal asks of a client, and what this does:

* ``429`` / ``503``: wait ``Retry-After`` (capped at ``max_retry_after``; 1 s when absent) and send
  the same request again; transport errors and timeouts likewise. After ``max_waits`` waits for one
  request, :class:`PortalUnavailable` ends the round — the next poll starts where this one stopped.
* ``401 TOKEN_EXPIRED`` / ``INVALID_TOKEN`` / ``UNAUTHENTICATED``: log in again, once per request.
* downloads are streamed into a ``bytearray`` with the size cap, and checked against the list's
  size and SHA-256 (:class:`DownloadMismatch` otherwise: never forward other bytes than listed).

Sleeping is injected (tests record the waits instead of waiting).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from dmz_relay.errors import DownloadMismatch, PortalRefused, PortalUnavailable
from dmz_relay.logs import event
from dmz_relay.metrics import Metrics
from dmz_relay.settings import RelaySettings

__all__ = ["Listed", "Page", "PortalClient", "StatusResult", "build_portal_http"]

_RELOGIN_CODES = frozenset({"TOKEN_EXPIRED", "INVALID_TOKEN", "UNAUTHENTICATED"})

Sleep = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class Listed:
    """One item of the application list (no personal data)."""

    receipt_number: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[Listed, ...]
    next_cursor: str | None
    has_more: bool


@dataclass(frozen=True, slots=True)
class StatusResult:
    created: bool  # 201 new entry; False for 200, a recognised repeat


class TooLarge(Exception):
    """The download exceeded the cap."""


def build_portal_http(settings: RelaySettings) -> httpx.Client:
    if settings.portal_url is None:
        raise ValueError("no portal_url configured")
    verify: ssl.SSLContext | bool = False
    if settings.portal_url.startswith("https://"):
        if settings.portal_ca is None:
            raise ValueError("an https portal_url needs portal_ca")
        verify = ssl.create_default_context(cafile=str(settings.portal_ca))
    return httpx.Client(base_url=settings.portal_url, verify=verify, timeout=settings.portal_timeout,
                        trust_env=False, follow_redirects=False)


def _code(response: httpx.Response) -> str:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP_{response.status_code}"
    return code if isinstance(code, str) and code.isascii() and len(code) <= 64 else f"HTTP_{response.status_code}"


class PortalClient:
    def __init__(self, http: httpx.Client, *, municipality_code: str, api_key: str, sleep: Sleep,
                 max_waits: int = 8, max_retry_after: float = 120.0, metrics: Metrics | None = None) -> None:
        self.http = http
        self._code = municipality_code
        self._key = api_key
        self._sleep = sleep
        self.max_waits = max_waits
        self.max_retry_after = max_retry_after
        self._metrics = metrics
        self._token: str | None = None

    # --- transport -----------------------------------------------------------------------------

    def _wait(self, reason: str, retry_after: str | None, waits: int) -> None:
        if waits >= self.max_waits:
            raise PortalUnavailable(f"the portal is unavailable ({reason}) after {waits} waits", code=reason)
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else 1.0
        seconds = min(seconds, self.max_retry_after)
        if self._metrics is not None:
            self._metrics.portal_waits.labels(reason).inc()
        event("portal.wait", level=logging.INFO, portal_code=reason, retry_after=seconds)
        self._sleep(seconds)

    def _send(self, method: str, path: str, *, authenticated: bool = True, stream: bool = False,
              headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """Send until an answer that is not 429/503/expired token; the caller closes streams."""
        waits = 0
        relogged = False
        while True:
            sent = dict(headers or {})
            if authenticated:
                if self._token is None:
                    self.login()
                sent["Authorization"] = f"Bearer {self._token}"
            request = self.http.build_request(method, path, headers=sent, **kwargs)
            try:
                response = self.http.send(request, stream=stream)
            except httpx.TimeoutException:
                self._wait("TIMEOUT", None, waits)
                waits += 1
                continue
            except httpx.TransportError:
                self._wait("CONNECT_ERROR", None, waits)
                waits += 1
                continue
            if response.status_code in (429, 503):
                retry_after = response.headers.get("retry-after")
                code = "RATE_LIMITED" if response.status_code == 429 else "SERVICE_UNAVAILABLE"
                response.close()
                self._wait(code, retry_after, waits)
                waits += 1
                continue
            if response.status_code == 401 and authenticated and not relogged:
                _read(response)
                if _code(response) in _RELOGIN_CODES:
                    response.close()
                    self._token = None
                    relogged = True
                    continue
            return response

    def _fail(self, response: httpx.Response) -> None:
        _read(response)
        code = _code(response)
        if 400 <= response.status_code < 500:
            raise PortalRefused("the portal refused the request", code=code, status=response.status_code)
        raise PortalUnavailable("the portal answered with an error", code=code, status=response.status_code)

    # --- operations ----------------------------------------------------------------------------

    def login(self) -> None:
        response = self._send("POST", "/api/v1/login", authenticated=False,
                              json={"municipality_code": self._code, "api_key": self._key})
        if response.status_code != 200:
            self._fail(response)
        self._token = str(response.json()["access_token"])

    def list_applications(self, *, cursor: str | None, limit: int, since: datetime | None = None) -> Page:
        """One page of the portal's list; ``since``: only applications that arrived at or after it
        (the replay after an intake restore)."""
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        if since is not None:
            params["since"] = since.isoformat()
        response = self._send("GET", "/api/v1/applications", params=params)
        if response.status_code != 200:
            self._fail(response)
        try:
            body = response.json()
            items = tuple(Listed(str(i["receipt_number"]), str(i["sha256"]).lower(), int(i["size"]))
                          for i in body["items"])
            return Page(items, body.get("next_cursor"), bool(body.get("has_more", False)))
        except (ValueError, KeyError, TypeError) as exc:
            raise PortalUnavailable("the list answer is malformed", code="BAD_LIST") from exc

    def download(self, item: Listed, *, cap: int) -> bytearray:
        """The package bytes, streamed into memory; :class:`TooLarge` above ``cap``;
        :class:`DownloadMismatch` if they are not what the list said."""
        response = self._send("GET", f"/api/v1/applications/{item.receipt_number}/package", stream=True)
        buffer = bytearray()
        try:
            if response.status_code != 200:
                self._fail(response)
            digest = hashlib.sha256()
            for chunk in response.iter_bytes():
                buffer += chunk
                digest.update(chunk)
                if len(buffer) > cap:
                    raise TooLarge
        except BaseException:
            buffer[:] = bytes(len(buffer))
            buffer.clear()
            raise
        finally:
            response.close()
        if len(buffer) != item.size or digest.hexdigest() != item.sha256:
            buffer[:] = bytes(len(buffer))
            buffer.clear()
            raise DownloadMismatch("the package differs from the list", code="DOWNLOAD_MISMATCH")
        return buffer

    def application(self, receipt_number: str) -> Listed:
        """One application's list entry by its 受付番号 (for an operator's retry of a set-aside item)."""
        response = self._send("GET", f"/api/v1/applications/{receipt_number}")
        if response.status_code != 200:
            self._fail(response)
        try:
            body = response.json()
            return Listed(str(body["receipt_number"]), str(body["sha256"]).lower(), int(body["size"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise PortalUnavailable("the application answer is malformed", code="BAD_APPLICATION") from exc

    def report_reception(self, receipt_number: str, result: str, reason_code: str | None) -> None:
        """Tell the portal what became of a 受付番号 it offered: ``taken``, ``refused`` (with the
        reason code) or ``failed`` (set aside after its attempt budget). A repeat changes nothing."""
        body: dict[str, Any] = {"result": result}
        if reason_code is not None:
            body["reason_code"] = reason_code
        response = self._send("POST", f"/api/v1/applications/{receipt_number}/reception", json=body)
        if response.status_code not in (200, 201):
            self._fail(response)

    def set_status(self, receipt_number: str, status: str, *, idempotency_key: str,
                   comment: str | None = None) -> StatusResult:
        """Post one status; ``comment`` is the message for the applicant (held in memory only)."""
        body: dict[str, Any] = {"status": status}
        if comment is not None:
            body["comment"] = comment
        response = self._send("POST", f"/api/v1/applications/{receipt_number}/status",
                              json=body, headers={"Idempotency-Key": idempotency_key})
        if response.status_code not in (200, 201):
            self._fail(response)
        return StatusResult(created=response.status_code == 201)

    def ready(self) -> bool:
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False


def _read(response: httpx.Response) -> None:
    """Read a (small, error) body of a streamed response, so ``json()`` works; no-op otherwise."""
    with contextlib.suppress(httpx.StreamError):
        response.read()
