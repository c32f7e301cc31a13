"""The server-side store of personal-data searches (issue 15 §6): the owner's only, for 30 minutes."""

from __future__ import annotations

from datetime import timedelta

from intake.ui.searches import SavedSearches
from tests.conftest import NOW


def test_a_search_is_its_sessions_own_and_expires() -> None:
    store = SavedSearches()
    token = store.save(7, {"atena": "2222222222"}, at=NOW)
    assert "2222222222" not in token
    assert store.load(token, 7, at=NOW + timedelta(minutes=29)) == {"atena": "2222222222"}
    assert store.load(token, 8, at=NOW) is None  # another staff session
    assert store.load(token, 7, at=NOW + timedelta(minutes=30)) is None
    assert store.load("guess", 7, at=NOW) is None
    assert store.load(None, 7, at=NOW) is None


def test_the_store_is_bounded() -> None:
    store = SavedSearches(limit=3)
    tokens = [store.save(1, {"staff": str(i)}, at=NOW) for i in range(4)]
    assert store.load(tokens[0], 1, at=NOW) is None  # the oldest made room
    assert store.load(tokens[3], 1, at=NOW) == {"staff": "3"}
