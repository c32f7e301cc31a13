"""The whole chain as real processes: ``portal_sim serve`` → ``dmz_relay serve`` → fault proxy → ``intake serve``.

Each service is started the way operators start it (``python -m …`` with its ``SHINSEI_*``
environment), writes its log to a file, and is probed on its own ``/healthz`` before it counts as
started. Between the relay and the intake sits :class:`~tests.support.faultproxy.FaultProxy`
(resets, lost replies, latency); relay and intake speak mutual TLS through it (a relay-only client
CA, ``CLIENT_AUTH=dedicated-ca``), so the proxy sees only ciphertext, as a network would.

The relay can be started through :mod:`tests.support.crashing_relay` (it SIGKILLs itself at a
named point) and the intake through :mod:`tests.support.crashing_intake` (it dies right after its
first stored delivery is committed, before the reply); either can be SIGKILLed from outside at any
moment and started again on the same port. Probes and readers (:meth:`Chain.tombstones`,
:meth:`Chain.intake_deliveries`) look at the relay's tombstone database (read-only) and the
intake's database without going through either service.

Nothing here sleeps blind: every wait is for a condition (a port answering, a process exiting)
with a deadline. Used by tests/chain/ and meant for the demo orchestrator as well.
"""

from __future__ import annotations

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import httpx

from tests.support.faultproxy import FaultProxy
from tests.support.servers import free_port
from tests.support.tlscerts import relay_intake_tls

__all__ = [
    "JST",
    "REPO",
    "Chain",
    "ChainError",
    "ChainOptions",
    "Life",
    "PortalData",
    "Service",
    "generate_portal_data",
    "wait_until",
]

JST = timezone(timedelta(hours=9))
REPO = Path(__file__).resolve().parents[2]
#: Outcomes after which the relay does not fetch a package again (dmz_relay.tombstones.FINAL_FOR_SOURCE).
FINAL = frozenset({"stored", "duplicate", "refused", "rejected"})
_START_TIMEOUT = 90.0


