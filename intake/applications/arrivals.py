"""Arrivals: a verified package becomes a version of the chain it names.

:func:`add_version` finds or opens the chain (初回受付番号), stores the version with its masked form,
My Numbers (sealed, apart), attachments (sealed) and the signer's 基本4情報, and hands the version to
:mod:`intake.applications.admission`, which alone decides what it may do to the chain:

* the chain's **first application** (its 新規申請) is the current version from its arrival; its
  linkage and forwarding follow once its signature PASSED;
* any **other version** takes effect — supersede (the newest admitted version by the portal's
  到達日時 is CURRENT; an older one arriving late is SUPERSEDED), 取下げ, back to 審査中, linkage,
  forwarding — only when admitted: its signature PASSED, its signer is the chain's applicant, the
  procedure is the chain's; else it is HELD (「本人確認要」) and changes nothing.

Every arrival puts the chain back in the reviewer's queue (``needs_review``). The same 受付番号 with
other bytes is never a second version (``None``, and an event for staff). Services never commit.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from intake.applications.admission import Rules, hold, is_first, judge, lock_chain, opens_chain, settle
from intake.applications.applicantkeys import index_applicant
from intake.crypto import Sealer
from intake.db import insert_loaded, table_of
from intake.events import KIND_BY_APPLICATION_KIND, write_event
from intake.models import (
    Application,
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

__all__ = ["Arrival", "add_version"]

_ATTACHMENTS = table_of(Attachment)
_INSERT_ATTACHMENTS = insert(_ATTACHMENTS).returning(_ATTACHMENTS.c.id, sort_by_parameter_order=True)
_SET_ATTACHMENT_DATA = update(_ATTACHMENTS).where(_ATTACHMENTS.c.id == bindparam("b_id")).values(
    data=bindparam("b_data"))


@dataclass(frozen=True)
class Arrival:
    application: Application
    version: ApplicationVersion
    #: the version is its chain's current one after this arrival (admitted and newest, or the
    #: first application)
    current: bool
    #: the versions this arrival admitted (itself; held versions that waited for the first application)
    admitted: tuple[ApplicationVersion, ...] = ()


def add_version(
    session: Session, delivery: Delivery, report: VerificationReport, *, at: datetime, flagged_files: Collection[str],
    package_sealer: Sealer, my_number_sealer: Sealer, rules: Rules, my_number_paths: MyNumberPaths = NO_PATHS,
) -> Arrival | None:
    """Add the verified ``report`` of ``delivery`` to the chain it names and admit what may be
    admitted; ``None`` if the 受付番号 is already stored (with other bytes). ``report`` must have a
    manifest and an arrival record. ``my_number_paths``: the procedure's declared My Number fields
    (the catalogue's)."""
    manifest, arrival = report.manifest, report.arrival
    if manifest is None or arrival is None:
        raise ValueError("add_version needs a readable, portal-attested package")
    first = manifest.first_receipt_number or arrival.receipt_number
    if session.scalar(select(ApplicationVersion.id).where(
            ApplicationVersion.receipt_number == arrival.receipt_number)) is not None:
        # The same 受付番号 with other bytes: never a second version, never an overwrite. The
        # delivery and its report are kept as evidence and the event puts it in front of staff.
        write_event(session, "delivery.receipt_conflict", at=at, receipt_number=arrival.receipt_number,
                    first_receipt_number=first, procedure_id=manifest.procedure_id)
        return None
    app, opened = _chain(session, first, manifest.procedure_id, manifest.procedure_name, at=at)
    if not opened:
        # Versions of one chain arriving at once see each other's admission. A chain opened in this
        # transaction needs no lock: no other transaction sees it before the commit, and one opening
        # the same chain waits on the unique 初回受付番号 and then joins it (_chain).
        lock_chain(session, app)
    # Every My Number (form and 申請者情報, any namespace, declared paths) sealed apart, emptied here.
    masked_form, numbers = extract_my_numbers(report.file(FileRole.FORM).data, my_number_paths)
    applicant, applicant_numbers = extract_applicant_numbers(manifest.applicant, first_position=len(numbers))
    s = report.signer
    first_application = opens_chain(app, arrival.receipt_number, manifest.application_kind)
    state, superseded_at = VersionState.HELD, None
    if first_application:
        # The first application defines the chain: its procedure, and the current version from its
        # arrival (older only than versions admitted before it came, from before the rule existed).
        # Decided before the version is inserted, so its state is written once.
        app.procedure_id, app.procedure_name = manifest.procedure_id, manifest.procedure_name
        newer = any(v.arrived_at > arrival.arrived_at and v.admitted_at is not None for v in app.versions
                    if v.state is VersionState.CURRENT)
        state = VersionState.SUPERSEDED if newer else VersionState.CURRENT
        superseded_at = at if newer else None
        if not newer:
            for old in app.versions:
                if old.state is VersionState.CURRENT:
                    old.state, old.superseded_at = VersionState.SUPERSEDED, at
    # The version's rows are written with Core, outside the unit of work (docs/decisions.md, "Core
    # for a delivery's writes"); the objects are as if loaded, linked to the chain without a read.
    # The chain's versions are taken first: loaded after the insert, they would hold the new one too.
    versions = list(app.versions)
    version = insert_loaded(session, ApplicationVersion, {
        "application_id": app.id, "delivery_id": delivery.id, "receipt_number": arrival.receipt_number,
        "kind": manifest.application_kind, "arrived_at": arrival.arrived_at, "stored_at": at, "state": state,
        "superseded_at": superseded_at, "indication": report.indication.value,
        "procedure_id": manifest.procedure_id, "user_cert_serial": arrival.user_cert_serial,
        "form_xml": masked_form, "form_file": manifest.form_file, "applicant": applicant,
        "admitted_at": None, "admitted_by": None, "hold_reason": None,
        "decided_by": None, "decided_at": None, "decision_reason": None,
    })
    signer = insert_loaded(session, SignerIdentityRow, {
        "version_id": version.id, "name": s.name, "name_alt": s.name_alt, "sex": s.sex,
        "birth_date": s.birth_date, "address": s.address, "address_alt": s.address_alt,
        "cert_serial": s.cert_serial, "issuer": s.issuer, "not_before": s.not_before, "not_after": s.not_after,
    }) if s is not None else None
    if signer is not None:
        set_committed_value(signer, "version", version)
    set_committed_value(version, "signer", signer)
    set_committed_value(version, "application", app)
    set_committed_value(app, "versions", [*versions, version])  # as the unit of work's backref appended it
    write_event(session, KIND_BY_APPLICATION_KIND[manifest.application_kind], at=at,
                receipt_number=arrival.receipt_number, first_receipt_number=first,
                procedure_id=manifest.procedure_id, indication=report.indication.value,
                out_of_order=version.state is VersionState.SUPERSEDED)
    if not rules.procedures.knows(manifest.procedure_id):
        write_event(session, "application.unknown_procedure", at=at, receipt_number=arrival.receipt_number,
                    first_receipt_number=first, procedure_id=manifest.procedure_id)
    app.needs_review = True  # a new version puts the chain back in the reviewer's queue
    app.updated_at = at
    store_my_numbers(session, version, [*numbers, *applicant_numbers], my_number_sealer)
    _store_attachments(session, version, report, flagged_files, package_sealer)
    if is_first(app, version) and version.state is VersionState.CURRENT:
        index_applicant(session, app, version, new_chain=opened)  # the chain's applicant, from the first application
    verdict = judge(session, app, version, rules.procedures)
    if not verdict.admit and not is_first(app, version) and verdict.reason is not None:
        hold(session, app, version, verdict.reason, at=at)
    admitted = settle(session, app, rules, at=at, locked=True)
    return Arrival(app, version, version.state is VersionState.CURRENT, tuple(admitted))


def _chain(session: Session, first: str, procedure_id: str, procedure_name: str, *, at: datetime
           ) -> tuple[Application, bool]:
    """The chain of ``first`` and whether this transaction opened it — also for a 再申請 arriving
    before its original (the original slots in below it when it comes).

    One statement in the common case: ``INSERT … ON CONFLICT (初回受付番号) DO NOTHING RETURNING``.
    Two deliveries opening the same chain at once: on PostgreSQL the second insert waits for the
    first transaction; once that committed it inserts nothing, and the chain the first committed is
    read and joined as the next version (SQLite has one writer: the second transaction waits whole).
    """
    dialect = session.get_bind().dialect.name
    upsert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    opened = session.scalar(
        upsert(Application)
        .values(first_receipt_number=first, procedure_id=procedure_id, procedure_name=procedure_name,
                created_at=at, updated_at=at)
        .on_conflict_do_nothing(index_elements=[Application.first_receipt_number])
        .returning(Application),
        execution_options={"populate_existing": True},
    )
    if opened is not None:
        set_committed_value(opened, "versions", [])  # new: nothing to load
        return opened, True
    app = session.scalar(select(Application).where(Application.first_receipt_number == first))
    if app is None:  # pragma: no cover - the conflicting row is committed or we would still wait
        raise RuntimeError("a chain conflicted on its 初回受付番号 and cannot be read")
    return app, False


def _store_attachments(session: Session, version: ApplicationVersion, report: VerificationReport,
                       flagged_files: Collection[str], sealer: Sealer) -> None:
    """Attachments only: the original form carries the My Numbers, which live in my_numbers alone;
    the version keeps the masked form, and the sealed raw package remains the evidence."""
    files = [f for f in report.files if f.role is FileRole.ATTACHMENT]
    if not files:
        return
    connection = session.connection()
    # One INSERT for all of them (insertmanyvalues on PostgreSQL): each row's id is the associated
    # data of its seal, so the sealed bytes follow in one UPDATE.
    ids = connection.execute(_INSERT_ATTACHMENTS, [
        {"version_id": version.id, "name": f.name, "role": f.role.value, "size": f.size, "sha256": f.sha256,
         "media_type": f.media_type, "data": b"", "malware_flagged": f.name in flagged_files} for f in files
    ]).scalars().all()
    connection.execute(_SET_ATTACHMENT_DATA, [{"b_id": row_id, "b_data": seal_attachment(sealer, row_id, f.data)}
                                              for row_id, f in zip(ids, files, strict=True)])
