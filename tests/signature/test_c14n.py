"""Inclusive C14N of a subtree inherits the ancestors' xml:* attributes (the workaround in
xmldsig.canonicalize), checked against the independent xmlsec1 signer."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from lxml import etree

from signature.algorithms import CanonicalizationMethod
from signature.package import ARRIVAL_FILE, MANIFEST_FILE
from signature.report import Indication
from signature.testing import builder
from signature.testing.builder import ApplicationSpec
from signature.verify import TrustConfig, verify_package
from signature.xmldsig import canonicalize
from tests.conftest import NOW, World

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
needs_xmlsec1 = pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 is not installed")


def test_subtree_gets_inherited_xml_lang() -> None:
    root = etree.fromstring('<DataRoot xml:lang="ja"><a xml:space="preserve"><b>x</b></a></DataRoot>')
    b = root.find("a/b")
    assert b is not None
    # lxml alone treats the subtree as a document of its own and drops them:
    assert etree.tostring(b, method="c14n") == b"<b>x</b>"
    assert canonicalize(b, CanonicalizationMethod.C14N_10) == b'<b xml:lang="ja" xml:space="preserve">x</b>'
    # exclusive C14N does not inherit xml:* attributes
    assert canonicalize(b, CanonicalizationMethod.EXC_C14N) == b"<b>x</b>"


def test_nearest_ancestor_wins_and_own_attribute_is_kept() -> None:
    root = etree.fromstring('<r xml:lang="en"><p xml:lang="ja"><c/><d xml:lang="fr"/></p></r>')
    c, d = root.find("p/c"), root.find("p/d")
    assert c is not None
    assert d is not None
    assert canonicalize(c, CanonicalizationMethod.C14N_10) == b'<c xml:lang="ja"></c>'
    assert canonicalize(d, CanonicalizationMethod.C14N_10) == b'<d xml:lang="fr"></d>'


@needs_xmlsec1
@pytest.mark.xmlsec1
def test_xmlsec1_signed_package_with_xml_lang_on_dataroot_passes(
    world: World, spec: ApplicationSpec, trust: TrustConfig
) -> None:
    root = builder.manifest_document(spec)
    root.set(XML_LANG, "ja")
    files = {spec.form_file: spec.form_xml, **{a.file_name: a.data for a in spec.attachments}}
    kousei = builder.sign_manifest_xmlsec1(root, files, world.signer)
    arrival = builder.sign_arrival(builder.arrival_document(spec, kousei), world.pki.portal_server)
    package = builder.zip_package([(MANIFEST_FILE, kousei), (ARRIVAL_FILE, arrival), *files.items()])
    report = verify_package(package, trust, at=NOW)
    assert report.indication is Indication.PASSED, report.reason_en
    assert report.files[0].sha256 == hashlib.sha256(kousei).hexdigest()
