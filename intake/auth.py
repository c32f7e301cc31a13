"""Machine clients: only the relay may deliver packages or read the status outbox (P3)."""

from __future__ import annotations

import hmac

from fastapi import Request

from intake.errors import PermissionDenied
from intake.settings import IntakeSettings

__all__ = ["relay_identity"]


def relay_identity(request: Request, settings: IntakeSettings) -> str:
    """The authenticated relay's identity, or :class:`PermissionDenied`."""
    mode = settings.client_auth
    if mode == "dedicated-ca":
        # uvicorn completed a TLS handshake that required a certificate from the relay-only CA.
        if request.url.scheme != "https":
            raise PermissionDenied("client certificate required (TLS)", code="CLIENT_CERT_REQUIRED")
        return "relay:dedicated-ca"
    if mode == "proxy-header":
        peer = request.client.host if request.client else ""
        if peer not in settings.trusted_proxies:
            raise PermissionDenied("not through the trusted front proxy", code="UNTRUSTED_PROXY")
        presented = request.headers.get(settings.client_cert_header, "").strip().lower().replace(":", "")
        for allowed in settings.relay_client_fingerprints:
            if presented and hmac.compare_digest(presented, allowed.lower().replace(":", "")):
                return "relay:" + presented[:16]
        raise PermissionDenied("client certificate is not the relay's", code="CLIENT_CERT_REFUSED")
    return "relay:unauthenticated-development"  # create_app warned at start-up
