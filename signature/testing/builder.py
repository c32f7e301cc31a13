"""Builds application packages in the format of package-format.md, for tests, the demo and portal_sim.

Two applicant signers:

* :func:`sign_manifest` — this module's own minimal XMLDSig signer. It can write what real tools
  write (raw or percent-encoded ``#構成情報``) and what attackers write (SHA-1, HMAC, DSA, small
  keys), which the verifier must refuse.
* :func:`sign_manifest_xmlsec1` — the ``xmlsec1`` command line, an *independent* implementation:
  packages it signs must verify, so the verifier is not only checked against its own twin. It
  writes exclusive C14N with ``InclusiveNamespaces`` and intermediate certificates too.

The portal's 到達情報 is signed with python-xmlsec (enveloped signature), again not with our code.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from signature.algorithms import CanonicalizationMethod, DigestMethod, SignatureMethod
from signature.package import ARRIVAL_FILE, MANIFEST_FILE, MANIFEST_ID
from signature.testing.pki import Issued
from signature.xmldsig import DSIG_NS, EXC_C14N_NS, canonicalize
from signature.xmlparse import parse_xml

__all__ = [
    "Applicant",
    "ApplicationSpec",
    "Attachment",
    "SigningOptions",
    "arrival_document",
    "build_package",
    "manifest_document",
    "sign_arrival",
    "sign_manifest",
    "sign_manifest_xmlsec1",
    "zip_package",
]

SHA1_DIGEST = "http://www.w3.org/2000/09/xmldsig#sha1"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
DSA_SHA256 = "http://www.w3.org/2009/xmldsig11#dsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    SignatureMethod.RSA_SHA256.value: hashes.SHA256,
    SignatureMethod.RSA_SHA384.value: hashes.SHA384,
    SignatureMethod.RSA_SHA512.value: hashes.SHA512,
    RSA_SHA1: hashes.SHA1,
    HMAC_SHA256: hashes.SHA256,
    DSA_SHA256: hashes.SHA256,
    ECDSA_SHA256: hashes.SHA256,
}
_DIGESTS = {
    DigestMethod.SHA256.value: "sha256",
    DigestMethod.SHA384.value: "sha384",
    DigestMethod.SHA512.value: "sha512",
    SHA1_DIGEST: "sha1",
}


def _ds(local: str) -> str:
    return f"{{{DSIG_NS}}}{local}"


@dataclass(frozen=True)
class Applicant:
    """申請者情報 as the resident typed it into the portal (contact data, not the certificate's)."""

    name: str
    name_kana: str
    postal_code: str
    address: str
    phone: str = ""
    email: str = ""
    #: a 個人番号 in 申請者情報 too (some portals' manifests carry one), optionally in a namespace
    my_number: str | None = field(default=None, repr=False)
    my_number_namespace: str | None = None


@dataclass(frozen=True)
class Attachment:
    title: str
    file_name: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class ApplicationSpec:
    """Everything one package says."""

    receipt_number: str
    arrived_at: datetime
    procedure_id: str
    procedure_name: str
    form_file: str
    form_xml: bytes = field(repr=False)
    applicant: Applicant
    user_cert_serial: str
    attachments: tuple[Attachment, ...] = ()
    kind: str = "新規申請"
    first_receipt_number: str | None = None
    organisation_code: str = "131032"
    form_id: str = "FORM-01"


@dataclass(frozen=True)
class SigningOptions:
    """How the applicant's signature is written. Defaults are what package-format.md prescribes."""

    signature_method: str = SignatureMethod.RSA_SHA256.value
    digest_method: str = DigestMethod.SHA256.value
    canonicalization: str = CanonicalizationMethod.C14N_10.value
    manifest_transforms: tuple[str, ...] = (CanonicalizationMethod.C14N_10.value,)
    uri_style: Literal["raw", "percent"] = "raw"
    chain: tuple[x509.Certificate, ...] = ()  # intermediates written into KeyInfo after the signer
    hmac_key: bytes | None = None  # with HMAC_SHA256: an attacker's shared-secret "signature"
    #: ``ec:InclusiveNamespaces PrefixList`` of SignedInfo's (exclusive) CanonicalizationMethod
    inclusive_prefixes: tuple[str, ...] | None = None
    #: … of the (exclusive) transform of the ``#構成情報`` reference
    manifest_inclusive_prefixes: tuple[str, ...] | None = None
    #: extra namespace declarations on ``ds:Signature`` (None: a default namespace)
    signature_namespaces: Mapping[str | None, str] = field(default_factory=dict)


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def manifest_document(spec: ApplicationSpec) -> etree._Element:
    """``DataRoot`` with ``構成情報`` filled in and an empty ``署名情報``."""
    root = etree.Element("DataRoot")
    _sub(root, "様式ID", "KOUSEI")
    _sub(root, "様式バージョン", "0001")
    m = _sub(root, MANIFEST_ID)
    m.set("ID", MANIFEST_ID)
    admin = _sub(m, "管理情報")
    number = _sub(admin, "手続番号")
    _sub(number, "受付行政機関ID", spec.organisation_code)
    _sub(number, "手続ID", spec.procedure_id)
    _sub(admin, "手続名称", spec.procedure_name)
    _sub(admin, "申請種別", spec.kind)
    _sub(admin, "初回受付番号", spec.first_receipt_number)
    applicant = _sub(_sub(admin, "申請者連絡先情報"), "申請者情報")
    a = spec.applicant
    for tag, value in (("氏名", a.name), ("氏名フリガナ", a.name_kana), ("郵便番号", a.postal_code),
                       ("住所", a.address), ("電話番号", a.phone), ("電子メールアドレス", a.email)):
        _sub(applicant, tag, value)
    if a.my_number is not None:
        if a.my_number_namespace is None:
            _sub(applicant, "個人番号", a.my_number)
        else:
            etree.SubElement(applicant, f"{{{a.my_number_namespace}}}個人番号",
                             nsmap={"a": a.my_number_namespace}).text = a.my_number
    form = _sub(m, "申請書属性情報")
    _sub(form, "申請書様式ID", spec.form_id)
    _sub(form, "申請書様式バージョン", "0001")
    _sub(form, "申請書ファイル名称", spec.form_file)
    for att in spec.attachments:
        el = _sub(m, "添付書類属性情報")
        _sub(el, "添付種別", "添付")
        _sub(el, "添付書類名称", att.title)
        _sub(el, "添付書類ファイル名称", att.file_name)
    _sub(root, "署名情報")
    return root


def _find(root: etree._Element, tag: str) -> etree._Element:
    found = root.find(tag)
    if found is None:
        raise ValueError(f"{tag} missing: not a document from manifest_document()")
    return found


def _files(spec: ApplicationSpec) -> dict[str, bytes]:
    return {spec.form_file: spec.form_xml, **{a.file_name: a.data for a in spec.attachments}}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _c14n(el: etree._Element, method: str, prefixes: tuple[str, ...] | None = None) -> bytes:
    if prefixes is not None:
        # The verifier's own canonicalisation: lxml drops PrefixList entries it has not parsed
        # (#default among them), see signature.xmldsig.canonicalize. The caller re-parsed ``el``.
        return canonicalize(el, CanonicalizationMethod(method), prefixes)
    return etree.tostring(
        el, method="c14n", exclusive=method == CanonicalizationMethod.EXC_C14N.value, with_comments=False
    )


def _inclusive_namespaces(parent: etree._Element, prefixes: tuple[str, ...] | None) -> None:
    if prefixes is not None:
        etree.SubElement(parent, f"{{{EXC_C14N_NS}}}InclusiveNamespaces", nsmap={"ec": EXC_C14N_NS},
                         PrefixList=" ".join(prefixes))


def _reparsed(root: etree._Element) -> etree._Element:
    """``root`` serialised and parsed again, so that every prefix is known to the parser."""
    return parse_xml(etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8"))


def sign_manifest(
    root: etree._Element, files: Mapping[str, bytes], signer: Issued, options: SigningOptions | None = None
) -> bytes:
    """Sign ``root`` (from :func:`manifest_document`) and every file; return ``kousei.xml`` bytes."""
    options = options or SigningOptions()
    with_prefixes = options.inclusive_prefixes is not None or options.manifest_inclusive_prefixes is not None
    if with_prefixes:
        root = _reparsed(root)
    holder = _find(root, "署名情報")
    sig = etree.SubElement(holder, _ds("Signature"), nsmap={"ds": DSIG_NS, **options.signature_namespaces})
    signed_info = etree.SubElement(sig, _ds("SignedInfo"))
    c14n_method = etree.SubElement(signed_info, _ds("CanonicalizationMethod"), Algorithm=options.canonicalization)
    _inclusive_namespaces(c14n_method, options.inclusive_prefixes)
    etree.SubElement(signed_info, _ds("SignatureMethod"), Algorithm=options.signature_method)
    manifest = _find(root, MANIFEST_ID)
    uri = "#" + (quote(MANIFEST_ID) if options.uri_style == "percent" else MANIFEST_ID)
    c14n_for_ref = options.manifest_transforms[-1] if options.manifest_transforms else (
        CanonicalizationMethod.C14N_10.value)
    refs: list[tuple[str, tuple[str, ...], bytes]] = [
        (uri, options.manifest_transforms, _c14n(manifest, c14n_for_ref, options.manifest_inclusive_prefixes))
    ]
    for name, data in files.items():
        refs.append((quote(name) if options.uri_style == "percent" else name, (), data))
    for ref_uri, transforms, data in refs:
        ref = etree.SubElement(signed_info, _ds("Reference"), URI=ref_uri)
        if transforms:
            tr = etree.SubElement(ref, _ds("Transforms"))
            for t in transforms:
                transform = etree.SubElement(tr, _ds("Transform"), Algorithm=t)
                if ref_uri == uri and t == CanonicalizationMethod.EXC_C14N.value:
                    _inclusive_namespaces(transform, options.manifest_inclusive_prefixes)
        etree.SubElement(ref, _ds("DigestMethod"), Algorithm=options.digest_method)
        digest = hashlib.new(_DIGESTS[options.digest_method], data).digest()
        etree.SubElement(ref, _ds("DigestValue")).text = _b64(digest)
    etree.SubElement(sig, _ds("SignatureValue"))
    x509_data = etree.SubElement(etree.SubElement(sig, _ds("KeyInfo")), _ds("X509Data"))
    for cert in (signer.cert, *options.chain):
        etree.SubElement(x509_data, _ds("X509Certificate")).text = _b64(cert.public_bytes(Encoding.DER))
    if with_prefixes:
        root = _reparsed(root)
        signed_info = next(root.iter(_ds("SignedInfo")))
    value = _sign(_c14n(signed_info, options.canonicalization, options.inclusive_prefixes), signer, options)
    next(root.iter(_ds("SignatureValue"))).text = _b64(value)
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


def _sign(data: bytes, signer: Issued, options: SigningOptions) -> bytes:
    algorithm = _HASHES[options.signature_method]()
    if options.signature_method == HMAC_SHA256:
        mac = hmac.HMAC(options.hmac_key or b"shared secret", algorithm)
        mac.update(data)
        return mac.finalize()
    key = signer.key
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), algorithm)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(algorithm))
    # Last: only the DSA refusal tests reach the (deprecated, cryptography >= 51) DSA class.
    if isinstance(key, dsa.DSAPrivateKey):
        return key.sign(data, algorithm)
    raise TypeError(f"cannot sign with {type(key).__name__}")


