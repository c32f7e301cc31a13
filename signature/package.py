"""The narrow adapter for the package layout of package-format.md (e-Gov precedent).

It knows where things are in *this* layout — ``kousei.xml`` with ``DataRoot/構成情報`` and
``DataRoot/署名情報/ds:Signature``, detached file references, the portal's ``到達情報.xml`` — and fixes
the structure before any signature is checked, so that signature wrapping has nowhere to hide:
one ``構成情報``, a child of ``DataRoot``; one signature, in ``署名情報``; no duplicate IDs; every
file referenced exactly once. Another real-world layout would be a second adapter beside this one.
Everything returned is read from what a verified signature covered.

"What is read is what was verified" without parsing twice: each document is parsed once, and a
signed element's digest is computed over the canonical form of *that parsed subtree* (the
manifest: ``構成情報`` itself; the arrival record: the copy of its document that the
enveloped-signature transform produced). The fields are then read from the very subtree that was
canonicalised — not re-located, not re-parsed, not modified after canonicalisation. The canonical
form (C14N 1.0 or exclusive C14N, both without comments) serialises that subtree's elements,
attributes, text and processing instructions and leaves out only its comments, so the readers
here look at the tree as the canonical form shows it: :func:`_signed_text` joins text that a
comment splits, and :func:`_has_content_children` does not count comments. A comment inserted
after signing (it does not break the signature) therefore cannot cut a value short, and a value
reads exactly as re-parsing the canonical bytes would read it (tests/signature/test_vectors.py,
``test_comment_inside_signed_*``; tests/signature/test_verify_passes.py). Before, each signed
element's canonical bytes were parsed a second time to read them.
"""

from __future__ import annotations

import base64
import hmac
import re
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from signature.algorithms import CanonicalizationMethod, DigestMethod
from signature.errors import UnreadablePackage, VerificationFailure
from signature.policy import VerificationPolicy
from signature.report import ArrivalRecord, Manifest, ReasonCode, SubIndication
from signature.xmldsig import (
    DSIG_NS,
    ENVELOPED_CHAINS,
    FILE_CHAINS,
    SAME_DOCUMENT_CHAINS,
    Reference,
    VerifiedSignature,
    canonicalize,
    canonicalize_document,
    reference_c14n,
    verify_signature,
    without_signature,
)
from signature.xmlparse import parse_xml
from signature.zipreader import PackageFiles

__all__ = [
    "APPLICATION_KINDS",
    "ARRIVAL_FILE",
    "MANIFEST_FILE",
    "MANIFEST_ID",
    "VerifiedApplicant",
    "VerifiedArrival",
    "check_procedure",
    "verify_applicant",
    "verify_arrival",
]

MANIFEST_FILE = "kousei.xml"
ARRIVAL_FILE = "到達情報.xml"
MANIFEST_ID = "構成情報"
APPLICATION_KINDS = ("新規申請", "再申請", "補正", "取下げ")
_SIGNATURE = f"{{{DSIG_NS}}}Signature"
_ID_ATTRIBUTES = ("ID", "Id", "id")
_RECEIPT_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")
_SERIAL_RE = re.compile(r"[0-9A-Fa-f]{1,64}")


@dataclass(frozen=True, slots=True)
class VerifiedApplicant:
    manifest: Manifest
    manifest_bytes: bytes  # the canonical 構成情報 that the applicant's signature covers
    signature: VerifiedSignature
    files: dict[str, bytes]  # file name → verified raw bytes (form and attachments)


@dataclass(frozen=True, slots=True)
class VerifiedArrival:
    record: ArrivalRecord
    signature: VerifiedSignature


def _bad_manifest(detail: str) -> VerificationFailure:
    return VerificationFailure(ReasonCode.BAD_MANIFEST, detail)


def _structure(detail: str) -> VerificationFailure:
    return VerificationFailure(ReasonCode.SIGNATURE_STRUCTURE, detail)


_ID_VALUES = threading.local()  # a compiled XPath per thread (lxml's evaluators are not shared)


def _check_unique_ids(root: etree._Element) -> None:
    xpath = getattr(_ID_VALUES, "xpath", None)
    if xpath is None:
        # Every element's ID, Id and id attribute (no namespace), as el.get() reads them.
        xpath = _ID_VALUES.xpath = etree.XPath(" | ".join(f"//@{a}" for a in _ID_ATTRIBUTES))
    values = Counter(str(v) for v in xpath(root))
    dups = sorted(v for v, n in values.items() if n > 1)
    if dups:
        raise VerificationFailure(ReasonCode.DUPLICATE_ID, f"duplicate ID values: {dups}")


