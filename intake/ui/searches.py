"""Searches by personal data held on the server: what staff typed never goes into a URL.

A search that names a person is POSTed once: the list's person search (受付番号・宛名番号, 氏名,
フリガナ, 電話番号, 生年月日 — :class:`PersonSearch`) and the auditor's access-log search (a 宛名番号,
kept as the form's values). The UI keeps it here under a random id bound to the staff session that
made it; the pages, the pager and the export then refer to the id (``?search=…`` on the list, ``?s=…``
on the access log) — so the text is in no URL, browser history, proxy or uvicorn access log, and
paging and the other filters still work. An id expires after :data:`SEARCH_TTL` (or with the process:
the staff UI runs as one process, docs/intake.md); another session's id, an expired or unknown one
is :class:`SearchExpired` for the pages that refer to it: they show nothing and ask for the search
again — never the unfiltered list or log, which staff would take for the search's result (and an
export would copy whole). One store for both (:class:`SearchStore`).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import MappingProxyType

from intake.errors import InvalidRequest

__all__ = ["SEARCH_TTL", "PersonSearch", "SearchExpired", "SearchStore"]

SEARCH_TTL = timedelta(minutes=30)
_LIMIT = 10_000


class SearchExpired(InvalidRequest):
    """A page or an export refers to a search id this session does not hold (expired, unknown, another's)."""

    code = "SEARCH_EXPIRED"

    def __init__(self) -> None:
        super().__init__("the search is no longer held: search again")


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
    value: PersonSearch | Mapping[str, str]
    expires: datetime

    def __repr__(self) -> str:
        return "_Held(…)"


class SearchStore:
    """Searches by id, per staff session, for :data:`SEARCH_TTL`. Thread-safe; bounded (the oldest
    makes room)."""

    def __init__(self, ttl: timedelta = SEARCH_TTL, limit: int = _LIMIT) -> None:
        self._ttl = ttl
        self._limit = limit
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()

    def put(self, session_id: int, search: PersonSearch, *, at: datetime) -> str:
        """Keep a person search for ``session_id``; the id to refer to it by."""
        return self._keep(session_id, search, at=at)

    def get(self, token: str, session_id: int, *, at: datetime) -> PersonSearch | None:
        held = self._find(token, session_id, at=at)
        return held if isinstance(held, PersonSearch) else None

    def save(self, session_id: int, values: Mapping[str, str], *, at: datetime) -> str:
        """Keep a form's values (the access-log search) for ``session_id``; the id to refer to them by."""
        return self._keep(session_id, MappingProxyType(dict(values)), at=at)

    def load(self, token: str | None, session_id: int, *, at: datetime) -> dict[str, str] | None:
        """The values kept under ``token`` for ``session_id``; ``None`` when unknown, expired or another's."""
        held = self._find(token, session_id, at=at) if token else None
        return dict(held) if isinstance(held, Mapping) else None

    def _keep(self, session_id: int, value: PersonSearch | Mapping[str, str], *, at: datetime) -> str:
        token = secrets.token_urlsafe(16)
        with self._lock:
            for stale in [t for t, h in self._held.items() if h.expires <= at]:
                del self._held[stale]
            while len(self._held) >= self._limit:
                self._held.pop(next(iter(self._held)))
            self._held[token] = _Held(session_id, value, at + self._ttl)
        return token

    def _find(self, token: str, session_id: int, *, at: datetime) -> PersonSearch | Mapping[str, str] | None:
        with self._lock:
            held = self._held.get(token)
        if held is None or held.session_id != session_id or held.expires <= at:
            return None
        return held.value
