"""What the verification shortcuts of issue 19 must not change.

Each shortcut reuses work — a validated certificate path, a parsed tree — and each test here
shows an input where reusing it naively would give a different answer from doing the work again.
Time is pinned: NOW (tests/conftest.py).
"""

from __future__ import annotations

import random
import string
import sys
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from lxml import etree

from signature import zipreader
from signature.algorithms import CanonicalizationMethod
from signature.certs import TrustStore
from signature.errors import VerificationFailure
from signature.package import MANIFEST_ID, _check_unique_ids, _read_manifest, verify_applicant
from signature.policy import VerificationPolicy
from signature.report import ReasonCode
from signature.testing.builder import (
    ApplicationSpec,
    SigningOptions,
    arrival_document,
    manifest_document,
    sign_arrival,
    sign_manifest,
    zip_package,
)
from signature.verify import TrustConfig, verify_package
from signature.xmlparse import parse_xml
from signature.zipreader import read_package
from tests.conftest import NOW, PackageFactory, World
from tests.signature.tamper import ARRIVAL_FILE, MANIFEST_FILE, replace_once, unpack


def _refusal(store: TrustStore, leaf: x509.Certificate, chain: list[x509.Certificate], at: datetime) -> ReasonCode:
    with pytest.raises(VerificationFailure) as caught:
        store.validate(leaf, chain, at=at)
    return caught.value.code


def test_a_cached_path_is_not_reused_outside_its_certificates_validity(world: World) -> None:
    pki = world.pki
    store = TrustStore([r.cert for r in pki.jpki_roots], path_cache_size=8)
    leaf = world.signer.cert
    assert store.validate(leaf, [], at=NOW)[-1] == leaf  # now cached
    assert _refusal(store, leaf, [], leaf.not_valid_after_utc + timedelta(seconds=1)) is ReasonCode.CERT_EXPIRED
    assert _refusal(store, leaf, [], leaf.not_valid_before_utc - timedelta(seconds=1)) is ReasonCode.CERT_NOT_YET_VALID
    assert store.validate(leaf, [], at=NOW)[-1] == leaf


def test_a_cached_path_through_a_ca_that_has_expired_since_is_refused(world: World) -> None:
    # The leaf is still valid; only the CA of the cached path is not: the whole path counts.
    pki = world.pki
    ca = pki.issue_ca(not_before=NOW - timedelta(days=30), not_after=NOW + timedelta(days=1))
    leaf = pki.issue_signer(world.residents[2], issuer=ca, not_after=NOW + timedelta(days=300))
    store = TrustStore([r.cert for r in pki.jpki_roots], path_cache_size=8)
    assert store.validate(leaf.cert, [ca.cert], at=NOW) == (pki.jpki_roots[1].cert, ca.cert, leaf.cert)
    later = NOW + timedelta(days=2)
    assert leaf.cert.not_valid_after_utc > later
    assert _refusal(store, leaf.cert, [ca.cert], later) is ReasonCode.UNTRUSTED_CHAIN
    # … and a path found without the CA is not the one found with it.
    assert _refusal(store, leaf.cert, [], NOW) is ReasonCode.UNTRUSTED_CHAIN


def test_no_applicant_certificate_is_kept_after_verification(world: World, make_package: PackageFactory) -> None:
    # A cached path holds its leaf: an applicant's signing certificate carries the 基本4情報, which
    # the relay must not keep after hand-over (mission P4). Only the portal's store caches.
    trust = TrustConfig.load(jpki_roots=[world.jpki_roots], portal_roots=[world.portal_roots],
                             crls=[world.crl_dir])
    assert verify_package(make_package(), trust, at=NOW).passed
    assert trust.jpki._paths == {}
    kept = {c for key, path in trust.portal._paths.items() for c in (key[0], *key[1], *path)}
    assert world.pki.portal_server.cert in kept
    assert world.signer.cert not in kept


def test_the_path_cache_is_bounded(world: World) -> None:
    pki = world.pki
    store = TrustStore([r.cert for r in pki.jpki_roots], path_cache_size=2)
    leaves = [world.signer.cert, world.revoked_signer.cert, pki.issue_signer(world.residents[3]).cert]
    for leaf in leaves:
        store.validate(leaf, [], at=NOW)
    assert list(store._paths) == [(leaf, ()) for leaf in leaves[1:]]  # the least recently used went
    with pytest.raises(VerificationFailure):
        store.validate(pki.portal_server.cert, [], at=NOW)  # another hierarchy: refused, not cached
    assert len(store._paths) == 2


