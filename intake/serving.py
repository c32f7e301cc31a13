"""``python -m intake serve``: the listeners, their fail-closed rules, readiness, metrics, TLS reload.

:func:`listener_problem` is the fail-closed rule (issue 16, architecture guarantee 11), checked
before anything is opened: a listener that serves the relay's machine API over TLS must require
client certificates from the relay-only CA, and ``client_auth=dedicated-ca`` means nothing without
TLS and that CA. :func:`serve` runs the main listener and, with ``--ops-port``, a loopback
operations listener in one event loop; starts the scheduled readiness check, the TLS reloader
(file changes and SIGHUP) and the daily-mail scheduler.

``--workers N`` (the machine API only, PostgreSQL only) binds the port once and forks N worker
processes that accept on it, each a whole intake as above with its own database pool, CRL watcher,
readiness and TLS reloader; worker *i*'s operations listener is on ``--ops-port`` + *i*, and only
worker 0 runs the daily-mail scheduler (the sent-log would keep the others from sending twice, but
one scheduler is enough). The parent only supervises: it passes SIGTERM, SIGINT and SIGHUP on, and
when a worker dies it stops the others and exits non-zero, so systemd or the container engine
restarts the whole service rather than leaving it short of a worker. Idempotency holds across
workers: the idempotency key is unique in the database (:func:`intake.deliveries.service.store_once`).

The listeners run on :func:`tlsreload.alerting.listener_loop`: asyncio's selector event loop, except
that a TLS handshake the listener refuses (a client certificate not from the relay-only CA, or none)
ends with the fatal TLS alert on the wire instead of a bare close (CPython issue 98078), so the relay
can tell a refused certificate from an intake that went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import ssl
import threading
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from intake.api import Role, create_app, create_ops_app, make_metrics, make_readiness
from intake.crls.watcher import watcher_of
from intake.runtime import Runtime
from intake.settings import IntakeSettings
from intake.startup import refuse
from tlsreload import TlsReloader
from tlsreload.alerting import listener_loop

__all__ = ["listener_problem", "serve", "workers_problem"]

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


def workers_problem(settings: IntakeSettings, *, role: Role, workers: int) -> str | None:
    """Why ``--workers`` cannot be used as given, or ``None``."""
    if workers < 1:
        return "--workers must be at least 1"
    if workers == 1:
        return None
    if role != "api":
        return "--workers > 1 serves the machine API only (--only api): the staff UI keeps per-process state"
    if settings.effective_database_url.startswith("sqlite"):
        return "--workers > 1 needs PostgreSQL (SQLite has one writer)"
    return None


async def _run_all(servers: list[object], sockets: list[socket.socket] | None = None) -> None:
    import uvicorn

    typed = [s for s in servers if isinstance(s, uvicorn.Server)]
    # The main listener (first) accepts on the supervisor's socket when there is one.
    tasks = [asyncio.create_task(s.serve(sockets=sockets if i == 0 else None)) for i, s in enumerate(typed)]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in typed:  # one stopped (a signal, a bind error): stop the others too
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)


def serve(runtime: Runtime, sessions: sessionmaker[Session], *, role: Role, host: str, port: int,
          tls_cert: Path | None, tls_key: Path | None, client_ca: Path | None, ops_port: int | None,
          workers: int = 1) -> int:
    if workers == 1:
        return _serve_one(runtime, sessions, role=role, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key,
                          client_ca=client_ca, ops_port=ops_port, worker=None, sockets=None)
    return _supervise(runtime, sessions, role=role, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key,
                      client_ca=client_ca, ops_port=ops_port, workers=workers)


def _supervise(runtime: Runtime, sessions: sessionmaker[Session], *, role: Role, host: str, port: int,
               tls_cert: Path | None, tls_key: Path | None, client_ca: Path | None, ops_port: int | None,
               workers: int) -> int:
    """Bind once, fork ``workers`` processes serving on the socket, and watch them (module docstring)."""
    if threading.active_count() != 1:  # a fork copies only the calling thread: never fork with others running
        refuse("--workers: a thread is running before the workers are started (a bug: report it)")
    listeners = _bind(host, port)
    children: dict[int, int] = {}
    supervisor = os.getpid()
    passed_on = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    # Blocked while forking: a signal now is handled once the supervisor can pass it on.
    signal.pthread_sigmask(signal.SIG_BLOCK, passed_on)
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker: a whole intake on the shared socket
            code = 1
            try:
                _stop_with_parent(supervisor)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, passed_on)
                sessions.kw["bind"].dispose(close=False)  # the parent's pool (if any) is not ours
                code = _serve_one(runtime, sessions, role=role, host=host, port=port, tls_cert=tls_cert,
                                  tls_key=tls_key, client_ca=client_ca,
                                  ops_port=ops_port + index if ops_port is not None else None,
                                  worker=index, sockets=listeners)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - logged; the supervisor sees the exit code
                _log.exception("intake worker %s failed", index)
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = index
    for listener in listeners:
        listener.close()  # the workers hold them
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum != signal.SIGHUP:
            stopping = True
        for child in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    for signum in passed_on:
        signal.signal(signum, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, passed_on)
    _log.info("intake supervising %s workers on port %s", workers, port)
    result = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in children:
            continue
        index = children.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if not stopping:
            # A worker died on its own: stop the rest and exit non-zero, so the service is restarted whole.
            _log.error("intake worker %s exited with %s: stopping the other workers", index, code)
            stopping, result = True, 1
            forward(signal.SIGTERM, None)
        elif code not in (0, -signal.SIGTERM, -signal.SIGINT):
            result = result or 1
    return result


def _bind(host: str, port: int) -> list[socket.socket]:
    """The listening sockets for ``host``: one per address it resolves to, IPv4 and IPv6 alike, as
    uvicorn binds them when it runs alone (an IPv6 socket is IPv6-only, as asyncio makes it)."""
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        refuse(f"cannot listen on {host}:{port} ({type(exc).__name__}: {exc.strerror})")
    listeners: list[socket.socket] = []
    try:
        for family, address in dict.fromkeys((family, address) for family, _, _, _, address in found):
            listeners.append(socket.create_server(address, family=family, backlog=2048))
    except OSError as exc:
        for listener in listeners:
            listener.close()
        refuse(f"cannot listen on {host}:{port} ({type(exc).__name__}: {exc.strerror})")
    return listeners


def _stop_with_parent(supervisor: int) -> None:
    """Ask Linux to send this worker SIGTERM when the supervisor dies (``PR_SET_PDEATHSIG``), so that
    a supervisor killed outright (SIGKILL, the OOM killer) leaves no worker serving on the port."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        _log.warning("PR_SET_PDEATHSIG failed (errno %s): a worker may outlive a killed supervisor",
                     ctypes.get_errno())
    if os.getppid() != supervisor:  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _serve_one(runtime: Runtime, sessions: sessionmaker[Session], *, role: Role, host: str, port: int,
               tls_cert: Path | None, tls_key: Path | None, client_ca: Path | None, ops_port: int | None,
               worker: int | None, sockets: list[socket.socket] | None) -> int:
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
    # None when mail is disabled; one scheduler per service (worker 0 when there are several)
    scheduler = start_mail_scheduler(runtime, sessions) if not worker else None
    _log.info("intake serving role=%s port=%s ops_port=%s tls=%s client_ca=%s worker=%s", role, port, ops_port,
              bool(tls_cert), bool(client_ca), worker)
    try:
        with asyncio.Runner(loop_factory=listener_loop) as runner:
            runner.run(_run_all(servers, sockets))
    finally:
        readiness.stop()
        crl_watcher.stop()
        if reloader is not None:
            reloader.stop()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
    return 0
