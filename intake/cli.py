"""``python -m intake serve | db upgrade | linkage import | outbox retry | check | audit verify | audit purge |
staff add``."""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from intake.db import make_engine, make_session_factory
from intake.runtime import Runtime, system_clock
from intake.settings import IntakeSettings

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m intake", description="Shinsei intake (申請管理システム)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API and the staff UI (/staff)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--tls-cert", type=Path, help="server certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, help="server key (PEM)")
    serve.add_argument("--client-ca", type=Path,
                       help="require client certificates from this CA (the relay-only CA: client_auth=dedicated-ca)")
    db = sub.add_parser("db", help="database")
    db.add_argument("action", choices=["upgrade"])
    linkage = sub.add_parser("linkage", help="番号紐付情報")
    linkage.add_argument("action", choices=["import"])
    linkage.add_argument("file", type=Path)
    linkage.add_argument("--mode", choices=["auto", "full", "delta"], default="auto")
    linkage.add_argument("--layout", type=Path, help="the source's layout file (CP932 / fixed-width exports)")
    outbox = sub.add_parser("outbox", help="forwarding outbox")
    outbox.add_argument("action", choices=["retry", "run"])
    outbox.add_argument("--id", type=int, default=None, help="retry: one failed item (default: all failed items)")
    outbox.add_argument("--once", action="store_true", help="run: process due items once and exit")
    outbox.add_argument("--interval", type=float, default=5.0, help="run: seconds between passes")
    sub.add_parser("check", help="configuration and connectivity self-test")
    mail = sub.add_parser("mail", help="daily count e-mail (通知機能)")
    mail.add_argument("action", choices=["send", "status"])
    mail.add_argument("--date", type=date.fromisoformat, default=None,
                      help="send: this Asia/Tokyo day (YYYY-MM-DD); default: every due day not sent yet")
    mail.add_argument("--department", default=None, help="send: only this department id")
    mail.add_argument("--dry-run", action="store_true", help="send: print the mail, send and record nothing")
    audit = sub.add_parser("audit", help="access log (P13)")
    audit.add_argument("action", choices=["verify", "purge"],
                       help="verify: check the hash chain and record the result; "
                            "purge: delete rows older than access_log_retention_years (after checking them)")
    audit.add_argument("--dry-run", action="store_true", help="purge: check and count only, delete nothing")
    staff = sub.add_parser("staff", help="staff UI accounts")
    staff.add_argument("action", choices=["add"])
    staff.add_argument("login")
    staff.add_argument("--name", required=True, help="display name (氏名)")
    staff.add_argument("--role", action="append", required=True,
                       help="viewer | reviewer | department_admin | system_admin | auditor (repeatable)")
    staff.add_argument("--department", action="append", required=True, help="department id (repeatable)")
    staff.add_argument("--reveal-my-number", action="store_true", help="grant the separate My Number reveal permission")
    staff.add_argument("--password-stdin", action="store_true", help="read the password from stdin (else: none)")
    staff.add_argument("--cert-sha256", help="SHA-256 fingerprint of the staff IC-card certificate")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = IntakeSettings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    url = settings.effective_database_url
    if args.command == "db":
        from intake.migrate import upgrade

        upgrade(url)
        print("database is at the latest revision")
        return 0
    if args.command == "check":
        return _check(settings)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    if args.command == "audit":
        return _audit_purge(args, settings, sessions) if args.action == "purge" else _audit_verify(sessions)
    if args.command == "staff":
        return _staff_add(args, settings, sessions)
    if args.command == "linkage":
        # Needs only the database and the clock, not the trust configuration.
        from intake.linkage.importer import import_linkage_file
        from intake.linkage.layouts import LayoutError, load_layout

        try:
            layout = load_layout(args.layout) if args.layout else None
        except LayoutError as exc:
            print(f"LINKAGE_LAYOUT: {exc}", file=sys.stderr)
            return 2
        with sessions() as session:
            result = import_linkage_file(session, args.file, at=system_clock(), mode=args.mode, layout=layout)
            session.commit()
        print(result.summary())
        return 0 if result.ok else 1
    if args.command == "mail":
        return _mail(args, settings, sessions)
    runtime = Runtime.from_settings(settings)
    if args.command == "serve":
        return _serve(args, runtime, sessions)
    if args.action == "run":
        return _run_outbox(args, runtime, sessions)
    from intake.forwarding.service import retry_failed

    with sessions() as session:
        count = retry_failed(session, item_id=args.id, at=runtime.clock())
        session.commit()
    print(f"{count} item(s) queued again")
    return 0