# ---------------------------------------------------------------- one parse per signed document
#
# The manifest and the arrival record are read from the parsed subtree whose canonical form was
# digested, no longer from a second parse of the canonical bytes (signature/package.py). C14N
# without comments drops comments, so anyone can insert comments — and write text as CDATA or
# character references — without breaking either signature. Each such change must read exactly as
# the signed canonical form reads; naive tree reading (``el.text``, ``len(el)``) would cut values
# at a comment or refuse a valid package.

EXC = CanonicalizationMethod.EXC_C14N.value


def _cut(value: str) -> str:
    return f"{value[:2]}<!-- 注記 -->{value[2:]}"


MANIFEST_EDITS: dict[str, Callable[[ApplicationSpec, bytes], bytes]] = {
    # a value checked for child elements (申請種別) and one bound to the arrival record (手続ID)
    "comment-in-kind": lambda s, k: replace_once(k, "<申請種別>新規申請<", f"<申請種別>{_cut('新規申請')}<"),
    "comment-in-procedure-id": lambda s, k: replace_once(
        k, f"<手続ID>{s.procedure_id}<", f"<手続ID>{_cut(s.procedure_id)}<"),
    # a file name: cut short it would name a file that is not in the package
    "comment-in-form-file": lambda s, k: replace_once(
        k, f">{s.form_file}<", f">{_cut(s.form_file)}<"),
    # applicant data: cut short it would silently report another name and address
    "two-comments-in-address": lambda s, k: replace_once(
        k, f"<住所>{s.applicant.address}<", f"<住所><!--a-->{_cut(s.applicant.address)}<!--b--><"),
    "cdata-and-char-ref": lambda s, k: replace_once(
        k, f"<手続名称>{s.procedure_name}<",
        f"<手続名称><![CDATA[{s.procedure_name[:1]}]]>&#x{ord(s.procedure_name[1]):x};{s.procedure_name[2:]}<"),
    "comments-between-elements": lambda s, k: replace_once(k, "<管理情報>", "<管理情報><!-- x --><!-- y -->"),
}


@pytest.mark.parametrize("c14n", ["c14n", "exc-c14n"])
@pytest.mark.parametrize("edit", MANIFEST_EDITS)
def test_manifest_reads_as_its_signed_canonical_form(
    world: World, trust: TrustConfig, spec: ApplicationSpec, make_package: PackageFactory, edit: str, c14n: str,
) -> None:
    options = SigningOptions(canonicalization=EXC, manifest_transforms=(EXC,)) if c14n == "exc-c14n" else None
    original = make_package(options=options)
    u = unpack(original)
    u.edit(MANIFEST_FILE, lambda k: MANIFEST_EDITS[edit](spec, k))
    u.reissue_arrival(spec, world.pki.portal_server)
    assert u[MANIFEST_FILE] != unpack(original)[MANIFEST_FILE]

    report = verify_package(u.zip(), trust, at=NOW)

    assert report.passed, report.reason_en
    assert report.manifest == verify_package(original, trust, at=NOW).manifest
    # … and it is what a second parse of the digested canonical bytes (the former way) reads.
    applicant = verify_applicant(read_package(u.zip(), VerificationPolicy().limits), VerificationPolicy())
    assert applicant.manifest == _read_manifest(parse_xml(applicant.manifest_bytes))


ARRIVAL_EDITS: dict[str, Callable[[ApplicationSpec, bytes], bytes]] = {
    "comment-in-arrival-time": lambda s, a: replace_once(a, "<到達日時>", "<到達日時><!-- 注記 -->"),
    "comment-in-serial": lambda s, a: replace_once(
        a, f">{s.user_cert_serial}<", f">{_cut(s.user_cert_serial)}<"),
    "comment-in-digest": lambda s, a: replace_once(a, '#sha256">', '#sha256"><!-- 注記 -->'),
    "cdata-receipt": lambda s, a: replace_once(
        a, f">{s.receipt_number}<", f"><![CDATA[{s.receipt_number[:5]}]]>{s.receipt_number[5:]}<"),
}


@pytest.mark.parametrize("edit", ARRIVAL_EDITS)
def test_arrival_record_reads_as_its_signed_canonical_form(
    trust: TrustConfig, spec: ApplicationSpec, make_package: PackageFactory, edit: str,
) -> None:
    original = make_package()
    u = unpack(original)
    u.edit(ARRIVAL_FILE, lambda a: ARRIVAL_EDITS[edit](spec, a))
    assert u[ARRIVAL_FILE] != unpack(original)[ARRIVAL_FILE]

    report = verify_package(u.zip(), trust, at=NOW)

    assert report.passed, report.reason_en
    assert report.arrival == verify_package(original, trust, at=NOW).arrival


