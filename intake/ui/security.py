"""The staff UI's security plumbing: response headers, the terminal allowlist (P12), what the
trusted front proxy asserts (terminal and IC-card certificates), cookies, and CSRF tokens.

Nothing here decides what a user may see: that is :mod:`intake.authz` and the services.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from datetime import datetime

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intake.errors import PermissionDenied
from intake.settings import StaffUISettings
from intake.ui.errors import TerminalRefused

__all__ = [
    "COOKIE_PATH",
    "CSP",
    "LOGIN_CSRF_COOKIE",
    "SESSION_COOKIE",
    "SecurityHeaders",
    "check_csrf",
    "delete_cookie",
    "from_trusted_proxy",
    "is_secure",
    "new_token",
    "set_cookie",
    "staff_certificate",
    "terminal_of",
]

SESSION_COOKIE = "shinsei_staff"
LOGIN_CSRF_COOKIE = "shinsei_login_csrf"
COOKIE_PATH = "/staff"

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


# --- terminals and the front proxy -------------------------------------------------------------


def _peer(request: Request) -> str:
    return request.client.host if request.client else ""


def from_trusted_proxy(request: Request, settings: StaffUISettings) -> bool:
    return _peer(request) in settings.trusted_proxies


def terminal_of(request: Request, settings: StaffUISettings, *, at: datetime) -> str:
    """The terminal's id (``cert:<id>`` or ``ip:<address>``); :class:`TerminalRefused` if not allowed."""
    address = _peer(request)
    if from_trusted_proxy(request, settings):
        cert_id = request.headers.get(settings.terminal_cert_header, "").strip()
        if cert_id:
            if cert_id in settings.terminal_cert_ids:
                return f"cert:{cert_id}"[:128]
            raise TerminalRefused(f"cert:{cert_id}"[:128], at=at)
        forwarded = request.headers.get(settings.forwarded_for_header, "")
        if forwarded:
            # The proxy appends the address it saw: the last entry is the one we can believe.
            address = forwarded.split(",")[-1].strip()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise TerminalRefused(f"ip:{address}"[:128], at=at) from None
    for net in settings.terminal_networks:
        if ip in ipaddress.ip_network(net, strict=False):
            return f"ip:{ip}"
    raise TerminalRefused(f"ip:{ip}", at=at)


def staff_certificate(request: Request, settings: StaffUISettings) -> str:
    """The IC-card certificate's fingerprint the front proxy verified, or ``""``. Only a trusted
    proxy may assert it: from anyone else the header is ignored (anyone could send it)."""
    if not from_trusted_proxy(request, settings):
        return ""
    return request.headers.get(settings.staff_cert_header, "")


# --- cookies and CSRF ----------------------------------------------------------------------------


def is_secure(request: Request, settings: StaffUISettings) -> bool:
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    if request.url.scheme == "https":
        return True
    return from_trusted_proxy(request, settings) and request.headers.get("x-forwarded-proto") == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, settings: StaffUISettings) -> None:
    response.set_cookie(name, value, path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=is_secure(request, settings))


def delete_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def check_csrf(expected: str, form: dict[str, str]) -> None:
    """The form's ``csrf`` field must be ``expected`` (the session's token, or the login page's cookie)."""
    if not expected or not hmac.compare_digest(form.get("csrf", ""), expected):
        raise PermissionDenied("CSRF token mismatch", code="CSRF")
