"""All tables of the intake, in one place so that the schema reads as a whole.

Personal data lives only where named: ``signer_identities`` and ``application_versions.applicant``
(基本4情報 / contact data), ``my_numbers`` (encrypted with its own key, nowhere else),
``linkage_entries`` (serial → 宛名番号). Raw packages and attachments are encrypted at rest.
``events`` and ``access_log`` are append-only; ``access_log`` rows are hash-chained.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from intake.db import Base, IntPK, UTCDateTime

__all__ = [
    "AccessLogRetention",
    "AccessLogRow",
    "ApplicantKey",
    "Application",
    "ApplicationState",
    "ApplicationVersion",
    "Attachment",
    "CaseNote",
    "Delivery",
    "Event",
    "ForwardItem",
    "ForwardState",
    "LinkageDecision",
    "LinkageEntry",
    "LinkageImport",
    "LinkageImportJob",
    "LinkageState",
    "MailSentLog",
    "MailState",
    "MyNumberRow",
    "Reverification",
    "SignerIdentityRow",
    "StaffChangeRequest",
    "StaffSession",
    "StaffUser",
    "StatusNotice",
    "StatusTransitionRow",
    "VerificationRecord",
    "VersionState",
]


#: A chain not yet 完了 / 却下 / 取下げ (status.FINAL_STATUSES), as SQL for partial indexes.
_OPEN_SQL = "status NOT IN ('完了', '却下', '取下げ')"


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored by value (readable in SQL, stable across renames of the Python names).
    return Enum(cls, values_callable=lambda e: [m.value for m in e], native_enum=False, length=32,
                validate_strings=True)


class ApplicationState(enum.StrEnum):
    OPEN = "open"
    WITHDRAWN = "withdrawn"


class VersionState(enum.StrEnum):
    CURRENT = "current"
    SUPERSEDED = "superseded"
    #: kept and shown, changes nothing: not (yet) admitted to its chain (``hold_reason`` says why;
    #: :mod:`intake.applications.admission`), 「本人確認要」 for staff
    HELD = "held"
    #: a held version staff rejected with a 処理事由: kept as evidence, changes nothing, ever
    REJECTED = "rejected"


class LinkageState(enum.StrEnum):
    UNRESOLVED = "unresolved"  # waiting in the queue
    AUTO = "auto"  # resolved from imported 番号紐付情報
    MANUAL = "manual"  # set by staff with a reason
    CONFLICT = "conflict"  # one serial, two 宛名番号: never guessed


class ForwardState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class MailState(enum.StrEnum):
    CLAIMED = "claimed"  # composed and frozen; being sent, or to be sent again with the same bytes
    SENT = "sent"  # the SMTP server (or the .eml folder) accepted it


class Delivery(Base):
    """One package as received from the relay: immutable, encrypted, identified by its SHA-256."""

    __tablename__ = "deliveries"

    id: Mapped[IntPK]
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    receipt_number: Mapped[str | None] = mapped_column(String(64), index=True)
    package: Mapped[bytes] = mapped_column(LargeBinary)  # sealed with the package key
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    client_id: Mapped[str] = mapped_column(String(128))
    relay_report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The intake's own scan (P11): scanner, flagged entry names, signature names.
    scan_report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    malware_flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The latest verification left the revocation status unknown (INDETERMINATE / TRY_LATER): it
    #: is verified again when other revocation data is in use (:mod:`intake.deliveries.reverify`).
    awaiting_revocation: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    #: ``RevocationStoreStatus.digest`` of the CRL set the latest verification used.
    judged_with: Mapped[str | None] = mapped_column(String(64))

    verification: Mapped[VerificationRecord] = relationship(back_populates="delivery", uselist=False)
    reverifications: Mapped[list[Reverification]] = relationship(back_populates="delivery",
                                                                  order_by="Reverification.id")

    __table_args__ = (
        Index("ix_deliveries_awaiting_revocation", "id", postgresql_where=text("awaiting_revocation"),
              sqlite_where=text("awaiting_revocation")),
    )


class VerificationRecord(Base):
    """The intake's own verification of a delivery (never the relay's word alone). No personal data."""

    __tablename__ = "verification_reports"

    id: Mapped[IntPK]
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), unique=True)
    indication: Mapped[str] = mapped_column(String(16))
    sub_indication: Mapped[str | None] = mapped_column(String(48))
    reason_code: Mapped[str | None] = mapped_column(String(48))
    reason_en: Mapped[str] = mapped_column(Text)
    reason_ja: Mapped[str] = mapped_column(Text)
    checks: Mapped[list[str]] = mapped_column(JSON)
    readable: Mapped[bool] = mapped_column(Boolean)
    revocation_checked: Mapped[bool] = mapped_column(Boolean)
    signature_algorithm: Mapped[str | None] = mapped_column(String(128))
    validation_time: Mapped[datetime] = mapped_column(UTCDateTime)

    delivery: Mapped[Delivery] = relationship(back_populates="verification")


class Reverification(Base):
    """A later verification of a stored delivery, from its stored bytes at the original processing
    time, beside the first one (``verification_reports``), never replacing it. No personal data."""

    __tablename__ = "reverifications"

    id: Mapped[IntPK]
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    made_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: ``revocation`` (other CRLs in use) or ``operator`` (``python -m intake reverify``)
    trigger: Mapped[str] = mapped_column(String(16))
    #: the operator's free-text reference for an ``operator`` run (a ticket id; no personal data)
    reference: Mapped[str | None] = mapped_column(String(128))
    previous_indication: Mapped[str] = mapped_column(String(16))
    previous_sub_indication: Mapped[str | None] = mapped_column(String(48))
    indication: Mapped[str] = mapped_column(String(16))
    sub_indication: Mapped[str | None] = mapped_column(String(48))
    reason_code: Mapped[str | None] = mapped_column(String(48))
    reason_en: Mapped[str] = mapped_column(Text)
    reason_ja: Mapped[str] = mapped_column(Text)
    checks: Mapped[list[str]] = mapped_column(JSON)
    revocation_checked: Mapped[bool] = mapped_column(Boolean)
    validation_time: Mapped[datetime] = mapped_column(UTCDateTime)
    crl_set: Mapped[str | None] = mapped_column(String(64))

    delivery: Mapped[Delivery] = relationship(back_populates="reverifications")


class Application(Base):
    """One chain of versions, keyed by its 初回受付番号."""

    __tablename__ = "applications"

    id: Mapped[IntPK]
    first_receipt_number: Mapped[str] = mapped_column(String(64), unique=True)
    procedure_id: Mapped[str] = mapped_column(String(128), index=True)
    procedure_name: Mapped[str] = mapped_column(String(256))
    state: Mapped[ApplicationState] = mapped_column(_enum(ApplicationState), default=ApplicationState.OPEN)
    status: Mapped[str] = mapped_column(String(16), default="到達")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    atena_number: Mapped[str | None] = mapped_column(String(32), index=True)
    linkage_state: Mapped[LinkageState] = mapped_column(_enum(LinkageState), default=LinkageState.UNRESOLVED)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=True)
    #: the member of staff working the chain (login id): set by 審査開始 or taken over explicitly
    assigned_to: Mapped[str | None] = mapped_column(String(64), index=True)
    #: the current version's 氏名フリガナ, normalised (:func:`intake.kana.search_key`) for the
    #: フリガナ prefix search (personal data, like ``application_versions.applicant``)
    applicant_kana: Mapped[str | None] = mapped_column(String(128))
    #: 標準処理期間: the last business day to finish the case (:mod:`intake.applications.deadlines`);
    #: ``None`` when the procedure has no standard period
    due_on: Mapped[date | None] = mapped_column(Date)
    #: while 補正依頼 waits for the resident the period stands still: when it stopped (None: running)
    clock_stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_applications_applicant_kana", "applicant_kana",
              postgresql_ops={"applicant_kana": "text_pattern_ops"}),
        Index("ix_applications_created_at_id", "created_at", "id"),
        Index("ix_applications_due_on", "due_on"),
        # Open chains are a few percent of all: the dashboard's counts and the queue filter read only them.
        Index("ix_applications_open", "procedure_id",
              postgresql_include=["needs_review", "linkage_state", "assigned_to"],
              postgresql_where=text(_OPEN_SQL), sqlite_where=text(_OPEN_SQL)),
    )

    versions: Mapped[list[ApplicationVersion]] = relationship(
        back_populates="application", order_by="ApplicationVersion.arrived_at"
    )


class ApplicationVersion(Base):
    """One submission (受付番号) of a chain: 新規申請, 再申請, 補正 or 取下げ."""

    __tablename__ = "application_versions"

    id: Mapped[IntPK]
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), unique=True)
    receipt_number: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[VersionState] = mapped_column(_enum(VersionState))
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    indication: Mapped[str] = mapped_column(String(16))
    user_cert_serial: Mapped[str | None] = mapped_column(String(64), index=True)
    #: The form as verified, with every 個人番号 emptied (the numbers are in ``my_numbers``).
    form_xml: Mapped[str] = mapped_column(Text)
    form_file: Mapped[str] = mapped_column(String(255))
    #: 申請者情報 as the applicant typed it (personal data), in document order.
    applicant: Mapped[list[list[str]]] = mapped_column(JSON)
    #: the 手続ID the version's own manifest names (its chain's may differ: then it is held)
    procedure_id: Mapped[str | None] = mapped_column(String(128))
    #: when the version was admitted to its chain and its effects applied (supersede, 取下げ,
    #: status, linkage, forwarding) — exactly once; None while held or awaiting verification
    admitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: how the signer was found to be the chain's applicant (a rule name, or ``staff:<login>``, a login
    #: being up to 64 characters); no personal data
    admitted_by: Mapped[str | None] = mapped_column(String(80))
    #: why a HELD version is held (:class:`intake.applications.admission.HoldReason`)
    hold_reason: Mapped[str | None] = mapped_column(String(32))
    #: staff's decision on a held version: who, when and their 処理事由
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_application_versions_arrived_at", "arrived_at"),  # today's arrivals, the 14-day chart
        Index("ix_application_versions_current", "application_id",
              postgresql_where=text("state = 'current'"), sqlite_where=text("state = 'current'")),
        Index("ix_application_versions_superseded", "application_id",  # the list's 版 filter
              postgresql_where=text("state = 'superseded'"), sqlite_where=text("state = 'superseded'")),
        Index("ix_application_versions_current_not_passed", "application_id",  # 署名エラー
              postgresql_where=text("state = 'current' AND indication <> 'PASSED'"),
              sqlite_where=text("state = 'current' AND indication <> 'PASSED'")),
        Index("ix_application_versions_held", "application_id",  # 本人確認要
              postgresql_where=text("state = 'held'"), sqlite_where=text("state = 'held'")),
    )

    application: Mapped[Application] = relationship(back_populates="versions")
    attachments: Mapped[list[Attachment]] = relationship(back_populates="version")
    signer: Mapped[SignerIdentityRow | None] = relationship(back_populates="version", uselist=False)


class SignerIdentityRow(Base):
    """The 基本4情報 from the verified signing certificate (personal data)."""

    __tablename__ = "signer_identities"

    id: Mapped[IntPK]
    version_id: Mapped[int] = mapped_column(ForeignKey("application_versions.id"), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    name_alt: Mapped[str | None] = mapped_column(String(256))
    sex: Mapped[str] = mapped_column(String(1))
    birth_date: Mapped[date] = mapped_column(Date)
    address: Mapped[str] = mapped_column(String(512))
    address_alt: Mapped[str | None] = mapped_column(String(512))
    cert_serial: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(String(512))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)

    version: Mapped[ApplicationVersion] = relationship(back_populates="signer")


class Attachment(Base):
    """A verified file of a version (form and attachments), encrypted with the package key."""

    __tablename__ = "attachments"

    id: Mapped[IntPK]
    version_id: Mapped[int] = mapped_column(ForeignKey("application_versions.id"), index=True)
    #: the file name as the package names it, whole: the format sets no length (docs/package-format.md,
    #: "Values the intake stores"), and it is what was signed and what a business system receives
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(64))
    #: loaded only when read (a download, a forward): the detail page lists names and sizes
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    malware_flagged: Mapped[bool] = mapped_column(Boolean, default=False)

    version: Mapped[ApplicationVersion] = relationship(back_populates="attachments")


class MyNumberRow(Base):
    """特定個人情報: one 個人番号 of a version (its form or kousei.xml's 申請者情報), encrypted with
    the My Number key. Read only through :func:`intake.mynumbers.service.reveal_my_number`, which
    checks permission and logs."""

    __tablename__ = "my_numbers"

    id: Mapped[IntPK]
    version_id: Mapped[int] = mapped_column(ForeignKey("application_versions.id"), index=True)
    #: from 0: the form's fields, the form's typed numbers, 申請者情報's; seal-typed's after all of them
    position: Mapped[int] = mapped_column(Integer)
    #: element path (local names), e.g. /DataRoot/…/個人番号, in the form or in kousei.xml
    path: Mapped[str] = mapped_column(String(512))
    #: where it was: ``form`` or ``kousei`` (the manifest's 申請者情報)
    source: Mapped[str] = mapped_column(String(8), default="form", server_default="form")
    valid_check_digit: Mapped[bool] = mapped_column(Boolean)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("version_id", "position"),)


class Event(Base):
    """Append-only history: the daily counts come from here, so purges never change the past."""

    __tablename__ = "events"

    id: Mapped[IntPK]
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    receipt_number: Mapped[str | None] = mapped_column(String(64))
    first_receipt_number: Mapped[str | None] = mapped_column(String(64))
    procedure_id: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # never personal data


class StatusNotice(Base):
    """Status changes for the portal, pulled and acknowledged by the relay: 受付番号, status, time and
    the comment staff wrote *to the resident* (申請者へのコメント, which may name the resident: it
    crosses the DMZ only in the relay's memory). Internal notes are :class:`CaseNote` and never here."""

    __tablename__ = "status_notices"

    id: Mapped[IntPK]
    receipt_number: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the comment for the resident (at most ``handover.COMMENT_MAX_CHARS``); None: no comment
    comment: Mapped[str | None] = mapped_column(Text)
    #: the status change this notice tells the portal about (None for notices older than 0007)
    transition_id: Mapped[int | None] = mapped_column(ForeignKey("status_transitions.id"), index=True)
    #: what the portal did, as the relay reported it: ``delivered`` (201/200) or ``refused``
    outcome: Mapped[str | None] = mapped_column(String(16))
    #: the portal's refusal code (e.g. ``ILLEGAL_TRANSITION``), never a value
    portal_code: Mapped[str | None] = mapped_column(String(48))

    __table_args__ = (Index("ix_status_notices_unacked", "acked_at", "id"),)


class LinkageImport(Base):
    """One imported 番号紐付情報 file: all rows or none."""

    __tablename__ = "linkage_imports"

    id: Mapped[IntPK]
    file_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    file_name: Mapped[str] = mapped_column(String(255))
    mode: Mapped[str] = mapped_column(String(8))  # full | delta
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rows: Mapped[int] = mapped_column(Integer)
    resolved: Mapped[int] = mapped_column(Integer, default=0)


class LinkageImportJob(Base):
    """A linkage import started from the staff UI: who started which file, and how it ended.
    Counts and line numbers only (``result``), never a serial or a 宛名番号."""

    __tablename__ = "linkage_import_jobs"

    id: Mapped[IntPK]
    file_name: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(8))  # auto | full | delta, as requested
    requested_by: Mapped[str] = mapped_column(String(64))
    terminal: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: running | done | duplicate | rejected | failed | interrupted
    state: Mapped[str] = mapped_column(String(16))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("linkage_imports.id"))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class LinkageEntry(Base):
    """利用者証明用電子証明書シリアル番号 → 宛名番号, with validity dates."""

    __tablename__ = "linkage_entries"

    id: Mapped[IntPK]
    cert_serial: Mapped[str] = mapped_column(String(64), index=True)
    atena_number: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    import_id: Mapped[int] = mapped_column(ForeignKey("linkage_imports.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class LinkageDecision(Base):
    """Every 宛名番号 decision for a chain: who or what, when, from which import, why."""

    __tablename__ = "linkage_decisions"

    id: Mapped[IntPK]
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[LinkageState] = mapped_column(_enum(LinkageState))
    atena_number: Mapped[str | None] = mapped_column(String(32))
    import_id: Mapped[int | None] = mapped_column(ForeignKey("linkage_imports.id"))
    staff_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)


class ForwardItem(Base):
    """Outbox: one (application version, route) to deliver to a business system, at most once there."""

    __tablename__ = "forward_outbox"

    id: Mapped[IntPK]
    version_id: Mapped[int] = mapped_column(ForeignKey("application_versions.id"))
    route: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    state: Mapped[ForwardState] = mapped_column(_enum(ForwardState), default=ForwardState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("version_id", "route"),
        Index("ix_forward_outbox_due", "state", "next_attempt_at"),
    )


class AccessLogRow(Base):
    """P13: every view and update of personal data, and every refused attempt. Append-only and
    hash-chained under a key the database does not hold (:mod:`intake.accesslog.service`)."""

    __tablename__ = "access_log"

    id: Mapped[IntPK]
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    staff_id: Mapped[str] = mapped_column(String(64), index=True)  # the auditor's searches
    department: Mapped[str] = mapped_column(String(128))
    terminal: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    atena_number: Mapped[str | None] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(128))  # e.g. "version:12", never the data itself
    prev_hash: Mapped[str] = mapped_column(String(64))
    #: the id of the HMAC key (:mod:`intake.auditkeys`) the hash was made with; NULL: a row from
    #: before the keys (plain SHA-256), accepted only at the start of the chain
    key_id: Mapped[str | None] = mapped_column(String(32))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        # the auditor's search by 宛名番号 also looks the person's chains up by subject, exact and by prefix
        Index("ix_access_log_subject", "subject", postgresql_ops={"subject": "text_pattern_ops"}),
    )


