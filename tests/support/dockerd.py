"""A private Docker engine for the deployment test: started here, stopped here, nothing left behind.

``dockerd`` (Debian's ``docker.io``) runs as root with its data-root, exec-root, socket and pid file
under one folder the test owns (the data-root is kept between runs: it is the image cache). Its
bridge and address pools are RFC 5737 TEST-NET ranges only (``--bip 198.51.100.1/24``,
``--default-address-pool base=203.0.113.128/25,size=28``); the compose file gives every network an
explicit TEST-NET subnet. No 10/8, 172.16/12 or 192.168/16 address is configured anywhere.

When it stops, dockerd leaves iptables chains and rules and its bridges behind (pitfalls.md). The
engine records the iptables rules, chains and network links that existed before it started and, after
stopping, removes exactly what appeared meanwhile.

``SHINSEI_DOCKER_HOST=unix:///…`` uses an engine that is already running instead (nothing is started
or stopped then).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BIP", "DEFAULT_POOL", "DockerEngine", "DockerUnavailable", "docker_engine"]

BIP = "198.51.100.1/24"
DEFAULT_POOL = "base=203.0.113.128/25,size=28"
DOCKER = "/usr/bin/docker"  # Debian's client, the daemon's own version (20.10)
DOCKERD = "/usr/sbin/dockerd"
_TABLES = ("filter", "nat")
_START_TIMEOUT = 60.0


class DockerUnavailable(Exception):
    """No engine can run here (not root, dockerd missing, or it did not start): the message says why."""


def _run(argv: list[str], *, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done


def _iptables_rules(table: str) -> list[str]:
    return _run(["iptables", "-t", table, "-S"]).stdout.splitlines()


def _links() -> set[str]:
    out = _run(["ip", "-o", "link", "show"]).stdout
    return {line.split(":", 2)[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


@dataclass
class DockerEngine:
    """A running engine: ``env`` points the docker and docker-compose clients at it."""

    host: str
    started: bool
    root: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _rules_before: dict[str, list[str]] = field(default_factory=dict)
    _links_before: set[str] = field(default_factory=set)

    @property
    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        return {**base, "DOCKER_HOST": self.host, "COMPOSE_DOCKER_CLI_BUILD": "0", "DOCKER_BUILDKIT": "0"}

    def docker(self, *args: str, timeout: float = 600, check: bool = True,
               env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False,
                              env={**self.env, **(env or {})})
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:4])} exited {done.returncode}:\n"
                               f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def answers(self) -> bool:
        return self.docker("version", "--format", "{{.Server.Version}}", timeout=10, check=False).returncode == 0

    # --- start / stop ------------------------------------------------------------------------------

    @classmethod
    def start(cls, root: Path) -> DockerEngine:
        existing = os.environ.get("SHINSEI_DOCKER_HOST")
        if existing:
            engine = cls(host=existing, started=False)
            if not engine.answers():
                raise DockerUnavailable(f"SHINSEI_DOCKER_HOST={existing} does not answer")
            return engine
        if os.geteuid() != 0:
            raise DockerUnavailable("dockerd must be started as root (or set SHINSEI_DOCKER_HOST)")
        for tool in (DOCKERD, DOCKER, "/usr/bin/docker-compose", "/usr/sbin/iptables"):
            if not Path(tool).exists():
                raise DockerUnavailable(f"{tool} is missing (make install: Debian docker.io, docker-compose)")
        if "docker0" in _links():
            raise DockerUnavailable("a docker0 bridge exists already (another engine runs here): set "
                                    "SHINSEI_DOCKER_HOST to use it, or stop it")
        root.mkdir(parents=True, exist_ok=True)
        run = root / "run"
        _stop_stale(run)
        _clear_exec_root(run)
        run.mkdir(mode=0o700)
        engine = cls(host=f"unix://{run / 'docker.sock'}", started=True, root=root)
        engine._rules_before = {t: _iptables_rules(t) for t in _TABLES}
        engine._links_before = _links()
        log = (root / "dockerd.log").open("wb")
        engine.process = subprocess.Popen(
            [DOCKERD, "--data-root", str(root / "data"), "--exec-root", str(run / "exec"),
             "--pidfile", str(run / "docker.pid"), "--host", engine.host,
             "--bip", BIP, "--default-address-pool", DEFAULT_POOL,
             "--ip-forward=true", "--iptables=true", "--userland-proxy=true", "--live-restore=false",
             "--log-level", "warn", "--storage-driver", "overlay2"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + _START_TIMEOUT
        while not engine.answers():
            if engine.process.poll() is not None or time.monotonic() > deadline:
                tail = (root / "dockerd.log").read_text(errors="replace")[-3000:]
                engine.stop()
                raise DockerUnavailable(f"dockerd did not start:\n{tail}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                engine.process.wait(0.2)
        return engine

    def stop(self) -> None:
        """Stop the daemon (if we started it), then remove the rules, chains and links it made."""
        if not self.started or self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._remove_leftovers()
        if self.root is not None:
            # The exec-root holds nothing worth keeping; the data-root (image cache) stays.
            _clear_exec_root(self.root / "run")

    def _remove_leftovers(self) -> None:
        for table in _TABLES:
            before = set(self._rules_before.get(table, []))
            after = _iptables_rules(table)
            for policy in self._rules_before.get(table, []):
                if policy.startswith("-P ") and policy not in after:  # dockerd sets FORWARD to DROP
                    _run(["iptables", "-t", table, *policy.split()], check=False)
            for rule in reversed(after):
                if rule in before or not rule.startswith("-A "):
                    continue
                _run(["iptables", "-t", table, "-D", *rule.split()[1:]], check=False)
            for rule in after:
                if rule.startswith("-N ") and rule not in before:
                    chain = rule.split()[1]
                    _run(["iptables", "-t", table, "-F", chain], check=False)
            for rule in after:
                if rule.startswith("-N ") and rule not in before:
                    _run(["iptables", "-t", table, "-X", rule.split()[1]], check=False)
        for link in sorted(_links() - self._links_before):
            if link == "docker0" or link.startswith(("br-", "veth")):
                _run(["ip", "link", "delete", link], check=False)

    def leftovers(self) -> list[str]:
        """What this engine added and did not remove (empty after :meth:`stop`)."""
        found = []
        for table in _TABLES:
            before = set(self._rules_before.get(table, []))
            found += [f"{table}: {r}" for r in _iptables_rules(table) if r not in before]
        found += [f"link {link}" for link in _links() - self._links_before]
        return found


def _clear_exec_root(run: Path) -> None:
    """Unmount what dockerd left mounted under its exec-root (its network namespace), then remove it."""
    prefix = str(run.resolve()) + "/"
    with open("/proc/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        _run(["umount", "-l", point], check=False)
    shutil.rmtree(run, ignore_errors=True)


def _stop_stale(run: Path) -> None:
    """A daemon of an earlier, killed test run still holding our exec-root: stop it first."""
    pidfile = run / "docker.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().strip())
        if Path(f"/proc/{pid}/exe").resolve().name == "dockerd":
            os.kill(pid, signal.SIGTERM)
            for _ in range(300):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)  # polling a dying process of ours; bounded


@contextlib.contextmanager
def docker_engine(root: Path) -> Iterator[DockerEngine]:
    engine = DockerEngine.start(root)
    try:
        yield engine
    finally:
        engine.stop()
