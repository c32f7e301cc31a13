"""Verification throughput on one core, against plain library verifies in the same run.

* ours: ``verify_package`` — ZIP, both signatures (applicant + portal), both certificate paths,
  policy, identity, revocation from the indexed CRL store. Three modes: one signer over and over
  (warm path cache), a different signer per package (cold cache: every path validated), and
  signers of a signing CA that only the packages carry (configured nowhere; its CRL verified with
  the carried certificate's key on first use).
* python-xmlsec plain: ``SignatureContext.verify`` of the same ``kousei.xml`` with the signer's
  certificate pinned as the key, detached files through in-memory IO callbacks; no chain, no
  revocation, no structure checks.
* signxml plain: ``XMLVerifier().verify(..., ca_pem_file=...)``. signxml cannot parse our Japanese
  element names (pitfalls.md), so it gets its best case: an ASCII-named document of the same shape
  with one same-document reference (no detached files), CA chain check, no revocation.

All five are measured interleaved (:func:`interleaved`): in turns of 0.1 s until each has run
``--seconds``, so the ratios are taken under the same load.

Usage: ``python bench/bench_verify.py [--seconds 3] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import signxml
import xmlsec
from lxml import etree
from signxml import SignatureConfiguration, XMLSigner, XMLVerifier

from signature.testing.builder import SigningOptions, build_package
from signature.testing.pki import TestPKI, sample_residents
from signature.testing.samples import sample_spec
from signature.verify import TrustConfig, verify_package

JST = timezone(timedelta(hours=9))
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=JST)


def interleaved(fns: dict[str, Callable[[int], object]], seconds: float, slice_s: float = 0.1) -> dict[str, float]:
    """Calls per second of each ``fn(i)``, about ``seconds`` each, measured in turns of ``slice_s``:
    every function runs in every stretch of the run, so a change in the machine's load (another
    process, CPU steal on a shared host) reaches all of them alike and their ratios hold still.
    Run one after another, the libraries' own figures moved by up to half between runs."""
    for fn in fns.values():  # warm-up
        for i in range(20):
            fn(i)
    calls = dict.fromkeys(fns, 0)
    spent = dict.fromkeys(fns, 0.0)
    while min(spent.values()) < seconds:
        for name, fn in fns.items():
            n, start = calls[name], time.perf_counter()
            while (elapsed := time.perf_counter() - start) < slice_s:
                for _ in range(5):
                    fn(n)
                    n += 1
            calls[name], spent[name] = n, spent[name] + elapsed
    return {name: calls[name] / spent[name] for name in fns}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--signers", type=int, default=200, help="distinct signers for the cold-cache run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    pki = TestPKI.generate(now=NOW, seed=5)
    rng = random.Random(5)
    residents = sample_residents(rng, args.signers)
    signers = [pki.issue_signer(r) for r in residents]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "roots.pem").write_bytes(b"".join(r.cert_pem() for r in pki.jpki_roots))
        (base / "portal.pem").write_bytes(pki.portal_root.cert_pem())
        for i, root in enumerate(pki.jpki_roots):
            (base / f"g{i}.crl").write_bytes(pki.issue_crl(
                root, [(10_000 + k, NOW - timedelta(days=1)) for k in range(1000)],
                this_update=NOW - timedelta(hours=1), next_update=NOW + timedelta(days=1)))
        signing_ca = pki.issue_ca()  # configured nowhere: the packages carry it
        (base / "signing-ca.crl").write_bytes(pki.issue_crl(
            signing_ca, [(10_000 + k, NOW - timedelta(days=1)) for k in range(1000)],
            this_update=NOW - timedelta(hours=1), next_update=NOW + timedelta(days=1)))
        trust = TrustConfig.load(jpki_roots=[base / "roots.pem"], portal_roots=[base / "portal.pem"],
                                 crls=[base / "g0.crl", base / "g1.crl", base / "signing-ca.crl"])
        packages = [
            build_package(sample_spec(r, rng, receipt_number=f"20261125-{i:010d}", arrived_at=NOW,
                                      user_cert_serial=format(i + 1, "X")), signer=s, portal=pki.portal_server)
            for i, (r, s) in enumerate(zip(residents, signers, strict=True))
        ]
        assert all(verify_package(p, trust, at=NOW).passed for p in packages[:3])
        carried = [
            build_package(sample_spec(r, rng, receipt_number=f"20261125-{i + 5000:010d}", arrived_at=NOW,
                                      user_cert_serial=format(i + 5001, "X")),
                          signer=pki.issue_signer(r, issuer=signing_ca), portal=pki.portal_server,
                          options=SigningOptions(chain=(signing_ca.cert,)))
            for i, r in enumerate(residents[:20])
        ]
        assert all(verify_package(p, trust, at=NOW).passed for p in carried)

        modes: dict[str, Callable[[int], object]] = {
            "ours_full_same_signer": lambda i: verify_package(packages[0], trust, at=NOW),
            "ours_full_distinct_signers": lambda i: verify_package(packages[i % len(packages)], trust, at=NOW),
            "ours_full_carried_signing_ca": lambda i: verify_package(carried[i % len(carried)], trust, at=NOW),
        }

        # python-xmlsec plain verify of the same kousei.xml, pinned certificate, files from memory.
        zf = zipfile.ZipFile(io.BytesIO(packages[0]))
        kousei = zf.read("kousei.xml")
        files = {n.encode(): zf.read(n) for n in zf.namelist() if n not in ("kousei.xml", "到達情報.xml")}
        key = xmlsec.Key.from_memory(signers[0].cert_pem(), xmlsec.constants.KeyDataFormatCertPem, None)
        xmlsec.cleanup_callbacks()
        xmlsec.register_callbacks(lambda uri: uri in files, lambda uri: io.BytesIO(files[uri]),
                                  lambda ctx, buf: _readinto(ctx, buf), lambda ctx: None)

        def xmlsec_plain(_i: int) -> None:
            root = etree.fromstring(kousei)
            xmlsec.tree.add_ids(root, ["ID"])
            sig = xmlsec.tree.find_node(root, xmlsec.constants.NodeSignature)
            ctx = xmlsec.SignatureContext()
            ctx.key = key
            ctx.verify(sig)

        xmlsec_plain(0)
        modes["python_xmlsec_plain"] = xmlsec_plain

        # signxml plain verify, ASCII-named document of the same shape, CA check, no revocation.
        ascii_doc = _ascii_twin(kousei)
        signed = XMLSigner(method=signxml.methods.detached, c14n_algorithm=signxml.CanonicalizationMethod
                           .CANONICAL_XML_1_0).sign(ascii_doc.find("Manifest"), key=signers[0].key_pem(),
                                                    cert=[signers[0].cert_pem().decode()],
                                                    reference_uri="#Manifest", id_attribute="ID")
        ascii_doc.find("SignatureInfo").append(signed)
        ascii_bytes = etree.tostring(ascii_doc)
        ca_pem = base / "ca.pem"
        ca_pem.write_bytes(b"".join(r.cert_pem() for r in pki.jpki_roots))
        config = SignatureConfiguration(expect_references=1, verification_time=NOW)

        def signxml_plain(_i: int) -> None:
            XMLVerifier().verify(ascii_bytes, ca_pem_file=str(ca_pem), id_attribute="ID", expect_config=config)

        signxml_plain(0)
        modes["signxml_plain_ascii"] = signxml_plain
        # ours never reads files through xmlsec's IO callbacks (it checks file digests itself), so the
        # in-memory callbacks python-xmlsec's mode needs can stay registered for the whole run
        results = interleaved(modes, args.seconds)
        xmlsec.cleanup_callbacks()
        xmlsec.register_default_callbacks()

    out = {"results_per_second": {k: round(v, 1) for k, v in results.items()},
           "python": platform.python_version(), "machine": platform.machine(),
           "ratios": {
               "ours_same_vs_signxml": round(results["ours_full_same_signer"] / results["signxml_plain_ascii"], 2),
               "ours_same_vs_xmlsec": round(results["ours_full_same_signer"] / results["python_xmlsec_plain"], 2),
               "ours_distinct_vs_signxml": round(
                   results["ours_full_distinct_signers"] / results["signxml_plain_ascii"], 2),
               "ours_distinct_vs_xmlsec": round(
                   results["ours_full_distinct_signers"] / results["python_xmlsec_plain"], 2),
           }}
    for name, value in out["results_per_second"].items():
        print(f"{name:<30} {value:>9.1f} /s")
    for name, value in out["ratios"].items():
        print(f"{name:<30} {value:>9.2f} x")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


def _readinto(stream: io.BytesIO, buf: bytearray) -> int:
    data = stream.read(len(buf))
    buf[: len(data)] = data
    return len(data)


def _ascii_twin(kousei: bytes) -> etree._Element:
    """The manifest with every element renamed to ASCII, unsigned (signxml's best case)."""
    src = etree.fromstring(kousei)
    src.remove(src.find("署名情報"))
    names: dict[str, str] = {}
    for el in src.iter():
        if el.tag == "構成情報":
            el.tag = "Manifest"
            el.set("ID", "Manifest")
        elif not el.tag.isascii():
            el.tag = names.setdefault(el.tag, f"E{len(names)}")
    etree.SubElement(src, "SignatureInfo")
    return src


if __name__ == "__main__":
    main()
