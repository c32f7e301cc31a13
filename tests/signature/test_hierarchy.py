"""Whole packages under a real hierarchy: a signing CA that reaches the verifier only in the
package's ``KeyInfo/X509Data`` (configured nowhere: only the roots are), in two key generations
under one name, with CRLs issued by that CA. package-format.md §4: "its issuer" is the issuer
certificate the path validation used; operators configure anchors and CRL sources, not
intermediates.

Time is pinned: NOW, 到達日時 = NOW - 30 min (tests/conftest.py).
"""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from signature.report import Indication, ReasonCode, SubIndication
from signature.revocation import CrlRefusal
from signature.testing.builder import ApplicationSpec, SigningOptions, build_package
from signature.testing.pki import Issued
from signature.verify import TrustConfig, verify_package
from tests.conftest import NOW, World

PASSED, FAILED, INDETERMINATE = Indication.PASSED, Indication.FAILED, Indication.INDETERMINATE
S, R = SubIndication, ReasonCode
ARRIVAL = NOW - timedelta(minutes=30)
Expected = tuple[Indication, SubIndication | None, ReasonCode | None]
XMLSEC1 = shutil.which("xmlsec1")


@dataclass(frozen=True)
class Hierarchy:
    world: World
    ca1: Issued  # "JPKI-TEST signing CA G3", key generation 1
    ca2: Issued  # the same name, key generation 2
    good1: Issued
    revoked1: Issued
    good2: Issued  # its serial is also listed in ca1's CRL: only ca2's CRL may speak for it
    revoked2: Issued
    trusts: dict[str, TrustConfig]  # CRL set name → roots-only trust with those CRLs


CRL_SETS = ("current", "stale", "forged", "ca-revoked", "root-only")


@pytest.fixture(scope="module")
def h(world: World, tmp_path_factory: pytest.TempPathFactory) -> Hierarchy:
    pki = world.pki
    serials = random.Random(5901)

    def serial() -> int:
        return serials.randrange(1 << 62, 1 << 63)

    ca1, ca2 = pki.issue_ca(serial=serial()), pki.issue_ca(serial=serial())
    key, resident = world.signer.rsa_key, world.residents[0]
    good1, revoked1, good2, revoked2 = (pki.issue_signer(resident, issuer=ca, key=key, serial=serial())
                                        for ca in (ca1, ca1, ca2, ca2))
    current = {"this_update": NOW - timedelta(hours=6), "next_update": NOW + timedelta(days=1)}
    stale = {"this_update": NOW - timedelta(days=3), "next_update": NOW - timedelta(days=2)}
    listed1 = [(revoked1.cert.serial_number, NOW - timedelta(days=3)),
               (good2.cert.serial_number, NOW - timedelta(days=3))]
    listed2 = [(revoked2.cert.serial_number, NOW - timedelta(days=2))]
    impostor = Issued(ca1.cert, pki.portal_root.rsa_key)  # ca1's name and key identifier, another key
    root_crl_listing_ca1 = pki.issue_crl(
        pki.jpki_roots[1], [(world.revoked_signer.cert.serial_number, NOW - timedelta(days=3)),
                            (ca1.cert.serial_number, NOW - timedelta(days=1))],
        this_update=NOW - timedelta(hours=1), next_update=NOW + timedelta(days=1))
    sets: dict[str, dict[str, bytes]] = {
        "current": {"ca1.crl": pki.issue_crl(ca1, listed1, **current),
                    "ca2.crl": pki.issue_crl(ca2, listed2, **current)},
        "stale": {"ca1.crl": pki.issue_crl(ca1, listed1, **stale), "ca2.crl": pki.issue_crl(ca2, listed2, **stale)},
        "forged": {"ca1.crl": pki.issue_crl(impostor, [], **current),
                   "ca2.crl": pki.issue_crl(ca2, listed2, **current)},
        "ca-revoked": {"ca1.crl": pki.issue_crl(ca1, listed1, **current), "jpki-g2-newer.crl": root_crl_listing_ca1},
        "root-only": {},
    }
    trusts = {}
    for name, crls in sets.items():
        crl_dir = tmp_path_factory.mktemp(f"hierarchy-{name}")
        for source in world.crl_dir.iterdir():  # the roots' own CRLs (they cover the signing CAs)
            shutil.copy(source, crl_dir / source.name)
        for file_name, data in crls.items():
            (crl_dir / file_name).write_bytes(data)
        trusts[name] = TrustConfig.load(jpki_roots=[world.jpki_roots], portal_roots=[world.portal_roots],
                                        crls=[crl_dir])
        assert trusts[name].intermediates == ()  # nothing but the anchors is configured
    return Hierarchy(world, ca1, ca2, good1, revoked1, good2, revoked2, trusts)


@dataclass(frozen=True)
class Vector:
    signer: Callable[[Hierarchy], Issued]
    keyinfo_chain: Callable[[Hierarchy], tuple[Issued, ...]]
    crls: str
    expected: Expected
    tool: str = "python"


REVOKED = (INDETERMINATE, S.REVOKED_NO_POE, R.CERT_REVOKED)
TRY_LATER = (INDETERMINATE, S.TRY_LATER, R.REVOCATION_UNKNOWN)
NO_CHAIN = (INDETERMINATE, S.NO_CERTIFICATE_CHAIN_FOUND, R.UNTRUSTED_CHAIN)

