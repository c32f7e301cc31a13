"""``python -m dmz_relay serve | pull [--once] | statuses [--once] | push PATH… | check | status | retry 受付番号 |
replay --since T | backup --out FILE | restore FILE | crl refresh [--redeliver]`` (and ``--version``).

``serve``, ``pull``, ``statuses`` and ``check`` read their configuration from ``SHINSEI_RELAY_*``
(:class:`~dmz_relay.settings.RelaySettings`); ``push`` is the LGWAN terminal's client and takes
its few options on the command line.
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from dmz_relay import __version__
from dmz_relay.errors import RelayError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dmz_relay", description="Shinsei relay (連携サーバ). "
                                     "Settings: SHINSEI_RELAY_* (docs/relay.md).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="push API + pull loop + status relay")
    serve.add_argument("--host", default=None, help="default: SHINSEI_RELAY_LISTEN_HOST")
    serve.add_argument("--port", type=int, default=None, help="default: SHINSEI_RELAY_LISTEN_PORT")
    pull = sub.add_parser("pull", help="pull packages from the portal")
    pull.add_argument("--once", action="store_true", help="one round, then exit (1 if it stopped early)")
    statuses = sub.add_parser("statuses", help="relay status notices from the intake to the portal")
    statuses.add_argument("--once", action="store_true", help="one round, then exit")
    push = sub.add_parser("push", help="LGWAN terminal: upload ZIP files or folders to the relay")
    push.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="ZIP files, or folders of them, to upload")
    push.add_argument("--url", required=True, help="the relay's base URL, e.g. https://relay.example.lg.jp:8500")
    push.add_argument("--ca", type=Path, help="CA bundle that verifies the relay (https)")
    push.add_argument("--cert", type=Path, help="client certificate (PEM), if the relay requires one")
    push.add_argument("--key", type=Path, help="client key (PEM)")
    push.add_argument("--retries", type=int, default=3, help="retries per file on 503 / connection errors")
    push.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    push.add_argument("--no-progress", action="store_true", help="no progress bar (off anyway off a terminal)")
    sub.add_parser("check", help="configuration and readiness self-test (exit 1 when not ready)")
    sub.add_parser("status", help="reconciliation: listed items by state, set-aside items, the last rounds (JSON)")
    retry = sub.add_parser("retry", help="retry a set-aside 受付番号 now, with a fresh attempt budget")
    retry.add_argument("receipt_number", metavar="受付番号", help="YYYYMMDD-NNNNNNNNNN")
    replay = sub.add_parser("replay", help="after an intake restore: forward again every package the portal "
                                           "offered since a time (the intake drops those it has)")
    replay.add_argument("--since", required=True, help="ISO 8601 time with offset, e.g. the backup's created_at")
    backup = sub.add_parser("backup", help="copy the relay's state (tombstones, pull cursor; no personal data)")
    backup.add_argument("--out", type=Path, required=True, help="the backup file to write (must not exist)")
    restore = sub.add_parser("restore", help="put a state backup in place (the relay must be stopped)")
    restore.add_argument("file", type=Path, help="a file written by `dmz_relay backup`")
    restore.add_argument("--force", action="store_true", help="replace an existing tombstones.db")
    crl = sub.add_parser("crl", help="CRLs from the configured distribution points (SHINSEI_RELAY_CRL_SOURCES)")
    crls = crl.add_subparsers(dest="action", required=True, metavar="ACTION")
    refresh = crls.add_parser("refresh", help="one round: fetch, check, install and deliver to the intake; one line "
                                              "per source; exit 0 all fine, 1 a source failed or was refused, "
                                              "2 cannot run")
    refresh.add_argument("--redeliver", action="store_true",
                         help="send every installed CRL to the intake again (after an intake restore)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "push":
        return _push(args)
    from dmz_relay.logs import configure_logging
    from dmz_relay.runtime import Relay, clock_for
    from dmz_relay.settings import RelaySettings

    configure_logging()
    settings = _settings(RelaySettings)
    if args.command == "crl":
        # Not Relay.from_settings: this runs beside `serve` (a timer), and must leave its
        # tombstones and temp directory alone.
        return _crl_refresh(settings, redeliver=args.redeliver)
    if args.command in ("backup", "restore"):
        from dmz_relay.statebackup import backup_state, restore_state

        if args.command == "backup":
            return backup_state(settings, args.out)
        return restore_state(settings, args.file, force=args.force)
    try:
        relay = Relay.from_settings(settings, clock=clock_for(settings))
    except (RelayError, ValueError) as exc:
        print(f"dmz_relay: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "replay":
            from dmz_relay.replay import run_replay

            return run_replay(relay, args.since)
        if args.command == "serve":
            return _serve(args, relay)
        if args.command == "check":
            checks = relay.readiness()
            print(json.dumps(checks, ensure_ascii=False, indent=2))
            return 0 if all(v in ("ok", "skipped", "disabled") for v in checks.values()) else 1
        if args.command == "status":
            print(json.dumps(relay.status(), ensure_ascii=False, indent=2))
            return 0
        if args.command == "retry":
            if relay.puller is None:
                print("no portal configured (SHINSEI_RELAY_PORTAL_URL)", file=sys.stderr)
                return 2
            if not re.fullmatch(r"[0-9]{8}-[0-9]{10}", args.receipt_number):
                print("a 受付番号 is YYYYMMDD-NNNNNNNNNN", file=sys.stderr)
                return 2
            item, final = relay.puller.retry(args.receipt_number)
            if item is None:
                print(f"{args.receipt_number}: not a listed 受付番号", file=sys.stderr)
                return 2
            print(json.dumps({"receipt_number": item.receipt_number, "state": item.state.value,
                              "reason_code": item.reason_code, "attempts": item.attempts}, ensure_ascii=False))
            return 0 if final else 1
        if args.command == "pull":
            if relay.puller is None:
                print("no portal configured (SHINSEI_RELAY_PORTAL_URL)", file=sys.stderr)
                return 2
            if args.once:
                result = relay.puller.poll_once()
                print(json.dumps({"outcomes": result.outcomes, "skipped": result.skipped,
                                  "stopped": result.stopped}, ensure_ascii=False))
                return 0 if result.stopped is None else 1
            if relay.trust.revocation is not None:  # this process's CRLs stay current (fetching: serve, timer)
                import threading

                threading.Thread(target=relay.crl_loop, kwargs={"fetch": False}, name="relay-crls",
                                 daemon=True).start()
            relay.run_loop(relay.puller.poll_once, settings.poll_interval)
            return 0
        if relay.status_relay is None:
            print("no portal configured (SHINSEI_RELAY_PORTAL_URL)", file=sys.stderr)
            return 2
        if args.once:
            status = relay.status_relay.run_once()
            print(json.dumps(vars(status), ensure_ascii=False))
            return 0 if status.stopped is None else 1
        relay.run_loop(relay.status_relay.run_once, settings.status_interval)
        return 0
    except KeyboardInterrupt:
        relay.stop.set()
        return 130
    finally:
        relay.close()


def _crl_refresh(settings: Any, *, redeliver: bool) -> int:
    """One CRL round; one line per source on stdout; 0 all fine, 1 a source failed or was refused
    (or another round was running), 2 cannot run (no sources configured, unusable material)."""
    from dmz_relay.crls import CrlFetcher
    from dmz_relay.runtime import clock_for

    try:
        fetcher = CrlFetcher.from_settings(settings, clock=clock_for(settings))
    except RelayError as exc:
        print(f"dmz_relay: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        result = fetcher.run_once(redeliver=redeliver)
    finally:
        fetcher.close()
    if result.busy:
        print("another CRL round is running (dmz_relay serve or a timer): nothing done", file=sys.stderr)
        return 1
    for source in result.results:
        print(source.line())
    return 0 if result.ok else 1


def _settings(cls: type[Any]) -> Any:
    """The settings, or one clear line on stderr and exit 2 (never a traceback)."""
    from pydantic import ValidationError

    try:
        return cls()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()))
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        print(f"dmz_relay: cannot start: invalid settings: {'; '.join(problems)}", file=sys.stderr)
        raise SystemExit(2) from None


def _serve(args: argparse.Namespace, relay: object) -> int:
    """The push API and, with ``OPS_PORT``, the loopback operations listener, in one event loop;
    the push API's certificate is reloaded when its files change (or on SIGHUP)."""
    import asyncio
    import signal

    import uvicorn

    from dmz_relay.ops import create_ops_app
    from dmz_relay.push import create_app
    from dmz_relay.runtime import Relay
    from tlsreload import TlsReloader
    from tlsreload.alerting import listener_loop

    assert isinstance(relay, Relay)  # noqa: S101 - narrows the type for mypy
    s = relay.settings
    options: dict[str, Any] = {}
    if s.tls_cert is not None and s.tls_key is not None:
        options.update(ssl_certfile=str(s.tls_cert), ssl_keyfile=str(s.tls_key))
        if s.tls_client_ca is not None:
            options.update(ssl_ca_certs=str(s.tls_client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    config = uvicorn.Config(create_app(relay, background=True), host=args.host or s.listen_host,
                            port=args.port or s.listen_port, timeout_graceful_shutdown=int(s.shutdown_grace),
                            log_config=None, server_header=False, **options)
    try:
        config.load()
    except (OSError, ssl.SSLError) as exc:
        print(f"dmz_relay: cannot start: TLS files cannot be used ({type(exc).__name__})", file=sys.stderr)
        return 2
    servers = [uvicorn.Server(config)]
    if s.ops_port is not None:
        servers.append(uvicorn.Server(uvicorn.Config(create_ops_app(relay), host="127.0.0.1", port=s.ops_port,
                                                     log_config=None, access_log=False, lifespan="off",
                                                     server_header=False)))
    if config.ssl is not None and s.tls_cert is not None and s.tls_key is not None:
        reloader = TlsReloader(config.ssl, s.tls_cert, s.tls_key, interval=s.tls_reload_interval)
        reloader.start()
        signal.signal(signal.SIGHUP, lambda _sig, _frame: reloader.check(force=True))

    async def run_all() -> None:
        tasks = [asyncio.create_task(server.serve()) for server in servers]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)

    # The loop sends the TLS alert when the push API refuses a terminal's certificate, so the terminal
    # reads why instead of a bare close (CPython issue 98078, tlsreload/alerting.py).
    with asyncio.Runner(loop_factory=listener_loop) as runner:
        runner.run(run_all())
    return 0


def _push_tls(args: argparse.Namespace) -> tuple[str | None, ssl.SSLContext | bool]:
    """The terminal's TLS for ``--url``, or why it cannot be used (one line: the option to fix).

    Packages carry personal data: an ``http://`` URL is taken only for this machine (a development
    relay on loopback), and never with ``--ca``/``--cert``/``--key``, which it would silently ignore."""
    try:
        url = httpx.URL(args.url)
    except httpx.InvalidURL:
        return f"--url {args.url!r} is not a URL", False
    if url.scheme == "http":
        if args.ca or args.cert or args.key:
            return "--ca, --cert and --key need an https:// --url (http:// would send the packages unencrypted)", False
        if url.host not in ("127.0.0.1", "::1", "localhost"):
            return "--url must be https:// (the relay's push API is TLS only; http:// only to this machine)", False
        return None, False
    if url.scheme != "https":
        return f"--url must be https:// (not {url.scheme or 'without a scheme'})", False
    if args.key and not args.cert:
        return "--key needs --cert", False
    try:
        ctx = ssl.create_default_context(cafile=str(args.ca) if args.ca else None)
    except (OSError, ssl.SSLError) as exc:
        return f"--ca {args.ca} cannot be used ({type(exc).__name__}: {exc.strerror or exc})", False
    if args.cert:
        try:
            ctx.load_cert_chain(str(args.cert), str(args.key) if args.key else None)
        except (OSError, ssl.SSLError) as exc:
            # a key that is not the certificate's, a certificate without its key (--key), a missing file
            return (f"--cert {args.cert} and --key {args.key or '(none: the key must then be in the --cert file)'} "
                    f"cannot be used together ({type(exc).__name__}: {getattr(exc, 'reason', None) or exc})"), False
    return None, ctx


def _push(args: argparse.Namespace) -> int:
    from dmz_relay.client import collect_files, push_files

    try:
        files = collect_files(args.paths)
    except FileNotFoundError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    problem, verify = _push_tls(args)
    if problem is not None:
        print(f"dmz_relay push: cannot start: {problem}", file=sys.stderr)
        return 2
    with httpx.Client(base_url=args.url, verify=verify, timeout=args.timeout, trust_env=False) as http:
        summary = push_files(http, files, out=sys.stdout, retries=args.retries, sleep=time.sleep,
                             progress=not args.no_progress and sys.stdout.isatty())
    return 0 if summary.ok else 1
