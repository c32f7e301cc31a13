"""Store one delivery exactly once: the orchestration from the relay's bytes to a stored version.

key → verify (with our own trust, never the relay's word alone) → scan → delivery and its report →
:func:`intake.applications.arrivals.add_version` (which admits what may change its chain: linkage
and forwarding follow admission, :mod:`intake.applications.admission`), all in the request's one
transaction. :func:`store_once` owns the idempotency: the idempotency key is the
body's SHA-256 and unique in the database, so a second identical delivery finds the first one
instead of storing twice, whichever process it reaches.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from handover import RelayReport
from intake.applications.admission import Rules
from intake.applications.arrivals import add_version
from intake.db import insert_loaded, rows_inserted, table_of
from intake.deliveries.admission import check_values
from intake.deliveries.errors import DeliveryRefused
from intake.deliveries.scanning import scan_delivery
from intake.events import events_batched, write_event
from intake.models import Delivery, VerificationRecord
from intake.relayreports.service import resolve_stored
from intake.runtime import Runtime
from intake.sealing import open_package, seal_package
from signature.report import VerificationReport
from signature.verify import verify_package

__all__ = ["DeliveryRequest", "Receipt", "awaiting_revocation", "expected_key", "find_delivery", "package_bytes",
           "receipt_for", "store_delivery", "store_once"]


@dataclass(frozen=True)
class DeliveryRequest:
    """A read and checked ``POST /api/v1/deliveries`` (:func:`intake.deliveries.views.read_delivery`)."""

    body: bytes
    key: str
    client_id: str
    relay_report: RelayReport | None

    def __repr__(self) -> str:  # the body is an application: never in a log line or a traceback
        return f"DeliveryRequest(key={self.key!r}, bytes={len(self.body)}, client_id={self.client_id!r})"


@dataclass(frozen=True)
class Receipt:
    delivery_id: int
    receipt_number: str | None
    sha256: str
    stored_at: datetime
    duplicate: bool

    def to_json(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "receipt_number": self.receipt_number, "sha256": self.sha256,
                "stored_at": self.stored_at.astimezone(UTC).isoformat(), "duplicate": self.duplicate}


_DELIVERIES = table_of(Delivery)
_SET_PACKAGE = update(_DELIVERIES).where(_DELIVERIES.c.id == bindparam("b_id")).values(package=bindparam("b_package"))
_INSERT_VERIFICATION = insert(table_of(VerificationRecord))


def expected_key(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def find_delivery(session: Session, key: str) -> Delivery | None:
    return session.scalar(select(Delivery).where(Delivery.idempotency_key == key))


def receipt_for(delivery: Delivery, *, duplicate: bool) -> Receipt:
    return Receipt(delivery.id, delivery.receipt_number, delivery.sha256, delivery.received_at, duplicate)


def store_once(session: Session, runtime: Runtime, request: DeliveryRequest) -> Receipt:
    """The stored receipt for ``request``'s key if there is one (``duplicate``), else store it.

    The store runs in a savepoint; when a twin committed the same key first (another request or
    process), the conflict rolls this session back — nothing else was done in it — and the twin's
    receipt is the answer.
    """
    if request.key != expected_key(request.body):
        # Before the lookup: the same key with other bytes is refused, never answered with the
        # receipt of the bytes the key belongs to.
        raise DeliveryRefused(422, "IDEMPOTENCY_KEY_MISMATCH", "Idempotency-Key is not sha256 of the body")
    existing = find_delivery(session, request.key)
    if existing is not None:
        return receipt_for(existing, duplicate=True)
    try:
        with rows_inserted(session), session.begin_nested():
            return store_delivery(session, runtime, body=request.body, key=request.key,
                                  client_id=request.client_id, relay_report=request.relay_report)
    except IntegrityError:
        session.rollback()  # end the transaction: the twin's commit must be visible to the re-read
        existing = find_delivery(session, request.key)
        if existing is None:
            raise
        return receipt_for(existing, duplicate=True)


def store_delivery(
    session: Session, runtime: Runtime, *, body: bytes, key: str, client_id: str,
    relay_report: RelayReport | None,
) -> Receipt:
    """Verify and store ``body``; the caller commits. :class:`DeliveryRefused` (422) for a key that
    is not the body's SHA-256 (the relay reused a key for other bytes) and for a value out of range
    (:func:`intake.deliveries.admission.check_values`)."""
    now = runtime.clock()
    crl_set = runtime.crl_set()  # read before verifying: a swap meanwhile only means one more re-verification
    started = time.perf_counter()  # a measurement for the metric, not a decision input
    report = verify_package(body, runtime.trust, at=now, policy=runtime.policy)
    runtime.observe_verification(time.perf_counter() - started)
    if key != "sha256:" + report.package_sha256:  # the verifier hashed exactly these bytes: no second pass
        raise DeliveryRefused(422, "IDEMPOTENCY_KEY_MISMATCH", "Idempotency-Key is not sha256 of the body")
    check_values(report, at=now)  # a value out of range is a refusal, before anything is stored
    scanned = scan_delivery(body, report, relay_report, scanner=runtime.scanner, scanner_name=runtime.scanner_name,
                            limits=runtime.policy.limits)
    flagged = scanned.flagged
    with events_batched(session):  # the delivery's three or four events: one INSERT at the end
        # The delivery's rows are written with Core, outside the unit of work (docs/decisions.md, "Core
        # for a delivery's writes"); the objects callers get are as if loaded.
        delivery = insert_loaded(session, Delivery, {
            "idempotency_key": key, "sha256": report.package_sha256, "size": len(body),
            "receipt_number": report.arrival.receipt_number if report.arrival else None,
            "package": b"", "received_at": now, "client_id": client_id,
            "relay_report": relay_report.to_json() if relay_report is not None else None,
            "scan_report": scanned.report, "malware_flagged": bool(flagged),
            "awaiting_revocation": awaiting_revocation(report), "judged_with": crl_set,
        })  # the unique key is claimed here; a concurrent twin fails on it
        sealed = seal_package(runtime.package_sealer, delivery.id, body)  # the row id is the seal's associated data
        connection = session.connection()
        connection.execute(_SET_PACKAGE, {"b_id": delivery.id, "b_package": sealed})
        set_committed_value(delivery, "package", sealed)
        connection.execute(_INSERT_VERIFICATION, {
            "delivery_id": delivery.id, "indication": report.indication.value,
            "sub_indication": report.sub_indication.value if report.sub_indication else None,
            "reason_code": report.reason_code.value if report.reason_code else None,
            "reason_en": report.reason_en, "reason_ja": report.reason_ja, "checks": list(report.checks),
            "readable": report.readable, "revocation_checked": report.revocation_checked,
            "signature_algorithm": report.signature_algorithm, "validation_time": report.validation_time,
        })
        write_event(session, "delivery.stored", at=now, receipt_number=delivery.receipt_number,
                    indication=report.indication.value, reason_code=delivery_reason(report),
                    malware_flagged=bool(flagged))
        if report.manifest is None or report.arrival is None:
            return receipt_for(delivery, duplicate=False)
        arrival = add_version(session, delivery, report, at=now, flagged_files=flagged,
                              package_sealer=runtime.package_sealer, my_number_sealer=runtime.my_number_sealer,
                              rules=Rules(runtime.routes, runtime.procedures),
                              my_number_paths=runtime.procedures.my_number_paths(report.manifest.procedure_id))
        if arrival is not None:
            resolve_stored(session, arrival.version.receipt_number, at=now)
        return receipt_for(delivery, duplicate=False)


def awaiting_revocation(report: VerificationReport) -> bool:
    """The result waits for revocation data (INDETERMINATE / TRY_LATER): verified again when the
    CRL set in use changes (:mod:`intake.deliveries.reverify`)."""
    return report.sub_indication is not None and report.sub_indication.value == "TRY_LATER"


def delivery_reason(report: VerificationReport) -> str | None:
    return report.reason_code.value if report.reason_code else None


def package_bytes(delivery: Delivery, runtime: Runtime) -> bytes:
    """The delivery's raw package (the evidence), opened."""
    return open_package(runtime.package_sealer, delivery.id, delivery.package)
