"""XMLDSig core validation for our narrow profile, bound to the bytes it returns.

Why not a library's ``verify()`` alone (see docs/decisions.md, "XML signature engine"):

* libxmlsec1 (python-xmlsec and the ``xmlsec1`` command line) cannot dereference the
  percent-encoded same-document URI ``#%E6%A7%8B…`` that real e-Gov packages use, and its
  ``verify()`` does not say which node a reference resolved to, so signature wrapping passes it;
* signxml 5.2 cannot re-parse documents with Japanese element names at all.

So the work is split: **lxml (libxml2)** canonicalises, **cryptography (OpenSSL)** checks the
RSA PKCS#1 v1.5 signature value over the canonical ``SignedInfo`` (python-xmlsec's
``verify_binary`` did the same at ~4× the cost, docs/decisions.md), and this module does reference
dereferencing itself — only the handful of forms package-format.md allows. The caller supplies
the bytes each reference must digest to (a structurally located element's canonical form, or a
file's raw bytes) and gets back exactly those bytes as "verified": what is read afterwards is
those bytes, or (:mod:`signature.package`) the parsed element they are the canonical form of, read
as that canonical form shows it.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from signature.algorithms import (
    ENVELOPED_SIGNATURE,
    CanonicalizationMethod,
    DigestMethod,
    SignatureMethod,
)
from signature.errors import VerificationFailure
from signature.report import Indication, ReasonCode, SubIndication

__all__ = [
    "DEFAULT_PREFIX",
    "DSIG_NS",
    "EXC_C14N_NS",
    "Reference",
    "VerifiedSignature",
    "canonicalize",
    "canonicalize_document",
    "canonicalize_enveloped",
    "reference_c14n",
    "verify_signature",
    "without_signature",
]

DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
#: Namespace of ``ec:InclusiveNamespaces`` (Exclusive XML Canonicalization 1.0, §3).
EXC_C14N_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"
#: The PrefixList token that stands for the default namespace.
DEFAULT_PREFIX = "#default"
_INCLUSIVE_NAMESPACES = f"{{{EXC_C14N_NS}}}InclusiveNamespaces"
_XML_ATTR = "{http://www.w3.org/XML/1998/namespace}"
# An NCName (a prefix): a letter or "_", then letters, digits, ".", "-", "_" (Unicode-aware).
_NCNAME = re.compile(r"[^\W\d][\w.\-]*")


def _ds(local: str) -> str:
    return f"{{{DSIG_NS}}}{local}"


_TRANSFORMS, _TRANSFORM, _REFERENCE = _ds("Transforms"), _ds("Transform"), _ds("Reference")
_REFERENCE_CHILDREN = frozenset({_TRANSFORMS, _ds("DigestMethod"), _ds("DigestValue")})
_SIGNATURE_CHILDREN = frozenset({_ds("SignedInfo"), _ds("SignatureValue"), _ds("KeyInfo")})


def _structure(detail: str) -> VerificationFailure:
    return VerificationFailure(ReasonCode.SIGNATURE_STRUCTURE, detail)


def _weak(detail: str) -> VerificationFailure:
    return VerificationFailure(
        ReasonCode.WEAK_ALGORITHM, detail,
        indication=Indication.INDETERMINATE, sub_indication=SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
    )


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``ds:Reference`` as written, with its URI percent-decoded.

    ``inclusive_prefixes`` is the PrefixList of an ``ec:InclusiveNamespaces`` parameter of the
    final exclusive-C14N transform (``#default`` stands for the default namespace), else empty.
    """

    uri: str
    transforms: tuple[str, ...]
    digest_method: DigestMethod
    digest_value: bytes = field(repr=False)
    inclusive_prefixes: tuple[str, ...] = ()

    @property
    def is_same_document(self) -> bool:
        return self.uri.startswith("#")

    @property
    def fragment(self) -> str:
        return self.uri[1:]


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """What a valid signature covers: each reference with the exact bytes that were digested."""

    signature_method: SignatureMethod
    canonicalization: CanonicalizationMethod
    covered: tuple[tuple[Reference, bytes], ...]
    certificates: tuple[x509.Certificate, ...]  # signer first, then what KeyInfo carried
    #: PrefixList of SignedInfo's exclusive canonicalisation (``ec:InclusiveNamespaces``), if any
    inclusive_prefixes: tuple[str, ...] = ()

    @property
    def signer(self) -> x509.Certificate:
        return self.certificates[0]

    def data_for(self, uri: str) -> bytes:
        """The verified bytes of the reference with (decoded) ``uri``."""
        for ref, data in self.covered:
            if ref.uri == uri:
                return data
        raise KeyError(uri)


