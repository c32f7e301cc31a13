"""``python -m intake``: every command and option has its help (``python -m intake COMMAND --help``).

serve · db upgrade|downgrade|current|history · check · linkage import · outbox run|retry ·
mail send|status · audit verify|purge · staff add · keys status|rotate|retire-check · mynumbers seal-typed ·
reverify · backup · restore. A bad setting stops any command with one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from intake import __version__
from intake.db import make_engine, make_session_factory
from intake.runtime import Runtime, system_clock
from intake.settings import IntakeSettings
from intake.startup import refuse

__all__ = ["main", "parser"]



def parser() -> argparse.ArgumentParser:
    """The whole command line (tests check that every option has a help text)."""
    top = argparse.ArgumentParser(prog="python -m intake", description="Shinsei intake (申請管理システム). "
                                  "Settings: SHINSEI_INTAKE_* (docs/operations.md).")
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the machine API and/or the staff UI (/staff)")
    serve.add_argument("--only", choices=["api", "ui", "all"], default="all",
                       help="api: the relay's machine API only; ui: the staff UI only (behind its TLS front "
                            "proxy); all: both (default; development)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8443, help="port to listen on (default 8443)")
    serve.add_argument("--tls-cert", type=Path, help="server certificate (PEM); reloaded when the file changes")
    serve.add_argument("--tls-key", type=Path, help="server key (PEM); reloaded with the certificate")
    serve.add_argument("--client-ca", type=Path,
                       help="require client certificates from this CA (the relay-only CA: client_auth=dedicated-ca); "
                            "required for a TLS listener that serves the machine API")
    serve.add_argument("--ops-port", type=int, default=None,
                       help="also serve /healthz, /readyz and /metrics on 127.0.0.1:PORT (plain HTTP, loopback only)")
    serve.add_argument("--workers", type=int, default=1,
                       help="processes accepting on the port (default 1; more: --only api with PostgreSQL; "
                            "worker i's operations listener is on --ops-port + i)")

    db = sub.add_parser("db", help="database schema (Alembic migrations)")
    dbs = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = dbs.add_parser("upgrade", help="migrate to the newest revision (or --revision)")
    up.add_argument("--revision", default="head", help="target revision (default head)")
    down = dbs.add_parser("downgrade", help="migrate back to --revision (take a backup first)")
    down.add_argument("--revision", required=True, help="target revision, e.g. 0004 or -1")
    dbs.add_parser("current", help="print the database's revision")
    dbs.add_parser("history", help="print every revision, newest first")

    sub.add_parser("check", help="configuration and connectivity self-test (prints OK or the problems)")

    linkage = sub.add_parser("linkage", help="番号紐付情報 (certificate serial → 宛名番号)")
    links = linkage.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = links.add_parser("import", help="import one linkage file")
    imp.add_argument("file", type=Path, help="the CSV file from the resident register")
    imp.add_argument("--mode", choices=["auto", "full", "delta"], default="auto",
                     help="full replaces all entries, delta adds to them, auto decides from the file (default)")
    imp.add_argument("--layout", type=Path, help="the source's layout file (CP932 / fixed-width exports)")

    outbox = sub.add_parser("outbox", help="forwarding to business systems")
    boxes = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    retry = boxes.add_parser("retry", help="queue failed items again")
    retry.add_argument("--id", type=int, default=None, help="one failed item (default: all failed items)")
    run = boxes.add_parser("run", help="the forwarding worker")
    run.add_argument("--once", action="store_true", help="process due items once and exit")
    run.add_argument("--interval", type=float, default=5.0, help="seconds between passes (default 5)")

    mail = sub.add_parser("mail", help="daily count e-mail (通知機能)")
    mails = mail.add_subparsers(dest="action", required=True, metavar="ACTION")
    send = mails.add_parser("send", help="send due mails (or one day's)")
    send.add_argument("--date", type=date.fromisoformat, default=None,
                      help="this Asia/Tokyo day (YYYY-MM-DD); default: every due day not sent yet")
    send.add_argument("--department", default=None, help="only this department id")
    send.add_argument("--dry-run", action="store_true", help="print the mail, send and record nothing")
    mails.add_parser("status", help="the daily mail's state as JSON")

    audit = sub.add_parser("audit", help="access log (P13)")
    audits = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    audits.add_parser("verify", help="check the hash chain (keys) and the seals outside the database, record the "
                                     "result (exit 1: broken)")
    audits.add_parser("seal", help="seal the head of an intact chain outside the database (audit_seal_dir: "
                                   "signature and/or RFC 3161 time stamp); exit 1: chain broken, 2: cannot seal")
    purge = audits.add_parser("purge", help="delete rows older than access_log_retention_years (after checking them)")
    purge.add_argument("--dry-run", action="store_true", help="check and count only, delete nothing")

    staff = sub.add_parser("staff", help="staff UI accounts")
    staffs = staff.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = staffs.add_parser("add", help="create an account (prints the TOTP secret once)")
    add.add_argument("login", help="login name")
    add.add_argument("--name", required=True, help="display name (氏名)")
    add.add_argument("--role", action="append", required=True,
                     help="viewer | reviewer | department_admin | system_admin | auditor (repeatable)")
    add.add_argument("--department", action="append", required=True, help="department id (repeatable)")
    add.add_argument("--reveal-my-number", action="store_true",
                     help="the separate My Number reveal permission (once an administrator exists: a request)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin (else: none)")
    add.add_argument("--cert-sha256", help="SHA-256 fingerprint of the staff IC-card certificate")
    add.add_argument("--reason", default="python -m intake staff add",
                     help="処理事由 for the access log (default: the command's name)")

    keys = sub.add_parser("keys", help="encryption keys: which key seals what, rotation")
    keyss = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    keyss.add_parser("status", help="sealed blobs per key id (My Numbers, packages, attachments, TOTP secrets)")
    rotate = keyss.add_parser("rotate", help="re-seal every blob not under the active key, in resumable batches")
    rotate.add_argument("--batch", type=int, default=200, help="blobs per committed batch (default 200)")
    rotate.add_argument("--limit", type=int, default=None, help="stop after this many blobs (default: all)")
    retire = keyss.add_parser("retire-check", help="exit 0 only if no blob is sealed with KEY_ID any more")
    retire.add_argument("key_id", help="the key id to retire")

    mynumbers = sub.add_parser("mynumbers", help="My Numbers (特定個人情報) held apart")
    mns = mynumbers.add_subparsers(dest="action", required=True)
    typed = mns.add_parser("seal-typed", help="mask and seal My Numbers typed into the text of forms stored "
                                              "before they were (once after upgrading; resumable)")
    typed.add_argument("--batch", type=_positive, default=200, help="versions per committed batch (default 200)")

    reverify = sub.add_parser(
        "reverify", help="verify chosen deliveries again from their stored bytes (a new result beside the old; "
                         "a version that now passes is admitted, linked and forwarded once)")
    reverify.add_argument("--receipt-number", action="append", default=[], metavar="受付番号",
                          help="a delivery's 受付番号 (repeatable)")
    reverify.add_argument("--awaiting-revocation", action="store_true",
                          help="every delivery whose latest result is INDETERMINATE/TRY_LATER")
    reverify.add_argument("--received-from", type=_aware_time, help="received at or after (ISO 8601 with offset)")
    reverify.add_argument("--received-to", type=_aware_time, help="received before (ISO 8601 with offset)")
    reverify.add_argument("--reference", help="your ticket or change reference, stored with each result")
    reverify.add_argument("--dry-run", action="store_true", help="list how many deliveries match; change nothing")

    backup = sub.add_parser("backup", help="back up the database and the linkage inbox (never the keys)")
    backup.add_argument("--out", type=Path, required=True, help="a new, empty directory for the backup")
    restore = sub.add_parser("restore", help="restore a backup into an empty database")
    restore.add_argument("source", type=Path, help="the backup directory (from `intake backup`)")
    restore.add_argument("--force", action="store_true",
                         help="restore although the database holds applications (they are replaced)")
    return top


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number of 1 or more, not {text!r}")
    return value


def _aware_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError("give the time with its offset, e.g. 2026-12-01T00:00:00+09:00")
    return moment


def _settings() -> IntakeSettings:
    """The settings, or one clear line and exit 2 (never a traceback)."""
    from pydantic import ValidationError

    try:
        return IntakeSettings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()))
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        refuse(f"invalid settings: {'; '.join(problems)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from intake.logs import configure_logging

    configure_logging()
    settings = _settings()
    try:
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        refuse(f"var_dir {settings.var_dir} cannot be created "
                         f"({type(exc).__name__})")
    url = settings.effective_database_url
    if args.command == "db":
        return _db(args, url)
    if args.command == "check":
        return _check(settings)
    if args.command == "serve":
        # Refuse an unsafe listener before anything else is opened.
        from intake.serving import listener_problem, workers_problem

        problem = listener_problem(settings, role=args.only, tls_cert=args.tls_cert, tls_key=args.tls_key,
                                   client_ca=args.client_ca)
        problem = problem or workers_problem(settings, role=args.only, workers=args.workers)
        if problem:
            refuse(f"{problem}")
    engine = make_engine(url)
    # Every command writes and checks the access log with the configured keys (never the development key
    # in production: the settings refuse it).
    sessions = make_session_factory(engine, access_log_keys=settings.access_log_keyring())
    if args.command == "audit":
        if args.action == "purge":
            return _audit_purge(args, settings, sessions)
        return _audit_seal(settings, sessions) if args.action == "seal" else _audit_verify(settings, sessions)
    if args.command == "staff":
        return _staff_add(args, settings, sessions)
    if args.command == "backup":
        from intake.backup import run_backup

        return run_backup(settings, sessions, args.out, at=system_clock())
    if args.command == "restore":
        from intake.backup import run_restore

        return run_restore(settings, args.source, force=args.force)
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
    if args.command == "keys":
        from intake.keys import run_keys

        return run_keys(args, settings, sessions)
    try:
        runtime = Runtime.from_settings(settings)
    except Exception as exc:  # noqa: BLE001 - trust material, keys, routes: one line, never a traceback
        refuse(f"{type(exc).__name__}: {exc}")
    if args.command == "reverify":
        return _reverify(args, runtime, sessions)
    if args.command == "mynumbers":
        from intake.mynumbers.service import TypedNumbersProgress, seal_typed_numbers

        progress = None
        for progress in seal_typed_numbers(sessions, runtime.my_number_sealer, batch=args.batch):
            logging.getLogger("intake.mynumbers").info("seal-typed: %d versions read, %d masked, %d My Numbers sealed",
                      progress.examined, progress.masked, progress.sealed)
        done = progress or TypedNumbersProgress(0, 0, 0)
        print(f"{done.examined} version(s) read: {done.masked} form(s) held a typed My Number, "
              f"{done.sealed} sealed" + (f"; {done.unreadable} form(s) could not be read (see the log)"
                                         if done.unreadable else ""))
        return 1 if done.unreadable else 0
    if args.command == "serve":
        from intake.serving import serve

        return serve(runtime, sessions, role=args.only, host=args.host, port=args.port, tls_cert=args.tls_cert,
                     tls_key=args.tls_key, client_ca=args.client_ca, ops_port=args.ops_port, workers=args.workers)
    if args.action == "run":
        return _run_outbox(args, runtime, sessions)
    from intake.forwarding.service import retry_failed

    with sessions() as session:
        count = retry_failed(session, item_id=args.id, at=runtime.clock())
        session.commit()
    print(f"{count} item(s) queued again")
    return 0


def _reverify(args: argparse.Namespace, runtime: Runtime, sessions: sessionmaker[Session]) -> int:
    from intake.deliveries.reverify import Selection, reverify_selected, select_deliveries

    selection = Selection(tuple(args.receipt_number), args.awaiting_revocation, args.received_from,
                          args.received_to)
    try:
        if args.dry_run:
            with sessions() as session:
                print(f"{len(select_deliveries(session, selection))} deliveries match")
            return 0
        summary = reverify_selected(sessions, runtime, selection, at=runtime.clock(), reference=args.reference)
    except ValueError as exc:
        refuse(str(exc))
    for o in summary.outcomes:
        print(f"{o.receipt_number or '-'} delivery {o.delivery_id}: {o.previous} -> {o.now}"
              + (f" (admitted: {', '.join(o.admitted)})" if o.admitted else ""))
    print(f"reverified {summary.examined}: passed {summary.passed}, still waiting {summary.still_pending}, "
          f"failed {summary.failed}, errors {summary.errors}")
    return 1 if summary.errors else 0


def _db(args: argparse.Namespace, url: str) -> int:
    from intake import migrate

    if args.action == "upgrade":
        migrate.upgrade(url, args.revision)
        print(f"database is at revision {migrate.current(url) or 'base'}")
    elif args.action == "downgrade":
        migrate.downgrade(url, args.revision)
        print(f"database is at revision {migrate.current(url) or 'base'}")
    elif args.action == "current":
        print(migrate.current(url) or "base (empty database)")
    else:
        for line in migrate.history():
            print(line)
    return 0


def _run_outbox(args: argparse.Namespace, runtime: Runtime, sessions: sessionmaker[Session]) -> int:
    """The forwarding worker: a pass over due items every ``--interval`` seconds (PostgreSQL allows
    several workers; with SQLite run exactly one)."""
    import time

    from intake.forwarding.worker import run_once

    log = logging.getLogger("intake.outbox")
    if not args.once:  # a long-running worker keeps its CRLs current (intake/crls/watcher.py)
        from intake.crls.watcher import watcher_of

        watcher_of(runtime).start(sessions)
    while True:
        result = run_once(sessions, runtime, at=runtime.clock())
        if result.outcomes:
            log.info("outbox pass: %s", result.summary())
        if args.once:
            return 0
        time.sleep(args.interval)


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


def _audit_verify(settings: IntakeSettings, sessions: sessionmaker[Session]) -> int:
    """Exit 0 when the access log's hash chain (under its keys) and every seal outside the database
    are intact, else 1 and what is wrong. The chain check is recorded (the auditor's page shows the
    latest check)."""
    from intake.accesslog.checks import run_check
    from intake.accesslog.seals import SealConfig, SealConfigError, check_seals

    try:
        config = SealConfig.from_settings(settings)
    except SealConfigError as exc:
        refuse(str(exc))
    with sessions() as session:
        check = run_check(session, at=system_clock())
        seals = check_seals(session, config, require=settings.environment == "production")
        session.commit()
    if seals.seals:
        newest = seals.newest
        print(f"..  {seals.seals} seal(s) checked" + (f"; newest seals row id {newest.head_id}" if newest else ""))
    elif not config.configured:
        print("..  seals not configured (audit_seal_dir with audit_seal_key_file or audit_tsa_url)")
    for name, seal_problem in seals.problems:
        print(f"NG  seal {name}: {seal_problem.value}")
    if check.anchor_through_id is not None:
        print(f"..  chain starts at the retention record: rows up to id {check.anchor_through_id} were purged")
    if not check.intact:
        for problem in check.problems:
            print(f"NG  {problem.value}")
        if check.broken_count > len(check.broken):
            print(f"NG  {check.broken_count} broken row(s), the first {len(check.broken)} listed")
        print(f"NG  access log chain broken at row id(s): {' '.join(str(i) for i in check.broken)}")
        return 1
    if not seals.intact:
        return 1
    head = f"; head id {check.last_id} hash {check.last_hash}" if check.last_id is not None else ""
    print(f"OK  access log chain intact ({check.rows} rows){head}")
    return 0


def _audit_seal(settings: IntakeSettings, sessions: sessionmaker[Session]) -> int:
    """Seal the head of the (intact) access log outside the database. Exit 0 sealed, 1 the chain is
    not intact (nothing sealed), 2 no configuration, the TSA failed or the seal could not be written."""
    from intake.accesslog.seals import SealConfig, SealRefused, seal_head
    from intake.errors import IntakeError

    try:
        config = SealConfig.from_settings(settings)
        with sessions() as session:
            seal = seal_head(session, config, at=system_clock(), key_id=settings.access_log_active_key)
    except SealRefused as exc:
        print(f"NG  {exc}")
        return 1
    except IntakeError as exc:
        print(f"{exc.code}: {exc}", file=sys.stderr)
        return 2
    print(f"OK  sealed row id {seal.head_id} hash {seal.head_hash} ({seal.rows} rows): {seal.name}")
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
    """Create a staff account under the admin pages' rules (known roles and departments, an
    access-log row; once an administrator exists, reveal / system_admin / an IC card are requests for
    an administrator to approve). Prints the TOTP secret and otpauth URI once."""
    import getpass
    from datetime import timedelta

    from sqlalchemy.exc import IntegrityError

    from intake.crypto import Sealer
    from intake.errors import IntakeError
    from intake.procedures import load_procedures
    from intake.staff.admin import create_from_command_line

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    sealer = Sealer({k: v.get_secret_value() for k, v in settings.package_keys.items()}, settings.package_active_key)
    try:
        catalogue = load_procedures(settings.procedures_file)
    except (OSError, ValueError) as exc:
        refuse(f"the procedure catalogue cannot be read ({type(exc).__name__})")
    try:
        with sessions() as session:
            made = create_from_command_line(
                session, operator=getpass.getuser(), login=args.login, display_name=args.name, roles=args.role,
                departments=args.department, may_reveal_my_number=args.reveal_my_number, password=password,
                client_cert_sha256=args.cert_sha256, reason=args.reason, at=system_clock(), catalogue=catalogue,
                sealer=sealer, issuer=settings.ui.totp_issuer, ttl=timedelta(hours=settings.ui.approval_hours))
            session.commit()
    except (IntakeError, IntegrityError) as exc:
        why = f"{exc.code}: {exc}" if isinstance(exc, IntakeError) else "login or certificate already in use"
        print(f"refused: {why}", file=sys.stderr)
        return 2
    print(f"created staff user {args.login}" + (" (bootstrap: no system administrator existed)" if made.bootstrap
                                                 else ""))
    for filed in made.requests:
        print(f"request {filed.request_id} ({filed.kind.value}) waits for a system administrator's approval "
              "(/staff/admin/requests)")
    if made.totp is not None:
        print(f"TOTP secret: {made.totp.secret}")
        print(f"otpauth URI: {made.totp.provisioning_uri}")
    return 0
