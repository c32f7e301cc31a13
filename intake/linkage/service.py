"""Resolve a chain's 宛名番号 from its verified user-certificate serials; never guess.

One rule decides, on arrival and after every import (docs/intake.md, "宛名番号 linkage"):

* every version of the chain contributes the active entries for its own serial that are **valid on
  the day it arrived** (JST, the portal's signed 到達日時 — not the day we evaluate);
* exactly one 宛名番号 among them → ``AUTO``; more than one → ``CONFLICT`` (never a guess);
  none → ``UNRESOLVED`` (the staff queue, :func:`list_unresolved`);
* ``MANUAL`` is final: neither arrivals nor imports change it (:func:`set_atena_manually`);
* an ``AUTO`` link survives the disappearance of its entries (a full export lists current cards
  only), but if the data later names another 宛名番号 the chain becomes ``CONFLICT`` for staff.

Every change of state or number is a :class:`LinkageDecision` (what, when, which import, why).
Services never commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.authz import SET_ATENA_PERMISSION, Actor
from intake.errors import NotFound, ReasonRequired
from intake.jst import require_aware
from intake.linkage.errors import LinkagePermissionDenied
from intake.linkage.values import arrival_day, check_atena_number
from intake.models import Application, ApplicationState, ApplicationVersion, LinkageDecision, LinkageEntry, LinkageState

__all__ = [
    "Outcome",
    "QueueItem",
    "apply_outcome",
    "atena_numbers_for",
    "evaluate_chains",
    "list_unresolved",
    "resolve_on_arrival",
    "set_atena_manually",
]

#: Rows per ``IN (…)`` list: well below SQLite's and PostgreSQL's parameter limits.
CHUNK = 500

_T = TypeVar("_T")


def chunks(values: Iterable[_T], size: int = CHUNK) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for v in values:
        batch.append(v)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class Outcome:
    """What the linkage data says about one chain. ``import_id``: the newest import that supplied a
    matching entry (``AUTO`` only). ``reason`` holds no personal data."""

    state: LinkageState
    atena_number: str | None
    import_id: int | None
    reason: str


@dataclass(frozen=True)
class _Entry:
    atena_number: str
    valid_from: date | None
    valid_to: date | None
    import_id: int

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_to is None or day <= self.valid_to)


def evaluate_chains(session: Session, app_ids: Collection[int]) -> dict[int, Outcome]:
    """The outcome for each chain in ``app_ids`` from the active entries (see the module rule)."""
    versions: dict[int, list[tuple[str | None, date]]] = defaultdict(list)
    for batch in chunks(sorted(app_ids)):
        for app_id, serial, arrived_at in session.execute(
            # Only admitted versions speak for the chain: a held version's serial (someone else's
            # card, an unverified signature) never takes part (intake.applications.admission).
            select(ApplicationVersion.application_id, ApplicationVersion.user_cert_serial,
                   ApplicationVersion.arrived_at).where(ApplicationVersion.application_id.in_(batch),
                                                        ApplicationVersion.admitted_at.is_not(None))
        ):
            versions[app_id].append((serial, arrival_day(arrived_at)))
    entries = _active_entries(session, {s for vs in versions.values() for s, _ in vs if s})
    return {app_id: _outcome(versions.get(app_id, []), entries) for app_id in app_ids}


def _active_entries(session: Session, serials: Collection[str]) -> dict[str, list[_Entry]]:
    """The active linkage entries of ``serials``, by serial."""
    entries: dict[str, list[_Entry]] = defaultdict(list)
    for serial_batch in chunks(sorted(serials)):
        for serial, number, valid_from, valid_to, import_id in session.execute(
            select(LinkageEntry.cert_serial, LinkageEntry.atena_number, LinkageEntry.valid_from,
                   LinkageEntry.valid_to, LinkageEntry.import_id)
            .where(LinkageEntry.cert_serial.in_(serial_batch), LinkageEntry.active.is_(True))
        ):
            entries[serial].append(_Entry(number, valid_from, valid_to, import_id))
    return entries


def atena_numbers_for(session: Session, serial: str | None, day: date) -> set[str]:
    """The 宛名番号 the active linkage entries give ``serial`` on ``day`` (empty: none known)."""
    if not serial:
        return set()
    rows = session.execute(
        select(LinkageEntry.atena_number, LinkageEntry.valid_from, LinkageEntry.valid_to, LinkageEntry.import_id)
        .where(LinkageEntry.cert_serial == serial, LinkageEntry.active.is_(True)))
    return {entry.atena_number for entry in (_Entry(*row) for row in rows) if entry.valid_on(day)}


def _outcome(versions: Sequence[tuple[str | None, date]], entries: dict[str, list[_Entry]]) -> Outcome:
    numbers: dict[str, int] = {}
    known = False
    for serial, day in versions:
        for e in entries.get(serial or "", ()):
            known = True
            if e.valid_on(day):
                numbers[e.atena_number] = max(numbers.get(e.atena_number, 0), e.import_id)
    if len(numbers) == 1:
        ((number, import_id),) = numbers.items()
        return Outcome(LinkageState.AUTO, number, import_id, "one 宛名番号 for the chain's serial(s) on arrival")
    if numbers:
        return Outcome(LinkageState.CONFLICT, None, None,
                       f"{len(numbers)} different 宛名番号 for the chain's serial(s) on arrival")
    if not any(serial for serial, _ in versions):
        return Outcome(LinkageState.UNRESOLVED, None, None, "no user-certificate serial")
    if known:
        return Outcome(LinkageState.UNRESOLVED, None, None, "serial known, but no entry valid on the arrival day")
    return Outcome(LinkageState.UNRESOLVED, None, None, "no linkage entry for the serial")


def apply_outcome(
    session: Session, app: Application, outcome: Outcome, *, at: datetime, trigger: str,
    import_id: int | None = None,
) -> LinkageDecision | None:
    """Bring ``app`` in line with ``outcome`` under the module's rules; the decision if one was made.

    ``trigger`` says what caused the evaluation (``"arrival of <受付番号>"``, ``"import 7"``);
    ``import_id`` is the triggering import (``None`` on arrival: then the supplying import is used).
    """
    if app.linkage_state is LinkageState.MANUAL:
        return None
    state, number, reason = outcome.state, outcome.atena_number, outcome.reason
    if app.linkage_state is LinkageState.AUTO:
        if state is LinkageState.UNRESOLVED or (state is LinkageState.AUTO and number == app.atena_number):
            return None  # the link was right when made; data that merely disappeared does not undo it
        if state is LinkageState.AUTO:
            state, number = LinkageState.CONFLICT, None
            reason = "the linkage data now names another 宛名番号 than the one linked before"
    if (state, number) == (app.linkage_state, app.atena_number) and _has_decision(session, app.id):
        return None
    app.linkage_state, app.atena_number = state, number
    decision = LinkageDecision(
        application_id=app.id, at=at, state=state, atena_number=number,
        import_id=import_id if import_id is not None else outcome.import_id, reason=f"{trigger}: {reason}",
    )
    session.add(decision)
    return decision


def _has_decision(session: Session, app_id: int) -> bool:
    first = select(LinkageDecision.id).where(LinkageDecision.application_id == app_id).limit(1)
    return session.scalar(first) is not None


def resolve_on_arrival(session: Session, app: Application, version: ApplicationVersion, *, at: datetime) -> None:
    """Re-evaluate ``app``'s 宛名番号 now that ``version`` is admitted to it.

    The chain's versions are taken from ``app.versions`` as loaded: admission reads them under the
    chain's lock (``intake.applications.admission.lock_chain``; a chain opened in this transaction is
    seen by no other), and they include what this transaction admitted but has not flushed yet — the
    same admitted versions :func:`evaluate_chains` would read back after a flush, without the flush
    and the query. The first evaluation of a chain is always recorded, also when it leaves the chain
    waiting.
    """
    versions = [(v.user_cert_serial, arrival_day(v.arrived_at)) for v in app.versions if v.admitted_at is not None]
    outcome = _outcome(versions, _active_entries(session, {s for s, _ in versions if s}))
    apply_outcome(session, app, outcome, at=at, trigger=f"arrival of {version.receipt_number}")


def set_atena_manually(
    session: Session, *, application_id: int, atena_number: str, actor: Actor, reason: str, at: datetime,
) -> LinkageDecision:
    """Staff set a chain's 宛名番号 by hand (宛名番号設定機能). Needs :data:`SET_ATENA_PERMISSION` and a
    reason; validates the number; records the decision with the staff id and an access-log row.

    The result is ``MANUAL``, which no later arrival or import changes; staff may set it again.
    """
    require_aware(at)
    if SET_ATENA_PERMISSION not in actor.permissions:
        raise LinkagePermissionDenied
    reason = reason.strip()
    if not reason:
        raise ReasonRequired
    number = check_atena_number(atena_number)
    # Locks the row on PostgreSQL, so an import running now either sees MANUAL or finishes first.
    app = session.get(Application, application_id, with_for_update=True, populate_existing=True)
    if app is None:
        raise NotFound("no such application")
    app.linkage_state, app.atena_number = LinkageState.MANUAL, number
    decision = LinkageDecision(application_id=app.id, at=at, state=LinkageState.MANUAL, atena_number=number,
                               import_id=None, staff_id=actor.staff_id, reason=reason)
    session.add(decision)
    append_access(session, actor=actor, at=at, action="linkage.set_atena", subject=f"application:{app.id}",
                  reason=reason, atena_number=number)
    return decision


@dataclass(frozen=True)
class QueueItem:
    """One chain waiting for staff: no 宛名番号 yet (``UNRESOLVED``) or a ``CONFLICT``."""

    application_id: int
    first_receipt_number: str
    procedure_id: str
    procedure_name: str
    linkage_state: LinkageState
    withdrawn: bool
    waiting_since: datetime
    last_decision_at: datetime | None
    last_reason: str | None


def list_unresolved(session: Session) -> list[QueueItem]:
    """Chains staff must link by hand, oldest first (the 宛名番号 queue)."""
    latest = (select(LinkageDecision.application_id, func.max(LinkageDecision.id).label("decision_id"))
              .group_by(LinkageDecision.application_id).subquery())
    rows = session.execute(
        select(Application, LinkageDecision)
        .outerjoin(latest, latest.c.application_id == Application.id)
        .outerjoin(LinkageDecision, LinkageDecision.id == latest.c.decision_id)
        .where(Application.linkage_state.in_([LinkageState.UNRESOLVED, LinkageState.CONFLICT]))
        .order_by(Application.created_at, Application.id)
    ).all()
    return [
        QueueItem(
            application_id=app.id, first_receipt_number=app.first_receipt_number, procedure_id=app.procedure_id,
            procedure_name=app.procedure_name, linkage_state=app.linkage_state,
            withdrawn=app.state is ApplicationState.WITHDRAWN, waiting_since=app.created_at,
            last_decision_at=decision.at if decision else None, last_reason=decision.reason if decision else None,
        )
        for app, decision in rows
    ]