class AccessLogRetention(Base):
    """One retention purge of the access log: the rows up to ``purged_through_id`` (all older than
    ``cutoff``) were deleted, and ``last_hash`` is the hash of the last of them, so the chain of the
    rows that remain still verifies from here, and a deletion without this record is still detected."""

    __tablename__ = "access_log_retention"

    id: Mapped[IntPK]
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    cutoff: Mapped[datetime] = mapped_column(UTCDateTime)
    purged_through_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    purged_rows: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
    #: who ran it (``system`` for the scheduled job)
    actor: Mapped[str] = mapped_column(String(64))


class MailSentLog(Base):
    """The daily count e-mail, one row per (day, department): the unique row is the claim, ``message``
    the exact bytes (counts only, no personal data) so that every resend is the same mail with the
    same ``Message-ID``. Only CLAIMED → SENT."""

    __tablename__ = "mail_sent_log"

    id: Mapped[IntPK]
    day: Mapped[date] = mapped_column(Date)  # the Asia/Tokyo calendar day the mail counts
    department: Mapped[str] = mapped_column(String(64))
    state: Mapped[MailState] = mapped_column(_enum(MailState), default=MailState.CLAIMED)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    recipients: Mapped[list[str]] = mapped_column(JSON)
    message: Mapped[bytes] = mapped_column(LargeBinary)
    total: Mapped[int] = mapped_column(Integer)  # the day's applications, for the dashboard
    #: the first day the mail covers (a mail after a weekend or 祝日 covers every day since the last
    #: one); None: ``day`` alone
    first_day: Mapped[date | None] = mapped_column(Date)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("day", "department"),)


