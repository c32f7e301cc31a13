"""``make audit``: known vulnerabilities of exactly the locked dependency set (uv.lock), by pip-audit.

The lock is exported with its hashes and handed to pip-audit without a resolver (``--disable-pip``),
so what is audited is what ``make install`` and the images install. Three outcomes, one line each:

* exit 0: every locked package was looked up and none has a known vulnerability (outside the
  ignore list);
* exit 1: known vulnerabilities, one line per finding, then the summary;
* exit 2: the vulnerability data could not be read (no route to the service, or a package that
  could not be looked up): **nothing is claimed**, never a silent pass.

The ignore list, ``tools/audit-ignore.txt``, holds one vulnerability id per line, each with a
comment saying why it does not apply and until when; an entry without a reason is refused.
docs/operations.md says how often to run this.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORE_FILE = ROOT / "tools" / "audit-ignore.txt"
SERVICES = {"osv": "https://api.osv.dev/v1/query", "pypi": "https://pypi.org/pypi/<package>/<version>/json"}
_ENTRY = re.compile(r"^(?P<id>[A-Za-z0-9][A-Za-z0-9_.:-]*)\s+#\s*(?P<why>\S.*)$")
# What pip-audit prints when it could not read the vulnerability data for some package.
_UNREADABLE = ("could not be audited", "ConnectionError", "NameResolutionError", "Max retries exceeded",
               "ReadTimeout", "ConnectTimeout", "ServiceError")


class AuditError(Exception):
    """The audit could not be run as asked (exit 2)."""


def read_ignores(path: Path = IGNORE_FILE) -> list[str]:
    """The ignored vulnerability ids; every entry must say why (``ID  # reason``)."""
    ids = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENTRY.match(line)
        if match is None:
            raise AuditError(f"{path.name}:{number}: an ignored vulnerability needs a reason: 'ID  # why, until when'")
        ids.append(match["id"])
    return ids


def export_lock(uv: str, out: Path) -> None:
    """Write the locked set (all extras, hashes, not the project itself) as pinned requirements."""
    command = [uv, "export", "--frozen", "--all-extras", "--no-emit-project", "--format", "requirements-txt",
               "--quiet", "-o", str(out)]
    subprocess.run(command, check=True, cwd=ROOT)  # noqa: S603 - fixed arguments, the uv that make installed


def run_pip_audit(requirements: Path, service: str, osv_url: str | None, ignores: list[str], report: Path
                  ) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip_audit", "-r", str(requirements), "--require-hashes", "--disable-pip",
               "--strict", "--vulnerability-service", service, "--format", "json", "--output", str(report),
               "--progress-spinner", "off", "--timeout", "20"]
    if osv_url is not None:
        command += ["--osv-url", osv_url]
    for vuln in ignores:
        command += ["--ignore-vuln", vuln]
    return subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--uv", default=str(ROOT / ".uv" / "bin" / "uv"), help="the uv binary (make installs it)")
    parser.add_argument("--service", choices=sorted(SERVICES), default="osv",
                        help="vulnerability data source (default: osv)")
    parser.add_argument("--osv-url", help="an OSV API query URL other than api.osv.dev's (a mirror inside the ward)")
    parser.add_argument("--ignore-file", type=Path, default=IGNORE_FILE, help="default: tools/audit-ignore.txt")
    args = parser.parse_args(argv)
    try:
        ignores = read_ignores(args.ignore_file)
        with tempfile.TemporaryDirectory(prefix="shinsei-audit-") as tmp:
            requirements, report = Path(tmp) / "locked.txt", Path(tmp) / "report.json"
            export_lock(args.uv, requirements)
            result = run_pip_audit(requirements, args.service, args.osv_url, ignores, report)
            data = json.loads(report.read_text(encoding="utf-8")) if report.exists() else None
    except AuditError as exc:
        print(f"make audit: {exc}", file=sys.stderr)
        return 2
    where = f"{args.service} ({args.osv_url or SERVICES[args.service]})"
    if data is None or result.returncode not in (0, 1):
        if any(marker in result.stderr for marker in _UNREADABLE):
            print(f"make audit: the vulnerability data of {where} was unreachable: nothing was checked. "
                  "Run it where the service answers (docs/operations.md).", file=sys.stderr)
        else:
            tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
            print(f"make audit: pip-audit failed (exit {result.returncode}): {tail[0]}", file=sys.stderr)
        return 2
    # The locked packages that apply to this platform (markers such as sys_platform == 'win32' drop some).
    count = len(data.get("dependencies", []))
    findings = [(dep["name"], dep["version"], vuln["id"], ", ".join(vuln.get("fix_versions", [])) or "no fix yet")
                for dep in data.get("dependencies", []) for vuln in dep.get("vulns", [])]
    for name, version, vuln_id, fixes in findings:
        print(f"{name} {version}: {vuln_id} (fixed in: {fixes})")
    ignored = f", {len(ignores)} ignored by {args.ignore_file.name}" if ignores else ""
    if findings:
        print(f"make audit: {len(findings)} known vulnerabilities in {count} locked packages ({where}{ignored})",
              file=sys.stderr)
        return 1
    print(f"make audit: no known vulnerabilities in {count} locked packages ({where}{ignored})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
