"""Login with municipality code + API key, and short-lived bearer tokens.

Tokens are random and opaque; only their SHA-256 is kept, in memory, so a restart logs every
client out (a client must handle 401 by logging in again — real portals rotate keys and restart
too). Credentials are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from portal_sim.api.clock import Clock
from portal_sim.api.errors import Unauthenticated

__all__ = ["IssuedToken", "Session", "TokenStore"]


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int  # seconds


@dataclass(frozen=True)
class Session:
    """An authenticated caller: ``key`` identifies its token (for the rate limit) without being it."""

    key: str
    municipality_code: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """Issues and checks bearer tokens for one municipality."""

    def __init__(self, *, municipality_code: str, api_key: str, ttl: timedelta, clock: Clock) -> None:
        self._code = municipality_code.encode("ascii")
        self._key = api_key.encode("utf-8")
        self._ttl = ttl
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def login(self, municipality_code: str, api_key: str) -> IssuedToken:
        """A new token, or :class:`Unauthenticated` — the same answer for a wrong code and a wrong key."""
        code_ok = hmac.compare_digest(municipality_code.encode("utf-8"), self._code)
        key_ok = hmac.compare_digest(api_key.encode("utf-8"), self._key)
        if not (code_ok and key_ok):
            raise Unauthenticated("INVALID_CREDENTIALS", "municipality code or API key is wrong")
        now = self._clock.now()
        token = secrets.token_urlsafe(32)
        session = Session(key=_digest(token), municipality_code=municipality_code, expires_at=now + self._ttl)
        with self._lock:
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires_at > now}
            self._sessions[session.key] = session
        return IssuedToken(access_token=token, expires_in=int(self._ttl.total_seconds()))

    def authenticate(self, token: str | None) -> Session:
        """The session of a bearer token that is known and not expired."""
        if not token:
            raise Unauthenticated("UNAUTHENTICATED", "a bearer token is required")
        with self._lock:
            session = self._sessions.get(_digest(token))
        if session is None:
            raise Unauthenticated("INVALID_TOKEN", "the bearer token is not known")
        if self._clock.now() >= session.expires_at:
            raise Unauthenticated("TOKEN_EXPIRED", "the bearer token has expired; log in again")
        return session
