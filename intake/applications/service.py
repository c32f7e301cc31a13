"""One application as staff work it: the detail view (versions, form fields and their changes, the
signer's 基本4情報 beside what was typed, history), attachments, the My Number reveal, and the
scoped changes of casework (宛名番号 by hand, taking and releasing a case). Every function checks the
principal's roles and departments itself (templates only display), and every read of personal data
writes an access-log row (P13). Services never commit.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.applications.admission import ACCEPTABLE_HOLDS
from intake.applications.workflow import history_of
from intake.authz import CHANGE_ROLES, REVEAL_PERMISSION, Principal, load_for
from intake.crypto import Sealer
from intake.errors import AccessDenied, Denial, NotFound, PermissionDenied
from intake.linkage.service import set_atena_manually
from intake.models import (
    Application,
    ApplicationVersion,
    Attachment,
    Delivery,
    LinkageDecision,
    MyNumberRow,
    Reverification,
    SignerIdentityRow,
    VerificationRecord,
    VersionState,
)
from intake.mynumbers.service import (
    APPLICANT_PATH,
    FORM,
    KOUSEI,
    TEXT,
    ElementPaths,
    is_my_number_name,
    local_name,
    reveal_my_number,
)
from intake.sealing import open_attachment
from signature.xmlparse import parse_xml
from status import Action, Role, StatusHistory, allowed_actions

__all__ = [
    "ApplicationDetail",
    "Download",
    "FieldChange",
    "FormField",
    "IdentityCheck",
    "application_detail",
    "assign",
    "download_attachment",
    "flatten_form",
    "form_diff",
    "reveal",
    "set_atena",
    "version_of",
]


@dataclass(frozen=True)
class FormField:
    key: str  # the element path, stable between versions of the same form
    label: str  # 「請求者 / 氏名」
    value: str
    my_number_position: int | None = None  # a 個人番号 field: revealed only on request
    #: My Numbers the resident typed into this field's text, masked there (［個人番号］), in order
    in_text: tuple[int, ...] = ()


@dataclass(frozen=True)
class FieldChange:
    label: str
    before: str | None  # None: the field did not exist
    after: str | None


def flatten_form(form_xml: str, my_numbers: Mapping[str, int] | None = None,
                 in_text: Mapping[str, int] | None = None) -> list[FormField]:
    """The leaves of a (masked) form in document order, labelled by their local names.

    ``my_numbers``: element path → position of the version's sealed My Numbers of the form (their
    fields show masked, with the reveal). Any element whose local name is 個人番号 shows empty
    whatever it holds, as a second line of defence (issue 15 §2). ``in_text``: path → position of
    those found in the form's other text (source ``text``, path ``<element>/text()[k]`` or
    ``<element>/@attr/text()[k]``); a field lists those of its element."""
    numbers = my_numbers or {}
    # by the element the text belongs to: <element>/text()[k], <element>/@attr/text()[k] (a leaf has no
    # comment: a comment child makes it a group); one pass, not one scan per field
    by_owner: dict[str, list[int]] = {}
    for path, p in sorted((in_text or {}).items(), key=lambda item: item[1]):
        owner = path.rsplit("/text()[", 1)[0]
        head, _, last = owner.rpartition("/")
        by_owner.setdefault(head if last.startswith("@") else owner, []).append(p)
    root = parse_xml(form_xml.encode())
    paths = ElementPaths()
    fields: list[FormField] = []
    for el in root.iter():
        if not isinstance(el.tag, str) or len(el):
            continue
        names = [local_name(a.tag) for a in reversed(list(el.iterancestors())) if a is not root] + [local_name(el.tag)]
        key = paths(el)
        value = (el.text or "").strip()
        number = numbers.get(key)
        if number is not None or is_my_number_name(el.tag):
            value = ""
        fields.append(FormField(key, " / ".join(names), value, number, tuple(by_owner.get(key, ()))))
    return fields


def form_diff(before: list[FormField], after: list[FormField]) -> list[FieldChange]:
    """Field-level changes between two versions (個人番号 values are not compared: they are masked)."""
    old = {f.key: f for f in before}
    new = {f.key: f for f in after}
    changes = []
    for key, f in new.items():
        if key not in old:
            changes.append(FieldChange(f.label, None, f.value))
        elif old[key].value != f.value:
            changes.append(FieldChange(f.label, old[key].value, f.value))
    changes.extend(FieldChange(f.label, f.value, None) for key, f in old.items() if key not in new)
    return changes


def _norm(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


@dataclass(frozen=True)
class IdentityCheck:
    """The signer's 基本4情報 (from the verified certificate) beside what the applicant typed."""

    signer: SignerIdentityRow | None
    applicant: list[tuple[str, str]]
    name_matches: bool | None
    address_matches: bool | None
    #: index in ``applicant`` → position of a 個人番号 sealed from 申請者情報 (shown masked, revealable)
    applicant_my_numbers: dict[int, int] = field(default_factory=dict)


