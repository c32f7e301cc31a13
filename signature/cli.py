"""Command line: ``python -m signature verify|testpki|build|demo``.

``verify`` is an exact contract used by external conformance checks (issue 2, §9): exit code 0
PASSED, 1 FAILED, 2 INDETERMINATE, 3 usage or I/O error; ``--json`` prints one JSON object.

``--at`` is the time of processing: the portal's certificate is validated at it, and an 到達日時
later than it (beyond five minutes) is refused. The applicant's certificate and its revocation are
judged at the verified 到達日時 (``validation_time`` in the output, ``validation_time_source``
"arrival"). The wall clock is read here, at the edge, and only when ``--at`` is not given.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from signature import __version__
from signature.errors import SignatureError
from signature.policy import RevocationMode, VerificationPolicy
from signature.report import Indication, VerificationReport
from signature.verify import TrustConfig, verify_package

__all__ = ["main"]

EXIT_CODES = {Indication.PASSED: 0, Indication.FAILED: 1, Indication.INDETERMINATE: 2}
EXIT_USAGE = 3


class _UsageError(Exception):
    pass


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("the time needs a UTC offset, e.g. 2026-11-25T10:00:00+09:00")
    return moment


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m signature", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    v = sub.add_parser("verify", help="verify one application package")
    v.add_argument("package", type=Path, help="the package (ZIP) to verify")
    v.add_argument("--jpki-roots", type=Path, action="append", required=True,
                   help="JPKI trust anchors: a PEM/DER file or a directory of them (repeatable)")
    v.add_argument("--portal-roots", type=Path, action="append", required=True,
                   help="portal trust anchors: a PEM/DER file or a directory of them (repeatable)")
    v.add_argument("--intermediates", type=Path, action="append", default=[],
                   help="optional CA certificates that are not anchors, to build paths for packages that do not "
                        "carry their signing CA (file or directory); not needed for CRLs")
    v.add_argument("--crl", type=Path, action="append", default=[],
                   help="CRL file (DER or PEM) or a directory of them (repeatable)")
    v.add_argument("--at", type=_moment, default=None,
                   help="time of processing, ISO 8601 with offset (default: now); the portal certificate is "
                        "validated at it, the applicant's certificate at the package's 到達日時")
    v.add_argument("--revocation", choices=[m.value for m in RevocationMode], default=RevocationMode.REQUIRE.value,
                   help="require (default): no current CRL means TRY_LATER; soft-fail is lenient (recovery only)")
    v.add_argument("--json", action="store_true", help="print one JSON object")

    t = sub.add_parser("testpki", help="generate a test PKI (JPKI-TEST and PORTAL-TEST)")
    t.add_argument("out", type=Path, help="directory to write the PKI into")
    t.add_argument("--now", type=_moment, default=None, help="valid around this moment, ISO 8601 (default: now)")
    t.add_argument("--seed", type=int, default=0, help="seeds names, serials and residents, not keys (default 0)")

    b = sub.add_parser("build", help="build a test package from a test PKI")
    b.add_argument("--pki", type=Path, required=True, help="directory written by `testpki`")
    b.add_argument("--out", type=Path, required=True, help="the package file to write")
    b.add_argument("--receipt", default="20261125-0000000001", help="受付番号 of the package")
    b.add_argument("--seed", type=int, default=0, help="chooses the resident and the form")
    b.add_argument("--tool", choices=["python", "xmlsec1"], default="python", help="which signer signs it")
    b.add_argument("--uri-style", choices=["raw", "percent"], default="raw",
                   help="same-document references as written or percent-encoded")
    b.add_argument("--folder", default=None, help="put the files under one top-level folder")
    b.add_argument("--cp932", action="store_true", help="CP932 entry names without the UTF-8 flag")
    b.add_argument("--now", type=_moment, default=None, help="signing time, ISO 8601 with offset (default: now)")

    d = sub.add_parser("demo", help="generate a PKI and sample packages and print their reports")
    d.add_argument("--out", type=Path, required=True, help="directory for the PKI and the packages")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "verify":
            return _verify(args)
        now = args.now if getattr(args, "now", None) else datetime.now(UTC)
        if args.command == "testpki":
            from signature.testing.pki import generate_cli

            generate_cli(args.out, now, args.seed)
            print(f"test PKI written to {args.out}")
            return 0
        if args.command == "build":
            from signature.testing.demo import build_cli

            build_cli(args, now)
            print(f"package written to {args.out}")
            return 0
        from signature.testing.demo import run_demo

        return run_demo(args.out, datetime.now(UTC))
    except (OSError, SignatureError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _verify(args: argparse.Namespace) -> int:
    trust = TrustConfig.load(jpki_roots=args.jpki_roots, portal_roots=args.portal_roots, crls=args.crl,
                             intermediates=args.intermediates)
    data = args.package.read_bytes()
    at = args.at or datetime.now(UTC)
    report = verify_package(data, trust, at=at, policy=VerificationPolicy(revocation=RevocationMode(args.revocation)))
    if args.json:
        json.dump(report.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_report(report))
    return EXIT_CODES[report.indication]


def format_report(report: VerificationReport) -> str:
    """A readable multi-line report (contains the signer's personal data: for the terminal only)."""
    lines = [
        f"indication      : {report.indication.value}"
        + (f" / {report.sub_indication.value}" if report.sub_indication else ""),
        f"reason          : {report.reason_en}",
        f"理由            : {report.reason_ja}",
        f"validation time : {report.validation_time.isoformat()} ({report.validation_time_source.value})",
        f"processed at    : {report.processing_time.isoformat() if report.processing_time else '-'}",
        f"package sha256  : {report.package_sha256}",
        f"checks          : {', '.join(report.checks) or '-'}",
    ]
    if report.arrival:
        a = report.arrival
        lines += [f"受付番号        : {a.receipt_number}", f"到達日時        : {a.arrived_at.isoformat()}",
                  f"利用者証明書S/N : {a.user_cert_serial}"]
    if report.manifest:
        m = report.manifest
        lines += [f"手続            : {m.procedure_id} {m.procedure_name}", f"申請種別        : {m.application_kind}"
                  + (f" (初回受付番号 {m.first_receipt_number})" if m.first_receipt_number else "")]
    if report.signer:
        s = report.signer
        if report.signer_revoked_at is not None:
            lines.append(f"revoked at      : {report.signer_revoked_at.isoformat()}"
                         + (" (after the validation time)" if report.revoked_after_validation_time else ""))
        lines += [f"署名者          : {s.name}  {s.birth_date.isoformat()}  性別{s.sex}",
                  f"住所            : {s.address}", f"証明書          : serial {s.cert_serial}, {s.issuer}"]
    for f in report.files:
        lines.append(f"  {f.role.value:<10} {f.size:>9} {f.media_type:<24} {f.sha256[:16]}…  {f.name}")
    return "\n".join(lines)
