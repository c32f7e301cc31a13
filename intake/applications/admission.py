"""Admission: whether a version may change its chain — the one place that decides (issue 15, item 1).

A chain (初回受付番号) belongs to the resident who signed its first application. Nobody else's
package may supersede it, withdraw it, re-open its review, take part in its 宛名番号 linkage or be
forwarded under it. The rule (docs/intake.md, "Who may change a chain"):

1. **The first application** — the 新規申請 whose 受付番号 is the 初回受付番号 — opens the chain and
   is its current version from its arrival. It is *admitted* (its linkage and forwarding done) once
   its signature PASSED; until then (FAILED, or INDETERMINATE waiting for revocation data) it is
   shown with its signature result and nothing follows from it.
2. **Any other version** (再申請, 補正, 取下げ, or a package naming someone else's 初回受付番号) is
   admitted only when all hold:

   * its own signature PASSED;
   * the chain's first application has arrived and is admitted;
   * its 手続ID is the chain's, or one the catalogue declares as a successor of it;
   * its signer is the chain's applicant — compared with the signer of every version already
     admitted — by the first of these that decides:

     a. the same certificate (issuer and serial number): ``same-certificate``;
     b. the 番号紐付情報: both certificates' serials have entries valid on their arrival days. One
        common 宛名番号 → ``same-atena``; only different ones → **a different person**, whatever
        else matches (a namesake born the same day);
     c. the same 氏名 (or its 外字 alternative), 生年月日 and 性別 in the signing certificates,
        compared after NFKC and without spaces — a renewed card (new serial) or a move (new 住所)
        does not matter: ``same-basic-info``.

3. Anything else is **HELD** (「本人確認要」) with a :class:`HoldReason`: stored, shown in its chain
   with the reason, and it changes nothing — no status change, no 取下げ, no portal notice, no
   linkage from its serial, no forwarding. A hold that waited for something (the first
   application, a signature result) is judged again when that happens (:func:`settle`). Staff
   accept a version held only because the signer could not be shown to be the applicant
   (``OTHER_APPLICANT``), or reject any held version, with a 処理事由 (:func:`decide`); both are
   access-logged. An accepted version is admitted as if it had matched; a rejected one stays as
   evidence and never takes effect.

Admission applies a version's effects exactly once (``admitted_at`` is set in the same transaction):
current/superseded by the portal's 到達日時 among the admitted versions, 取下げ, the workflow's
NEW_VERSION, 宛名番号 linkage, forwarding. Services never commit.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.applications import deadlines
from intake.applications.applicantkeys import index_applicant
from intake.applications.workflow import system_action
from intake.authz import CHANGE_ROLES, Principal, load_for
from intake.errors import IllegalStateChange, NotFound, ReasonRequired
from intake.events import record_event, write_event
from intake.forwarding.routes import Route
from intake.forwarding.service import enqueue_forwarding
from intake.linkage.service import atena_numbers_for, resolve_on_arrival
from intake.linkage.values import arrival_day
from intake.models import Application, ApplicationState, ApplicationVersion, VersionState
from intake.procedures import ProcedureCatalogue
from status import FINAL_STATUSES, Action, Status

__all__ = [
    "ACCEPTABLE_HOLDS",
    "HOLD_LABELS",
    "Decision",
    "HoldReason",
    "Judgement",
    "Rules",
    "decide",
    "is_first",
    "judge",
    "lock_chain",
    "opens_chain",
    "settle",
]

_BACK_TO_REVIEW = frozenset({Status.IN_REVIEW, Status.CORRECTION_REQUESTED})
_ADMITTED_STATES = frozenset({VersionState.CURRENT, VersionState.SUPERSEDED})


class HoldReason(enum.StrEnum):
    """Why a version is held. Stable codes (stored, in events); no personal data."""

    #: its own signature did not pass (FAILED, or INDETERMINATE until revocation data decides)
    SIGNATURE_NOT_PASSED = "SIGNATURE_NOT_PASSED"
    #: the chain's first application (新規申請) has not arrived
    FIRST_NOT_ARRIVED = "FIRST_NOT_ARRIVED"
    #: the chain's first application has arrived but is not admitted (its signature did not pass)
    FIRST_NOT_ADMITTED = "FIRST_NOT_ADMITTED"
    #: its 手続ID is neither the chain's nor a declared successor
    OTHER_PROCEDURE = "OTHER_PROCEDURE"
    #: its signer could not be shown to be the chain's applicant (or was shown to be someone else)
    OTHER_APPLICANT = "OTHER_APPLICANT"


HOLD_LABELS: dict[str, str] = {
    HoldReason.SIGNATURE_NOT_PASSED: "この版の署名が有効と確認できていません",
    HoldReason.FIRST_NOT_ARRIVED: "初回の申請（新規申請）が未着です",
    HoldReason.FIRST_NOT_ADMITTED: "初回の申請の署名が有効と確認できていません",
    HoldReason.OTHER_PROCEDURE: "初回の申請と手続が異なります",
    HoldReason.OTHER_APPLICANT: "署名者が初回の申請者と同一人と確認できません",
}

#: Holds staff may accept (everything held may be rejected). The others wait for facts, not judgement.
ACCEPTABLE_HOLDS = frozenset({HoldReason.OTHER_APPLICANT})
#: Holds that are judged again by :func:`settle` when the chain changes.
_WAITING = frozenset({HoldReason.SIGNATURE_NOT_PASSED, HoldReason.FIRST_NOT_ARRIVED, HoldReason.FIRST_NOT_ADMITTED})


@dataclass(frozen=True)
class Rules:
    """What admission needs from the runtime: forwarding routes and the procedure catalogue."""

    routes: Sequence[Route]
    procedures: ProcedureCatalogue


@dataclass(frozen=True)
class Judgement:
    admit: bool
    #: set when not admitted
    reason: HoldReason | None
    #: how the signer was matched (``same-certificate``, ``same-atena``, ``same-basic-info``,
    #: ``first-application``) when admitted
    rule: str | None


class Decision(enum.StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"


def is_first(app: Application, version: ApplicationVersion) -> bool:
    """The chain's first application: its 新規申請 under the 初回受付番号."""
    return opens_chain(app, version.receipt_number, version.kind)


