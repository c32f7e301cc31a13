"""The server-side store of personal-data searches (issue 15 §6): the owner's only, for 30 minutes."""

from __future__ import annotations

from datetime import timedelta

from intake.ui.searches import PersonSearch, SearchStore
from tests.conftest import NOW


def test_a_search_is_its_sessions_own_and_expires() -> None:
    store = SearchStore()
    token = store.save(7, {"atena": "2222222222"}, at=NOW)
    assert "2222222222" not in token
    assert store.load(token, 7, at=NOW + timedelta(minutes=29)) == {"atena": "2222222222"}
    assert store.load(token, 8, at=NOW) is None  # another staff session
    assert store.load(token, 7, at=NOW + timedelta(minutes=30)) is None
    assert store.load("guess", 7, at=NOW) is None
    assert store.load(None, 7, at=NOW) is None


def test_the_store_is_bounded() -> None:
    store = SearchStore(limit=3)
    tokens = [store.save(1, {"staff": str(i)}, at=NOW) for i in range(4)]
    assert store.load(tokens[0], 1, at=NOW) is None  # the oldest made room
    assert store.load(tokens[3], 1, at=NOW) == {"staff": "3"}


def test_one_store_keeps_person_and_access_log_searches_apart() -> None:
    store = SearchStore()
    person = store.put(7, PersonSearch(name="高橋"), at=NOW)
    values = store.save(7, {"atena": "2222222222"}, at=NOW)
    assert store.get(person, 7, at=NOW) == PersonSearch(name="高橋")
    assert store.load(person, 7, at=NOW) is None  # a person search is not a form's values
    assert store.get(values, 7, at=NOW) is None
    assert "高橋" not in repr(store.get(person, 7, at=NOW))