def reference_c14n(ref: Reference) -> CanonicalizationMethod:
    """The canonicalisation a same-document reference's node-set is turned into octets with."""
    if ref.transforms and ref.transforms[-1] == CanonicalizationMethod.EXC_C14N.value:
        return CanonicalizationMethod.EXC_C14N
    return CanonicalizationMethod.C14N_10


def canonicalize(
    element: etree._Element, method: CanonicalizationMethod, inclusive_prefixes: Sequence[str] = ()
) -> bytes:
    """Canonical form of ``element``'s subtree in its document context, comments removed.

    lxml canonicalises a subtree as if it were a document of its own: in-scope namespaces are
    kept, but inclusive C14N 1.0 also requires the ``xml:*`` attributes of ancestors (``xml:lang``
    on ``DataRoot``, say) to appear on the apex — libxmlsec1 and the ``xmlsec1`` signer do that.
    Without them a correctly signed package would fail, so they are added to a copy here.

    ``inclusive_prefixes`` (exclusive C14N only) is an ``InclusiveNamespaces`` PrefixList: those
    namespaces are rendered as inclusive C14N would. ``element`` must come from a *parsed*
    document (lxml passes libxml2 only prefixes its parser has seen and silently drops others) —
    the verifier only canonicalises parsed documents. ``#default`` is handled here, not by lxml,
    which drops it for the same reason (see :func:`_render_default_namespace`).
    """
    if inclusive_prefixes and not method.exclusive:
        raise _structure("InclusiveNamespaces is a parameter of exclusive canonicalisation only")
    if method.exclusive:
        prefixes = [p for p in inclusive_prefixes if p != DEFAULT_PREFIX]
        out = etree.tostring(element, method="c14n", exclusive=True, with_comments=False,
                             inclusive_ns_prefixes=prefixes or None)
        _check_apex_prefixes(element, prefixes, out)
        if DEFAULT_PREFIX in inclusive_prefixes:
            out = _render_default_namespace(element, out)
        return out
    inherited: dict[str, str] = {}
    for ancestor in element.iterancestors():  # nearest first: the nearest value wins
        for name, value in ancestor.attrib.items():
            if str(name).startswith(_XML_ATTR) and name not in inherited:
                inherited[str(name)] = str(value)
    missing = {k: v for k, v in inherited.items() if k not in element.attrib}
    if missing:
        element = copy.deepcopy(element)
        for name, value in missing.items():
            element.set(name, value)
    return etree.tostring(element, method="c14n", exclusive=False, with_comments=False)


def canonicalize_enveloped(
    signature: etree._Element, method: CanonicalizationMethod, inclusive_prefixes: Sequence[str] = ()
) -> bytes:
    """``URI=""`` + enveloped-signature transform: the whole document without ``signature``."""
    return canonicalize_document(without_signature(signature), method, inclusive_prefixes)


def without_signature(signature: etree._Element) -> etree._ElementTree:
    """A copy of ``signature``'s whole document with ``signature`` removed: the node-set of the
    enveloped-signature transform (``URI=""`` also selects processing instructions outside the
    root element). The original document is not touched."""
    if signature.getparent() is None:
        raise _structure("the signature is the document element")
    # Find the same element in a copy by its position, so the original stays untouched.
    path: list[int] = []
    node = signature
    while (up := node.getparent()) is not None:
        path.append(up.index(node))
        node = up
    doc = copy.deepcopy(node.getroottree())
    copy_sig = doc.getroot()
    for i in reversed(path):
        copy_sig = copy_sig[i]
    parent = copy_sig.getparent()
    if parent is None:  # pragma: no cover - the copy has the original's shape
        raise _structure("the signature lost its parent in the copy")
    # Removing an lxml element also drops its tail text; the transform removes only the element.
    tail = copy_sig.tail
    prev = copy_sig.getprevious()
    if tail:
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(copy_sig)
    return doc