def _only_signature(root: etree._Element, parent: etree._Element) -> etree._Element:
    signatures = list(root.iter(_SIGNATURE))
    if len(signatures) != 1 or signatures[0].getparent() is not parent:
        raise _structure(f"expected exactly one ds:Signature in its place, found {len(signatures)}")
    return signatures[0]


def _signed_text(el: etree._Element) -> str:
    """``el``'s leading text as its canonical form (without comments) has it.

    lxml's ``el.text`` stops at the first child node, a comment included; canonicalisation drops
    the comment, so the text before it and its tail are one text. It stops at the first child
    that canonical form keeps (an element or a processing instruction), as a parser would.
    """
    text = el.text or ""
    for child in el:
        if not isinstance(child, etree._Comment):
            break
        text += child.tail or ""
    return text


def _has_content_children(el: etree._Element) -> bool:
    """Whether ``el`` has a child that its canonical form keeps (anything but a comment)."""
    return any(not isinstance(child, etree._Comment) for child in el)


def _text(parent: etree._Element, path: str, *, required: bool = True) -> str:
    """Text of the single element at ``path``; refuses zero (if required) or several matches."""
    found = parent.findall(path)
    if len(found) > 1:
        raise _bad_manifest(f"{path} appears {len(found)} times")
    if not found:
        if required:
            raise _bad_manifest(f"{path} is missing")
        return ""
    el = found[0]
    if _has_content_children(el):
        raise _bad_manifest(f"{path} has child elements")
    return _signed_text(el).strip()


#: libxml2's limit on one text node without ``huge_tree`` (XML_MAX_TEXT_LENGTH), in bytes.
_LIBXML2_TEXT_LIMIT = 10_000_000


def _check_canonical_size(canonical: bytes, max_bytes: int) -> None:
    # The canonical form was once parsed with the byte limit of every XML document; it is read
    # in place now, and the limit still holds for it (C14N can be larger than the document).
    if len(canonical) > max_bytes:
        raise UnreadablePackage(ReasonCode.XML_TOO_LARGE, f"XML document over {max_bytes} bytes")
    # Text split by comments or CDATA in the received document is one text node in the canonical
    # form (and removing an enveloped signature joins the text around it), so a value of pieces
    # each under libxml2's per-node limit can be over it there — which the parse of the canonical
    # form refused (XML_MALFORMED). Only a canonical form longer than that limit can hold such a
    # node: then it is parsed as before, and refused exactly as before (found by differential
    # testing against the code that always parsed it).
    if len(canonical) > _LIBXML2_TEXT_LIMIT:
        parse_xml(canonical, max_bytes=max_bytes)


def _file_name(name: str, what: str) -> str:
    if not name or "/" in name or "\\" in name or name in (MANIFEST_FILE, ARRIVAL_FILE):
        raise _bad_manifest(f"{what} is not a plain file name of the package")
    return name


def _read_manifest(el: etree._Element) -> Manifest:
    """The manifest fields of ``el``, the ``構成情報`` element whose canonical form was digested.

    Read as the canonical form shows it (module docstring): comments, and anything outside the
    signed element, cannot change what is read.
    """
    kind = _text(el, "管理情報/申請種別")
    if kind not in APPLICATION_KINDS:
        raise _bad_manifest("申請種別 is not one of 新規申請/再申請/補正/取下げ")
    first = _text(el, "管理情報/初回受付番号", required=False) or None
    if kind != "新規申請" and first is None:
        raise _bad_manifest("初回受付番号 is required for 再申請, 補正 and 取下げ")
    if first is not None and not _RECEIPT_RE.fullmatch(first):
        raise _bad_manifest("初回受付番号 is malformed")
    procedure_id = _text(el, "管理情報/手続番号/手続ID")
    if not procedure_id:
        raise _bad_manifest("手続ID is empty")
    applicants = el.findall("管理情報/申請者連絡先情報/申請者情報")
    if len(applicants) > 1:
        raise _bad_manifest("申請者情報 appears more than once")
    applicant = tuple(
        (str(c.tag), _signed_text(c).strip()) for c in (applicants[0] if applicants else ())
        if isinstance(c.tag, str)
    )
    attachments: list[tuple[str, str]] = []
    for att in el.findall("添付書類属性情報"):
        attachments.append((
            _text(att, "添付書類名称", required=False),
            _file_name(_text(att, "添付書類ファイル名称"), "添付書類ファイル名称"),
        ))
    form_file = _file_name(_text(el, "申請書属性情報/申請書ファイル名称"), "申請書ファイル名称")
    names = [form_file, *(f for _, f in attachments)]
    if len(set(names)) != len(names):
        raise _bad_manifest("a file is named twice in the manifest")
    return Manifest(
        organisation_code=_text(el, "管理情報/手続番号/受付行政機関ID"),
        procedure_id=procedure_id,
        procedure_name=_text(el, "管理情報/手続名称", required=False),
        application_kind=kind,
        first_receipt_number=first,
        form_file=form_file,
        attachments=tuple(attachments),
        applicant=applicant,
    )


