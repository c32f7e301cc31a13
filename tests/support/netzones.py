"""The ward's three network zones for tests: namespaces, veth links, nftables rules, probes.

Topology (TEST-NET addresses of RFC 5737 only; nothing outside the namespaces this module creates)::

    LGWAN namespace                 DMZ namespace                     MYNUMBER namespace
    lg0 192.0.2.10/24  ── veth ──  dz-lg 192.0.2.1/24
    lo  198.51.100.20/32           dz-mn 203.0.113.1/24  ── veth ──  mn0 203.0.113.10/24
        (another LGWAN host)

* LGWAN and MYNUMBER each have a default route through the DMZ, as hosts behind a boundary
  firewall would: a packet for another zone is *routed* to the DMZ, so only the DMZ's rules stand
  between the zones.
* The DMZ forwards IPv4 (``net.ipv4.ip_forward=1``). A relay host should not route at all — the
  relay is an application-level relay — but forwarding on is the worst case: it proves that the
  DMZ's ``forward`` chain, not a missing route, stops a misrouted packet.
* IPv6 is off in all three namespaces, so no neighbour discovery or router solicitation shows up
  in the drop counters.

The rules (:func:`ward_rules`) are those a ward would set: default-drop on every hook, a named
counter in front of every final drop so that a test can see *which* rule stopped a packet. Probes
(:func:`tcp_connect`, :func:`in_netns`) run in a thread that has joined a namespace with
``setns(2)``; sockets created there stay in that namespace. Servers are started by the caller
with :meth:`Zone.argv` (``ip netns exec NS …``).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import functools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "DMZ_LGWAN_ADDR",
    "DMZ_MYNUMBER_ADDR",
    "LGWAN_HOST",
    "LGWAN_NETS",
    "LGWAN_OTHER_HOST",
    "MYNUMBER_HOST",
    "MYNUMBER_NET",
    "Outcome",
    "Ports",
    "Zone",
    "ZoneError",
    "Zones",
    "in_netns",
    "tcp_connect",
    "udp_send",
    "unavailable_reason",
]

LGWAN_HOST = "192.0.2.10"  # the portal (and an LGWAN terminal)
LGWAN_OTHER_HOST = "198.51.100.20"  # another LGWAN host, behind LGWAN_HOST
DMZ_LGWAN_ADDR = "192.0.2.1"  # the relay host, LGWAN side
DMZ_MYNUMBER_ADDR = "203.0.113.1"  # the relay host, My Number side
MYNUMBER_HOST = "203.0.113.10"  # the intake
LGWAN_NETS = ("192.0.2.0/24", "198.51.100.0/24")
MYNUMBER_NET = "203.0.113.0/24"

_PREFIX = "shz"  # every namespace of ours: shz<pid>x<hex>-<zone>
_NAME = re.compile(rf"^{_PREFIX}(\d+)x[0-9a-f]+-(lg|dz|mn)$")
_CLONE_NEWNET = 0x40000000
_CMD_TIMEOUT = 15.0

T = TypeVar("T")


class ZoneError(RuntimeError):
    """A namespace, link, route or rule could not be set up (the message carries the command's stderr)."""


@dataclass(frozen=True)
class Ports:
    """The TCP ports of the chain (fixed: each namespace is private, so nothing else can hold them)."""

    portal: int = 8080  # portal_sim serve, LGWAN
    intake: int = 8443  # intake serve (mutual TLS), My Number zone
    push: int = 8500  # dmz_relay serve, the push API for LGWAN terminals, DMZ
    decoy: int = 2222  # a listener no rule allows (an "admin" port), in every zone


@dataclass(frozen=True)
class Zone:
    """One namespace: its label (``LGWAN``/``DMZ``/``MYNUMBER``) and its unique name."""

    label: str
    netns: str

    def argv(self, *command: str) -> list[str]:
        """``command`` run inside this namespace."""
        return ["ip", "netns", "exec", self.netns, *command]


# --- commands ----------------------------------------------------------------------------------------


def _run(argv: Sequence[str], *, stdin: str | None = None, timeout: float = _CMD_TIMEOUT) -> str:
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ZoneError(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        raise ZoneError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _libc_setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"setns({path}): {os.strerror(code)}")
    finally:
        os.close(fd)


def in_netns(zone: Zone, fn: Callable[[], T], *, timeout: float = 30.0) -> T:
    """Run ``fn()`` in a new thread that has joined ``zone``'s network namespace; return its result.

    Only that thread changes namespace (network namespaces are per thread), and it ends with ``fn``:
    the test process itself stays where it was. Sockets ``fn`` creates stay in ``zone``.
    """
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            _libc_setns(f"/run/netns/{zone.netns}")
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=body, name=f"netns-{zone.label}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ZoneError(f"a probe in {zone.label} did not finish within {timeout} s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


class Outcome(enum.Enum):
    """How a TCP connection attempt ended."""

    CONNECTED = "connected"
    REFUSED = "refused"  # a RST: the host answered, nothing listens (not a firewall drop)
    TIMEOUT = "timeout"  # no answer at all: what a drop looks like from the sender
    BLOCKED = "blocked"  # EPERM/EACCES: the sender's own firewall refused to send
    UNREACHABLE = "unreachable"  # no route, or an ICMP unreachable came back
    SENT = "sent"  # UDP: the datagram left the socket (whether anything received it is another matter)


def _connect(host: str, port: int, timeout: float) -> Outcome:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((host, port))
        except TimeoutError:
            return Outcome.TIMEOUT
        except ConnectionRefusedError:
            return Outcome.REFUSED
        except PermissionError:
            return Outcome.BLOCKED
        except OSError as exc:
            if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                return Outcome.UNREACHABLE
            raise
        return Outcome.CONNECTED


def tcp_connect(probes: Sequence[tuple[Zone, str, int]], *,
                timeout: float = 1.0) -> dict[tuple[str, str, int], Outcome]:
    """Try every ``(zone, host, port)`` at once (one thread each); ``{(zone label, host, port): outcome}``.

    Concurrent, so a batch of expected drops costs one ``timeout``, not one per probe.
    """
    results: dict[tuple[str, str, int], Outcome] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one(zone: Zone, host: str, port: int) -> None:
        try:
            outcome = in_netns(zone, lambda: _connect(host, port, timeout), timeout=timeout + 10)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            with lock:
                errors.append(exc)
            return
        with lock:
            results[(zone.label, host, port)] = outcome

    threads = [threading.Thread(target=one, args=probe, daemon=True) for probe in probes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 15)
    if errors:
        raise errors[0]
    if len(results) != len(probes):
        raise ZoneError("some connection probes did not finish")
    return results


def udp_send(probes: Sequence[tuple[Zone, str, int]]) -> dict[tuple[str, str, int], Outcome]:
    """Send one UDP datagram per ``(zone, host, port)`` (DNS, syslog, NTP…): SENT, or BLOCKED when
    the sender's own output rule refused it (``sendto`` fails with EPERM)."""

    def send(host: str, port: int) -> Outcome:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.sendto(b"zones test", (host, port))
            except PermissionError:
                return Outcome.BLOCKED
            except OSError as exc:
                if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                    return Outcome.UNREACHABLE
                raise
            return Outcome.SENT

    return {(zone.label, host, port): in_netns(zone, functools.partial(send, host, port))
            for zone, host, port in probes}


# --- availability and stale namespaces ---------------------------------------------------------------


def unavailable_reason() -> str | None:
    """Why the zones cannot be built here (None when they can): root, ``ip netns`` and ``nft`` are needed."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "zones test needs root (network namespaces and nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"zones test needs the `{tool}` command (iproute2 / nftables)"
    name = f"{_PREFIX}{os.getpid()}x{secrets.token_hex(3)}-dz"
    try:
        _run(["ip", "netns", "add", name])
    except ZoneError as exc:
        return f"zones test: cannot create a network namespace ({exc})"
    try:
        _run(["ip", "netns", "exec", name, "nft", "list", "ruleset"])
    except ZoneError as exc:
        return f"zones test: nftables does not work in a network namespace ({exc})"
    finally:
        with contextlib.suppress(ZoneError):
            _run(["ip", "netns", "delete", name])
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Delete namespaces of ours whose creating process is gone (a run that was SIGKILLed)."""
    removed = []
    for line in _run(["ip", "netns", "list"]).splitlines():
        name = line.split()[0] if line.strip() else ""
        m = _NAME.match(name)
        if m and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(ZoneError):
                _kill_pids(name)
                _run(["ip", "netns", "delete", name])
                removed.append(name)
    return removed


def _kill_pids(netns: str) -> None:
    """SIGKILL what still runs in ``netns`` — only ever a namespace this module created."""
    for pid in _run(["ip", "netns", "pids", netns]).split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


# --- the rules ---------------------------------------------------------------------------------------


def ward_rules(label: str, ports: Ports) -> str:
    """The ``inet ward`` table of one zone, as a ward's network team would write it.

    Every chain drops by default; the last rule of each chain counts what it drops in a named
    counter (``in_dropped``, ``out_dropped``, ``forward_dropped``).
    """
    lgwan = ", ".join(LGWAN_NETS)
    head = """
table inet ward {
  counter in_dropped { }
  counter out_dropped { }
  counter forward_dropped { }
"""
    forward_none = """
  chain forward {
    type filter hook forward priority filter; policy drop;
    counter name "forward_dropped" drop
  }
"""
    if label == "LGWAN":
        # The portal answers the relay only. What leaves the LGWAN host is the LGWAN's business:
        # output stays open, so that the checks show the DMZ and the My Number zone stop LGWAN
        # traffic even from an unrestricted (or compromised) LGWAN host.
        body = f"""
  chain input {{
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state established,related accept
    iifname "lg0" ip saddr {DMZ_LGWAN_ADDR} ip daddr {LGWAN_HOST} tcp dport {ports.portal} ct state new accept
    counter name "in_dropped" drop
  }}
  chain output {{
    type filter hook output priority filter; policy accept;
  }}
"""
    elif label == "DMZ":
        # The relay: LGWAN terminals may push; the relay itself may open connections to exactly
        # two places, the portal and the intake; nothing is forwarded between the zones.
        body = f"""
  chain input {{
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state established,related accept
    iifname "dz-lg" ip saddr {{ {lgwan} }} ip daddr {DMZ_LGWAN_ADDR} tcp dport {ports.push} ct state new accept
    counter name "in_dropped" drop
  }}
  chain output {{
    type filter hook output priority filter; policy drop;
    oif "lo" accept
    ct state established,related accept
    oifname "dz-lg" ip daddr {LGWAN_HOST} tcp dport {ports.portal} ct state new accept
    oifname "dz-mn" ip daddr {MYNUMBER_HOST} tcp dport {ports.intake} ct state new accept
    counter name "out_dropped" drop
  }}
"""
    elif label == "MYNUMBER":
        # The intake: only the relay's DMZ address may open a connection, to the intake port only;
        # the intake answers (established) and never opens anything outward.
        body = f"""
  chain input {{
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state established,related accept
    iifname "mn0" ip saddr {DMZ_MYNUMBER_ADDR} ip daddr {MYNUMBER_HOST} tcp dport {ports.intake} ct state new accept
    counter name "in_dropped" drop
  }}
  chain output {{
    type filter hook output priority filter; policy drop;
    oif "lo" accept
    ct state established,related accept
    counter name "out_dropped" drop
  }}
"""
    else:
        raise ValueError(f"unknown zone {label!r}")
    return head + body + forward_none + "}\n"


def witness_rules(label: str) -> str:
    """Test instrumentation, not a ward rule: the ``inet witness`` table counts, before any filter
    (``prerouting`` at raw priority), packets that *arrived* from another zone — proof that routing
    delivered them, whatever the zone's own filter then did."""
    if label == "MYNUMBER":
        sources, name = ", ".join(LGWAN_NETS), "from_lgwan"
    elif label == "LGWAN":
        sources, name = MYNUMBER_NET, "from_mynumber"
    else:
        raise ValueError(f"no witness for {label!r}")
    return f"""
table inet witness {{
  counter {name} {{ }}
  chain prerouting {{
    type filter hook prerouting priority raw; policy accept;
    ip saddr {{ {sources} }} counter name "{name}"
  }}
}}
"""


# --- the zones ---------------------------------------------------------------------------------------


class Zones:
    """Three namespaces joined by veth links, with routes and the ward's rules; deleted on exit.

    ``with Zones() as z:`` — everything is torn down when the block ends, also after a failure in
    the middle of set-up: processes still running in the namespaces are killed, decoy sockets
    closed, and the namespaces (and with them their veth links and rules) deleted.
    """

    def __init__(self, ports: Ports | None = None) -> None:
        self.ports = ports or Ports()
        tag = f"{_PREFIX}{os.getpid()}x{secrets.token_hex(3)}"
        self.lgwan = Zone("LGWAN", f"{tag}-lg")
        self.dmz = Zone("DMZ", f"{tag}-dz")
        self.mynumber = Zone("MYNUMBER", f"{tag}-mn")
        self._created: list[Zone] = []
        self._sockets: list[socket.socket] = []
        self.setup_seconds = 0.0

    @property
    def all(self) -> tuple[Zone, Zone, Zone]:
        return (self.lgwan, self.dmz, self.mynumber)

    def __enter__(self) -> Zones:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        started = time.monotonic()
        sweep_stale()
        for zone in self.all:
            _run(["ip", "netns", "add", zone.netns])
            self._created.append(zone)
            self.sh(zone, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1")
            self.sh(zone, "ip", "link", "set", "lo", "up")
        lg, dz, mn = (z.netns for z in self.all)
        _run(["ip", "link", "add", "lg0", "netns", lg, "type", "veth", "peer", "name", "dz-lg", "netns", dz])
        _run(["ip", "link", "add", "dz-mn", "netns", dz, "type", "veth", "peer", "name", "mn0", "netns", mn])
        links = ((self.lgwan, "lg0", f"{LGWAN_HOST}/24"), (self.dmz, "dz-lg", f"{DMZ_LGWAN_ADDR}/24"),
                 (self.dmz, "dz-mn", f"{DMZ_MYNUMBER_ADDR}/24"), (self.mynumber, "mn0", f"{MYNUMBER_HOST}/24"))
        for zone, dev, cidr in links:
            self.sh(zone, "ip", "addr", "add", cidr, "dev", dev)
            self.sh(zone, "ip", "link", "set", dev, "up")
        self.sh(self.lgwan, "ip", "addr", "add", f"{LGWAN_OTHER_HOST}/32", "dev", "lo")
        self.sh(self.lgwan, "ip", "route", "add", "default", "via", DMZ_LGWAN_ADDR)
        self.sh(self.mynumber, "ip", "route", "add", "default", "via", DMZ_MYNUMBER_ADDR)
        self.sh(self.dmz, "ip", "route", "add", LGWAN_NETS[1], "via", LGWAN_HOST)
        self.sh(self.dmz, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for zone in self.all:
            self.nft(zone, ward_rules(zone.label, self.ports))
        self.nft(self.mynumber, witness_rules("MYNUMBER"))
        self.nft(self.lgwan, witness_rules("LGWAN"))
        self.setup_seconds = time.monotonic() - started

    def down(self) -> None:
        for s in self._sockets:
            s.close()
        self._sockets.clear()
        for zone in reversed(self._created):
            with contextlib.suppress(ZoneError):
                _kill_pids(zone.netns)
            with contextlib.suppress(ZoneError):
                _run(["ip", "netns", "delete", zone.netns])
        self._created.clear()

    def exists(self) -> list[str]:
        """Which of our namespaces exist right now (for the teardown check)."""
        names = {line.split()[0] for line in _run(["ip", "netns", "list"]).splitlines() if line.strip()}
        return [z.netns for z in self.all if z.netns in names]

    # -- commands and rules --------------------------------------------------------------------------

    def sh(self, zone: Zone, *command: str) -> str:
        return _run(zone.argv(*command))

    def nft(self, zone: Zone, script: str) -> None:
        _run(zone.argv("nft", "-f", "-"), stdin=script)

    def counters(self, zone: Zone, table: str = "ward") -> dict[str, int]:
        """Packets per named counter of ``table`` in ``zone``."""
        data = json.loads(self.sh(zone, "nft", "-j", "list", "counters", "table", "inet", table))
        return {item["counter"]["name"]: int(item["counter"]["packets"])
                for item in data["nftables"] if "counter" in item}

    @contextlib.contextmanager
    def temporary_rule(self, zone: Zone, chain: str, rule: str, table: str = "ward") -> Iterator[Callable[[], int]]:
        """Insert ``rule`` at the top of ``chain`` for the block; yields a reader of its packet count.

        The rule is deleted by its handle afterwards, so the rest of the table (and its counters)
        is untouched.
        """
        echoed = self.sh(zone, "nft", "--echo", "--handle", "insert", "rule", "inet", table, chain, rule)
        m = re.search(r"# handle (\d+)", echoed)
        if m is None:
            raise ZoneError(f"no handle in nft's echo: {echoed!r}")
        handle = m.group(1)

        def packets() -> int:
            listing = self.sh(zone, "nft", "--handle", "list", "chain", "inet", table, chain)
            line = next(x for x in listing.splitlines() if x.rstrip().endswith(f"# handle {handle}"))
            found = re.search(r"counter packets (\d+)", line)
            return int(found.group(1)) if found else 0

        try:
            yield packets
        finally:
            self.sh(zone, "nft", "delete", "rule", "inet", table, chain, "handle", handle)

    def listen(self, zone: Zone, host: str, port: int) -> socket.socket:
        """A listening socket in ``zone`` that never accepts: the kernel completes handshakes into
        its backlog, so a connection attempt that reaches it succeeds. Closed by :meth:`down`."""

        def make() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(64)
            return s

        s = in_netns(zone, make)
        self._sockets.append(s)
        return s