def opens_chain(app: Application, receipt_number: str, kind: str) -> bool:
    """:func:`is_first` for a version not built yet (its 受付番号 and 申請種別)."""
    return receipt_number == app.first_receipt_number and kind == "新規申請"


def judge(session: Session, app: Application, version: ApplicationVersion, procedures: ProcedureCatalogue
          ) -> Judgement:
    """Whether ``version`` may be admitted to ``app`` now (the module's rule). Reads only."""
    if version.indication != "PASSED":
        return Judgement(False, HoldReason.SIGNATURE_NOT_PASSED, None)
    if is_first(app, version):
        return Judgement(True, None, "first-application")
    first = next((v for v in app.versions if is_first(app, v)), None)
    if first is None:
        return Judgement(False, HoldReason.FIRST_NOT_ARRIVED, None)
    if first.admitted_at is None:
        return Judgement(False, HoldReason.FIRST_NOT_ADMITTED, None)
    if not procedures.continues(app.procedure_id, version.procedure_id or app.procedure_id):
        return Judgement(False, HoldReason.OTHER_PROCEDURE, None)
    admitted = [v for v in app.versions if v.admitted_at is not None and v.id != version.id]
    rule = _same_applicant(session, admitted, version)
    if rule is None:
        return Judgement(False, HoldReason.OTHER_APPLICANT, None)
    return Judgement(True, None, rule)


def _same_applicant(session: Session, admitted: Sequence[ApplicationVersion], version: ApplicationVersion
                    ) -> str | None:
    signer = version.signer
    if signer is None:
        return None
    for other in admitted:
        known = other.signer
        if known is not None and (known.issuer, known.cert_serial) == (signer.issuer, signer.cert_serial):
            return "same-certificate"
    mine = atena_numbers_for(session, version.user_cert_serial, arrival_day(version.arrived_at))
    theirs: set[str] = set()
    for other in admitted:
        theirs |= atena_numbers_for(session, other.user_cert_serial, arrival_day(other.arrived_at))
    if mine and theirs:
        return "same-atena" if mine & theirs else None  # different 宛名番号: a different person
    for other in admitted:
        known = other.signer
        if known is None:
            continue
        names = {_norm(known.name), _norm(known.name_alt or "")} - {""}
        if ({_norm(signer.name), _norm(signer.name_alt or "")} & names
                and (known.birth_date, known.sex) == (signer.birth_date, signer.sex)):
            return "same-basic-info"
    return None