def _run_outbox(args: argparse.Namespace, runtime: Runtime, sessions: sessionmaker[Session]) -> int:
    """The forwarding worker: a pass over due items every ``--interval`` seconds (PostgreSQL allows
    several workers; with SQLite run exactly one)."""
    import time

    from intake.forwarding.worker import run_once

    log = logging.getLogger("intake.outbox")
    while True:
        result = run_once(sessions, runtime, at=runtime.clock())
        if result.outcomes:
            log.info("outbox pass: %s", result.summary())
        if args.once:
            return 0
        time.sleep(args.interval)


def _serve(args: argparse.Namespace, runtime: Runtime, sessions: sessionmaker[Session]) -> int:
    import uvicorn

    from intake.api import create_app

    if args.client_ca and not (args.tls_cert and args.tls_key):
        print("--client-ca needs --tls-cert and --tls-key", file=sys.stderr)
        return 2
    app = create_app(runtime, sessions)
    from intake.mail.schedule import start_mail_scheduler

    scheduler = start_mail_scheduler(runtime, sessions)  # None when mail is disabled
    # proxy_headers=False: uvicorn would otherwise replace the peer address with X-Forwarded-For from
    # 127.0.0.1; the app decides itself which front proxies it believes (settings trusted_proxies).
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", proxy_headers=False,
                ssl_certfile=str(args.tls_cert) if args.tls_cert else None,
                ssl_keyfile=str(args.tls_key) if args.tls_key else None,
                ssl_ca_certs=str(args.client_ca) if args.client_ca else None,
                ssl_cert_reqs=ssl.CERT_REQUIRED if args.client_ca else ssl.CERT_NONE)
    if scheduler is not None:
        scheduler.shutdown(wait=False)
    return 0


def _mail(args: argparse.Namespace, settings: IntakeSettings, sessions: sessionmaker[Session]) -> int:
    """``mail send [--date D] [--department X] [--dry-run]`` and ``mail status``. Needs the database,
    the procedure catalogue and the mail settings, not the trust configuration."""
    import json

    from intake.errors import IntakeError
    from intake.mail.health import mail_status
    from intake.mail.render import preview_text
    from intake.mail.service import DailyMailer
    from intake.procedures import load_procedures

    try:
        mailer = DailyMailer.from_settings(settings, load_procedures(settings.procedures_file), sessions)
        if args.action == "status":
            with sessions() as session:
                print(json.dumps(mail_status(session, mailer.config, at=system_clock()).to_json(), ensure_ascii=False,
                                 indent=2))
            return 0
        if args.date is None:
            run = mailer.run_due(department=args.department)
        else:
            run = mailer.send(args.date, department=args.department, dry_run=args.dry_run)
    except IntakeError as exc:
        print(f"{exc.code}: {exc}", file=sys.stderr)
        return 2
    for o in run.outcomes:
        if o.preview is not None:
            print(preview_text(o.preview))
        print(f"{o.day.isoformat()} {o.department}: {o.result}" + (f" [{o.error}]" if o.error else ""))
    print(run.summary())
    return 0 if run.ok else 1


def _check(settings: IntakeSettings) -> int:
    """Settings load, keys work, trust anchors and CRLs load, the database answers and is migrated."""
    from sqlalchemy import text

    from intake.migrate import pending_differences

    problems: list[str] = []
    try:
        runtime = Runtime.from_settings(settings)
        runtime.my_number_sealer.open(runtime.my_number_sealer.seal(b"check", aad=b"check"), aad=b"check")
        runtime.package_sealer.open(runtime.package_sealer.seal(b"check", aad=b"check"), aad=b"check")
    except Exception as exc:  # noqa: BLE001 - report every kind of configuration failure
        problems.append(f"configuration: {exc}")
    try:
        engine = make_engine(settings.effective_database_url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        if pending_differences(engine):
            problems.append("database: schema differs from the models (run `python -m intake db upgrade`)")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"database: {type(exc).__name__}")
    for p in problems:
        print(f"NG  {p}")
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