def sign_manifest_xmlsec1(
    root: etree._Element,
    files: Mapping[str, bytes],
    signer: Issued,
    *,
    canonicalization: str = CanonicalizationMethod.C14N_10.value,
    inclusive_prefixes: tuple[str, ...] | None = None,
    manifest_transform: str = CanonicalizationMethod.C14N_10.value,
    manifest_inclusive_prefixes: tuple[str, ...] | None = None,
    chain: tuple[x509.Certificate, ...] = (),
    signature_namespaces: Mapping[str | None, str] | None = None,
) -> bytes:
    """Sign with the ``xmlsec1`` command line (Debian package xmlsec1): RSA-SHA256, raw URIs.

    The template says C14N 1.0 by default; ``canonicalization`` / ``manifest_transform`` may be
    exclusive C14N, with an ``ec:InclusiveNamespaces PrefixList`` from ``inclusive_prefixes`` /
    ``manifest_inclusive_prefixes`` — xmlsec1 computes those canonical forms itself. ``chain``
    certificates are handed to xmlsec1 with the key, which writes them into ``X509Data`` after the
    signer's (run in the folder holding the detached files, as pitfalls.md says).
    """
    exe = shutil.which("xmlsec1")
    if exe is None:
        raise FileNotFoundError("xmlsec1 is not installed (Debian package xmlsec1)")
    holder = _find(root, "署名情報")
    sig = etree.SubElement(holder, _ds("Signature"), nsmap={"ds": DSIG_NS, **(signature_namespaces or {})})
    signed_info = etree.SubElement(sig, _ds("SignedInfo"))
    c14n_method = etree.SubElement(signed_info, _ds("CanonicalizationMethod"), Algorithm=canonicalization)
    _inclusive_namespaces(c14n_method, inclusive_prefixes)
    etree.SubElement(signed_info, _ds("SignatureMethod"), Algorithm=SignatureMethod.RSA_SHA256.value)
    for ref_uri, transforms in [("#" + MANIFEST_ID, (manifest_transform,)), *((name, ()) for name in files)]:
        ref = etree.SubElement(signed_info, _ds("Reference"), URI=ref_uri)
        if transforms:
            tr = etree.SubElement(ref, _ds("Transforms"))
            for t in transforms:
                transform = etree.SubElement(tr, _ds("Transform"), Algorithm=t)
                if t == CanonicalizationMethod.EXC_C14N.value:
                    _inclusive_namespaces(transform, manifest_inclusive_prefixes)
        etree.SubElement(ref, _ds("DigestMethod"), Algorithm=DigestMethod.SHA256.value)
        etree.SubElement(ref, _ds("DigestValue"))
    etree.SubElement(sig, _ds("SignatureValue"))
    etree.SubElement(etree.SubElement(sig, _ds("KeyInfo")), _ds("X509Data"))
    with tempfile.TemporaryDirectory(prefix="xmlsec1-sign-") as tmp:
        work = Path(tmp)
        for name, data in files.items():
            (work / name).write_bytes(data)
        (work / "signer-key.pem").write_bytes(signer.key_pem())
        (work / "signer-cert.pem").write_bytes(signer.cert_pem())
        key_files = ["signer-key.pem", "signer-cert.pem"]
        for i, cert in enumerate(chain):
            (work / f"chain-{i}.pem").write_bytes(cert.public_bytes(Encoding.PEM))
            key_files.append(f"chain-{i}.pem")
        (work / "template.xml").write_bytes(
            etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8"))
        subprocess.run(
            [exe, "--sign", "--privkey-pem", ",".join(key_files), "--id-attr:ID", MANIFEST_ID,
             "--output", "kousei.xml", "template.xml"],
            cwd=work, check=True, capture_output=True, timeout=60,
        )
        return (work / "kousei.xml").read_bytes()


def arrival_document(spec: ApplicationSpec, kousei: bytes) -> etree._Element:
    """The portal's 到達情報 for ``kousei`` (unsigned)."""
    root = etree.Element("到達情報")
    _sub(root, "受付番号", spec.receipt_number)
    _sub(root, "到達日時", spec.arrived_at.isoformat())
    _sub(root, "手続ID", spec.procedure_id)
    _sub(root, "利用者証明用電子証明書シリアル番号", spec.user_cert_serial)
    digest = _sub(root, "構成情報ダイジェスト", _b64(hashlib.sha256(kousei).digest()))
    digest.set("Algorithm", DigestMethod.SHA256.value)
    return root


def sign_arrival(root: etree._Element, portal: Issued) -> bytes:
    """Enveloped RSA-SHA256 signature by the portal, made with python-xmlsec."""
    sig = xmlsec.template.create(root, xmlsec.constants.TransformInclC14N, xmlsec.constants.TransformRsaSha256,
                                 ns="ds")
    root.append(sig)
    ref = xmlsec.template.add_reference(sig, xmlsec.constants.TransformSha256, uri="")
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformInclC14N)
    xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(sig))
    ctx = xmlsec.SignatureContext()
    key = xmlsec.Key.from_memory(portal.key_pem(), xmlsec.constants.KeyDataFormatPem, None)
    key.load_cert_from_memory(portal.cert_pem(), xmlsec.constants.KeyDataFormatCertPem)
    ctx.key = key
    ctx.sign(sig)
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