def verify_applicant(files: PackageFiles, policy: VerificationPolicy) -> VerifiedApplicant:
    """Check ``kousei.xml``'s structure and the applicant's signature over it and every file."""
    raw = files.get(MANIFEST_FILE)
    if raw is None:
        raise VerificationFailure(ReasonCode.MISSING_FILE, f"{MANIFEST_FILE} is missing")
    root = parse_xml(raw, max_bytes=policy.limits.max_xml_bytes)
    if root.tag != "DataRoot":
        raise _bad_manifest("the document element of kousei.xml is not DataRoot")
    allowed = ("様式ID", "様式バージョン", MANIFEST_ID, "署名情報")
    if any(not isinstance(c.tag, str) or c.tag not in allowed for c in root if not _is_comment(c)):
        raise _bad_manifest("unexpected element under DataRoot")
    _check_unique_ids(root)
    manifests = list(root.iter(MANIFEST_ID))
    if len(manifests) != 1 or manifests[0].getparent() is not root:
        raise _structure(f"expected exactly one 構成情報 as a child of DataRoot, found {len(manifests)}")
    manifest_el = manifests[0]
    if manifest_el.get("ID") != MANIFEST_ID:
        raise _structure("構成情報 does not carry ID=\"構成情報\"")
    sig_parents = [c for c in root if c.tag == "署名情報"]
    if len(sig_parents) != 1:
        raise _structure("expected exactly one 署名情報 under DataRoot")
    signature = _only_signature(root, sig_parents[0])

    package_names = {n for n in files.names() if n not in (MANIFEST_FILE, ARRIVAL_FILE)}

    def chains(ref: Reference) -> tuple[tuple[str, ...], ...]:
        return SAME_DOCUMENT_CHAINS if ref.is_same_document else FILE_CHAINS

    def resolve(ref: Reference) -> bytes:
        if ref.is_same_document:
            if ref.fragment != MANIFEST_ID:
                raise VerificationFailure(ReasonCode.BAD_REFERENCE, "same-document reference is not #構成情報")
            # The digest is over this element's canonical form, and _read_manifest reads this
            # same element below: nothing re-locates it, re-parses it or changes the tree between.
            return canonicalize(manifest_el, reference_c14n(ref), ref.inclusive_prefixes)
        data = files.get(ref.uri) if ref.uri in package_names else None
        if data is None:
            raise VerificationFailure(ReasonCode.MISSING_FILE, f"referenced file {ref.uri!r} is not in the package")
        return data

    verified = verify_signature(signature, resolve, min_rsa_bits=policy.min_rsa_bits, allowed_transforms=chains)
    if ("#" + MANIFEST_ID) not in {r.uri for r, _ in verified.covered}:
        raise VerificationFailure(ReasonCode.BAD_REFERENCE, "the signature does not cover 構成情報")
    manifest_bytes = verified.data_for("#" + MANIFEST_ID)
    _check_canonical_size(manifest_bytes, policy.limits.max_xml_bytes)
    manifest = _read_manifest(manifest_el)

    referenced = {r.uri for r, _ in verified.covered if not r.is_same_document}
    named = {manifest.form_file, *(f for _, f in manifest.attachments)}
    if missing := sorted(named - package_names):
        raise VerificationFailure(ReasonCode.MISSING_FILE, f"files named in the manifest are missing: {missing}")
    if unreferenced := sorted(package_names - referenced):
        raise VerificationFailure(ReasonCode.UNREFERENCED_FILE, f"files not covered by the signature: {unreferenced}")
    if unnamed := sorted(referenced - named):
        raise _bad_manifest(f"signed files not named in the manifest: {unnamed}")
    return VerifiedApplicant(
        manifest=manifest,
        manifest_bytes=manifest_bytes,
        signature=verified,
        files={r.uri: data for r, data in verified.covered if not r.is_same_document},
    )


def _is_comment(node: etree._Element) -> bool:
    return not isinstance(node.tag, str)


