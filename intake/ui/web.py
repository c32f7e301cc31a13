"""UI plumbing: terminal allowlist, small capped forms, cookies, security headers, rendering.

Nothing here decides what a user may see: that is :mod:`intake.authz` and the services.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intake.errors import InvalidRequest, PermissionDenied
from intake.runtime import Runtime
from intake.settings import StaffUISettings

__all__ = [
    "LOGIN_CSRF_COOKIE",
    "SESSION_COOKIE",
    "FormTooLarge",
    "SecurityHeaders",
    "TerminalRefused",
    "UIState",
    "csv_download",
    "read_form",
    "terminal_of",
]

SESSION_COOKIE = "shinsei_staff"
LOGIN_CSRF_COOKIE = "shinsei_login_csrf"
COOKIE_PATH = "/staff"
_TEMPLATES = Path(__file__).parent / "templates"
_JST = timezone(timedelta(hours=9))

# No inline script or style anywhere; the only resource is our own stylesheet.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    # Pages carry personal data: never kept by the browser or an intermediate cache.
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
]


class TerminalRefused(PermissionDenied):
    """The request does not come from an allowed staff terminal (P12)."""

    code = "TERMINAL_REFUSED"

    def __init__(self, terminal: str) -> None:
        super().__init__("terminal not allowed")
        self.terminal = terminal


class FormTooLarge(InvalidRequest):
    code = "FORM_TOO_LARGE"


class SecurityHeaders:
    """Pure ASGI middleware: the same headers on every UI response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in HEADERS if h[0] not in names)]
                if scope.get("scheme") == "https":
                    message["headers"].append((b"strict-transport-security", b"max-age=31536000"))
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass
class UIState:
    runtime: Runtime
    session_factory: sessionmaker[Session]
    env: Environment

    @property
    def settings(self) -> StaffUISettings:
        return self.runtime.settings.ui

    @classmethod
    def create(cls, runtime: Runtime, session_factory: sessionmaker[Session]) -> UIState:
        env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(default=True),
                          trim_blocks=True, lstrip_blocks=True)
        env.filters["jst"] = _jst
        return cls(runtime, session_factory, env)

    def render(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**context), status_code=status_code)


def _jst(value: datetime | date | None) -> str:
    if isinstance(value, datetime):
        return value.astimezone(_JST).strftime("%Y-%m-%d %H:%M")
    return "" if value is None else value.isoformat()


def _peer(request: Request) -> str:
    return request.client.host if request.client else ""


def from_trusted_proxy(request: Request, settings: StaffUISettings) -> bool:
    return _peer(request) in settings.trusted_proxies


def terminal_of(request: Request, settings: StaffUISettings) -> str:
    """The terminal's id (``cert:<id>`` or ``ip:<address>``); :class:`TerminalRefused` if not allowed."""
    address = _peer(request)
    if from_trusted_proxy(request, settings):
        cert_id = request.headers.get(settings.terminal_cert_header, "").strip()
        if cert_id:
            if cert_id in settings.terminal_cert_ids:
                return f"cert:{cert_id}"[:128]
            raise TerminalRefused(f"cert:{cert_id}"[:128])
        forwarded = request.headers.get(settings.forwarded_for_header, "")
        if forwarded:
            # The proxy appends the address it saw: the last entry is the one we can believe.
            address = forwarded.split(",")[-1].strip()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise TerminalRefused(f"ip:{address}"[:128]) from None
    for net in settings.terminal_networks:
        if ip in ipaddress.ip_network(net, strict=False):
            return f"ip:{ip}"
    raise TerminalRefused(f"ip:{ip}")


def is_secure(request: Request, settings: StaffUISettings) -> bool:
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    if request.url.scheme == "https":
        return True
    return from_trusted_proxy(request, settings) and request.headers.get("x-forwarded-proto") == "https"


async def read_form(request: Request, settings: StaffUISettings) -> dict[str, str]:
    """A small ``application/x-www-form-urlencoded`` body, read in memory up to ``max_form_bytes``.
    Multipart is refused: staff forms upload nothing, and nothing is spooled to disk."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormTooLarge("only url-encoded forms are accepted", code="FORM_TYPE")
    limit = settings.max_form_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise FormTooLarge("form too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FormTooLarge("form too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormTooLarge("malformed form", code="FORM_MALFORMED") from exc
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)  # the first value wins; a repeated field cannot override it
    return form


def new_token() -> str:
    return secrets.token_urlsafe(32)


def csv_download(header: Sequence[str], rows: Iterable[Sequence[str]], *, name: str) -> Response:
    """A CSV attachment Excel in Japan opens by double-click and cannot be tricked with: UTF-8 with a
    BOM (unlike CP932, no character of a name is lost), CRLF, and every cell that starts like a
    formula (``= + - @``, tab, CR) prefixed with ``'`` — the cells hold what people typed."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return Response(("\ufeff" + out.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _cell(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
