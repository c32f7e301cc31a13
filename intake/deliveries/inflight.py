"""Keys being stored right now in this process: a second identical request gets 409, not a wait."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["InFlight"]


class InFlight:
    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def claim(self, key: str) -> Iterator[bool]:
        """Yield True if this caller owns ``key`` until the block ends, False if another one does."""
        with self._lock:
            owned = key not in self._keys
            if owned:
                self._keys.add(key)
        try:
            yield owned
        finally:
            if owned:
                with self._lock:
                    self._keys.discard(key)
