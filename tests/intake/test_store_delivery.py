"""store_delivery on SQLite and PostgreSQL: versions, My Numbers apart, encryption, events."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.deliveries.service import expected_key, package_bytes, store_delivery
from intake.errors import InvalidRequest
from intake.forwarding.routes import Route
from intake.models import (
    Application,
    ApplicationState,
    ApplicationVersion,
    Attachment,
    Delivery,
    Event,
    ForwardItem,
    MyNumberRow,
    VerificationRecord,
    VersionState,
)
from intake.mynumbers.service import extract_my_numbers
from intake.procedures import load_procedures
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from tests.conftest import NOW, PackageFactory, World


def deliver(session: Session, runtime: Runtime, body: bytes) -> int:
    receipt = store_delivery(session, runtime, body=body, key=expected_key(body), client_id="relay-test",
                             relay_report=None)
    session.commit()
    return receipt.delivery_id


def test_passed_package_is_stored_with_my_numbers_apart(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec
) -> None:
    body = make_package()
    delivery_id = deliver(session, runtime, body)
    delivery = session.get(Delivery, delivery_id)
    assert delivery is not None
    assert delivery.receipt_number == spec.receipt_number
    assert body not in delivery.package  # encrypted at rest
    assert package_bytes(delivery, runtime) == body
    report = session.scalar(select(VerificationRecord).where(VerificationRecord.delivery_id == delivery_id))
    assert report is not None
    assert report.indication == "PASSED"
    version = session.scalar(select(ApplicationVersion))
    assert version is not None
    assert version.state is VersionState.CURRENT
    _, numbers = extract_my_numbers(spec.form_xml)
    assert len(numbers) == 2
    for n in numbers:
        assert n.value not in version.form_xml
    rows = session.scalars(select(MyNumberRow).order_by(MyNumberRow.position)).all()
    assert [r.position for r in rows] == [0, 1]
    assert all(r.valid_check_digit for r in rows)
    for n, row in zip(numbers, rows, strict=True):
        assert n.value.encode() not in row.ciphertext
    attachments = session.scalars(select(Attachment)).all()
    # the original form (with My Numbers) is not kept as an attachment: only the masked copy
    assert {a.name for a in attachments} == {a.file_name for a in spec.attachments}
    assert all(a.data and a.sha256 for a in attachments)
    kinds = session.scalars(select(Event.kind).order_by(Event.id)).all()
    assert kinds == ["delivery.stored", "application.new", "version.admitted"]
    assert version.admitted_by == "first-application"


def test_key_must_be_the_body_hash(session: Session, runtime: Runtime, make_package: PackageFactory) -> None:
    with pytest.raises(InvalidRequest) as info:
        store_delivery(session, runtime, body=make_package(), key="sha256:" + "0" * 64, client_id="r",
                       relay_report=None)
    assert info.value.code == "IDEMPOTENCY_KEY_MISMATCH"


def test_failed_package_is_stored_and_flagged(
    session: Session, runtime: Runtime, make_package: PackageFactory, world: World
) -> None:
    deliver(session, runtime, make_package(signer=world.revoked_signer))
    report = session.scalar(select(VerificationRecord))
    assert report is not None
    # Revoked before the portal-signed 到達日時: INDETERMINATE / REVOKED_NO_POE (docs/package-format.md).
    assert (report.indication, report.sub_indication, report.reason_code) == (
        "INDETERMINATE", "REVOKED_NO_POE", "CERT_REVOKED")
    version = session.scalar(select(ApplicationVersion))
    assert version is not None
    assert version.indication == "INDETERMINATE"


def test_unreadable_package_is_stored_without_a_version(session: Session, runtime: Runtime) -> None:
    deliver(session, runtime, b"not a zip at all")
    assert session.scalar(select(func.count()).select_from(Delivery)) == 1
    assert session.scalar(select(func.count()).select_from(ApplicationVersion)) == 0


def test_reapplication_supersedes_and_withdrawal_withdraws(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec
) -> None:
    first = spec.receipt_number
    deliver(session, runtime, make_package())
    re = replace(spec, receipt_number="20261125-0000000002", kind="再申請", first_receipt_number=first,
                 arrived_at=spec.arrived_at + timedelta(minutes=5))
    deliver(session, runtime, make_package(spec=re))
    versions = session.scalars(select(ApplicationVersion).order_by(ApplicationVersion.arrived_at)).all()
    assert [v.state for v in versions] == [VersionState.SUPERSEDED, VersionState.CURRENT]
    wd = replace(spec, receipt_number="20261125-0000000003", kind="取下げ", first_receipt_number=first,
                 arrived_at=spec.arrived_at + timedelta(minutes=9))
    deliver(session, runtime, make_package(spec=wd))
    app = session.scalar(select(Application))
    assert app is not None
    assert app.state is ApplicationState.WITHDRAWN
    assert session.scalar(select(func.count()).select_from(Application)) == 1
    kinds = [k for k in session.scalars(select(Event.kind).order_by(Event.id)) if k != "delivery.stored"]
    assert kinds == ["application.new", "version.admitted",
                     "application.reapplication", "version.superseded", "version.admitted",
                     "application.withdrawal", "version.superseded", "application.withdrawn", "status.changed",
                     "version.admitted"]


def test_out_of_order_original_arrives_after_its_reapplication(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec
) -> None:
    re = replace(spec, receipt_number="20261125-0000000002", kind="再申請",
                 first_receipt_number=spec.receipt_number, arrived_at=spec.arrived_at + timedelta(minutes=5))
    deliver(session, runtime, make_package(spec=re))
    deliver(session, runtime, make_package())
    versions = {v.receipt_number: v.state for v in session.scalars(select(ApplicationVersion))}
    assert versions == {spec.receipt_number: VersionState.SUPERSEDED, re.receipt_number: VersionState.CURRENT}
    assert session.scalar(select(func.count()).select_from(Application)) == 1


def test_my_number_with_bad_check_digit_is_kept_and_marked(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec
) -> None:
    form = spec.form_xml.decode()
    _, numbers = extract_my_numbers(spec.form_xml)
    good = numbers[0].value
    bad = good[:11] + str((int(good[11]) + 1) % 10)
    deliver(session, runtime, make_package(spec=replace(spec, form_xml=form.replace(good, bad).encode())))
    rows = session.scalars(select(MyNumberRow).order_by(MyNumberRow.position)).all()
    assert [r.valid_check_digit for r in rows] == [False, True]


def test_same_body_twice_hits_the_unique_key(
    session: Session, runtime: Runtime, make_package: PackageFactory
) -> None:
    # The API turns this into the stored receipt; the service itself never stores two rows.
    body = make_package()
    deliver(session, runtime, body)
    with pytest.raises(IntegrityError):
        deliver(session, runtime, body)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Delivery)) == 1


def test_now_is_the_pinned_clock(session: Session, runtime: Runtime, make_package: PackageFactory) -> None:
    deliver(session, runtime, make_package())
    delivery = session.scalar(select(Delivery))
    assert delivery is not None
    assert delivery.received_at == NOW


def test_unknown_procedure_is_stored_flagged_and_not_forwarded(
    session: Session, runtime: Runtime, make_package: PackageFactory, tmp_path: Path
) -> None:
    catalogue = tmp_path / "procedures.json"
    catalogue.write_text(json.dumps({"procedures": [
        {"id": "KOSEKI-OTHER", "name": "other", "department": "kuminka"}]}), encoding="utf-8")
    routes = (Route(name="all", procedures=frozenset({"*"}), kind="file", target=str(tmp_path / "drop")),)
    strict = replace(runtime, procedures=load_procedures(catalogue), routes=routes)
    deliver(session, strict, make_package())
    assert session.scalar(select(func.count()).select_from(ApplicationVersion)) == 1
    assert session.scalar(select(func.count()).select_from(ForwardItem)) == 0
    assert "application.unknown_procedure" in session.scalars(select(Event.kind)).all()
    app = session.scalar(select(Application))
    assert app is not None
    assert app.needs_review is True


def test_same_receipt_number_with_other_bytes_is_kept_as_evidence_only(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec
) -> None:
    deliver(session, runtime, make_package())
    other = make_package(spec=replace(spec, procedure_name="別の内容"))  # same 受付番号, other bytes
    deliver(session, runtime, other)
    assert session.scalar(select(func.count()).select_from(Delivery)) == 2
    assert session.scalar(select(func.count()).select_from(ApplicationVersion)) == 1
    assert "delivery.receipt_conflict" in session.scalars(select(Event.kind)).all()