def canonicalize_document(
    doc: etree._ElementTree, method: CanonicalizationMethod, inclusive_prefixes: Sequence[str] = ()
) -> bytes:
    """Canonical form of the whole document ``doc``, comments removed."""
    if inclusive_prefixes and not method.exclusive:
        raise _structure("InclusiveNamespaces is a parameter of exclusive canonicalisation only")
    prefixes = [p for p in inclusive_prefixes if p != DEFAULT_PREFIX]
    out = etree.tostring(doc, method="c14n", exclusive=method.exclusive, with_comments=False,
                         inclusive_ns_prefixes=prefixes or None)
    _check_apex_prefixes(doc.getroot(), prefixes, out)
    if DEFAULT_PREFIX in inclusive_prefixes:
        out = _render_default_namespace(doc.getroot(), out)
    return out


def _check_apex_prefixes(apex: etree._Element, prefixes: Sequence[str], canonical: bytes) -> None:
    """Every listed prefix in scope at the apex must be declared on it (inclusive rule).

    A guard against lxml dropping a prefix its parser dictionary does not hold (documents built
    in memory): that would silently verify a different octet stream.
    """
    if not prefixes:
        return
    tag = _next_start_tag(canonical, 0)  # a document may start with processing instructions
    start = canonical[tag: canonical.index(b">", tag) + 1]
    in_scope = apex.nsmap
    for prefix in prefixes:
        if prefix in in_scope and prefix != "xml" and f" xmlns:{prefix}=".encode() not in start:
            raise _structure("InclusiveNamespaces prefix could not be rendered")


def _c14n_attr_value(value: str) -> str:
    """An attribute value escaped as C14N 1.0 writes it."""
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
            .replace("\t", "&#x9;").replace("\n", "&#xA;").replace("\r", "&#xD;"))


def _render_default_namespace(apex: etree._Element, canonical: bytes) -> bytes:
    """Apply ``#default`` of an InclusiveNamespaces PrefixList to lxml's exclusive C14N of ``apex``.

    lxml hands libxml2 only prefixes present in the parser's dictionary, so ``#default`` never
    arrives there. Without it, exclusive C14N renders the default namespace only where an element
    visibly uses it (an unprefixed element); with it, the default namespace is rendered as
    inclusive C14N does — wherever it differs from what the nearest output ancestor rendered,
    ``xmlns=""`` included. Both rules are computed per element in document order; where they
    differ, the default namespace declaration (always the first one after the element name in
    canonical form) is removed, added or changed. Canonical text escapes ``<`` everywhere and
    has no comments here, so every ``<`` followed by a name starts an element's tag.
    """
    plan: list[tuple[str | None, str | None]] = []  # per element: (lxml rendered, wanted)
    stack: list[tuple[etree._Element, str, str]] = [(apex, "", "")]  # (element, lxml parent, wanted parent)
    while stack:
        el, lx_parent, want_parent = stack.pop()
        in_scope = el.nsmap.get(None) or ""
        if el.prefix is None:  # visibly uses the default namespace (or none)
            ns = etree.QName(el).namespace or ""
            lx, lx_now = (ns if ns != lx_parent else None), ns
        else:
            lx, lx_now = None, lx_parent
        want = in_scope if in_scope != want_parent else None
        plan.append((lx, want))
        children = [c for c in el if isinstance(c.tag, str)]
        stack.extend((c, lx_now, in_scope) for c in reversed(children))
    if all(lx == want for lx, want in plan):
        return canonical
    out: list[bytes] = []
    pos = 0
    for lx, want in plan:
        tag = _next_start_tag(canonical, pos)
        name_end = tag + 1
        while canonical[name_end:name_end + 1] not in (b" ", b">"):
            name_end += 1
        out.append(canonical[pos:name_end])
        pos = name_end
        if lx is not None:
            declared = f' xmlns="{_c14n_attr_value(lx)}"'.encode()
            if not canonical.startswith(declared, pos):
                raise _structure("canonical form does not have the expected namespace declaration")
            pos += len(declared)
        if want is not None:
            out.append(f' xmlns="{_c14n_attr_value(want)}"'.encode())
    out.append(canonical[pos:])
    return b"".join(out)