VECTORS = {
    "genuine-gen1": Vector(lambda h: h.good1, lambda h: (h.ca1,), "current", (PASSED, None, None)),
    "genuine-gen2-whose-serial-gen1-lists": Vector(lambda h: h.good2, lambda h: (h.ca2,), "current",
                                                   (PASSED, None, None)),
    "revoked-gen1": Vector(lambda h: h.revoked1, lambda h: (h.ca1,), "current", REVOKED),
    "revoked-gen2": Vector(lambda h: h.revoked2, lambda h: (h.ca2,), "current", REVOKED),
    "stale-crls-of-the-carried-ca": Vector(lambda h: h.good1, lambda h: (h.ca1,), "stale", TRY_LATER),
    "stale-crls-revoked-signer-is-not-revoked-but-unknown": Vector(lambda h: h.revoked1, lambda h: (h.ca1,),
                                                                  "stale", TRY_LATER),
    "forged-crl-of-the-carried-ca": Vector(lambda h: h.good1, lambda h: (h.ca1,), "forged", TRY_LATER),
    "forged-crl-of-gen1-does-not-touch-gen2": Vector(lambda h: h.revoked2, lambda h: (h.ca2,), "forged", REVOKED),
    "no-crl-of-the-carried-ca": Vector(lambda h: h.good1, lambda h: (h.ca1,), "root-only", TRY_LATER),
    "carried-ca-revoked-by-the-root": Vector(lambda h: h.good1, lambda h: (h.ca1,), "ca-revoked",
                                             (INDETERMINATE, S.REVOKED_CA_NO_POE, R.CA_REVOKED)),
    "signing-ca-neither-carried-nor-configured": Vector(lambda h: h.good1, lambda h: (), "current", NO_CHAIN),
    "other-key-generation-carried": Vector(lambda h: h.good1, lambda h: (h.ca2,), "current", NO_CHAIN),
    "both-generations-carried": Vector(lambda h: h.revoked2, lambda h: (h.ca1, h.ca2), "current", REVOKED),
    "signed-by-xmlsec1-genuine": Vector(lambda h: h.good2, lambda h: (h.ca2,), "current", (PASSED, None, None),
                                        tool="xmlsec1"),
    "signed-by-xmlsec1-revoked": Vector(lambda h: h.revoked1, lambda h: (h.ca1,), "current", REVOKED,
                                        tool="xmlsec1"),
}


def build(h: Hierarchy, spec: ApplicationSpec, v: Vector) -> bytes:
    signer = v.signer(h)
    chain = tuple(ca.cert for ca in v.keyinfo_chain(h))
    if v.tool == "xmlsec1":
        from signature.testing import builder

        root = builder.manifest_document(spec)
        files = {spec.form_file: spec.form_xml, **{a.file_name: a.data for a in spec.attachments}}
        kousei = builder.sign_manifest_xmlsec1(root, files, signer, chain=chain)
        arrival = builder.sign_arrival(builder.arrival_document(spec, kousei), h.world.pki.portal_server)
        return builder.zip_package([("kousei.xml", kousei), ("到達情報.xml", arrival), *files.items()])
    return build_package(spec, signer=signer, portal=h.world.pki.portal_server, options=SigningOptions(chain=chain))


def _params() -> list[object]:
    params = []
    for name, v in VECTORS.items():
        marks = [pytest.mark.xmlsec1, pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 is not installed")] \
            if v.tool == "xmlsec1" else []
        params.append(pytest.param(v, id=name, marks=marks))
    return params


@pytest.mark.parametrize("v", _params())
def test_package_under_a_carried_signing_ca(h: Hierarchy, spec: ApplicationSpec, v: Vector) -> None:
    report = verify_package(build(h, spec, v), h.trusts[v.crls], at=NOW)
    assert (report.indication, report.sub_indication, report.reason_code) == v.expected, report.reason_en
    assert report.validation_time == ARRIVAL
    assert report.manifest is not None  # the package itself is intact
    if v.expected == REVOKED:
        assert report.signer_revoked_at is not None
        assert report.signer_revoked_at <= ARRIVAL
    if v.expected[0] is PASSED:
        assert report.revocation_checked is True
        assert report.crl_this_update == NOW - timedelta(hours=6)


def test_forged_crl_is_logged_once_by_file_name(h: Hierarchy, spec: ApplicationSpec,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    v = VECTORS["forged-crl-of-the-carried-ca"]
    trust = TrustConfig.load(jpki_roots=[h.world.jpki_roots], portal_roots=[h.world.portal_roots],
                             crls=[_crl_dir_of(h.trusts["forged"])])
    with caplog.at_level(logging.WARNING, logger="signature.revocation"):
        reports = [verify_package(build(h, spec, v), trust, at=NOW) for _ in range(3)]
    assert {(r.indication, r.sub_indication) for r in reports} == {(INDETERMINATE, S.TRY_LATER)}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert "ca1.crl" in lines[0]
    assert "JPKI-TEST" not in lines[0]
    assert trust.revocation is not None
    assert dict(trust.revocation.status().refused) == {CrlRefusal.SIGNATURE_INVALID: 1}


def _crl_dir_of(trust: TrustConfig) -> Path:
    assert trust.revocation is not None
    (source,) = trust.revocation._sources
    return source

