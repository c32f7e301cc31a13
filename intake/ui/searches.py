"""Searches by personal data kept on the server, not in URLs (issue 15 §6).

A search form that carries personal data (a 宛名番号) is POSTed; its values are kept here under a
random id for a short time, bound to the staff session that made it, and the pages, the pager and
the export refer to the id (``?s=…``). So the 宛名番号 appears in no URL: not in the browser's
history, a proxy's log or the process log. The staff UI is one process (docs/operations.md), so an
in-memory store is enough; an expired or unknown id shows the page unfiltered.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta

__all__ = ["SavedSearches"]


class SavedSearches:
    def __init__(self, *, ttl: timedelta = timedelta(minutes=30), limit: int = 1000) -> None:
        self._ttl, self._limit = ttl, limit
        self._items: dict[str, tuple[int, datetime, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def save(self, owner: int, values: dict[str, str], *, at: datetime) -> str:
        """Keep ``values`` for the staff session ``owner``; the id to refer to them by."""
        token = secrets.token_urlsafe(16)
        with self._lock:
            for key in [k for k, (_, until, _) in self._items.items() if until <= at]:
                del self._items[key]
            while len(self._items) >= self._limit:
                del self._items[next(iter(self._items))]  # the oldest
            self._items[token] = (owner, at + self._ttl, dict(values))
        return token

    def load(self, token: str | None, owner: int, *, at: datetime) -> dict[str, str] | None:
        """The values kept under ``token`` for ``owner``; ``None`` when unknown, expired or another's."""
        if not token:
            return None
        with self._lock:
            item = self._items.get(token)
        if item is None or item[0] != owner or item[1] <= at:
            return None
        return dict(item[2])
