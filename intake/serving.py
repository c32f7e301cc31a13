"""``python -m intake serve``: the listeners, their fail-closed rules, readiness, metrics, TLS reload.

:func:`listener_problem` is the fail-closed rule (issue 16, architecture guarantee 11), checked
before anything is opened: a listener that serves the relay's machine API over TLS must require
client certificates from the relay-only CA, and ``client_auth=dedicated-ca`` means nothing without
TLS and that CA. :func:`serve` runs the main listener and, with ``--ops-port``, a loopback
operations listener in one event loop; starts the scheduled readiness check, the TLS reloader
(file changes and SIGHUP) and the daily-mail scheduler.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from intake.api import Role, create_app, create_ops_app, make_metrics, make_readiness
from intake.crls.watcher import watcher_of
from intake.runtime import Runtime
from intake.settings import IntakeSettings
from intake.startup import refuse
from tlsreload import TlsReloader

__all__ = ["listener_problem", "serve"]

_log = logging.getLogger(__name__)


def listener_problem(settings: IntakeSettings, *, role: Role, tls_cert: Path | None, tls_key: Path | None,
                     client_ca: Path | None) -> str | None:
    """Why this listener must not start, or ``None``."""
    if bool(tls_cert) != bool(tls_key):
        return "--tls-cert and --tls-key go together"
    if client_ca and not tls_cert:
        return "--client-ca needs --tls-cert and --tls-key"
    serves_api = role in ("api", "all")
    if serves_api and tls_cert and not client_ca:
        return ("a TLS listener that serves the machine API needs --client-ca (the relay-only CA): "
                "without it any client could deliver packages and read the status outbox")
    if serves_api and settings.client_auth == "dedicated-ca" and not client_ca:
        return "client_auth=dedicated-ca needs --tls-cert, --tls-key and --client-ca (the relay-only CA)"
    return None


async def _run_all(servers: list[object]) -> None:
    import uvicorn

    typed = [s for s in servers if isinstance(s, uvicorn.Server)]
    tasks = [asyncio.create_task(s.serve()) for s in typed]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in typed:  # one stopped (a signal, a bind error): stop the others too
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)


def serve(runtime: Runtime, sessions: sessionmaker[Session], *, role: Role, host: str, port: int,
          tls_cert: Path | None, tls_key: Path | None, client_ca: Path | None, ops_port: int | None) -> int:
    import uvicorn

    from intake.mail.schedule import start_mail_scheduler

    readiness = make_readiness(runtime, sessions)
    metrics = make_metrics(runtime, sessions)
    app = create_app(runtime, sessions, role=role, readiness=readiness, metrics=metrics)
    # proxy_headers=False: uvicorn would otherwise replace the peer address with X-Forwarded-For from
    # 127.0.0.1; the app decides itself which front proxies it believes (settings trusted_proxies).
    # log_config=None: uvicorn's records go through intake.logs (JSON, allow-listed values).
    config = uvicorn.Config(app, host=host, port=port, proxy_headers=False, log_config=None, server_header=False,
                            ssl_certfile=str(tls_cert) if tls_cert else None,
                            ssl_keyfile=str(tls_key) if tls_key else None,
                            ssl_ca_certs=str(client_ca) if client_ca else None,
                            ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE)
    try:
        config.load()
    except (OSError, ssl.SSLError) as exc:
        refuse(f"TLS files cannot be used ({type(exc).__name__})")
    servers: list[object] = [uvicorn.Server(config)]
    if ops_port is not None:
        ops = uvicorn.Config(create_ops_app(runtime, readiness, metrics), host="127.0.0.1", port=ops_port,
                             log_config=None, access_log=False, server_header=False, lifespan="off")
        servers.append(uvicorn.Server(ops))
    reloader = None
    if config.ssl is not None and tls_cert and tls_key:
        reloader = TlsReloader(config.ssl, tls_cert, tls_key, interval=runtime.settings.tls_reload_interval)
        reloader.start()
        signal.signal(signal.SIGHUP, lambda _sig, _frame: reloader.check(force=True))
    readiness.start()
    crl_watcher = watcher_of(runtime).start(sessions)  # CRL re-scans, re-verification on change (intake/crls/)
    scheduler = start_mail_scheduler(runtime, sessions)  # None when mail is disabled
    _log.info("intake serving role=%s port=%s ops_port=%s tls=%s client_ca=%s", role, port, ops_port,
              bool(tls_cert), bool(client_ca))
    try:
        asyncio.run(_run_all(servers))
    finally:
        readiness.stop()
        crl_watcher.stop()
        if reloader is not None:
            reloader.stop()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
    return 0