def _my_numbers(session: Session, version_ids: list[int]) -> dict[tuple[int, str], dict[str, int]]:
    """(version, source) → element path → position of the sealed My Numbers (never their values)."""
    found: dict[tuple[int, str], dict[str, int]] = {}
    for version_id, source, path, position in session.execute(
            select(MyNumberRow.version_id, MyNumberRow.source, MyNumberRow.path, MyNumberRow.position)
            .where(MyNumberRow.version_id.in_(version_ids))):
        found.setdefault((version_id, source), {})[path] = position
    return found


def _applicant_positions(applicant: list[tuple[str, str]], by_path: Mapping[str, int]) -> dict[int, int]:
    names = [local_name(tag) for tag, _ in applicant]
    found: dict[int, int] = {}
    for index, name in enumerate(names):
        if not is_my_number_name(name):
            continue
        step = name if names.count(name) == 1 else f"{name}[{names[:index + 1].count(name)}]"
        position = by_path.get(f"{APPLICANT_PATH}/{step}")
        if position is not None:
            found[index] = position
    return found


@dataclass(frozen=True)
class VerificationResult:
    """One verification of a version's package, as staff read it (no personal data)."""

    made_at: datetime
    trigger: str  # arrival | revocation | operator
    indication: str
    sub_indication: str | None
    reason_ja: str
    revocation_checked: bool
    validation_time: datetime


def verification_results(session: Session, delivery_id: int) -> list[VerificationResult]:
    """The first result and every re-verification of a delivery, oldest first."""
    results = []
    first = session.scalar(select(VerificationRecord).where(VerificationRecord.delivery_id == delivery_id))
    delivery = session.get(Delivery, delivery_id)
    if first is not None and delivery is not None:
        results.append(VerificationResult(delivery.received_at, "arrival", first.indication, first.sub_indication,
                                          first.reason_ja, first.revocation_checked, first.validation_time))
    for r in session.scalars(select(Reverification).where(Reverification.delivery_id == delivery_id)
                             .order_by(Reverification.id)):
        results.append(VerificationResult(r.made_at, r.trigger, r.indication, r.sub_indication, r.reason_ja,
                                          r.revocation_checked, r.validation_time))
    return results


@dataclass(frozen=True)
class ApplicationDetail:
    app: Application
    versions: list[ApplicationVersion]
    version: ApplicationVersion  # the one shown
    compare_with: ApplicationVersion | None
    fields: list[FormField]
    changes: list[FieldChange]
    attachments: list[Attachment]
    verification: VerificationRecord | None
    identity: IdentityCheck
    my_number_positions: list[int]
    history: StatusHistory
    actions: list[Action]
    may_change: bool
    may_set_atena: bool
    may_reveal: bool
    decisions: list[LinkageDecision] = field(default_factory=list)
    #: the shown version's verification results, first (on arrival) to latest (re-verifications)
    results: list[VerificationResult] = field(default_factory=list)
    #: versions of the chain that are held (「本人確認要」), oldest first
    held: list[ApplicationVersion] = field(default_factory=list)
    #: hold reasons staff may accept (the others wait for facts)
    acceptable_holds: frozenset[str] = frozenset()
    #: the form's My Numbers no field of the table shows: typed into a comment or mixed content, or
    #: in a field nested deeper than ``my_numbers.path`` can say (:func:`intake.mynumbers.service.stored_path`)
    my_numbers_elsewhere: list[int] = field(default_factory=list)