def _norm(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def lock_chain(session: Session, app: Application) -> None:
    """Serialise admission per chain: lock ``app``'s row (PostgreSQL; SQLite has one writer) and
    re-read its versions, so that what another transaction admitted meanwhile is seen. Two versions
    of one chain arriving or re-verified at once must not each miss the other (the second would wait
    for a first application that the first transaction is admitting)."""
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Application.id).where(Application.id == app.id).with_for_update())
    session.scalars(select(ApplicationVersion).where(ApplicationVersion.application_id == app.id)
                    .execution_options(populate_existing=True)).all()
    session.refresh(app, ["versions", "state", "status", "linkage_state", "atena_number"])


def settle(session: Session, app: Application, rules: Rules, *, at: datetime, locked: bool = False
           ) -> list[ApplicationVersion]:
    """Admit every version of ``app`` that may be admitted now and is not: the first application
    once its signature passed, then held versions whose hold waited for it or for their own
    signature, in the portal's 到達日時 order, until nothing changes (an admitted version may vouch
    for the next: a renewed card's successor). Returns the versions admitted now; holds whose reason
    changed are updated. Called after every arrival and re-verification of a chain's version; it
    locks the chain first (:func:`lock_chain`) unless the caller did (``locked``)."""
    if not locked:
        lock_chain(session, app)
    admitted: list[ApplicationVersion] = []
    changed = True
    while changed:
        changed = False
        for version in sorted(app.versions, key=lambda v: (v.arrived_at, v.id)):
            if version.admitted_at is not None or version.state is VersionState.REJECTED:
                continue
            if version.hold_reason is not None and version.hold_reason not in _WAITING:
                continue  # a judgement for staff: only their decision changes it
            verdict = judge(session, app, version, rules.procedures)
            if verdict.admit:
                _admit(session, app, version, rules, at=at, by=verdict.rule or "")
                admitted.append(version)
                changed = True
            elif version.state is VersionState.HELD and verdict.reason != version.hold_reason:
                version.hold_reason = verdict.reason.value if verdict.reason else None
    # The 標準処理期間: a new chain's due date; a clock an admitted 補正 released runs again.
    deadlines.settle(session, app, rules.procedures, at=at)
    return admitted


def hold(session: Session, app: Application, version: ApplicationVersion, reason: HoldReason, *, at: datetime
         ) -> None:
    """Keep ``version`` without effect: HELD with ``reason``, the chain back in the reviewer's queue."""
    version.state, version.hold_reason = VersionState.HELD, reason.value
    app.needs_review = True
    write_event(session, "version.held", at=at, receipt_number=version.receipt_number,
                first_receipt_number=app.first_receipt_number, procedure_id=app.procedure_id,
                reason=reason.value, application_kind=version.kind)