class ChainError(RuntimeError):
    """A service did not start, or a wait ran past its deadline; the message ends with log tails."""


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.02,
               on_timeout: Callable[[], str] | None = None) -> None:
    """Poll ``predicate`` until it holds; raise :class:`ChainError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout is not None else ""
            raise ChainError(f"{what}: not reached within {timeout} s\n{detail}")
        time.sleep(interval)


# --- the portal's data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortalData:
    """A ``portal_sim generate`` data directory (docs/portal-sim.md) and what the chain needs of it."""

    path: Path
    municipality_code: str
    api_key: str
    period_end: datetime

    @classmethod
    def open(cls, path: Path) -> PortalData:
        manifest = json.loads((path / "manifest.json").read_text("utf-8"))
        start = datetime.fromisoformat(manifest["generated_for"])
        if start.tzinfo is None:
            start = start.replace(tzinfo=JST)
        return cls(path, manifest["municipality_code"], manifest["api_key"],
                   start + timedelta(days=int(manifest.get("days", 30))))

    def applications(self) -> list[dict[str, Any]]:
        with (self.path / "applications.jsonl").open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def residents(self) -> list[dict[str, Any]]:
        with (self.path / "residents.jsonl").open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def copy_to(self, target: Path) -> PortalData:
        """A private copy (the portal writes status updates into its data directory)."""
        shutil.copytree(self.path, target)
        return PortalData(target, self.municipality_code, self.api_key, self.period_end)

    @property
    def jpki_roots(self) -> Path:
        return self.path / "pki" / "jpki-roots"

    @property
    def portal_roots(self) -> Path:
        return self.path / "pki" / "portal-roots"

    @property
    def intermediates(self) -> Path:
        return self.path / "pki" / "jpki-intermediate.pem"

    @property
    def crl_dir(self) -> Path:
        return self.path / "crl"


def generate_portal_data(out: Path, *, today: date, applications: int, residents: int, seed: int,
                         defect_rate: float, key_cache: Path | None, jobs: int = 2) -> PortalData:
    """Generate a period of three days that ended yesterday (JST), so that every application has
    arrived and the directory's CRLs are current for a week: relay and intake verify at the real
    time (they are real processes with the system clock). ``today`` is passed in, not read here."""
    from portal_sim.generate import GenerateOptions, generate

    options = GenerateOptions(start=today - timedelta(days=4), residents=residents, applications=applications,
                              seed=seed, days=3, defect_rate=defect_rate)
    generate(out, options, key_cache=key_cache, jobs=jobs)
    return PortalData.open(out)


# --- one real process ------------------------------------------------------------------------------


@dataclass
class Life:
    """One run of a service: what was started, where it logged, how it ended."""

    argv: list[str]
    log: Path
    started: float
    returncode: int | None = None


class Service:
    """A service run as real processes, one after the other (restarts keep the name and the port)."""

    def __init__(self, name: str, *, log_dir: Path, env: Mapping[str, str], cwd: Path) -> None:
        self.name = name
        self.log_dir = log_dir
        self.env = dict(env)
        self.cwd = cwd
        self.lives: list[Life] = []
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise ChainError(f"{self.name} was never started")
        return self._proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        """True while the current process lives (records its exit code when it is gone)."""
        if self._proc is None:
            return False
        code = self._proc.poll()
        if code is None:
            return True
        if self.lives and self.lives[-1].returncode is None:
            self.lives[-1].returncode = code
        return False

    def start(self, argv: Sequence[str], *, ready: Callable[[], bool] | None = None,
              timeout: float = _START_TIMEOUT, may_exit: bool = False) -> None:
        """Start a new life; with ``ready``, return once it holds. ``may_exit``: a process that ends
        while starting is not an error (one that crashes itself on purpose can do so early)."""
        if self.running():
            raise ChainError(f"{self.name} is already running")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{self.name}-{len(self.lives) + 1:03d}.log"
        with log.open("wb") as out:
            self._proc = subprocess.Popen(list(argv), env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=subprocess.STDOUT)
        self.lives.append(Life(list(argv), log, time.monotonic()))
        if ready is None:
            return
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.running():
                if may_exit:
                    return
                raise ChainError(f"{self.name} exited with {self.proc.returncode} while starting\n{self.tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise ChainError(f"{self.name} did not become ready within {timeout} s\n{self.tail()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(0.05)  # returns at once if the process died

    def kill(self) -> int:
        """SIGKILL (no clean-up of any kind, as a crash or the OOM killer would)."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.running()
        return self.proc.returncode

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful shutdown); SIGKILL if it does not end within ``timeout``."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.running()
        return self.proc.returncode

    def wait_exit(self, timeout: float) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        return self.proc.returncode if not self.running() else None

    def tail(self, lines: int = 30) -> str:
        if not self.lives:
            return f"({self.name}: no log)"
        text = self.lives[-1].log.read_text("utf-8", errors="replace").splitlines()[-lines:]
        return f"--- {self.lives[-1].log.name} ---\n" + "\n".join(text)

    def exit_codes(self) -> list[int | None]:
        self.running()
        return [life.returncode for life in self.lives]


# --- the chain -------------------------------------------------------------------------------------


@dataclass
class ChainOptions:
    #: SQLAlchemy URL of an empty (or migrated) intake database; default: SQLite under the work dir.
    database_url: str | None = None
    scanner: Literal["clamd", "none"] = "none"
    clamd_socket: Path | None = None
    #: Mutual TLS between relay and intake (through the proxy). Off: plain HTTP, CLIENT_AUTH=none.
    tls: bool = True
    #: The fault proxy between relay and intake. Off: the relay dials the intake directly (benchmarks).
    proxy: bool = True
    #: Extra or overriding ``SHINSEI_RELAY_*`` values (names without the prefix).
    relay: dict[str, str] = field(default_factory=dict)
    #: Extra or overriding ``SHINSEI_INTAKE_*`` values (names without the prefix).
    intake: dict[str, str] = field(default_factory=dict)
    #: ``portal_sim serve`` options besides --data/--port/--clock.
    portal_args: Sequence[str] = ("--rate", "0")
    #: ``intake serve`` options besides --host/--port/TLS (e.g. ``("--only", "api", "--workers", "2")``).
    intake_args: Sequence[str] = ()