def application_detail(
    session: Session, principal: Principal, application_id: int, *, at: datetime,
    version_id: int | None = None, compare_id: int | None = None,
) -> ApplicationDetail:
    """Everything the detail page shows; one access-log row for the view."""
    app = load_for(session, principal, application_id)
    versions = sorted(app.versions, key=lambda v: v.arrived_at)
    if not versions:  # pragma: no cover - a chain always has its first version
        raise NotFound("no such application")
    by_id = {v.id: v for v in versions}
    current = next((v for v in versions if v.state is VersionState.CURRENT), versions[-1])
    shown = by_id.get(version_id or current.id)
    if shown is None:
        raise NotFound("no such version")
    index = versions.index(shown)
    compare = by_id.get(compare_id) if compare_id is not None else (versions[index - 1] if index > 0 else None)
    if compare_id is not None and compare is None:
        raise NotFound("no such version")
    sealed = _my_numbers(session, [shown.id] if compare is None else [shown.id, compare.id])
    fields = flatten_form(shown.form_xml, sealed.get((shown.id, FORM), {}), sealed.get((shown.id, TEXT), {}))
    changes = (form_diff(flatten_form(compare.form_xml, sealed.get((compare.id, FORM), {})), fields)
               if compare is not None else [])
    in_fields = {p for f in fields for p in f.in_text} | {f.my_number_position for f in fields}
    elsewhere = sorted(p for source in (FORM, TEXT) for p in sealed.get((shown.id, source), {}).values()
                       if p not in in_fields)
    verification = session.scalar(select(VerificationRecord).where(VerificationRecord.delivery_id == shown.delivery_id))
    applicant = [(str(k), str(v)) for k, v in shown.applicant]
    typed = dict(applicant)
    signer = shown.signer
    in_manifest = sealed.get((shown.id, KOUSEI), {})
    identity = IdentityCheck(
        signer, applicant,
        _norm(signer.name) == _norm(typed["氏名"]) if signer and "氏名" in typed else None,
        _norm(signer.address) == _norm(typed["住所"]) if signer and "住所" in typed else None,
        applicant_my_numbers=_applicant_positions(applicant, in_manifest),
    )
    positions = sorted(p for (vid, _source), by_path in sealed.items() if vid == shown.id for p in by_path.values())
    history = history_of(session, app)
    decisions = list(session.scalars(select(LinkageDecision).where(LinkageDecision.application_id == app.id)
                                     .order_by(LinkageDecision.id)))
    # The diff shows the compared version's values too: the row names both versions read.
    seen = f"application:{app.id}:version:{shown.id}" + (f":compare:{compare.id}" if compare is not None else "")
    append_access(session, actor=principal.access_actor(), at=at, action="application.view", subject=seen,
                  atena_number=app.atena_number)
    may_change = principal.has_any(CHANGE_ROLES)
    return ApplicationDetail(
        app=app, versions=versions, version=shown, compare_with=compare, fields=fields, changes=changes,
        attachments=list(shown.attachments), verification=verification, identity=identity,
        my_number_positions=positions, history=history, my_numbers_elsewhere=elsewhere,
        actions=allowed_actions(history.current, principal.roles) if may_change else [],
        may_change=may_change, may_set_atena=may_change, may_reveal=REVEAL_PERMISSION in principal.permissions,
        decisions=decisions, results=verification_results(session, shown.delivery_id),
        held=[v for v in versions if v.state is VersionState.HELD], acceptable_holds=frozenset(ACCEPTABLE_HOLDS),
    )


def version_of(session: Session, principal: Principal, application_id: int, version_id: int) -> ApplicationVersion:
    """A version of an application in scope (for the My Number reveal form), else :class:`NotFound`."""
    app = load_for(session, principal, application_id)
    version = session.get(ApplicationVersion, version_id)
    if version is None or version.application_id != app.id:
        raise NotFound("no such version")
    return version


@dataclass(frozen=True)
class Download:
    name: str
    media_type: str
    data: bytes


def download_attachment(
    session: Session, principal: Principal, attachment_id: int, *, at: datetime, sealer: Sealer,
) -> Download:
    """An attachment's bytes, logged; a malware-flagged file is never handed out."""
    att = session.get(Attachment, attachment_id)
    if att is None:
        raise NotFound("no such attachment")
    app = load_for(session, principal, att.version.application_id)
    if att.malware_flagged:
        raise PermissionDenied("the relay flagged this file as malware", code="MALWARE_FLAGGED")
    append_access(session, actor=principal.access_actor(), at=at, action="attachment.download",
                  subject=f"attachment:{att.id}", atena_number=app.atena_number)
    return Download(att.name, att.media_type, open_attachment(sealer, att.id, att.data))


def set_atena(
    session: Session, principal: Principal, application_id: int, *, atena_number: str, reason: str, at: datetime,
) -> LinkageDecision:
    """:func:`intake.linkage.service.set_atena_manually`, for an application in the principal's scope."""
    load_for(session, principal, application_id)
    return set_atena_manually(session, application_id=application_id, atena_number=atena_number,
                              actor=principal.access_actor(), reason=reason, at=at)


def assign(
    session: Session, principal: Principal, application_id: int, *, to_me: bool, at: datetime,
) -> None:
    """Take over a chain (担当する) or release it (担当を外す); reviewer and department_admin only.
    Releasing someone else's chain is a department_admin's call."""
    principal.require(CHANGE_ROLES, "work applications")
    app = load_for(session, principal, application_id, lock=True)
    if not to_me and app.assigned_to not in (None, principal.login) and Role.DEPARTMENT_ADMIN not in principal.roles:
        raise AccessDenied("only a department admin releases another member's case", cause=Denial.ROLE)
    before = app.assigned_to
    app.assigned_to = principal.login if to_me else None
    app.updated_at = at
    append_access(session, actor=principal.access_actor(), at=at, action="application.assign",
                  subject=f"application:{app.id}", reason=f"担当変更: {before or '-'} → {app.assigned_to or '-'}",
                  atena_number=app.atena_number)


def reveal(
    session: Session, principal: Principal, application_id: int, *, version_id: int, position: int, reason: str,
    at: datetime, sealer: Sealer,
) -> str:
    """:func:`intake.mynumbers.service.reveal_my_number`, for a version in the principal's scope."""
    version = version_of(session, principal, application_id, version_id)
    return reveal_my_number(session, actor=principal.access_actor(), version_id=version.id, position=position,
                            reason=reason, at=at, sealer=sealer, atena_number=version.application.atena_number)
