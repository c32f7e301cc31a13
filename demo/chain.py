"""Run the whole chain with the embedded defaults and show what happened.

portal_sim (a day of applications, defects included) → relay (pull over the portal API, verify,
forward over mutual TLS, erase) → intake (SQLite, 宛名番号 linkage imported, daily mail to a local
folder). Everything lives under ``SHINSEI_VAR_DIR`` (default ``./var``): ``portal/``, ``pki/``,
``intake/``, ``relay/``, ``mail/``, ``log/`` — inspect it, or delete it to start again.

``--headless`` (``make smoke``) runs the same flow, checks the outcome and exits 0/1; without it the
servers keep running until Ctrl-C.

The demo's day is the day before its moment: now, or ``--now`` — then the relay and the intake run on
development clocks from that moment (portal_sim runs on its fixed clock at the end of the demo's day,
either way; the smoke test pins a moment), so the run does not depend on when it is started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
import unicodedata
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from intake.workdays import WardCalendar
from tests.support.servers import free_port, stop_process
from tests.support.tlscerts import issue, make_ca

JST = timezone(timedelta(hours=9))
PY = sys.executable


@dataclass
class Layout:
    var: Path

    def __post_init__(self) -> None:
        for sub in ("portal", "pki", "intake", "relay", "mail", "log", "cache"):
            (self.var / sub).mkdir(parents=True, exist_ok=True)

    @property
    def portal_data(self) -> Path:
        return self.var / "portal" / "data"


def _run(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.CompletedProcess[str]:
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=out, text=True, check=False,
                                timeout=1800)
        out.write(result.stdout)
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(cmd[1:4])} … — see {log}")
    return result


def _start(cmd: list[str], env: dict[str, str], log: Path, stack: ExitStack) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    stack.callback(out.close)
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    stack.callback(stop_process, proc)  # SIGTERM, then SIGKILL if it does not stop (a no-op once it exited)
    return proc


def _wait_ready(url: str, proc: subprocess.Popen[bytes], *, verify: object = True, deadline: float = 60) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"a server exited early ({url}); see var/log/")
        try:
            if httpx.get(url, timeout=2, verify=verify).status_code == 200:  # type: ignore[arg-type]
                return
        except httpx.TransportError:
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.2)  # bounded wait between probes, or notice an early exit
    raise SystemExit(f"{url} did not become ready")


def _base_env(var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env["SHINSEI_VAR_DIR"] = str(var)
    return env


def parser() -> argparse.ArgumentParser:
    """``python -m demo`` (tests check that every option has a help text)."""
    from intake import __version__

    ap = argparse.ArgumentParser(prog="python -m demo", description="the whole chain on this machine (make demo); "
                                 "SIGTERM or Ctrl-C stops every process it started")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    ap.add_argument("--headless", action="store_true", help="run, check, exit 0/1 (make smoke)")
    ap.add_argument("--residents", type=int, default=40, help="residents the portal simulator makes (default 40)")
    ap.add_argument("--applications", type=int, default=120, help="applications of one day (default 120)")
    ap.add_argument("--now", type=_moment, default=None, metavar="ISO-8601",
                    help="the demo's moment, with its UTC offset (e.g. 2026-12-07T08:45:00+09:00); the day "
                         "before is the demo's day, and the relay and the intake run on development clocks "
                         "from this moment (default: now, on the real clocks)")
    return ap


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date and time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs its UTC offset (e.g. +09:00)")
    return moment


class Stopped(Exception):
    """SIGTERM or SIGINT: unwind, so that every child process is stopped on the way out."""


def _stop(signum: int, _frame: object) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the clean-up short
    raise Stopped(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    try:
        return _main(args)
    except Stopped as stopped:
        print(f"\nstopped ({stopped}); every process the demo started has been stopped", flush=True)
        return 0


def _main(args: argparse.Namespace) -> int:
    var = Path(os.environ.get("SHINSEI_VAR_DIR", "var")).resolve()
    for sub in ("intake", "relay", "mail", "log", "portal/data"):
        shutil.rmtree(var / sub, ignore_errors=True)  # a fresh run each time; the key cache is kept
    lay = Layout(var)
    log = lay.var / "log" / "demo.log"
    env = _base_env(var)
    now, started = args.now or datetime.now(JST), time.monotonic()
    # With --now every process's clock starts at that moment (the portal's is fixed at the end of the day).
    clocks = {"SHINSEI_INTAKE_DEV_CLOCK": now.isoformat(), "SHINSEI_RELAY_DEV_CLOCK": now.isoformat()} \
        if args.now else {}
    day = now.astimezone(JST).date() - timedelta(days=1)

    print(f"1/7 portal_sim: {args.applications} applications of {day} from {args.residents} residents …")
    _run([PY, "-m", "portal_sim", "generate", "--out", str(lay.portal_data), "--residents", str(args.residents),
          "--applications", str(args.applications), "--seed", "1", "--start", day.isoformat(), "--days", "1",
          "--key-cache", str(lay.var / "cache" / "portal-keys"), "--quiet"], env, log)
    manifest = json.loads((lay.portal_data / "manifest.json").read_text(encoding="utf-8"))

    print("2/7 certificates for mutual TLS between relay and intake …")
    pki = lay.var / "pki"
    server_ca_files, *server_ca = make_ca(pki, "intake-server-ca")
    relay_ca_files, *relay_ca = make_ca(pki, "relay-client-ca")
    server = issue(pki, "intake-server", tuple(server_ca), server=True)  # type: ignore[arg-type]
    relay_cert = issue(pki, "relay-client", tuple(relay_ca), server=False)  # type: ignore[arg-type]

    data = lay.portal_data
    trust = {"JPKI_ROOTS": json.dumps([str(data / "pki" / "jpki-roots")]),
             "PORTAL_ROOTS": json.dumps([str(data / "pki" / "portal-roots")]),
             "CRLS": json.dumps([str(data / "crl")])}
    procedures = lay.var / "intake" / "procedures.json"
    procedures.write_text(json.dumps({"procedures": [
        {"id": p["procedure_id"], "name": p["procedure_name"], "department": p["department_code"],
         "department_name": p["department"]} for p in manifest.get("procedures", [])]}, ensure_ascii=False),
        encoding="utf-8")
    departments = lay.var / "intake" / "departments.json"
    codes = sorted({p["department_code"]: p["department"] for p in manifest.get("procedures", [])}.items())
    departments.write_text(json.dumps({"departments": [
        {"id": code, "name": name, "recipients": [f"dept-{code}@example.lg.jp"]} for code, name in codes]},
        ensure_ascii=False), encoding="utf-8")
    intake_env = {**env, **{f"SHINSEI_INTAKE_{k}": v for k, v in trust.items()},
                  "SHINSEI_INTAKE_ENVIRONMENT": "development",  # the demo is development, and says so
                  "SHINSEI_INTAKE_VAR_DIR": str(lay.var / "intake"),
                  "SHINSEI_INTAKE_CLIENT_AUTH": "dedicated-ca",
                  "SHINSEI_INTAKE_PROCEDURES_FILE": str(procedures),
                  "SHINSEI_INTAKE_MAIL__DEPARTMENTS_FILE": str(departments),
                  "SHINSEI_INTAKE_MAIL__EML_DIR": str(lay.var / "mail"),
                  "SHINSEI_INTAKE_MAIL__START_DATE": day.isoformat(),
                  **{k: v for k, v in clocks.items() if k.startswith("SHINSEI_INTAKE_")}}

    print("3/7 intake: database, 番号紐付情報 import …")
    _run([PY, "-m", "intake", "db", "upgrade"], intake_env, log)
    linkage = lay.var / "intake" / "linkage-full.csv"
    _run([PY, "-m", "portal_sim", "linkage", "--data", str(data), "--out", str(linkage)], env, log)
    _run([PY, "-m", "intake", "linkage", "import", str(linkage)], intake_env, log)
    logins = _demo_staff(intake_env, codes, log)

    with ExitStack() as stack:
        print("4/7 starting portal_sim and the intake (mTLS) …")
        portal_port, intake_port = free_port(), free_port()
        end_of_day = datetime.combine(day + timedelta(days=1), datetime.min.time(), JST)
        portal = _start([PY, "-m", "portal_sim", "serve", "--data", str(data), "--port", str(portal_port),
                         "--clock", f"fixed:{end_of_day.isoformat()}"], env, lay.var / "log" / "portal.log", stack)
        # The serving intake's own mail scheduler is off: its first pass runs at start-up, and from 08:30
        # on the business day after the demo's day it would send that day's mail at once, before the
        # relay has delivered anything (a mail of 0). Step 6 sends the day's mail after the deliveries.
        intake = _start([PY, "-m", "intake", "serve", "--port", str(intake_port), "--tls-cert", str(server.cert),
                         "--tls-key", str(server.key), "--client-ca", str(relay_ca_files.cert)],
                        {**intake_env, "SHINSEI_INTAKE_MAIL__ENABLED": "false"}, lay.var / "log" / "intake.log", stack)
        _wait_ready(f"http://127.0.0.1:{portal_port}/healthz", portal)
        probe = ssl.create_default_context(cafile=str(server_ca_files.cert))
        probe.load_cert_chain(str(relay_cert.cert), str(relay_cert.key))  # the intake wants the relay's cert
        _wait_ready(f"https://127.0.0.1:{intake_port}/healthz", intake, verify=probe)

        relay_env = {**env, **{f"SHINSEI_RELAY_{k}": v for k, v in trust.items()},
                     "SHINSEI_RELAY_ENVIRONMENT": "development",
                     "SHINSEI_RELAY_DATA_DIR": str(lay.var / "relay"),
                     "SHINSEI_RELAY_TEMP_DIR": str(lay.var / "relay" / "tmp"),
                     "SHINSEI_RELAY_INTAKE_URL": f"https://127.0.0.1:{intake_port}",
                     "SHINSEI_RELAY_INTAKE_CA": str(server_ca_files.cert),
                     "SHINSEI_RELAY_CLIENT_CERT": str(relay_cert.cert),
                     "SHINSEI_RELAY_CLIENT_KEY": str(relay_cert.key),
                     "SHINSEI_RELAY_PORTAL_URL": f"http://127.0.0.1:{portal_port}",
                     "SHINSEI_RELAY_MUNICIPALITY_CODE": manifest["municipality_code"],
                     "SHINSEI_RELAY_PORTAL_API_KEY": manifest["api_key"],
                     "SHINSEI_RELAY_SCANNER": "none",
                     **{k: v for k, v in clocks.items() if k.startswith("SHINSEI_RELAY_")}}
        print("5/7 relay: pulling the day's applications (malware scanning is OFF in the demo) …")
        _run([PY, "-m", "dmz_relay", "pull", "--once"], relay_env, lay.var / "log" / "relay.log")
        _run([PY, "-m", "dmz_relay", "statuses", "--once"], relay_env, lay.var / "log" / "relay.log")

        print("6/7 daily mail …")
        # The mail that covers the demo's day goes out on the next business day at 08:30: the mail
        # command runs on the intake's development clock at that moment (or the demo's clock now, if
        # that is later), so it counts the demo's own applications whatever day the demo runs on.
        send_at = max(now + timedelta(seconds=time.monotonic() - started, minutes=1),
                      datetime.combine(WardCalendar().next_business_day(day), datetime.min.time(), JST)
                      + timedelta(hours=8, minutes=31))
        _run([PY, "-m", "intake", "mail", "send", "--date", day.isoformat()],
             {**intake_env, "SHINSEI_INTAKE_DEV_CLOCK": send_at.isoformat()}, log)

        print("7/7 summary\n")
        summary = _summary(lay)
        print(_table(summary))
        mails = sorted((lay.var / "mail").rglob("*.eml"))
        print(f"\nmail: {len(mails)} daily mail(s) in {lay.var / 'mail'}")
        print(f"logs: {lay.var / 'log'}   state: {lay.var}")
        ok = (summary["stored at the intake"] > 0 and summary["failed"] == 0 and len(mails) == len(codes)
              and summary["stored at the intake"] + summary["refused by the relay"] == summary["offered by the portal"]
              and summary["erased at the relay"] == summary["pulled by the relay"])
        if args.headless:
            print("\nsmoke:", "OK" if ok else "FAILED")
            return 0 if ok else 1
        ui_port = free_port()
        ui = _start([PY, "-m", "intake", "serve", "--only", "ui", "--port", str(ui_port)], intake_env,
                    lay.var / "log" / "intake-ui.log", stack)
        _wait_ready(f"http://127.0.0.1:{ui_port}/healthz", ui)
        print(f"\nstaff UI (職員画面): http://127.0.0.1:{ui_port}/staff/  (this terminal is on the allowlist)")
        print("demo logins (password, then the TOTP code from the secret, e.g. `oathtool --totp -b SECRET`):")
        for login in logins:
            print(f"  {login}")
        print(f"relay API for the intake: https://127.0.0.1:{intake_port} (mTLS)  portal_sim: http://127.0.0.1:{portal_port}")
        print("Ctrl-C (or SIGTERM) stops everything.", flush=True)
        while True:
            signal.pause()  # until _stop raises Stopped, which unwinds the stack and stops every child


DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - development only, printed on the terminal


def _demo_staff(intake_env: dict[str, str], departments: list[tuple[str, str]], log: Path) -> list[str]:
    """One account per role; the reviewer may reveal My Numbers (a separate permission)."""
    first = departments[0][0] if departments else "all"
    everyone = [arg for code, _ in departments for arg in ("--department", code)]
    accounts = [("reviewer", "審査 花子", ["--role", "reviewer", "--department", first, "--reveal-my-number"]),
                ("viewer", "閲覧 太郎", ["--role", "viewer", "--department", first]),
                ("dept-admin", "所属長 次郎", ["--role", "department_admin", "--department", first]),
                ("auditor", "監査 三郎", ["--role", "auditor", *everyone]),
                ("sys-admin", "情報 四郎", ["--role", "system_admin", *everyone])]
    lines = []
    for login, name, extra in accounts:
        out = subprocess.run([PY, "-m", "intake", "staff", "add", login, "--name", name, "--password-stdin", *extra],
                             env=intake_env, input=DEMO_PASSWORD + "\n", capture_output=True, text=True,
                             check=False, timeout=120)
        with log.open("a", encoding="utf-8") as f:
            f.write(out.stdout + out.stderr)
        if out.returncode != 0:
            raise SystemExit(f"could not create the demo user {login}; see {log}")
        secret = next((ln.split(": ", 1)[1] for ln in out.stdout.splitlines() if ln.startswith("TOTP secret")), "?")
        lines.append(f"{login:<11} password {DEMO_PASSWORD}  TOTP secret {secret}")
    return lines


def _summary(lay: Layout) -> dict[str, int]:
    """Counts from the three places that hold the truth: the portal's list, the relay's tombstones
    and the intake's database."""
    offered = sum(1 for _ in (lay.portal_data / "applications.jsonl").open(encoding="utf-8"))
    with sqlite3.connect(lay.var / "relay" / "tombstones.db") as c:
        outcomes = dict(c.execute("SELECT outcome, COUNT(*) FROM tombstones GROUP BY outcome").fetchall())
        erased = c.execute("SELECT COUNT(*) FROM tombstones WHERE erased_at IS NOT NULL").fetchone()[0]
    with sqlite3.connect(lay.var / "intake" / "intake.db") as c:
        stored = c.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        versions = c.execute("SELECT COUNT(*) FROM application_versions").fetchone()[0]
        flagged = c.execute("SELECT COUNT(*) FROM verification_reports WHERE indication != 'PASSED'").fetchone()[0]
        linked = c.execute("SELECT COUNT(*) FROM applications WHERE atena_number IS NOT NULL").fetchone()[0]
    return {"offered by the portal": offered, "pulled by the relay": sum(outcomes.values()),
            "stored at the intake": stored, "  of which flagged": flagged,
            "refused by the relay": outcomes.get("refused", 0), "erased at the relay": erased,
            "failed": outcomes.get("failed", 0) + outcomes.get("rejected", 0),
            "versions": versions, "chains with 宛名番号": linked}


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(summary: dict[str, int]) -> str:
    width = max(_width(k) for k in summary)
    return "\n".join(f"  {k}{' ' * (width - _width(k))}  {v:>6}" for k, v in summary.items())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
