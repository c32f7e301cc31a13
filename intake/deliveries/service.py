"""Store one delivery: re-verify with our own trust, then delivery, report, version, My Numbers,
attachments, events, linkage and forwarding — all in the caller's one transaction.

The idempotency key is the body's SHA-256; the unique constraint on it makes a second identical
delivery find the first one instead of storing twice, whichever process it reaches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.applications.status import on_version_stored
from intake.errors import InvalidRequest
from intake.events import KIND_BY_APPLICATION_KIND, record_event
from intake.forwarding.service import enqueue_forwarding
from intake.kana import search_key
from intake.linkage.service import resolve_on_arrival
from intake.models import (
    Application,
    ApplicationState,
    ApplicationVersion,
    Attachment,
    Delivery,
    SignerIdentityRow,
    VerificationRecord,
    VersionState,
)
from intake.mynumbers.service import extract_my_numbers, store_my_numbers
from intake.runtime import Runtime
from intake.sealing import open_package, seal_attachment, seal_package
from signature.report import FileRole, VerificationReport
from signature.verify import verify_package

__all__ = ["Receipt", "expected_key", "find_delivery", "receipt_for", "store_delivery"]


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


def expected_key(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def find_delivery(session: Session, key: str) -> Delivery | None:
    return session.scalar(select(Delivery).where(Delivery.idempotency_key == key))


def receipt_for(delivery: Delivery, *, duplicate: bool) -> Receipt:
    return Receipt(delivery.id, delivery.receipt_number, delivery.sha256, delivery.received_at, duplicate)


def store_delivery(
    session: Session, runtime: Runtime, *, body: bytes, key: str, client_id: str,
    relay_report: dict[str, Any] | None,
) -> Receipt:
    """Verify and store ``body``; the caller commits. Raises :class:`InvalidRequest` for a key that
    is not the body's SHA-256 (the relay reused a key for other bytes)."""
    if key != expected_key(body):
        raise InvalidRequest("Idempotency-Key is not sha256 of the body", code="IDEMPOTENCY_KEY_MISMATCH")
    now = runtime.clock()
    report = verify_package(body, runtime.trust, at=now, policy=runtime.policy)
    malware = _malware_files(relay_report)
    delivery = Delivery(
        idempotency_key=key, sha256=report.package_sha256, size=len(body),
        receipt_number=report.arrival.receipt_number if report.arrival else None,
        package=b"", received_at=now, client_id=client_id, relay_report=relay_report,
        malware_flagged=bool(malware),
    )
    session.add(delivery)
    session.flush()  # the unique key is claimed here; a concurrent twin fails on it
    delivery.package = seal_package(runtime.package_sealer, delivery.id, body)
    session.add(VerificationRecord(
        delivery_id=delivery.id, indication=report.indication.value,
        sub_indication=report.sub_indication.value if report.sub_indication else None,
        reason_code=report.reason_code.value if report.reason_code else None,
        reason_en=report.reason_en, reason_ja=report.reason_ja, checks=list(report.checks),
        readable=report.readable, revocation_checked=report.revocation_checked,
        signature_algorithm=report.signature_algorithm, validation_time=report.validation_time,
    ))
    record_event(session, "delivery.stored", at=now, receipt_number=delivery.receipt_number,
                 indication=report.indication.value, reason_code=delivery_reason(report),
                 malware_flagged=bool(malware))
    if report.manifest is not None and report.arrival is not None:
        _store_version(session, runtime, delivery, report, now, malware)
    return receipt_for(delivery, duplicate=False)


def delivery_reason(report: VerificationReport) -> str | None:
    return report.reason_code.value if report.reason_code else None


def package_bytes(delivery: Delivery, runtime: Runtime) -> bytes:
    return open_package(runtime.package_sealer, delivery.id, delivery.package)


def _malware_files(relay_report: dict[str, Any] | None) -> set[str]:
    if not relay_report:
        return set()
    files = relay_report.get("malware", {}).get("infected_files", [])
    return {str(f) for f in files} if isinstance(files, list) else set()