def test_a_processing_instruction_in_a_signed_value_is_still_refused(
    world: World, trust: TrustConfig, spec: ApplicationSpec,
) -> None:
    # Canonical form keeps processing instructions: a field holding one has content other than
    # text, as it had when the canonical bytes were parsed again (and the text before it alone
    # would be a plausible 手続名称). Signed with the PI in place.
    def with_pi(root: etree._Element) -> None:
        el = root.find(f"{MANIFEST_ID}/管理情報/手続名称")
        assert el is not None
        el.text = spec.procedure_name[:2]
        pi = etree.ProcessingInstruction("note", "x")
        pi.tail = spec.procedure_name[2:]
        el.append(pi)

    root = manifest_document(spec)
    with_pi(root)
    files = {spec.form_file: spec.form_xml, **{a.file_name: a.data for a in spec.attachments}}
    kousei = sign_manifest(root, files, world.signer)
    arrival = sign_arrival(arrival_document(spec, kousei), world.pki.portal_server)
    package = zip_package([(MANIFEST_FILE, kousei), (ARRIVAL_FILE, arrival), *files.items()])
    assert b"<?note x?>" in kousei
    report = verify_package(package, trust, at=NOW)
    assert report.reason_code is ReasonCode.BAD_MANIFEST, report.reason_en
    assert "手続名称 has child elements" in report.reason_en


@pytest.mark.parametrize(("piece", "refused"), [(5_000_001, True), (4_000_000, False)],
                         ids=["joined-over-the-text-limit", "joined-under-it"])
def test_a_value_split_by_a_comment_is_limited_as_its_canonical_form(
    world: World, trust: TrustConfig, spec: ApplicationSpec, piece: int, refused: bool,
) -> None:
    # Two pieces under libxml2's 10 000 000-byte text-node limit, one comment between them: in the
    # canonical form they are one node over it, which the parse of the canonical bytes refused.
    # Reading the parsed tree must refuse it too (found by differential testing, issue 19).
    rng = random.Random(3)  # letters: they compress too little for the ZIP ratio limit
    def letters() -> str:
        return "".join(rng.choices(string.ascii_letters, k=piece))

    root = manifest_document(spec)
    el = root.find(f"{MANIFEST_ID}/管理情報/手続名称")
    assert el is not None
    el.text = letters()
    comment = etree.Comment("c")
    comment.tail = letters()
    el.append(comment)
    files = {spec.form_file: spec.form_xml, **{a.file_name: a.data for a in spec.attachments}}
    kousei = sign_manifest(root, files, world.signer)
    arrival = sign_arrival(arrival_document(spec, kousei), world.pki.portal_server)
    report = verify_package(zip_package([(MANIFEST_FILE, kousei), (ARRIVAL_FILE, arrival), *files.items()]),
                            trust, at=NOW)
    if refused:
        assert report.reason_code is ReasonCode.XML_MALFORMED, report.reason_en
        assert not report.readable
    else:
        assert report.passed, report.reason_en
        assert report.manifest is not None
        assert len(report.manifest.procedure_name) == 2 * piece


# ------------------------------------------------------------ duplicate IDs, found by one XPath


@pytest.mark.parametrize(
    ("first", "second", "duplicate"),
    [
        ('ID="x"', 'ID="x"', True),
        ('Id="x"', 'id="x"', True),  # different attribute names, one value: still two IDs "x"
        ('id="x"', 'id="y"', False),
        ('p:ID="x" xmlns:p="urn:p"', 'ID="x"', False),  # a namespaced attribute is not an ID
    ],
)
def test_duplicate_id_values_anywhere_are_refused(first: str, second: str, duplicate: bool) -> None:
    root = parse_xml(f"<r><a {first}/><b><c {second}/></b></r>".encode())
    if duplicate:
        with pytest.raises(VerificationFailure) as caught:
            _check_unique_ids(root)
        assert caught.value.code is ReasonCode.DUPLICATE_ID
    else:
        _check_unique_ids(root)


def test_a_duplicate_of_the_manifest_id_on_the_root_is_refused() -> None:
    root = parse_xml('<DataRoot ID="構成情報"><構成情報 ID="構成情報"/></DataRoot>'.encode())
    with pytest.raises(VerificationFailure) as caught:
        _check_unique_ids(root)
    assert caught.value.code is ReasonCode.DUPLICATE_ID


# ------------------------------------------------------------------------ ZIP entry names


def test_unsafe_name_characters_are_exactly_controls_and_direction_marks() -> None:
    # The regular expression replaced a per-character category lookup: same set, every code point.
    expected = {c for c in map(chr, range(sys.maxunicode + 1))
                if unicodedata.category(c) == "Cc" or c in zipreader._BIDI_CONTROLS}
    found = {c for c in map(chr, range(sys.maxunicode + 1)) if zipreader._UNSAFE_CHARACTERS.search(c)}
    assert found == expected
    assert len(expected) == 65 + 12