def verify_arrival(files: PackageFiles, policy: VerificationPolicy) -> VerifiedArrival:
    """Check the portal's ``到達情報.xml``: its signature and its binding to ``kousei.xml``'s bytes.

    It does not depend on the applicant's signature, so even a package whose applicant signature
    fails still has a trustworthy 受付番号. The caller checks the portal's certificate chain and
    that the 手続ID equals the verified manifest's (:func:`check_procedure`).
    """
    raw = files.get(ARRIVAL_FILE)
    kousei = files.get(MANIFEST_FILE)
    if raw is None or kousei is None:
        raise VerificationFailure(ReasonCode.MISSING_FILE, f"{ARRIVAL_FILE} is missing")
    root = parse_xml(raw, max_bytes=policy.limits.max_xml_bytes)
    if root.tag != "到達情報":
        raise _arrival("the document element is not 到達情報")
    _check_unique_ids(root)
    signature = _only_signature(root, root)
    # The enveloped-signature transform's copy of the document whose canonical form was digested:
    # the fields are read from it below (module docstring), not from the received tree.
    digested: list[etree._ElementTree] = []

    def resolve(ref: Reference) -> bytes:
        if ref.uri != "":
            raise VerificationFailure(ReasonCode.BAD_REFERENCE, "the arrival record must be signed with URI=\"\"")
        method = CanonicalizationMethod.C14N_10
        if ref.transforms[-1] == CanonicalizationMethod.EXC_C14N.value:
            method = CanonicalizationMethod.EXC_C14N
        enveloped = without_signature(signature)
        digested.append(enveloped)
        return canonicalize_document(enveloped, method, ref.inclusive_prefixes)

    verified = verify_signature(
        signature, resolve, min_rsa_bits=policy.min_rsa_bits, allowed_transforms=lambda _ref: ENVELOPED_CHAINS
    )
    if len(verified.covered) != 1 or len(digested) != 1:
        raise VerificationFailure(ReasonCode.BAD_REFERENCE, "the arrival record must have one reference")
    _check_canonical_size(verified.covered[0][1], policy.limits.max_xml_bytes)
    doc = digested[0].getroot()
    allowed = {"受付番号", "到達日時", "手続ID", "利用者証明用電子証明書シリアル番号", "構成情報ダイジェスト"}
    if any(not isinstance(c.tag, str) or c.tag not in allowed for c in doc if not _is_comment(c)):
        raise _arrival("unexpected element in 到達情報")

    def field(name: str) -> str:
        found = doc.findall(name)
        if len(found) != 1 or _has_content_children(found[0]):
            raise _arrival(f"{name} must appear exactly once")
        return _signed_text(found[0]).strip()

    receipt = field("受付番号")
    if not _RECEIPT_RE.fullmatch(receipt):
        raise _arrival("受付番号 is malformed")
    try:
        arrived_at = datetime.fromisoformat(field("到達日時"))
    except ValueError as exc:
        raise _arrival("到達日時 is not an ISO 8601 date-time") from exc
    if arrived_at.tzinfo is None:
        raise _arrival("到達日時 has no UTC offset")
    serial = field("利用者証明用電子証明書シリアル番号")
    if not _SERIAL_RE.fullmatch(serial):
        raise _arrival("利用者証明用電子証明書シリアル番号 is malformed")
    field("構成情報ダイジェスト")  # exactly once, no children
    digest_el = doc.find("構成情報ダイジェスト")
    if digest_el is None:  # pragma: no cover - field() has just checked it
        raise _arrival("構成情報ダイジェスト is missing")
    try:
        digest_method = DigestMethod(digest_el.get("Algorithm", ""))
    except ValueError:
        raise _arrival("構成情報ダイジェスト uses an algorithm that is not allowed") from None
    try:
        expected = base64.b64decode("".join(_signed_text(digest_el).split()), validate=True)
    except ValueError as exc:
        raise _arrival("構成情報ダイジェスト is not base64") from exc
    h = digest_method.new()
    h.update(kousei)
    if not hmac.compare_digest(h.digest(), expected):
        raise _arrival("the arrival record was issued for a different kousei.xml")
    procedure_id = field("手続ID")
    record = ArrivalRecord(
        receipt_number=receipt,
        arrived_at=arrived_at,
        procedure_id=procedure_id,
        user_cert_serial=serial.upper().lstrip("0") or "0",
        portal_cert_subject=verified.signer.subject.rfc4514_string(),
    )
    return VerifiedArrival(record, verified)


def check_procedure(arrival: ArrivalRecord, manifest: Manifest) -> None:
    """package-format.md §3: the arrival record's 手続ID MUST equal the manifest's."""
    if arrival.procedure_id != manifest.procedure_id:
        raise _arrival("手続ID differs between the arrival record and the manifest")


def _arrival(detail: str) -> VerificationFailure:
    return VerificationFailure(ReasonCode.ARRIVAL_MISMATCH, detail, sub_indication=SubIndication.FORMAT_FAILURE)