def _admit(session: Session, app: Application, version: ApplicationVersion, rules: Rules, *, at: datetime,
           by: str) -> None:
    """Apply ``version``'s effects on its chain, once."""
    if version.admitted_at is not None:  # pragma: no cover - callers check; the guard keeps it once
        return
    version.admitted_at, version.admitted_by, version.hold_reason = at, by, None
    if not is_first(app, version):
        current = not any(v.arrived_at > version.arrived_at for v in app.versions
                          if v.id != version.id and v.admitted_at is not None and v.state in _ADMITTED_STATES)
        version.state = VersionState.CURRENT if current else VersionState.SUPERSEDED
        version.superseded_at = None if current else at
        if current:
            for old in app.versions:
                if old.id != version.id and old.state is VersionState.CURRENT:
                    old.state, old.superseded_at = VersionState.SUPERSEDED, at
                    write_event(session, "version.superseded", at=at, receipt_number=old.receipt_number,
                                first_receipt_number=app.first_receipt_number, procedure_id=app.procedure_id,
                                superseded_by=version.receipt_number)
            index_applicant(session, app, version)
        if version.kind == "取下げ" and app.state is not ApplicationState.WITHDRAWN:
            app.state = ApplicationState.WITHDRAWN
            write_event(session, "application.withdrawn", at=at, receipt_number=version.receipt_number,
                        first_receipt_number=app.first_receipt_number, procedure_id=app.procedure_id)
        app.needs_review = True
        app.updated_at = at
        if current:
            _move_status(session, app, version, at=at)
    write_event(session, "version.admitted", at=at, receipt_number=version.receipt_number,
                first_receipt_number=app.first_receipt_number, procedure_id=app.procedure_id, rule=by)
    resolve_on_arrival(session, app, version, at=at)
    known = rules.procedures.knows(app.procedure_id)
    if not known:
        write_event(session, "application.unknown_procedure", at=at, receipt_number=version.receipt_number,
                    first_receipt_number=app.first_receipt_number, procedure_id=app.procedure_id)
    if known and version.state is VersionState.CURRENT:
        enqueue_forwarding(session, version, at=at, routes=rules.routes)


def _move_status(session: Session, app: Application, version: ApplicationVersion, *, at: datetime) -> None:
    """The workflow's part of an admitted version that is the chain's (new) current one."""
    status = Status(app.status)
    if version.kind == "取下げ":
        if status not in FINAL_STATUSES:
            system_action(session, app, Action.WITHDRAW, comment=f"{version.receipt_number} 取下げ", at=at)
    elif version.kind in {"再申請", "補正"} and status in _BACK_TO_REVIEW:
        system_action(session, app, Action.NEW_VERSION, comment=f"{version.receipt_number} {version.kind}", at=at)


def decide(
    session: Session, principal: Principal, rules: Rules, *, application_id: int, version_id: int,
    decision: Decision, reason: str, at: datetime,
) -> ApplicationVersion:
    """Staff accept or reject a held version with a 処理事由; access-logged either way.

    Accepting is allowed only for :data:`ACCEPTABLE_HOLDS` (the other holds wait for facts: a
    signature result, the first application); the accepted version is admitted (``staff:<login>``).
    Rejecting is allowed for any held version. Needs a role that may change applications."""
    app = load_for(session, principal, application_id)  # out of scope looks exactly like missing
    principal.require(CHANGE_ROLES, "decide on a held version")
    reason = reason.strip()
    if not reason:
        raise ReasonRequired
    # The chain as it stands now, locked: a version another transaction admitted since the page was
    # loaded (a re-verification, a colleague's decision) takes part in what this one decides — the
    # chain's current version and its 宛名番号 (linkage reads the chain's versions as loaded here).
    lock_chain(session, app)
    version = next((v for v in app.versions if v.id == version_id), None)
    if version is None:
        raise NotFound("no such version")
    subject = f"version {version.receipt_number}"
    if version.state is not VersionState.HELD:
        raise IllegalStateChange(subject, version.state.value, decision.value)
    if decision is Decision.ACCEPT and version.hold_reason not in ACCEPTABLE_HOLDS:
        # This hold waits for a fact (a signature result, the first application), not a judgement.
        raise IllegalStateChange(subject, f"held ({version.hold_reason})", decision.value)
    version.decided_by, version.decided_at, version.decision_reason = principal.login, at, reason
    append_access(session, actor=principal.access_actor(), at=at, action=f"version.{decision.value}",
                  subject=f"application:{app.id}:version:{version.id}", reason=reason,
                  atena_number=app.atena_number)
    record_event(session, f"version.{decision.value}ed", at=at, receipt_number=version.receipt_number,
                 first_receipt_number=app.first_receipt_number, procedure_id=app.procedure_id,
                 reason=version.hold_reason)
    if decision is Decision.REJECT:
        version.state = VersionState.REJECTED
    else:
        _admit(session, app, version, rules, at=at, by=f"staff:{principal.login}")
        settle(session, app, rules, at=at, locked=True)  # it may vouch for versions held behind it
    return version