def _next_start_tag(canonical: bytes, pos: int) -> int:
    while True:
        tag = canonical.find(b"<", pos)
        if tag < 0:
            raise _structure("canonical form has fewer elements than the document")
        if canonical[tag + 1:tag + 2] not in (b"/", b"?"):
            return tag
        pos = tag + 1


def _one(parent: etree._Element, local: str) -> etree._Element:
    tag = _ds(local)
    found = [c for c in parent if c.tag == tag]
    if len(found) != 1:
        raise _structure(f"expected exactly one ds:{local}, found {len(found)}")
    return found[0]


def _algorithm(el: etree._Element) -> str:
    alg = el.get("Algorithm")
    if not alg:
        raise _structure(f"{etree.QName(el).localname} without Algorithm")
    return alg


def _signature_method(uri: str) -> SignatureMethod:
    try:
        return SignatureMethod(uri)
    except ValueError:
        raise _weak(f"signature algorithm {uri} is not allowed") from None


def _digest_method(uri: str) -> DigestMethod:
    try:
        return DigestMethod(uri)
    except ValueError:
        raise _weak(f"digest algorithm {uri} is not allowed") from None


def _c14n_method(uri: str) -> CanonicalizationMethod:
    try:
        return CanonicalizationMethod(uri)
    except ValueError:
        raise VerificationFailure(
            ReasonCode.SIGNATURE_STRUCTURE, f"canonicalization {uri} is not allowed"
        ) from None


def _b64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _structure(f"{what} is not base64") from exc


def _no_text(el: etree._Element) -> None:
    if (el.text or "").strip() or any((c.tail or "").strip() for c in el):
        raise _structure(f"unexpected text in ds:{etree.QName(el).localname}")


def _inclusive_prefixes(parent: etree._Element, what: str) -> tuple[str, ...]:
    """The PrefixList of an exclusive-C14N method's single ``ec:InclusiveNamespaces`` child, or ()."""
    children = list(parent)
    if not children:
        return ()
    if len(children) != 1 or children[0].tag != _INCLUSIVE_NAMESPACES or len(children[0]):
        raise _structure(f"unexpected content in {what}")
    _no_text(parent)
    prefix_list = children[0].get("PrefixList")
    if prefix_list is None:
        raise _structure("InclusiveNamespaces without PrefixList")
    tokens = tuple(dict.fromkeys(prefix_list.split()))
    if any(t != DEFAULT_PREFIX and not _NCNAME.fullmatch(t) for t in tokens):
        raise _structure("InclusiveNamespaces PrefixList holds something that is not a prefix")
    return tokens


