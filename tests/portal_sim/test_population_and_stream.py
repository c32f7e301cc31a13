"""The population and the stream plan, without any cryptography (fast, so they can be searched widely)."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal_sim.datadir import JST, ApplicationKind, Defect
from portal_sim.population import CardHistory, Person, age_on, fifth_birthday_after, make_population
from portal_sim.seeds import rng_for
from portal_sim.stream import CHAIN_IDLE_LIMIT, plan_stream
from signature.mynumber import is_valid_my_number

START = datetime(2026, 11, 1, tzinfo=JST)


def population(seed: int, n: int, days: int = 30) -> list[Person]:
    return make_population(rng_for(seed, "population"), n, start=START, end=START + timedelta(days=days),
                           g1_expiry=START.date() + timedelta(days=364))


def test_the_population_is_reproducible() -> None:
    assert population(1, 30) == population(1, 30)
    assert population(1, 30) != population(2, 30)


@pytest.mark.parametrize("days", [1, 30, 363], ids=lambda d: f"{d}-days")
def test_every_resident_has_exactly_one_usable_card_at_any_moment_of_the_period(days: int) -> None:
    people = population(3, 40, days)
    end = START + timedelta(days=days)
    moments = [START + (end - START) * i / 50 for i in range(50)] + [end - timedelta(seconds=1)]
    for person in people:
        for moment in moments:
            usable = [c for c in person.cards if c.usable_at(moment)]
            assert len(usable) == 1, (person.resident_id, moment)
            assert person.card_at(moment) == usable[0]


def test_the_card_histories_are_all_present_and_consistent() -> None:
    people = population(4, 20)
    assert {p.history for p in people} == set(CardHistory)
    for p in people:
        for card in p.cards:
            assert card.issued_at < card.expires_at
            assert card.expires_on <= fifth_birthday_after(card.issued_at.date(), p.identity.birth_date)
        if p.history is CardHistory.LOST:
            lost, new = p.cards
            assert lost.revoked_at is not None
            assert lost.revoked_at < new.issued_at < START
        if p.history is CardHistory.EXPIRED:
            old, new = p.cards
            assert old.revoked_at is None
            assert old.expires_at < new.issued_at
        if p.history is CardHistory.RENEWED_IN_PERIOD:
            old, new = p.cards
            assert old.revoked_at == new.issued_at
            assert START <= new.issued_at < START + timedelta(days=30)
        if p.history is CardHistory.PREVIOUS_ROOT:
            assert [c.issuer_generation for c in p.cards] == [1]


def test_identifiers_are_unique_and_valid() -> None:
    people = population(5, 300)
    numbers = [p.my_number for p in people] + [m.my_number for p in people for m in p.household]
    assert all(is_valid_my_number(n) for n in numbers)
    assert len(set(numbers)) == len(numbers)
    assert len({p.atena_number for p in people}) == len(people)
    serials = [c.user_serial for p in people for c in p.cards]
    assert len(set(serials)) == len(serials)
    assert all(18 <= age_on(p.identity.birth_date, START.date()) <= 85 for p in people)
    assert all(age_on(c.birth_date, START.date()) < 18 for p in people for c in p.children)


def test_substitute_characters_come_with_their_alternative() -> None:
    people = population(6, 30)
    with_alt = [p for p in people if p.identity.name_alt]
    assert with_alt
    for p in with_alt:
        alt = p.identity.name_alt or ""
        assert p.identity.name != alt
        # ISO-2022-JP encodes exactly JIS X 0208 (and ASCII): the 代替文字 form fits, the real name does not.
        assert alt.encode("iso2022_jp")
        with pytest.raises(UnicodeEncodeError):
            p.identity.name.encode("iso2022_jp")
    assert any(p.identity.address_alt for p in people)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    residents=st.integers(1, 25),
    count=st.integers(0, 120),
    days=st.integers(1, 60),
    rate=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
)
def test_any_stream_is_coherent(seed: int, residents: int, count: int, days: int, rate: float) -> None:
    people = population(seed, residents, days)
    plan = plan_stream(rng_for(seed, "stream"), people, count=count, start=START, days=days, defect_rate=rate)
    assert len(plan) == count
    assert [p.arrived_at for p in plan] == sorted(p.arrived_at for p in plan)
    assert len({p.receipt_number for p in plan}) == count
    assert sum(p.defect is not None for p in plan) == round(rate * count)
    by_number = {p.receipt_number: p for p in plan}
    closed: set[str] = set()
    for p in plan:
        assert START <= p.arrived_at < START + timedelta(days=days)
        card = people[p.person_index].cards[p.card_index]
        if p.defect is Defect.REVOKED_CERTIFICATE:
            assert card.revoked_at is not None
            assert card.revoked_at < p.arrived_at
        else:
            assert card.usable_at(p.arrived_at)
        if p.kind is ApplicationKind.NEW:
            assert p.first_receipt_number is None
            continue
        assert p.defect is None
        first = by_number[p.first_receipt_number or ""]
        assert first.kind is ApplicationKind.NEW
        assert first.defect is None
        assert (first.person_index, first.procedure_id) == (p.person_index, p.procedure_id)
        assert p.arrived_at - first.arrived_at >= timedelta(hours=1)
        assert p.first_receipt_number not in closed
        if p.kind is ApplicationKind.WITHDRAWAL:
            closed.add(p.first_receipt_number or "")


def test_defect_kinds_rotate_so_a_short_stream_has_each() -> None:
    people = population(7, 10)
    plan = plan_stream(rng_for(7, "stream"), people, count=40, start=START, days=30, defect_rate=0.1)
    assert Counter(p.defect for p in plan if p.defect) == {d: 1 for d in Defect}


def test_without_a_revoked_card_the_revoked_slot_takes_the_next_kind() -> None:
    people = population(8, 3)  # residents 0–2: no lost card yet (the pattern puts it at index 3)
    assert all(c.revoked_at is None for p in people for c in p.cards)
    plan = plan_stream(rng_for(8, "stream"), people, count=8, start=START, days=5, defect_rate=0.5)
    defects = [p.defect for p in plan if p.defect]
    assert len(defects) == 4
    assert Defect.REVOKED_CERTIFICATE not in defects


def test_idle_chains_are_closed() -> None:
    people = population(9, 5)
    plan = plan_stream(rng_for(9, "stream"), people, count=400, start=START, days=120, defect_rate=0.0)
    first_arrival = {p.receipt_number: p.arrived_at for p in plan if p.kind is ApplicationKind.NEW}
    last_seen: dict[str, datetime] = dict(first_arrival)
    for p in plan:
        if p.first_receipt_number:
            assert p.arrived_at - last_seen[p.first_receipt_number] <= CHAIN_IDLE_LIMIT
            last_seen[p.first_receipt_number] = p.arrived_at


def test_fifth_birthday_rule() -> None:
    assert fifth_birthday_after(date(2026, 11, 25), date(1990, 1, 23)) == date(2031, 1, 23)
    assert fifth_birthday_after(date(2026, 1, 23), date(1990, 1, 23)) == date(2031, 1, 23)  # birthday: the next one
    assert fifth_birthday_after(date(2026, 3, 1), date(2000, 2, 29)) == date(2031, 2, 28)
