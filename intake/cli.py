"""``python -m intake serve | db upgrade | linkage import | outbox retry | check``."""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from intake.db import make_engine, make_session_factory
from intake.runtime import Runtime, system_clock
from intake.settings import IntakeSettings

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m intake", description="Shinsei intake (申請管理システム)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API (and, later, the staff UI)")
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
    outbox = sub.add_parser("outbox", help="forwarding outbox")
    outbox.add_argument("action", choices=["retry", "run"])
    outbox.add_argument("--id", type=int, default=None, help="retry: one failed item (default: all failed items)")
    outbox.add_argument("--once", action="store_true", help="run: process due items once and exit")
    outbox.add_argument("--interval", type=float, default=5.0, help="run: seconds between passes")
    sub.add_parser("check", help="configuration and connectivity self-test")
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
    if args.command == "linkage":
        # Needs only the database and the clock, not the trust configuration.
        from intake.linkage.importer import import_linkage_file

        with sessions() as session:
            result = import_linkage_file(session, args.file, at=system_clock(), mode=args.mode)
            session.commit()
        print(result.summary())
        return 0 if result.ok else 1
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
    uvicorn.run(app, host=args.host, port=args.port, log_level="info",
                ssl_certfile=str(args.tls_cert) if args.tls_cert else None,
                ssl_keyfile=str(args.tls_key) if args.tls_key else None,
                ssl_ca_certs=str(args.client_ca) if args.client_ca else None,
                ssl_cert_reqs=ssl.CERT_REQUIRED if args.client_ca else ssl.CERT_NONE)
    return 0


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