def _parse_reference(ref: etree._Element) -> Reference:
    raw_uri = ref.get("URI")
    if raw_uri is None:
        raise VerificationFailure(ReasonCode.BAD_REFERENCE, "reference without URI")
    try:
        uri = unquote(raw_uri, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise VerificationFailure(ReasonCode.BAD_REFERENCE, "reference URI is not UTF-8") from exc
    if any(c.tag not in _REFERENCE_CHILDREN for c in ref):
        raise _structure("unexpected element in ds:Reference")
    _no_text(ref)
    transforms: list[str] = []
    prefixes: tuple[str, ...] = ()
    tr_parents = [c for c in ref if c.tag == _TRANSFORMS]
    if len(tr_parents) > 1:
        raise _structure("more than one ds:Transforms")
    for tr_parent in tr_parents:
        for tr in tr_parent:
            if tr.tag != _TRANSFORM:
                raise _structure("unexpected element in ds:Transforms")
            algorithm = _algorithm(tr)
            if prefixes:
                raise _structure("InclusiveNamespaces is allowed on the last transform only")
            if algorithm == CanonicalizationMethod.EXC_C14N.value:
                prefixes = _inclusive_prefixes(tr, "ds:Transform")
            elif len(tr):
                raise _structure("transform parameters are not allowed")
            transforms.append(algorithm)
    digest_method = _digest_method(_algorithm(_one(ref, "DigestMethod")))
    digest_value = _b64(_one(ref, "DigestValue").text, "DigestValue")
    return Reference(uri, tuple(transforms), digest_method, digest_value, prefixes)


def _certificates(key_info: etree._Element) -> tuple[x509.Certificate, ...]:
    # The key must come from an X.509 certificate. The format allows X509Data only: a KeyValue is
    # an attacker's own key (xmlsec1 1.2.37 accepts it unless told otherwise, pitfalls.md), and
    # KeyName, RetrievalMethod and the rest name keys or fetch them from elsewhere. Anything else
    # in KeyInfo — beside X509Data or instead of it — is a format violation, not a missing key.
    children = [c for c in key_info if isinstance(c.tag, str)]  # comments say nothing about keys
    others = sorted({etree.QName(c).localname for c in children if c.tag != _ds("X509Data")})
    if others:
        raise VerificationFailure(
            ReasonCode.KEYINFO_NOT_X509DATA, f"KeyInfo may hold only X509Data, found {others}",
            indication=Indication.FAILED, sub_indication=SubIndication.FORMAT_FAILURE,
        )
    _no_text(key_info)
    if not children:
        raise VerificationFailure(
            ReasonCode.NO_SIGNING_CERTIFICATE, "KeyInfo holds no X509Data",
            indication=Indication.INDETERMINATE,
            sub_indication=SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
        )
    certs: list[x509.Certificate] = []
    for x509_data in children:
        for c in x509_data:
            if c.tag != _ds("X509Certificate"):
                continue  # X509IssuerSerial and friends only repeat what the certificate says
            der = _b64(c.text, "X509Certificate")
            try:
                certs.append(x509.load_der_x509_certificate(der))
            except ValueError as exc:
                raise VerificationFailure(
                    ReasonCode.NO_SIGNING_CERTIFICATE, "X509Certificate does not parse",
                    indication=Indication.INDETERMINATE,
                    sub_indication=SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
                ) from exc
    if not certs:
        raise VerificationFailure(
            ReasonCode.NO_SIGNING_CERTIFICATE, "no X509Certificate in KeyInfo",
            indication=Indication.INDETERMINATE,
            sub_indication=SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
        )
    return tuple(certs)


def _check_key(cert: x509.Certificate, min_rsa_bits: int) -> None:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise VerificationFailure(
            ReasonCode.WEAK_KEY, f"signing key is {type(key).__name__}, not RSA",
            indication=Indication.INDETERMINATE, sub_indication=SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
        )
    if key.key_size < min_rsa_bits:
        raise VerificationFailure(
            ReasonCode.WEAK_KEY, f"RSA key of {key.key_size} bits (minimum {min_rsa_bits})",
            indication=Indication.INDETERMINATE, sub_indication=SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
        )


def _check_signature_value(
    signed_info: bytes, value: bytes, method: SignatureMethod, cert: x509.Certificate
) -> None:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):  # pragma: no cover - _check_key has refused it
        raise _weak("signing key is not RSA")
    try:
        key.verify(value, signed_info, padding.PKCS1v15(), method.hash_algorithm)
    except (InvalidSignature, ValueError) as exc:
        raise VerificationFailure(
            ReasonCode.SIGNATURE_INVALID, "signature value does not verify with the signer certificate",
            indication=Indication.FAILED, sub_indication=SubIndication.SIG_CRYPTO_FAILURE,
        ) from exc