def _audit_verify(sessions: sessionmaker[Session]) -> int:
    """Exit 0 when the access log's hash chain is intact, else 1 and the ids where it breaks. The
    result is recorded (the auditor's page shows the latest check)."""
    from intake.accesslog.checks import run_check

    with sessions() as session:
        check = run_check(session, at=system_clock())
        session.commit()
    if check.anchor_through_id is not None:
        print(f"..  chain starts at the retention record: rows up to id {check.anchor_through_id} were purged")
    if not check.intact:
        for problem in check.problems:
            print(f"NG  {problem.value}")
        if check.broken_count > len(check.broken):
            print(f"NG  {check.broken_count} broken row(s), the first {len(check.broken)} listed")
        print(f"NG  access log chain broken at row id(s): {' '.join(str(i) for i in check.broken)}")
        return 1
    head = f"; head id {check.last_id} hash {check.last_hash}" if check.last_id is not None else ""
    print(f"OK  access log chain intact ({check.rows} rows){head}")
    return 0


def _audit_purge(args: argparse.Namespace, settings: IntakeSettings, sessions: sessionmaker[Session]) -> int:
    """Delete the access-log rows older than the retention (``--dry-run``: count and check only).
    Exit 0 done (or nothing to do), 1 refused (the chain of those rows is broken: they stay as
    evidence), 2 could not run."""
    import socket

    from intake.accesslog.errors import PurgeRefused
    from intake.accesslog.retention import purge_expired
    from intake.errors import IntakeError

    years = settings.access_log_retention_years
    with sessions() as session:
        try:
            result = purge_expired(session, at=system_clock(), retention_years=years, dry_run=args.dry_run,
                                   terminal=f"host:{socket.gethostname()}"[:128])
        except PurgeRefused as exc:
            session.rollback()
            print(f"NG  purge refused, nothing deleted: {exc}")
            return 1
        except IntakeError as exc:
            session.rollback()
            print(f"{exc.code}: {exc}", file=sys.stderr)
            return 2
        if args.dry_run:
            session.rollback()
        else:
            session.commit()
    cutoff = f"{result.cutoff:%Y-%m-%d %H:%M} JST"
    if not result.rows:
        print(f"OK  nothing to purge: no access-log row before {cutoff} (retention {years} years)")
    elif args.dry_run:
        print(f"DRY RUN  would purge {result.rows} access-log row(s), ids {result.first_id}-{result.through_id}, "
              f"before {cutoff} (retention {years} years); their chain is intact; nothing changed")
    else:
        print(f"OK  purged {result.rows} access-log row(s), ids {result.first_id}-{result.through_id}, "
              f"before {cutoff} (retention {years} years); the chain now starts from hash {result.last_hash}")
    return 0


def _staff_add(args: argparse.Namespace, settings: IntakeSettings, sessions: sessionmaker[Session]) -> int:
    """Create a staff account; prints the TOTP secret and otpauth URI once (for the authenticator app)."""
    from sqlalchemy.exc import IntegrityError

    from intake.crypto import Sealer
    from intake.errors import InvalidRequest
    from intake.staff.service import create_user

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    sealer = Sealer({k: v.get_secret_value() for k, v in settings.package_keys.items()}, settings.package_active_key)
    try:
        with sessions() as session:
            new = create_user(session, login=args.login, display_name=args.name, roles=args.role,
                              departments=args.department, at=system_clock(), sealer=sealer, password=password,
                              may_reveal_my_number=args.reveal_my_number, client_cert_sha256=args.cert_sha256)
            session.commit()
    except (InvalidRequest, IntegrityError) as exc:
        why = exc if isinstance(exc, InvalidRequest) else "login or certificate already in use"
        print(f"refused: {type(exc).__name__}: {why}", file=sys.stderr)
        return 2
    print(f"created staff user {args.login}")
    if new.totp_secret:
        print(f"TOTP secret: {new.totp_secret}")
        print(f"otpauth URI: {new.provisioning_uri(settings.ui.totp_issuer)}")
    return 0