def _store_version(
    session: Session, runtime: Runtime, delivery: Delivery, report: VerificationReport, now: datetime,
    malware: set[str],
) -> None:
    manifest, arrival = report.manifest, report.arrival
    if manifest is None or arrival is None:  # pragma: no cover - the caller checks
        return
    first = manifest.first_receipt_number or arrival.receipt_number
    if session.scalar(select(ApplicationVersion.id).where(
            ApplicationVersion.receipt_number == arrival.receipt_number)) is not None:
        # The same 受付番号 with other bytes: never a second version, never an overwrite. The
        # delivery and its report are kept as evidence and the event puts it in front of staff.
        record_event(session, "delivery.receipt_conflict", at=now, receipt_number=arrival.receipt_number,
                     first_receipt_number=first, procedure_id=manifest.procedure_id)
        return
    app = session.scalar(select(Application).where(Application.first_receipt_number == first))
    if app is None:
        # Also for a 再申請 arriving before its original: the chain starts here and the original
        # slots in below it when it comes.
        app = Application(first_receipt_number=first, procedure_id=manifest.procedure_id,
                          procedure_name=manifest.procedure_name, created_at=now, updated_at=now)
        session.add(app)
        session.flush()
    form = report.file(FileRole.FORM)
    masked_form, numbers = extract_my_numbers(form.data)
    newer = [v for v in app.versions if v.arrived_at > arrival.arrived_at]
    version = ApplicationVersion(
        application_id=app.id, delivery_id=delivery.id, receipt_number=arrival.receipt_number,
        kind=manifest.application_kind, arrived_at=arrival.arrived_at, stored_at=now,
        state=VersionState.SUPERSEDED if newer else VersionState.CURRENT,
        superseded_at=now if newer else None, indication=report.indication.value,
        user_cert_serial=arrival.user_cert_serial, form_xml=masked_form, form_file=manifest.form_file,
        applicant=[list(pair) for pair in manifest.applicant],
    )
    session.add(version)
    session.flush()
    kind = KIND_BY_APPLICATION_KIND[manifest.application_kind]
    record_event(session, kind, at=now, receipt_number=arrival.receipt_number, first_receipt_number=first,
                 procedure_id=manifest.procedure_id, indication=report.indication.value,
                 out_of_order=bool(newer))
    if not newer:
        for old in app.versions:
            if old.id != version.id and old.state is VersionState.CURRENT:
                old.state, old.superseded_at = VersionState.SUPERSEDED, now
                record_event(session, "version.superseded", at=now, receipt_number=old.receipt_number,
                             first_receipt_number=first, procedure_id=app.procedure_id,
                             superseded_by=arrival.receipt_number)
    if manifest.application_kind == "取下げ" and app.state is not ApplicationState.WITHDRAWN:
        app.state = ApplicationState.WITHDRAWN
        record_event(session, "application.withdrawn", at=now, receipt_number=arrival.receipt_number,
                     first_receipt_number=first, procedure_id=app.procedure_id)
    app.needs_review = True  # a new version puts the chain back in the reviewer's queue
    app.updated_at = now
    if not newer:
        kana = dict(manifest.applicant).get("氏名フリガナ")
        app.applicant_kana = search_key(kana) if kana else None
    store_my_numbers(session, version, numbers, runtime.my_number_sealer)
    # Attachments only: the original form carries the My Numbers, which live in my_numbers alone;
    # the version keeps the masked form, and the sealed raw package remains the evidence.
    for f in report.files:
        if f.role is FileRole.ATTACHMENT:
            att = Attachment(version_id=version.id, name=f.name, role=f.role.value, size=f.size, sha256=f.sha256,
                             media_type=f.media_type, data=b"", malware_flagged=f.name in malware)
            session.add(att)
            session.flush()
            att.data = seal_attachment(runtime.package_sealer, att.id, f.data)
    if report.signer is not None:
        s = report.signer
        session.add(SignerIdentityRow(
            version_id=version.id, name=s.name, name_alt=s.name_alt, sex=s.sex, birth_date=s.birth_date,
            address=s.address, address_alt=s.address_alt, cert_serial=s.cert_serial, issuer=s.issuer,
            not_before=s.not_before, not_after=s.not_after,
        ))
    resolve_on_arrival(session, app, version, at=now)
    on_version_stored(session, app, version, at=now)  # status: NEW_VERSION / WITHDRAW hooks
    known = runtime.procedures.knows(manifest.procedure_id)
    if not known:
        record_event(session, "application.unknown_procedure", at=now, receipt_number=arrival.receipt_number,
                     first_receipt_number=first, procedure_id=manifest.procedure_id)
    if report.passed and known and not newer:
        enqueue_forwarding(session, version, at=now, routes=runtime.routes)