class StatusTransitionRow(Base):
    """One status change of a chain (:mod:`intake.applications.workflow`): who, when, from what to what,
    why. Append-only; ``Application.status`` is always the ``target`` of the newest row (or 到達)."""

    __tablename__ = "status_transitions"

    id: Mapped[IntPK]
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(16))
    #: staff login id, or ``system`` for what the intake does on arrival
    actor_id: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text, default="")
    #: the chain's current 受付番号 when the change was made (what the portal was told)
    receipt_number: Mapped[str] = mapped_column(String(64))


class StaffUser(Base):
    """A member of staff of the staff UI (職員). ``roles`` and ``departments`` decide what the user
    may do and see (:mod:`intake.authz`); the TOTP secret is sealed with the package key."""

    __tablename__ = "staff_users"

    id: Mapped[IntPK]
    login: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    roles: Mapped[list[str]] = mapped_column(JSON)
    departments: Mapped[list[str]] = mapped_column(JSON)
    #: the separate My Number reveal permission (P14)
    may_reveal_my_number: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2id; none: certificate only
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary)  # sealed base32 secret
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)  # a code is accepted once
    #: SHA-256 fingerprint (hex) of the staff IC-card certificate the front proxy verifies
    client_cert_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: who chose the current password and who saw the current TOTP secret (a staff login, or
    #: ``cli:<user>``): no single administrator may know both factors of an account that can reach
    #: My Numbers (:mod:`intake.staff.approvals`). NULL: not known (set before issue 15).
    password_set_by: Mapped[str | None] = mapped_column(String(64))
    totp_set_by: Mapped[str | None] = mapped_column(String(64))


class StaffChangeRequest(Base):
    """A privileged change to a staff account, waiting for a second system administrator (issue 15
    §3): granting the My Number reveal or the system_admin role, binding an IC-card certificate,
    setting another's password, re-issuing another's TOTP. It takes effect only when approved by
    another administrator than the one who asked, before ``expires_at``. ``payload`` holds what the
    change needs (a fingerprint, a new password's argon2 hash) — never a password or a secret."""

    __tablename__ = "staff_change_requests"

    id: Mapped[IntPK]
    kind: Mapped[str] = mapped_column(String(32))
    target_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: pending | approved | denied (an expired request stays pending and is shown as expired)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)