class _Cp932ZipInfo(zipfile.ZipInfo):
    """zipfile writes every non-ASCII name as UTF-8 with flag bit 11; Japanese Windows tools write
    CP932 without the flag. This overrides zipfile's (private) name encoder to do the latter."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("cp932"), self.flag_bits & ~0x800


def zip_package(
    entries: Sequence[tuple[str, bytes]], *, folder: str | None = None, cp932_names: bool = False,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """A ZIP of ``entries``; with ``cp932_names`` the names are CP932 without the UTF-8 flag,
    as Japanese Windows tools write them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries:
            full = f"{folder}/{name}" if folder else name
            info = (_Cp932ZipInfo if cp932_names else zipfile.ZipInfo)(full, date_time=(2026, 11, 25, 10, 0, 0))
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def build_package(
    spec: ApplicationSpec,
    *,
    signer: Issued,
    portal: Issued,
    options: SigningOptions | None = None,
    tool: Literal["python", "xmlsec1"] = "python",
    folder: str | None = None,
    cp932_names: bool = False,
) -> bytes:
    """A complete package: signed kousei.xml, form, attachments and the portal's signed 到達情報."""
    root = manifest_document(spec)
    files = _files(spec)
    if tool == "xmlsec1":
        kousei = sign_manifest_xmlsec1(root, files, signer)
    else:
        kousei = sign_manifest(root, files, signer, options)
    arrival = sign_arrival(arrival_document(spec, kousei), portal)
    entries = [(MANIFEST_FILE, kousei), (ARRIVAL_FILE, arrival), *files.items()]
    return zip_package(entries, folder=folder, cp932_names=cp932_names)

