"""Arrivals: a verified package becomes a version of its chain — the one place that decides.

:func:`add_version` finds or opens the chain (初回受付番号), stores the version with its masked form,
My Numbers (sealed, apart), attachments (sealed) and the signer's 基本4情報, and decides in one place
what the arrival does to the chain:

* **supersede**: the newest version by the portal's 到達日時 is CURRENT; an older one arriving late is
  stored SUPERSEDED and changes nothing else (``Arrival.current`` is False);
* **withdraw**: a 取下げ marks the chain WITHDRAWN and, if its status is still open, moves it to
  取下げ through the workflow (portal notice, event);
* **review**: a 再申請/補正 during 審査中 or 補正依頼 puts the status back to 審査中 (``NEW_VERSION``), and
  every new version puts the chain back in the reviewer's queue (``needs_review``).

The same 受付番号 with other bytes is never a second version (``None``, and an event for staff).
Linkage and forwarding are the caller's next steps (:mod:`intake.deliveries.service`). Services never
commit.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.applications.workflow import system_action
from intake.crypto import Sealer
from intake.events import KIND_BY_APPLICATION_KIND, record_event
from intake.kana import search_key
from intake.models import (
    Application,
    ApplicationState,
    ApplicationVersion,
    Attachment,
    Delivery,
    SignerIdentityRow,
    VersionState,
)
from intake.mynumbers.service import (
    NO_PATHS,
    MyNumberPaths,
    extract_applicant_numbers,
    extract_my_numbers,
    store_my_numbers,
)
from intake.sealing import seal_attachment
from signature.report import FileRole, VerificationReport
from status import FINAL_STATUSES, Action, Status

__all__ = ["Arrival", "add_version"]

_BACK_TO_REVIEW = frozenset({Status.IN_REVIEW, Status.CORRECTION_REQUESTED})


@dataclass(frozen=True)
class Arrival:
    application: Application
    version: ApplicationVersion
    #: False: an older version that arrived after a newer one (stored SUPERSEDED, changes nothing)
    current: bool


def add_version(
    session: Session, delivery: Delivery, report: VerificationReport, *, at: datetime, flagged_files: Collection[str],
    package_sealer: Sealer, my_number_sealer: Sealer, my_number_paths: MyNumberPaths = NO_PATHS,
) -> Arrival | None:
    """Add the verified ``report`` of ``delivery`` to its chain; ``None`` if the 受付番号 is already
    stored (with other bytes). ``report`` must have a manifest and an arrival record.
    ``my_number_paths``: the procedure's declared My Number fields (the catalogue's)."""
    manifest, arrival = report.manifest, report.arrival
    if manifest is None or arrival is None:
        raise ValueError("add_version needs a readable, portal-attested package")
    first = manifest.first_receipt_number or arrival.receipt_number
    if session.scalar(select(ApplicationVersion.id).where(
            ApplicationVersion.receipt_number == arrival.receipt_number)) is not None:
        # The same 受付番号 with other bytes: never a second version, never an overwrite. The
        # delivery and its report are kept as evidence and the event puts it in front of staff.
        record_event(session, "delivery.receipt_conflict", at=at, receipt_number=arrival.receipt_number,
                     first_receipt_number=first, procedure_id=manifest.procedure_id)
        return None
    app = _chain(session, first, manifest.procedure_id, manifest.procedure_name, at=at)
    # Every My Number (form and 申請者情報, any namespace, declared paths) sealed apart, emptied here.
    masked_form, numbers = extract_my_numbers(report.file(FileRole.FORM).data, my_number_paths)
    applicant, applicant_numbers = extract_applicant_numbers(manifest.applicant, first_position=len(numbers))
    current = not any(v.arrived_at > arrival.arrived_at for v in app.versions)
    version = ApplicationVersion(
        application_id=app.id, delivery_id=delivery.id, receipt_number=arrival.receipt_number,
        kind=manifest.application_kind, arrived_at=arrival.arrived_at, stored_at=at,
        state=VersionState.CURRENT if current else VersionState.SUPERSEDED,
        superseded_at=None if current else at, indication=report.indication.value,
        user_cert_serial=arrival.user_cert_serial, form_xml=masked_form, form_file=manifest.form_file,
        applicant=applicant,
    )
    session.add(version)
    session.flush()
    record_event(session, KIND_BY_APPLICATION_KIND[manifest.application_kind], at=at,
                 receipt_number=arrival.receipt_number, first_receipt_number=first,
                 procedure_id=manifest.procedure_id, indication=report.indication.value, out_of_order=not current)
    if current:
        _supersede_others(session, app, version, at=at)
    if manifest.application_kind == "取下げ" and app.state is not ApplicationState.WITHDRAWN:
        app.state = ApplicationState.WITHDRAWN
        record_event(session, "application.withdrawn", at=at, receipt_number=arrival.receipt_number,
                     first_receipt_number=first, procedure_id=app.procedure_id)
    app.needs_review = True  # a new version puts the chain back in the reviewer's queue
    app.updated_at = at
    if current:
        kana = dict(manifest.applicant).get("氏名フリガナ")
        app.applicant_kana = search_key(kana) if kana else None
    store_my_numbers(session, version, [*numbers, *applicant_numbers], my_number_sealer)
    _store_attachments(session, version, report, flagged_files, package_sealer)
    if report.signer is not None:
        s = report.signer
        session.add(SignerIdentityRow(
            version_id=version.id, name=s.name, name_alt=s.name_alt, sex=s.sex, birth_date=s.birth_date,
            address=s.address, address_alt=s.address_alt, cert_serial=s.cert_serial, issuer=s.issuer,
            not_before=s.not_before, not_after=s.not_after,
        ))
    if current:
        _move_status(session, app, version, at=at)
    return Arrival(app, version, current)


def _chain(session: Session, first: str, procedure_id: str, procedure_name: str, *, at: datetime) -> Application:
    """The chain of ``first``, opened if it does not exist — also for a 再申請 arriving before its
    original (the original slots in below it when it comes). Two deliveries opening the same chain
    at once: the second waits on the unique 初回受付番号 (PostgreSQL), its savepoint rolls back, and it
    joins the chain the first committed as the next version."""
    app = session.scalar(select(Application).where(Application.first_receipt_number == first))
    if app is not None:
        return app
    try:
        with session.begin_nested():
            app = Application(first_receipt_number=first, procedure_id=procedure_id, procedure_name=procedure_name,
                              created_at=at, updated_at=at)
            session.add(app)
            session.flush()
    except IntegrityError:
        app = session.scalar(select(Application).where(Application.first_receipt_number == first))
        if app is None:
            raise
    return app


def _supersede_others(session: Session, app: Application, version: ApplicationVersion, *, at: datetime) -> None:
    for old in app.versions:
        if old.id != version.id and old.state is VersionState.CURRENT:
            old.state, old.superseded_at = VersionState.SUPERSEDED, at
            record_event(session, "version.superseded", at=at, receipt_number=old.receipt_number,
                         first_receipt_number=app.first_receipt_number, procedure_id=app.procedure_id,
                         superseded_by=version.receipt_number)


def _store_attachments(session: Session, version: ApplicationVersion, report: VerificationReport,
                       flagged_files: Collection[str], sealer: Sealer) -> None:
    """Attachments only: the original form carries the My Numbers, which live in my_numbers alone;
    the version keeps the masked form, and the sealed raw package remains the evidence."""
    for f in report.files:
        if f.role is FileRole.ATTACHMENT:
            att = Attachment(version_id=version.id, name=f.name, role=f.role.value, size=f.size, sha256=f.sha256,
                             media_type=f.media_type, data=b"", malware_flagged=f.name in flagged_files)
            session.add(att)
            session.flush()
            att.data = seal_attachment(sealer, att.id, f.data)


def _move_status(session: Session, app: Application, version: ApplicationVersion, *, at: datetime) -> None:
    """The workflow's part of an arrival of the chain's (new) current version."""
    status = Status(app.status)
    if version.kind == "取下げ":
        if status not in FINAL_STATUSES:
            system_action(session, app, Action.WITHDRAW, comment=f"{version.receipt_number} 取下げ", at=at)
    elif version.kind in {"再申請", "補正"} and status in _BACK_TO_REVIEW:
        system_action(session, app, Action.NEW_VERSION, comment=f"{version.receipt_number} {version.kind}", at=at)
