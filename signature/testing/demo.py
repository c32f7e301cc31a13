"""``make demo`` at this stage: a test PKI, a handful of packages good and bad, their reports.

Later issues grow the demo into the whole chain (portal_sim → relay → intake); this part stays
the quickest way to see what the verifier decides and why.
"""

from __future__ import annotations

import argparse
import io
import random
import zipfile
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from signature.policy import VerificationPolicy
from signature.report import VerificationReport
from signature.testing.builder import SigningOptions, build_package
from signature.testing.pki import Issued, TestPKI, sample_residents
from signature.testing.samples import sample_spec
from signature.verify import TrustConfig, verify_package

__all__ = ["build_cli", "run_demo"]


def build_cli(args: argparse.Namespace, now: datetime) -> None:
    """``python -m signature build``: one package from a saved test PKI."""
    pki = TestPKI.load(args.pki)
    rng = random.Random(args.seed)
    resident = sample_residents(rng, 1)[0]
    signer = pki.issue_signer(resident)
    spec = sample_spec(resident, rng, receipt_number=args.receipt, arrived_at=now,
                       user_cert_serial=format(rng.getrandbits(48), "X"))
    data = build_package(spec, signer=signer, portal=pki.portal_server,
                         options=SigningOptions(uri_style=args.uri_style), tool=args.tool,
                         folder=args.folder, cp932_names=args.cp932)
    args.out.write_bytes(data)


def _tampered(data: bytes) -> bytes:
    """The same package with one byte of the PDF attachment changed."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith(".pdf"):
                body = body.replace(b"insurance", b"lnsurance", 1)
            dst.writestr(info, body)
    return out.getvalue()


def run_demo(out: Path, now: datetime) -> int:
    """Generate everything under ``out``, verify each package, print a table. Exit 0."""
    out.mkdir(parents=True, exist_ok=True)
    pki = TestPKI.generate(now=now, seed=1)
    pki.save(out / "pki")
    rng = random.Random(1)
    residents = sample_residents(rng, 4)
    good, revoked, expired = (pki.issue_signer(r) for r in residents[:3])
    expired = pki.issue_signer(residents[2], not_before=now - timedelta(days=2000),
                               not_after=now - timedelta(days=1))
    crl_dir = out / "crl"
    crl_dir.mkdir(exist_ok=True)
    for i, root in enumerate(pki.jpki_roots):
        listed = [(revoked.cert.serial_number, now - timedelta(days=2))] if i == 1 else []
        (crl_dir / f"jpki-g{i + 1}.crl").write_bytes(
            pki.issue_crl(root, listed, this_update=now - timedelta(hours=1), next_update=now + timedelta(days=1)))
    trust = TrustConfig.load(jpki_roots=[out / "pki" / "jpki-roots"], portal_roots=[out / "pki" / "portal-roots"],
                             crls=[crl_dir])

    def spec_for(n: int, signer: Issued) -> bytes:
        spec = sample_spec(residents[0], rng, receipt_number=f"{now:%Y%m%d}-{n:010d}",
                           arrived_at=now - timedelta(minutes=n), user_cert_serial=format(1000 + n, "X"))
        return build_package(spec, signer=signer, portal=pki.portal_server)

    base = sample_spec(residents[0], rng, receipt_number=f"{now:%Y%m%d}-0000000009", arrived_at=now,
                       user_cert_serial="ABCDEF")
    cases: list[tuple[str, bytes]] = [
        ("valid", spec_for(1, good)),
        ("valid, percent-encoded URI, CP932 names in a folder",
         build_package(replace(base, receipt_number=f"{now:%Y%m%d}-0000000002"), signer=good,
                       portal=pki.portal_server, options=SigningOptions(uri_style="percent"),
                       folder="児童手当認定請求", cp932_names=True)),
        ("tampered attachment", _tampered(spec_for(3, good))),
        ("revoked certificate", spec_for(4, revoked)),
        ("expired certificate", spec_for(5, expired)),
        ("not a ZIP", b"%PDF-1.4 this is not a package"),
    ]
    try:
        cases.insert(2, ("valid, signed by the xmlsec1 command line",
                         build_package(replace(base, receipt_number=f"{now:%Y%m%d}-0000000006"), signer=good,
                                       portal=pki.portal_server, tool="xmlsec1")))
    except FileNotFoundError:
        print("note: xmlsec1 is not installed; the independent-signer case is skipped")
    packages = out / "packages"
    packages.mkdir(exist_ok=True)
    reports: list[tuple[str, str, VerificationReport]] = []
    for i, (label, data) in enumerate(cases, start=1):
        path = packages / f"{i:02d}.zip"
        path.write_bytes(data)
        reports.append((label, path.name, verify_package(data, trust, at=now, policy=VerificationPolicy())))
    print(_table(reports))
    print(f"\nPKI, CRLs and packages are in {out}. Verify one yourself:\n"
          f"  .venv/bin/python -m signature verify {packages / '01.zip'} --jpki-roots {out / 'pki/jpki-roots'}"
          f" --portal-roots {out / 'pki/portal-roots'} --crl {crl_dir} --at {now.isoformat()}")
    return 0


def _width(text: str) -> int:
    return sum(2 if ord(c) > 0x2E7F else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _table(rows: list[tuple[str, str, VerificationReport]]) -> str:
    header = ("package", "case", "indication", "sub-indication", "受付番号", "reason")
    lines = [[name, label, r.indication.value, r.sub_indication.value if r.sub_indication else "-",
              r.arrival.receipt_number if r.arrival else "-", r.reason_ja] for label, name, r in rows]
    widths = [max(_width(str(x)) for x in col) for col in zip(header, *lines, strict=False)]
    fmt = [" ".join(_pad(str(c), w) for c, w in zip(row, widths, strict=True)) for row in [header, *lines]]
    return "\n".join(line.rstrip() for line in [fmt[0], " ".join("-" * w for w in widths), *fmt[1:]])
