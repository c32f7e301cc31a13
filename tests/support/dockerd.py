"""A private Docker engine for the deployment test: started here, stopped here, nothing left behind.

``dockerd`` (Debian's ``docker.io``) runs as root with its data-root, exec-root, socket and pid file
under one folder the test owns (the data-root is kept between runs: it is the image cache). Its
bridge and address pools are RFC 5737 TEST-NET ranges only (``--bip 198.51.100.1/27``,
``--default-address-pool base=198.51.100.128/25,size=28``); the compose file gives every network an
explicit TEST-NET subnet between them. No 10/8, 172.16/12 or 192.168/16 address is configured anywhere.
TEST-NET ranges are not always free: on these machines the host's own link is 192.0.2.0/24 and the
package mirrors answer at 203.0.113.80, so a bridge there would cut the host (and every other test on
it) off. :func:`clashes` compares the ranges with the host's routes and with the addresses the
package indexes resolve to, and the engine refuses to start on a clash.

When it stops, dockerd leaves iptables chains and rules and its bridges behind (pitfalls.md). The
engine records the iptables rules, chains and network links that existed before it started and, after
stopping, removes exactly what appeared meanwhile.

Only one private engine runs on a host at a time: :meth:`DockerEngine.start` takes an exclusive
``flock`` on ``/run/lock/shinsei-dockerd.lock`` (``SHINSEI_DOCKERD_LOCK``) and holds it until
:meth:`DockerEngine.stop` has removed the leftovers, so two ``make test`` runs (two worktrees, two
helpers) wait for each other instead of colliding on the bridge, the iptables chains and the
data-root. The wait is bounded (``SHINSEI_DOCKERD_LOCK_TIMEOUT`` seconds, default 3600).

``SHINSEI_DOCKER_HOST=unix:///…`` uses an engine that is already running instead (nothing is started
or stopped then, and no lock is taken).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BIP", "DEFAULT_POOL", "ENGINE_ROOT", "LOCK", "MIRRORS", "AddressClash", "DockerEngine", "DockerUnavailable",
           "clashes", "docker_engine", "host_lock"]

BIP = "198.51.100.1/27"
DEFAULT_POOL = "base=198.51.100.128/25,size=28"
#: Names the host must keep reaching while the engine runs (the package indexes of `make install`).
MIRRORS = ("deb.debian.org", "security.debian.org", "pypi.org", "files.pythonhosted.org")
DOCKER = "/usr/bin/docker"  # Debian's client, the daemon's own version (20.10)
DOCKERD = "/usr/sbin/dockerd"
_TABLES = ("filter", "nat")
_START_TIMEOUT = 60.0
# The engine's home (data-root = image cache, exec-root, log), shared by every worktree on the host:
# the lock makes that safe, and a second worktree's run is then warm too.
ENGINE_ROOT = Path(os.environ.get("SHINSEI_DEPLOY_CACHE", "/var/cache/shinsei-deploy-check"))
LOCK = Path(os.environ.get("SHINSEI_DOCKERD_LOCK", "/run/lock/shinsei-dockerd.lock"))


class DockerUnavailable(Exception):
    """No engine can run here (not root, dockerd missing, or it did not start): the message says why."""


class AddressClash(DockerUnavailable):
    """The configured ranges overlap addresses the host uses: fix the ranges (never skip over it)."""


class HostLock:
    """An exclusive ``flock`` held for the whole life of the private engine (see the module docstring)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def host_lock(path: Path = LOCK, *, timeout: float | None = None) -> HostLock:
    """Wait (bounded) for the host-wide engine lock; raise :class:`DockerUnavailable` on time-out."""
    limit = float(os.environ.get("SHINSEI_DOCKERD_LOCK_TIMEOUT", "3600")) if timeout is None else timeout
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + limit
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise DockerUnavailable(f"another private dockerd holds {path} for more than {limit:.0f} s") from None
            time.sleep(0.5)  # another run's engine is up; it releases the lock when it stops (bounded wait)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return HostLock(path, fd)