class StaffSession(Base):
    """A server-side login session. The cookie holds an opaque token; only its SHA-256 is stored."""

    __tablename__ = "staff_sessions"

    id: Mapped[IntPK]
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))  # password+totp | certificate
    terminal: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(16))  # logout | idle | absolute


class RelaySetAside(Base):
    """A 受付番号 the relay set aside after its attempt budget (``handover.SetAsideNotice``): what staff
    see of packages that never reached the intake. No personal data: 受付番号, SHA-256, a reason code,
    counts and times. ``resolved_at``: the package was stored after all (an operator's retry)."""

    __tablename__ = "relay_set_aside"

    id: Mapped[IntPK]
    receipt_number: Mapped[str] = mapped_column(String(19), unique=True)
    sha256: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    reason_code: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
class CaseNote(Base):
    """An internal note on a case (内部メモ): for the department's staff only — never forwarded to a
    business system, never in a status notice or mail. Append-only; reading and writing are
    access-logged (:mod:`intake.applications.casework`)."""

    __tablename__ = "case_notes"

    id: Mapped[IntPK]
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    author: Mapped[str] = mapped_column(String(64))  # staff login id
    body: Mapped[str] = mapped_column(Text)


class ApplicantKey(Base):
    """Search keys of a chain's current applicant (personal data, like ``applicant_kana``): the
    typed and the certificate's name (:func:`intake.personkeys.name_key`), the phone number and the
    certificate's birth date. Rebuilt for the chain when a newer version arrives."""

    __tablename__ = "applicant_keys"

    id: Mapped[IntPK]
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # name | phone | birth
    key: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        UniqueConstraint("application_id", "kind", "key"),
        Index("ix_applicant_keys_kind_key", "kind", "key", postgresql_ops={"key": "text_pattern_ops"}),
    )
