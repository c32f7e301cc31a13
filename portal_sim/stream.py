"""The application stream: who applies for what, when, under which 受付番号, and which packages are spoiled.

Plain planning, no cryptography: the result is a list of :class:`PlannedApplication` in arrival
order, each carrying its own ``content_seed`` so that its package can be built on its own (in any
worker process, in any order) with the same bytes.

How the stream is shaped:

* **Arrival times** spread over the period, more on weekdays and in the daytime and evening (the
  portal is open around the clock).
* **受付番号** ``YYYYMMDD-NNNNNNNNNN``: the JST arrival date and a portal-wide sequence that grows
  with time in irregular steps (other municipalities' applications come in between).
* **New applications**: a procedure by its share of the traffic, then one of the residents who
  may use it that day (children of the right age, pregnancy…).
* **Chains**: a 新規申請 opens a chain; later 補正 (correction), 再申請 (re-application) and
  取下げ (withdrawal, which closes it) refer to its 受付番号 as 初回受付番号, come from the same
  resident for the same procedure, and arrive at least an hour (and at most two weeks of
  silence) later. About a fifth of the applications are follow-ups; their kinds follow a fixed
  cycle (5:3:2) so that every kind occurs.
* **Defects**: exactly ``round(rate × M)`` applications, chosen at random, are spoiled; the kinds
  rotate through :class:`~portal_sim.datadir.Defect` in arrival order so that even a small stream
  has each kind. A spoiled application is always a 新規申請 that no later application refers to
  (a chain never starts from a package the intake could not accept). The revoked-certificate
  defect needs a resident whose card was revoked before that arrival; without one, the slot gets
  the next kind.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from portal_sim.datadir import JST, ApplicationKind, Defect
from portal_sim.population import Person
from portal_sim.procedures import PROCEDURES, Procedure

__all__ = ["CHAIN_IDLE_LIMIT", "FOLLOW_UP_SHARE", "PlannedApplication", "arrival_times", "plan_stream"]

#: Share of applications that continue an open chain (when one is open).
FOLLOW_UP_SHARE = 0.2
_C, _R, _W = ApplicationKind.CORRECTION, ApplicationKind.REAPPLICATION, ApplicationKind.WITHDRAWAL
# Follow-up kinds in a fixed cycle (50 % 補正, 30 % 再申請, 20 % 取下げ), like the defect rotation:
# even a short stream has each kind; which chain a follow-up continues is the random part.
_FOLLOW_UP_CYCLE = (_C, _R, _W, _C, _R, _C, _R, _C, _W, _C)
_MIN_FOLLOW_UP_GAP = timedelta(hours=1)
#: A chain nobody continued for this long is closed (the office would have decided by then).
CHAIN_IDLE_LIMIT = timedelta(days=14)
_MAX_CHAIN_LENGTH = 4
# Relative arrivals per hour of the day (JST).
_HOUR_WEIGHTS = (2, 1, 1, 1, 1, 2, 3, 5, 8, 10, 11, 11, 9, 10, 11, 11, 10, 9, 9, 10, 10, 9, 7, 4)
_WEEKEND_FACTOR = 0.6
_CP932_SHARE = 0.25
_FOLDER_SHARE = 0.3
_DEFECT_ROTATION = (Defect.BAD_SIGNATURE, Defect.REVOKED_CERTIFICATE, Defect.EICAR_ATTACHMENT, Defect.MALFORMED_ZIP)


@dataclass(frozen=True, slots=True)
class PlannedApplication:
    """Everything that decides one package, except the keys."""

    receipt_number: str
    arrived_at: datetime
    person_index: int
    card_index: int
    procedure_id: str
    kind: ApplicationKind
    first_receipt_number: str | None
    defect: Defect | None
    content_seed: int
    cp932_names: bool
    in_folder: bool
    #: which way a defect is made, where there are several (bad_signature: 0 after the portal, 1 before)
    defect_variant: int = 0


@dataclass
class _Chain:
    first_receipt_number: str
    person_index: int
    procedure_id: str
    last_arrival: datetime
    length: int = 1


def arrival_times(rng: random.Random, count: int, start: datetime, days: int) -> list[datetime]:
    """``count`` sorted arrival moments (whole seconds, JST) in [start, start + days)."""
    day_weights = [
        _WEEKEND_FACTOR if (start + timedelta(days=d)).weekday() >= 5 else 1.0 for d in range(days)
    ]
    day_picks = rng.choices(range(days), weights=day_weights, k=count)
    hour_picks = rng.choices(range(24), weights=_HOUR_WEIGHTS, k=count)
    moments = [
        start + timedelta(days=d, hours=h, seconds=rng.randrange(3600))
        for d, h in zip(day_picks, hour_picks, strict=True)
    ]
    return sorted(m.astimezone(JST) for m in moments)


def plan_stream(
    rng: random.Random,
    people: list[Person],
    *,
    count: int,
    start: datetime,
    days: int,
    defect_rate: float,
) -> list[PlannedApplication]:
    """The whole stream, in arrival order."""
    if not people:
        raise ValueError("a stream needs at least one resident")
    times = arrival_times(rng, count, start, days)
    eligible = _Eligibility(people)
    defect_slots = set(rng.sample(range(count), round(defect_rate * count)))
    sequence = rng.randrange(10**8, 5 * 10**8)
    open_chains: list[_Chain] = []
    planned: list[PlannedApplication] = []
    defects_so_far = 0
    follow_ups_so_far = 0
    for slot, arrived in enumerate(times):
        sequence += rng.randint(1, 3000)
        receipt = f"{arrived:%Y%m%d}-{sequence:010d}"
        content_seed = rng.getrandbits(64)
        cp932 = rng.random() < _CP932_SHARE
        in_folder = rng.random() < _FOLDER_SHARE
        if slot in defect_slots:
            defect, person, card_index = _defective(rng, people, arrived, defects_so_far)
            variant = (defects_so_far // len(_DEFECT_ROTATION)) % 2  # alternate per round of the rotation
            defects_so_far += 1
            procedure_id = rng.choice(eligible.procedures_of(person, arrived)).procedure_id
            planned.append(PlannedApplication(receipt, arrived, person.index, card_index, procedure_id,
                                              ApplicationKind.NEW, None, defect, content_seed, cp932, in_folder,
                                              variant))
            continue
        chain_at = _pick_chain(rng, open_chains, arrived) if rng.random() < FOLLOW_UP_SHARE else None
        if chain_at is not None:
            chain = open_chains[chain_at]
            kind = _FOLLOW_UP_CYCLE[follow_ups_so_far % len(_FOLLOW_UP_CYCLE)]
            follow_ups_so_far += 1
            chain.length += 1
            chain.last_arrival = arrived
            if kind is ApplicationKind.WITHDRAWAL or chain.length >= _MAX_CHAIN_LENGTH:
                _swap_remove(open_chains, chain_at)
            person = people[chain.person_index]
            planned.append(PlannedApplication(
                receipt, arrived, person.index, _usable_card(person, arrived), chain.procedure_id, kind,
                chain.first_receipt_number, None, content_seed, cp932, in_folder,
            ))
            continue
        # The procedure first (each has its share of the portal's traffic), then one of the residents
        # who may apply for it that day.
        candidates = eligible.by_procedure(arrived)
        procedure = rng.choices(list(candidates), weights=[p.weight for p in candidates])[0]
        person = rng.choice(candidates[procedure])
        planned.append(PlannedApplication(
            receipt, arrived, person.index, _usable_card(person, arrived), procedure.procedure_id,
            ApplicationKind.NEW, None, None, content_seed, cp932, in_folder,
        ))
        open_chains.append(_Chain(receipt, person.index, procedure.procedure_id, arrived))
    return planned


def _swap_remove(chains: list[_Chain], index: int) -> None:
    chains[index] = chains[-1]
    chains.pop()


def _pick_chain(rng: random.Random, chains: list[_Chain], arrived: datetime) -> int | None:
    """The index of a random open chain that may be continued at ``arrived``, if a few draws find one.

    Drawing (rather than listing the ready chains) keeps planning linear in the stream length;
    chains idle for longer than :data:`CHAIN_IDLE_LIMIT` are closed on the way.
    """
    for _ in range(8):
        if not chains:
            return None
        index = rng.randrange(len(chains))
        idle = arrived - chains[index].last_arrival
        if idle > CHAIN_IDLE_LIMIT:
            _swap_remove(chains, index)
        elif idle >= _MIN_FOLLOW_UP_GAP:
            return index
    return None


class _Eligibility:
    """Who may apply for what, per day (computed once per day of the period)."""

    def __init__(self, people: list[Person]) -> None:
        self.people = people
        self._days: dict[date, dict[Procedure, list[Person]]] = {}

    def by_procedure(self, moment: datetime) -> dict[Procedure, list[Person]]:
        """Procedure → the residents eligible on that day; procedures nobody may use are left out."""
        day = moment.date()
        if day not in self._days:
            table = {p: [person for person in self.people if p.eligible(person, day)] for p in PROCEDURES}
            self._days[day] = {p: people for p, people in table.items() if people}
        return self._days[day]

    def procedures_of(self, person: Person, moment: datetime) -> list[Procedure]:
        return [p for p, people in self.by_procedure(moment).items() if person in people]


def _usable_card(person: Person, moment: datetime) -> int:
    card = person.card_at(moment)
    if card is None:  # the population guarantees a usable card throughout the period
        raise AssertionError(f"{person.resident_id} has no usable card at {moment.isoformat()}")
    return card.index


def _defective(
    rng: random.Random, people: list[Person], arrived: datetime, ordinal: int
) -> tuple[Defect, Person, int]:
    """The defect kind for the ``ordinal``-th spoiled application, its applicant and signing card."""
    for step in range(len(_DEFECT_ROTATION)):
        defect = _DEFECT_ROTATION[(ordinal + step) % len(_DEFECT_ROTATION)]
        if defect is not Defect.REVOKED_CERTIFICATE:
            person = rng.choice(people)
            return defect, person, _usable_card(person, arrived)
        candidates = [(p, c) for p in people if (c := p.revoked_card_before(arrived)) is not None]
        if candidates:
            person, card = rng.choice(candidates)
            return defect, person, card.index
    raise AssertionError("unreachable: the rotation has kinds that need no revoked card")