def _run(argv: list[str], *, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done


def clashes(networks: list[str]) -> list[str]:
    """Which of ``networks`` (CIDR) overlap a route of the host (besides the default route) or
    contain an address of a package mirror — a bridge there would cut the host off."""
    import ipaddress
    import socket

    taken: list[tuple[str, ipaddress.IPv4Network]] = []
    for line in _run(["ip", "-4", "route", "show"]).stdout.splitlines():
        first = line.split()[0] if line.split() else ""
        if first and first != "default":
            with contextlib.suppress(ValueError):
                taken.append((f"route {line.strip()}", ipaddress.IPv4Network(first, strict=False)))
    for name in MIRRORS:
        with contextlib.suppress(OSError):
            for info in socket.getaddrinfo(name, 443, socket.AF_INET, socket.SOCK_STREAM):
                taken.append((f"{name} ({info[4][0]})", ipaddress.IPv4Network(f"{info[4][0]}/32")))
    found = []
    for text in networks:
        net = ipaddress.IPv4Network(text, strict=False)
        found += [f"{text} overlaps {why}" for why, other in taken if net.overlaps(other)]
    return found


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
    lock: HostLock | None = None
    left_behind: list[str] = field(default_factory=list)
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
    def start(cls, root: Path = ENGINE_ROOT) -> DockerEngine:
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
        lock = host_lock()
        try:
            return cls._start_locked(root, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _start_locked(cls, root: Path, lock: HostLock) -> DockerEngine:
        run = root / "run"
        _stop_stale(run)
        _remove_stale_bridge()
        if "docker0" in _links():
            raise DockerUnavailable("a docker0 bridge exists already (another engine runs here): set "
                                    "SHINSEI_DOCKER_HOST to use it, or stop it")
        clash = clashes([BIP, DEFAULT_POOL.split(",")[0].removeprefix("base=")])
        if clash:
            raise AddressClash("the engine's addresses would cut the host off: " + "; ".join(clash))
        root.mkdir(parents=True, exist_ok=True)
        _clear_exec_root(run)
        run.mkdir(mode=0o700)
        engine = cls(host=f"unix://{run / 'docker.sock'}", started=True, root=root, lock=lock)
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
                engine.stop(release=False)  # start() releases the lock as it raises
                raise DockerUnavailable(f"dockerd did not start:\n{tail}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                engine.process.wait(0.2)
        return engine

    def stop(self, *, release: bool = True) -> None:
        """Stop the daemon (if we started it), remove the rules, chains and links it made, then let
        the next run have the host lock."""
        if not self.started or self.process is None:
            return
        try:
            self._stop()
            # Judged while the lock is still ours: the next run's engine cannot be mistaken for ours.
            self.left_behind = self.leftovers()
        finally:
            if release and self.lock is not None:
                self.lock.release()

    def _stop(self) -> None:
        assert self.process is not None
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


def _remove_stale_bridge() -> None:
    """A docker0 that carries *our* bridge address while no dockerd runs on the host is what a
    private engine killed mid-run (SIGKILL, a machine restart) left behind: we hold the host lock, so
    it is ours to remove. Any other docker0 — another address, or a running dockerd — is left alone
    (the caller then refuses to start)."""
    if "docker0" not in _links() or any(_is_dockerd(pid) for pid in os.listdir("/proc") if pid.isdigit()):
        return
    if BIP in _run(["ip", "-o", "-4", "addr", "show", "dev", "docker0"], check=False).stdout:
        _run(["ip", "link", "delete", "docker0"], check=False)


def _is_dockerd(pid: str) -> bool:
    try:
        return Path(f"/proc/{pid}/exe").resolve(strict=True).name == "dockerd"
    except OSError:  # gone meanwhile, or not ours to inspect (a container's init)
        return False


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
def docker_engine(root: Path = ENGINE_ROOT) -> Iterator[DockerEngine]:
    engine = DockerEngine.start(root)
    try:
        yield engine
    finally:
        engine.stop()
