"""Person searches held on the server: what staff typed to find a person never goes into a URL.

A search that names a person (受付番号・宛名番号, 氏名, フリガナ, 電話番号, 生年月日) is POSTed once;
the UI keeps it here under a random id bound to the staff session that made it, and the list is
then ``GET /staff/applications?search=<id>`` — so the text is in no URL, browser history, proxy or
uvicorn access log, and paging and the other filters still work. An id expires after
:data:`SEARCH_TTL` (or with the process: the staff UI runs as one process, docs/intake.md), and
another session's id is simply unknown.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta

__all__ = ["SEARCH_TTL", "PersonSearch", "SearchStore"]

SEARCH_TTL = timedelta(minutes=30)
_LIMIT = 10_000


@dataclass(frozen=True)
class PersonSearch:
    """The person part of a list search (personal data: kept in memory only)."""

    number: str | None = None  # 受付番号 or 宛名番号
    name: str | None = None
    kana: str | None = None
    phone: str | None = None
    birth: date | None = None

    def __repr__(self) -> str:  # never the values, whatever logs it
        return "PersonSearch(…)"


@dataclass(frozen=True)
class _Held:
    session_id: int
    search: PersonSearch
    expires: datetime


class SearchStore:
    """Searches by id, per staff session, for :data:`SEARCH_TTL`. Thread-safe; bounded."""

    def __init__(self, ttl: timedelta = SEARCH_TTL, limit: int = _LIMIT) -> None:
        self._ttl = ttl
        self._limit = limit
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()

    def put(self, session_id: int, search: PersonSearch, *, at: datetime) -> str:
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._expire(at)
            while len(self._held) >= self._limit:
                self._held.pop(next(iter(self._held)))
            self._held[token] = _Held(session_id, search, at + self._ttl)
        return token

    def get(self, token: str, session_id: int, *, at: datetime) -> PersonSearch | None:
        with self._lock:
            held = self._held.get(token)
            if held is None or held.session_id != session_id or held.expires <= at:
                return None
            return held.search

    def _expire(self, at: datetime) -> None:
        for token in [t for t, h in self._held.items() if h.expires <= at]:
            del self._held[token]
