"""Re-verification: a stored delivery verified again from its stored bytes, beside the first result.

Why: a delivery verified while no current CRL covered its signer is INDETERMINATE / TRY_LATER — the
signature may be fine, nobody could say. It is marked ``awaiting_revocation`` and remembers the CRL
set it was judged with (``judged_with``: :attr:`signature.revocation.RevocationStoreStatus.digest`).
When the CRL set in use changes, :func:`reverify_pending` verifies every such delivery again:

* from the **stored package bytes** (the sealed evidence), at the **original processing time**
  (``received_at``; the applicant's certificate is judged at the portal-signed 到達日時 either way),
  with the trust configuration in use now;
* the result is a new :class:`~intake.models.Reverification` row **beside** the first result
  (``verification_reports``), which is never changed; the version's shown ``indication`` follows the
  latest result;
* a version that now PASSES goes through admission (:func:`intake.applications.admission.settle`)
  exactly as on a first arrival — linked, forwarded, its events recorded — exactly once: each
  delivery is re-verified in its own transaction under a row lock, and a delivery already judged
  with this CRL set is skipped (two processes, two runs, a crash and a restart all end the same);
* a result that gets worse (an operator's re-verification finding a revocation) is recorded and
  shown; what admission already did is not undone — staff decide.

``python -m intake reverify`` runs the same for deliveries an operator selects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from intake.applications.admission import Rules, settle
from intake.deliveries.service import awaiting_revocation, package_bytes
from intake.errors import NotFound
from intake.events import record_event
from intake.jst import require_aware
from intake.models import ApplicationVersion, Delivery, Reverification, VerificationRecord
from intake.runtime import Runtime
from signature.report import VerificationReport
from signature.verify import verify_package

__all__ = ["Outcome", "ReverifySummary", "Selection", "latest_result", "reverify_delivery", "reverify_pending",
           "reverify_selected", "select_deliveries"]

_log = logging.getLogger(__name__)

#: ``Reverification.trigger``
REVOCATION, OPERATOR = "revocation", "operator"


@dataclass(frozen=True)
class Outcome:
    """One re-verification (no personal data: the 受付番号 and codes)."""

    delivery_id: int
    receipt_number: str | None
    previous: str  # indication/sub-indication before, e.g. "INDETERMINATE/TRY_LATER"
    now: str
    admitted: tuple[str, ...]  # 受付番号 of the versions admitted because of it


@dataclass(frozen=True)
class ReverifySummary:
    examined: int = 0
    passed: int = 0
    still_pending: int = 0
    failed: int = 0
    errors: int = 0
    outcomes: tuple[Outcome, ...] = ()


def _label(indication: str, sub: str | None) -> str:
    return f"{indication}/{sub}" if sub else indication


def latest_result(session: Session, delivery: Delivery) -> tuple[str, str | None]:
    """(indication, sub-indication) of the delivery's latest verification."""
    later = session.scalars(select(Reverification).where(Reverification.delivery_id == delivery.id)
                            .order_by(Reverification.id.desc()).limit(1)).first()
    if later is not None:
        return later.indication, later.sub_indication
    first = session.scalar(select(VerificationRecord).where(VerificationRecord.delivery_id == delivery.id))
    if first is None:  # pragma: no cover - every stored delivery has its first result
        raise NotFound("delivery without a verification result")
    return first.indication, first.sub_indication


def reverify_delivery(
    session: Session, runtime: Runtime, delivery_id: int, *, at: datetime, trigger: str,
    crl_set: str | None, reference: str | None = None,
) -> Outcome | None:
    """Verify one delivery again (the caller commits). For the ``revocation`` trigger, ``None`` when
    it no longer awaits revocation data or was already judged with ``crl_set`` (another process or
    run did it): of two concurrent callers one claims the row, the other waits and then skips.
    Admission then locks the chain (:func:`intake.applications.admission.lock_chain`)."""
    require_aware(at)
    # The claim is one conditional UPDATE: it takes the row's lock (the database's write lock on
    # SQLite) and says whether this caller is the one to verify it with this CRL set.
    claim = update(Delivery).where(Delivery.id == delivery_id).values(judged_with=crl_set)
    if trigger == REVOCATION:
        claim = claim.where(Delivery.awaiting_revocation.is_(True),
                            or_(Delivery.judged_with.is_(None), Delivery.judged_with != crl_set))
    if session.execute(claim.execution_options(synchronize_session=False)).rowcount != 1:  # type: ignore[attr-defined]
        if session.get(Delivery, delivery_id) is None:
            raise NotFound("no such delivery")
        return None  # judged with this set already (another process, another run)
    delivery = session.get(Delivery, delivery_id, populate_existing=True)
    if delivery is None:  # pragma: no cover - claimed just now
        raise NotFound("no such delivery")
    before = latest_result(session, delivery)
    body = package_bytes(delivery, runtime)
    report = verify_package(body, runtime.trust, at=delivery.received_at, policy=runtime.policy)
    if report.package_sha256 != delivery.sha256:  # pragma: no cover - the sealed bytes are authenticated
        raise RuntimeError(f"delivery {delivery.id}: stored bytes do not match their digest")
    _record(session, delivery, report, at=at, trigger=trigger, reference=reference, before=before, crl_set=crl_set)
    delivery.awaiting_revocation = awaiting_revocation(report)
    admitted: list[ApplicationVersion] = []
    version = session.scalar(select(ApplicationVersion).where(ApplicationVersion.delivery_id == delivery.id))
    if version is not None:
        version.indication = report.indication.value
        admitted = settle(session, version.application, Rules(runtime.routes, runtime.procedures), at=at)
    now = _label(report.indication.value, report.sub_indication.value if report.sub_indication else None)
    record_event(session, "delivery.reverified", at=at, receipt_number=delivery.receipt_number,
                 trigger=trigger, previous=_label(*before), indication=now,
                 admitted=[v.receipt_number for v in admitted])
    _log.info("reverified delivery=%s %s -> %s admitted=%d", delivery.id, _label(*before), now, len(admitted))
    return Outcome(delivery.id, delivery.receipt_number, _label(*before), now,
                   tuple(v.receipt_number for v in admitted))