#: Relay settings for a test chain: quick retries, small pages, short polls.
FAST_RELAY: dict[str, str] = {
    "INTAKE_CONNECT_TIMEOUT": "2", "INTAKE_READ_TIMEOUT": "3", "INTAKE_WRITE_TIMEOUT": "5",
    "FORWARD_ATTEMPTS": "6", "FORWARD_BACKOFF_INITIAL": "0.05", "FORWARD_BACKOFF_MAX": "0.5",
    "FORWARD_JITTER": "0.05", "PORTAL_MAX_RETRY_AFTER": "2", "PORTAL_TIMEOUT": "10",
    "POLL_INTERVAL": "0.2", "PAGE_SIZE": "20", "STATUS_INTERVAL": "1", "SHUTDOWN_GRACE": "5",
}


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Chain:
    """portal → relay → proxy → intake, as real processes under ``work``.

    ``relay_root`` holds everything the relay writes: ``data/`` (tombstones), ``tmp/`` (its private
    temp directory) and ``logs/`` (its stderr, JSON lines) — put it on the disk under test.
    """

    def __init__(self, portal: PortalData, work: Path, *, relay_root: Path | None = None,
                 options: ChainOptions | None = None) -> None:
        self.portal_data = portal
        self.work = work
        self.options = options or ChainOptions()
        self.relay_root = relay_root or work / "relay"
        self.relay_data = self.relay_root / "data"
        self.relay_temp = self.relay_root / "tmp"
        self.relay_logs = self.relay_root / "logs"
        self.intake_var = work / "intake"
        self.database_url = self.options.database_url or f"sqlite:///{self.intake_var / 'intake.db'}"
        self.portal_port, self.intake_port, self.relay_port = free_port(), free_port(), free_port()
        self.proxy = FaultProxy("127.0.0.1", self.intake_port)
        self._stack = contextlib.ExitStack()
        self._tls = self._make_tls(work / "tls") if self.options.tls else None
        work.mkdir(parents=True, exist_ok=True)
        self.portal = Service("portal", log_dir=work / "logs", env=_base_env(), cwd=work)
        self.intake = Service("intake", log_dir=work / "logs", env=self.intake_env(), cwd=work)
        self.relay = Service("relay", log_dir=self.relay_logs, env={}, cwd=work)  # env once the proxy listens
        self._migrated = False

    # -- set-up ---------------------------------------------------------------------------------

    def _make_tls(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        tls = relay_intake_tls(directory)  # the intake's CA; a relay-only client CA (dedicated-ca)
        return {"intake_ca": tls.server_ca.cert, "server_cert": tls.server.cert, "server_key": tls.server.key,
                "relay_ca": tls.relay_ca.cert, "client_cert": tls.relay.cert, "client_key": tls.relay.key}

    def intake_env(self) -> dict[str, str]:
        env = _base_env()
        p = self.portal_data
        values = {
            "DATABASE_URL": self.database_url, "VAR_DIR": str(self.intake_var),
            "JPKI_ROOTS": json.dumps([str(p.jpki_roots)]), "PORTAL_ROOTS": json.dumps([str(p.portal_roots)]),
            "JPKI_INTERMEDIATES": json.dumps([str(p.intermediates)]), "CRLS": json.dumps([str(p.crl_dir)]),
            "REVOCATION": "require", "CLIENT_AUTH": "dedicated-ca" if self.options.tls else "none",
            "MAIL__ENABLED": "false", "ENVIRONMENT": "development",
        }
        values.update(self.options.intake)
        env.update({f"SHINSEI_INTAKE_{k}": v for k, v in values.items()})
        return env

    def relay_env(self) -> dict[str, str]:
        env = _base_env()
        p = self.portal_data
        scheme = "https" if self._tls else "http"
        values = {
            "ENVIRONMENT": "development", "DATA_DIR": str(self.relay_data), "TEMP_DIR": str(self.relay_temp),
            "INTAKE_URL": f"{scheme}://127.0.0.1:{self.proxy.port if self.options.proxy else self.intake_port}",
            "PORTAL_URL": f"http://127.0.0.1:{self.portal_port}", "MUNICIPALITY_CODE": p.municipality_code,
            "PORTAL_API_KEY": p.api_key,
            "JPKI_ROOTS": json.dumps([str(p.jpki_roots)]), "PORTAL_ROOTS": json.dumps([str(p.portal_roots)]),
            "JPKI_INTERMEDIATES": json.dumps([str(p.intermediates)]), "CRLS": json.dumps([str(p.crl_dir)]),
            "REVOCATION": "require", "SCANNER": self.options.scanner,
            "LISTEN_HOST": "127.0.0.1", "LISTEN_PORT": str(self.relay_port),
            **FAST_RELAY,
        }
        if self.options.clamd_socket is not None:
            values["CLAMD_SOCKET"] = str(self.options.clamd_socket)
        if self._tls:
            values.update(INTAKE_CA=str(self._tls["intake_ca"]), CLIENT_CERT=str(self._tls["client_cert"]),
                          CLIENT_KEY=str(self._tls["client_key"]))
        values.update(self.options.relay)
        env.update({f"SHINSEI_RELAY_{k}": v for k, v in values.items()})
        return env

    def __enter__(self) -> Chain:
        if self.options.proxy:
            self._stack.enter_context(self.proxy)
        self.relay.env = self.relay_env()
        self._stack.callback(self._stop_all)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _stop_all(self) -> None:
        for service in (self.relay, self.intake, self.portal):
            if service.running():
                service.terminate(15)

    # -- probes ---------------------------------------------------------------------------------

    def _get_ok(self, url: str, verify: ssl.SSLContext | bool = False) -> bool:
        try:
            return httpx.get(url, timeout=1.0, verify=verify, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def intake_ssl(self) -> ssl.SSLContext:
        """The relay's side of the mutual TLS to the intake: its client certificate and the intake's CA."""
        assert self._tls is not None
        ctx = ssl.create_default_context(cafile=str(self._tls["intake_ca"]))
        ctx.load_cert_chain(str(self._tls["client_cert"]), str(self._tls["client_key"]))
        return ctx

    def intake_ready(self) -> bool:
        """``/healthz`` straight at the intake (never through the proxy and its queued faults)."""
        if self._tls:
            return self._get_ok(f"https://127.0.0.1:{self.intake_port}/healthz", self.intake_ssl())
        return self._get_ok(f"http://127.0.0.1:{self.intake_port}/healthz")

    # -- services -------------------------------------------------------------------------------

    def start_portal(self, clock: str | None = None) -> None:
        clock = clock or f"fixed:{self.portal_data.period_end.isoformat()}"
        self.portal.start([sys.executable, "-m", "portal_sim", "serve", "--data", str(self.portal_data.path),
                           "--host", "127.0.0.1", "--port", str(self.portal_port), "--clock", clock,
                           "--log-level", "warning", *self.options.portal_args],
                          ready=lambda: self._get_ok(f"http://127.0.0.1:{self.portal_port}/healthz"))

    def migrate_intake(self) -> None:
        self.intake_var.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "intake", "db", "upgrade"], env=self.intake.env, cwd=self.work,
                              capture_output=True, timeout=300, check=False)
        if done.returncode != 0:
            raise ChainError("intake db upgrade failed:\n" + done.stderr.decode(errors="replace")[-3000:])
        self._migrated = True

    def start_intake(self, *, crash_after_first_commit: bool = False) -> None:
        """``python -m intake serve`` (or the crashing variant) on the chain's fixed intake port."""
        if not self._migrated:
            self.migrate_intake()
        module = "tests.support.crashing_intake" if crash_after_first_commit else "intake"
        argv = [sys.executable, "-m", module, "serve", "--host", "127.0.0.1", "--port", str(self.intake_port),
                *self.options.intake_args]
        if self._tls:
            argv += ["--tls-cert", str(self._tls["server_cert"]), "--tls-key", str(self._tls["server_key"]),
                     "--client-ca", str(self._tls["relay_ca"])]
        self.intake.start(argv, ready=self.intake_ready, may_exit=crash_after_first_commit)

    def start_relay(self, crash: Sequence[str] = ()) -> None:
        """``python -m dmz_relay serve`` — through :mod:`tests.support.crashing_relay` when ``crash``
        names points (``"after-receipt:3"``)."""
        if crash:
            argv = [sys.executable, "-m", "tests.support.crashing_relay"]
            for point in crash:
                argv += ["--crash", point]
            argv.append("serve")
        else:
            argv = [sys.executable, "-m", "dmz_relay", "serve"]
        self.relay.start(argv, ready=self.relay_ready, may_exit=bool(crash))

    def relay_ready(self) -> bool:
        return self._get_ok(f"http://127.0.0.1:{self.relay_port}/healthz")

    def pull_once(self, timeout: float = 300.0) -> tuple[int, dict[str, Any]]:
        """``python -m dmz_relay pull --once``: one round; (exit code, its JSON summary)."""
        self.relay_logs.mkdir(parents=True, exist_ok=True)
        log = self.relay_logs / f"pull-once-{time.monotonic_ns()}.log"
        with log.open("wb") as err:
            done = subprocess.run([sys.executable, "-m", "dmz_relay", "pull", "--once"], env=self.relay.env,
                                  cwd=self.work, stdout=subprocess.PIPE, stderr=err, timeout=timeout, check=False)
        out = done.stdout.decode("utf-8", errors="replace").strip().splitlines()
        try:
            summary = json.loads(out[-1]) if out else {}
        except ValueError:
            summary = {"unparsed": out[-1]}
        return done.returncode, summary

    def statuses_once(self, timeout: float = 300.0) -> tuple[int, dict[str, Any]]:
        """``python -m dmz_relay statuses --once``: one status round; (exit code, its JSON summary)."""
        self.relay_logs.mkdir(parents=True, exist_ok=True)
        log = self.relay_logs / f"statuses-once-{time.monotonic_ns()}.log"
        with log.open("wb") as err:
            done = subprocess.run([sys.executable, "-m", "dmz_relay", "statuses", "--once"], env=self.relay.env,
                                  cwd=self.work, stdout=subprocess.PIPE, stderr=err, timeout=timeout, check=False)
        out = done.stdout.decode("utf-8", errors="replace").strip().splitlines()
        try:
            summary = json.loads(out[-1]) if out else {}
        except ValueError:
            summary = {"unparsed": out[-1]}
        return done.returncode, summary

    # -- readers --------------------------------------------------------------------------------

    def tombstones(self) -> list[dict[str, Any]]:
        """Every tombstone row (read-only; empty before the relay's first start)."""
        path = self.relay_data / "tombstones.db"
        if not path.exists():
            return []
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            db.row_factory = sqlite3.Row
            try:
                rows = db.execute("SELECT * FROM tombstones ORDER BY id").fetchall()
            except sqlite3.OperationalError:  # the relay is creating the schema right now
                return []
            return [dict(r) for r in rows]
        finally:
            db.close()

    def final_pairs(self) -> dict[tuple[str, str], str]:
        """(受付番号, SHA-256) → final outcome, for every package the relay is done with."""
        return {(t["receipt_number"], t["sha256"]): t["outcome"] for t in self.tombstones()
                if t["outcome"] in FINAL and t["receipt_number"] and t["sha256"]}

    def intake_deliveries(self) -> list[tuple[str, str | None]]:
        """(sha256, 受付番号) of every delivery the intake stored, one row per stored copy."""
        from sqlalchemy import select

        from intake.db import make_engine, make_session_factory
        from intake.models import Delivery

        engine = make_engine(self.database_url)
        try:
            with make_session_factory(engine)() as session:
                return [(sha, number) for sha, number in session.execute(
                    select(Delivery.sha256, Delivery.receipt_number).order_by(Delivery.id))]
        finally:
            engine.dispose()

    def relay_log_events(self) -> list[dict[str, Any]]:
        """Every JSON line the relay processes wrote (all lives)."""
        events = []
        for path in sorted(self.relay_logs.glob("*.log")):
            for line in path.read_text("utf-8", errors="replace").splitlines():
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        events.append(json.loads(line))
        return events

    def tails(self) -> str:
        return "\n".join(s.tail() for s in (self.relay, self.intake, self.portal) if s.lives)