def verify_signature(
    signature: etree._Element,
    resolve: Callable[[Reference], bytes],
    *,
    min_rsa_bits: int,
    allowed_transforms: Callable[[Reference], Sequence[Sequence[str]]],
) -> VerifiedSignature:
    """Validate one ``ds:Signature`` element.

    ``resolve(ref)`` returns the octets the reference must digest to, chosen by the caller from
    the package's structure (it raises :class:`VerificationFailure` for a URI it does not allow).
    ``allowed_transforms(ref)`` lists the transform chains allowed for that reference.
    """
    if any(c.tag not in _SIGNATURE_CHILDREN for c in signature):
        # ds:Object in particular: it is where wrapped content hides, and our format has none.
        raise _structure("ds:Signature may hold only SignedInfo, SignatureValue and KeyInfo")
    _no_text(signature)
    signed_info = _one(signature, "SignedInfo")
    value = _b64(_one(signature, "SignatureValue").text, "SignatureValue")
    key_info = _one(signature, "KeyInfo")

    c14n_el = _one(signed_info, "CanonicalizationMethod")
    c14n = _c14n_method(_algorithm(c14n_el))
    if c14n.exclusive:
        c14n_prefixes = _inclusive_prefixes(c14n_el, "CanonicalizationMethod")
    elif len(c14n_el):
        raise _structure("unexpected content in CanonicalizationMethod")
    else:
        c14n_prefixes = ()
    sig_method_el = _one(signed_info, "SignatureMethod")
    if len(sig_method_el):
        raise _weak("SignatureMethod parameters (HMACOutputLength) are not allowed")
    method = _signature_method(_algorithm(sig_method_el))
    refs_el = [c for c in signed_info if c.tag == _REFERENCE]
    if len(refs_el) + 2 != len(signed_info):
        raise _structure("unexpected element in ds:SignedInfo")
    if not refs_el:
        raise _structure("ds:SignedInfo has no Reference")
    _no_text(signed_info)
    references = [_parse_reference(r) for r in refs_el]
    uris = [r.uri for r in references]
    if len(set(uris)) != len(uris):
        raise VerificationFailure(ReasonCode.BAD_REFERENCE, "two references with the same URI")

    certs = _certificates(key_info)
    _check_key(certs[0], min_rsa_bits)
    # The signed bytes are the canonical SignedInfo *as it sits in this document*.
    _check_signature_value(canonicalize(signed_info, c14n, c14n_prefixes), value, method, certs[0])

    covered: list[tuple[Reference, bytes]] = []
    for ref in references:
        chains = [tuple(chain) for chain in allowed_transforms(ref)]
        if ref.transforms not in chains:
            raise VerificationFailure(
                ReasonCode.BAD_REFERENCE, f"transforms {list(ref.transforms)} not allowed for {ref.uri!r}"
            )
        data = resolve(ref)
        digest = ref.digest_method.new()
        digest.update(data)
        if not hmac.compare_digest(digest.digest(), ref.digest_value):
            raise VerificationFailure(
                ReasonCode.DIGEST_MISMATCH, f"digest of {ref.uri!r} does not match",
                indication=Indication.FAILED, sub_indication=SubIndication.HASH_FAILURE,
            )
        covered.append((ref, data))
    return VerifiedSignature(method, c14n, tuple(covered), certs, c14n_prefixes)


#: Transform chains package-format.md allows for a same-document ``#id`` reference.
SAME_DOCUMENT_CHAINS: tuple[tuple[str, ...], ...] = (
    (),
    (CanonicalizationMethod.C14N_10.value,),
    (CanonicalizationMethod.EXC_C14N.value,),
)
#: … for a detached file reference: none (digest over the raw bytes).
FILE_CHAINS: tuple[tuple[str, ...], ...] = ((),)
#: … for the portal's ``URI=""`` enveloped reference.
ENVELOPED_CHAINS: tuple[tuple[str, ...], ...] = (
    (ENVELOPED_SIGNATURE,),
    (ENVELOPED_SIGNATURE, CanonicalizationMethod.C14N_10.value),
    (ENVELOPED_SIGNATURE, CanonicalizationMethod.EXC_C14N.value),
)