def _record(session: Session, delivery: Delivery, report: VerificationReport, *, at: datetime, trigger: str,
            reference: str | None, before: tuple[str, str | None], crl_set: str | None) -> None:
    session.add(Reverification(
        delivery_id=delivery.id, made_at=at, trigger=trigger, reference=reference,
        previous_indication=before[0], previous_sub_indication=before[1],
        indication=report.indication.value,
        sub_indication=report.sub_indication.value if report.sub_indication else None,
        reason_code=report.reason_code.value if report.reason_code else None,
        reason_en=report.reason_en, reason_ja=report.reason_ja, checks=list(report.checks),
        revocation_checked=report.revocation_checked, validation_time=report.validation_time, crl_set=crl_set,
    ))


def _run(session_factory: sessionmaker[Session], runtime: Runtime, ids: Sequence[int], *, at: datetime,
         trigger: str, reference: str | None) -> ReverifySummary:
    crl_set = runtime.crl_set()
    outcomes: list[Outcome] = []
    errors = 0
    for delivery_id in ids:
        try:
            with session_factory() as session, session.begin():
                outcome = reverify_delivery(session, runtime, delivery_id, at=at, trigger=trigger, crl_set=crl_set,
                                            reference=reference)
        except Exception as exc:  # noqa: BLE001 - one broken delivery must not stop the others
            errors += 1
            _log.error("reverify failed delivery=%s error=%s", delivery_id, type(exc).__name__)
            continue
        if outcome is not None:
            outcomes.append(outcome)
    return ReverifySummary(
        examined=len(outcomes), passed=sum(o.now == "PASSED" for o in outcomes),
        still_pending=sum(o.now.endswith("/TRY_LATER") for o in outcomes),
        failed=sum(o.now.startswith("FAILED") for o in outcomes), errors=errors, outcomes=tuple(outcomes),
    )


def reverify_pending(session_factory: sessionmaker[Session], runtime: Runtime, *, at: datetime) -> ReverifySummary:
    """Verify again, from the stored bytes, every delivery still waiting for revocation data that the
    current CRL set has not judged yet. Each delivery in its own transaction."""
    crl_set = runtime.crl_set()
    if crl_set is None:
        return ReverifySummary()
    with session_factory() as session:
        ids = list(session.scalars(
            select(Delivery.id).where(Delivery.awaiting_revocation.is_(True),
                                      or_(Delivery.judged_with.is_(None), Delivery.judged_with != crl_set))
            .order_by(Delivery.id)))
    return _run(session_factory, runtime, ids, at=at, trigger=REVOCATION, reference=None)


@dataclass(frozen=True)
class Selection:
    """An operator's choice of deliveries (``python -m intake reverify``); all given filters apply."""

    receipt_numbers: tuple[str, ...] = ()
    awaiting_revocation: bool = False
    received_from: datetime | None = None
    received_to: datetime | None = None  # exclusive


def select_deliveries(session: Session, selection: Selection) -> list[int]:
    conditions: list[ColumnElement[bool]] = []
    if selection.receipt_numbers:
        conditions.append(Delivery.receipt_number.in_(selection.receipt_numbers))
    if selection.awaiting_revocation:
        conditions.append(Delivery.awaiting_revocation.is_(True))
    if selection.received_from is not None:
        conditions.append(Delivery.received_at >= require_aware(selection.received_from))
    if selection.received_to is not None:
        conditions.append(Delivery.received_at < require_aware(selection.received_to))
    if not conditions:
        raise ValueError("choose deliveries: by 受付番号, awaiting revocation data, or a received-at range")
    return list(session.scalars(select(Delivery.id).where(*conditions).order_by(Delivery.id)))


def reverify_selected(session_factory: sessionmaker[Session], runtime: Runtime, selection: Selection, *,
                      at: datetime, reference: str | None) -> ReverifySummary:
    with session_factory() as session:
        ids = select_deliveries(session, selection)
    return _run(session_factory, runtime, ids, at=at, trigger=OPERATOR, reference=reference)
