"""Issue 8 §2 — the network zones hold (guarantee 5, promise P3), with the real chain inside them.

The chain (portal_sim in LGWAN, dmz_relay in the DMZ, intake in the My Number zone) runs once per
module (conftest.py); tests/support/netzones.py has the topology and the ward's nftables rules.
Each check reads the named drop counters before and after its own probes, so it shows *which*
firewall stopped a packet, and probes go to listeners that exist (real servers or decoys), so a
timeout is a drop, never an empty port.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from tests.support import netzones
from tests.support.netzones import (
    DMZ_LGWAN_ADDR,
    DMZ_MYNUMBER_ADDR,
    LGWAN_HOST,
    LGWAN_OTHER_HOST,
    MYNUMBER_HOST,
    Outcome,
    Zone,
    Zones,
    in_netns,
    tcp_connect,
    udp_send,
)
from tests.zones.conftest import ZoneChain

Probe = tuple[Zone, str, int]

#: What the intake would run to reach a URL (its own interpreter and HTTP client): exit 3 on a
#: connect timeout, 4 on another connect error, 0 if the connection was made.
_INTAKE_DIALS = """
import sys, httpx
try:
    httpx.get(sys.argv[1], timeout=1.0, trust_env=False)
except httpx.ConnectTimeout:
    sys.exit(3)
except httpx.ConnectError:
    sys.exit(4)
"""


def _counters(chain: ZoneChain) -> dict[str, dict[str, int]]:
    z = chain.zones
    found = {zone.label: z.counters(zone) for zone in z.all}
    found["MYNUMBER witness"] = z.counters(z.mynumber, "witness")
    found["LGWAN witness"] = z.counters(z.lgwan, "witness")
    return found


def _delta(before: Mapping[str, Mapping[str, int]], after: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    return {f"{zone}.{name}": after[zone][name] - before[zone][name] for zone in after for name in after[zone]}


def _all(results: Mapping[tuple[str, str, int], Outcome], expected: Outcome) -> None:
    wrong = {k: v.value for k, v in results.items() if v is not expected}
    assert not wrong, f"expected every probe to be {expected.value}; these were not: {wrong}"


def test_the_chain_works_through_the_zones(zone_chain: ZoneChain) -> None:
    """(1) portal → relay → intake over the zones' only paths: every readable package stored once,
    the unreadable one refused, every relay copy erased, status notices carried back."""
    chain = zone_chain
    code, summary = chain.pull
    assert code == 0, f"dmz_relay pull --once exited {code}: {summary}\n{chain.tails()}"
    apps = chain.portal.applications()
    readable = {a["sha256"] for a in apps if a["defect"] != "malformed_zip"}
    unreadable = {a["receipt_number"] for a in apps if a["defect"] == "malformed_zip"}
    assert readable
    assert unreadable, "the generated day should hold one cut-off ZIP (seed/defect rate changed?)"

    stored = chain.intake_deliveries()
    assert sorted(sha for sha, _ in stored) == sorted(readable), "the intake must hold each readable package once"

    tombstones = chain.tombstones()
    assert len(tombstones) == len(apps)
    assert all(t["erased_at"] for t in tombstones), "every package's copy must be erased at the relay"
    refused = {t["receipt_number"] for t in tombstones if t["outcome"] == "refused"}
    assert refused == unreadable
    assert {t["outcome"] for t in tombstones} <= {"stored", "refused"}
    assert list(chain.relay_temp.iterdir()) == [], "the relay's temp directory must be empty"

    # Status notices travel back: intake outbox → relay → portal. The seeded days hold a 取下げ;
    # the intake withdraws that chain and leaves a 取下げ notice for the portal.
    code, statuses = chain.statuses
    assert code == 0, f"dmz_relay statuses --once exited {code}: {statuses}"
    assert statuses.get("stopped") is None
    assert statuses["acknowledged"] == statuses["delivered"] >= 1
    withdrawals = [a["receipt_number"] for a in apps if a["kind"] == "取下げ" and a["defect"] is None]
    assert withdrawals, "the generated days should hold a 取下げ (seed changed?)"
    for number in withdrawals:
        notice = json.loads((chain.portal.path / "status" / f"{number}.json").read_text("utf-8"))
        assert [e["status"] for e in notice["entries"]] == ["取下げ"]


def test_the_chain_needed_nothing_the_rules_forbid(zone_chain: ZoneChain) -> None:
    """While the chain ran, no firewall dropped anything: the rules are exactly as wide as the
    chain needs, and the intake never even *tried* to open a connection (its output counter is 0)."""
    dropped = {f"{zone}.{name}": n for zone, counters in zone_chain.counters_after_chain.items()
               for name, n in counters.items() if n}
    assert dropped == {}, f"the chain itself ran into the firewall: {dropped}"


def _outbound_from_intake(chain: ZoneChain) -> list[Probe]:
    z, p = chain.zones, chain.zones.ports
    return [(z.mynumber, DMZ_MYNUMBER_ADDR, p.decoy),  # the relay host, My Number side (decoy)
            (z.mynumber, DMZ_LGWAN_ADDR, p.push),  # the relay's push API (dmz_relay serve)
            (z.mynumber, LGWAN_HOST, p.portal),  # the portal (portal_sim serve)
            (z.mynumber, LGWAN_HOST, p.decoy),
            (z.mynumber, LGWAN_OTHER_HOST, p.portal)]


def _datagrams_from_intake(chain: ZoneChain) -> list[Probe]:
    z = chain.zones
    return [(z.mynumber, DMZ_MYNUMBER_ADDR, 53),  # DNS at the gateway
            (z.mynumber, LGWAN_HOST, 514)]  # syslog in LGWAN


def test_the_intake_cannot_open_any_connection_out_of_its_zone(zone_chain: ZoneChain) -> None:
    """(2) From the intake's namespace, every connection out — to the relay host, the relay's push
    API, the portal, other LGWAN hosts, and UDP (DNS, syslog) — is dropped by the My Number host's
    output rule; nothing reaches the wire. The intake's own interpreter and HTTP client time out
    the same way."""
    chain = zone_chain
    z, p = chain.zones, chain.zones.ports
    probes = _outbound_from_intake(chain)
    datagrams = _datagrams_from_intake(chain)
    before = _counters(chain)
    results = tcp_connect(probes, timeout=1.0)
    sent = udp_send(datagrams)
    delta = _delta(before, _counters(chain))
    _all(results, Outcome.TIMEOUT)
    _all(sent, Outcome.BLOCKED)
    assert delta["MYNUMBER.out_dropped"] >= len(probes) + len(datagrams)
    assert delta["DMZ.in_dropped"] == delta["DMZ.forward_dropped"] == 0, "nothing may leave the intake host"
    assert delta["LGWAN witness.from_mynumber"] == 0

    # As the intake would: its Python, its HTTP client, its environment, in its zone.
    dials = {url: subprocess.Popen(z.mynumber.argv(sys.executable, "-c", _INTAKE_DIALS, url), env=chain.intake_env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for url in (f"http://{LGWAN_HOST}:{p.portal}/healthz", f"http://{DMZ_LGWAN_ADDR}:{p.push}/healthz")}
    errors = {url: proc.communicate(timeout=30)[1].decode(errors="replace")[-500:] for url, proc in dials.items()}
    codes = {url: proc.returncode for url, proc in dials.items()}
    assert codes == dict.fromkeys(dials, 3), f"expected connect timeouts (exit 3): {codes} {errors}"

    # Control: the probes themselves work — the intake host reaches its own decoy.
    assert tcp_connect([(z.mynumber, MYNUMBER_HOST, p.decoy)]) == {
        ("MYNUMBER", MYNUMBER_HOST, p.decoy): Outcome.CONNECTED}


def test_the_boundary_holds_even_without_the_intake_hosts_own_rule(zone_chain: ZoneChain) -> None:
    """(2, defence in depth) With the intake host's output rule bypassed (a misconfigured or
    compromised host), its packets do leave — and the DMZ drops every one: those for the relay
    host in its input chain, those for LGWAN in its forward chain. None arrives in LGWAN."""
    chain = zone_chain
    z = chain.zones
    probes = _outbound_from_intake(chain)
    datagrams = _datagrams_from_intake(chain)
    before = _counters(chain)
    with z.temporary_rule(z.mynumber, "output", "counter accept") as left_the_host:
        results = tcp_connect(probes, timeout=1.0)
        udp = udp_send(datagrams)
        sent = left_the_host()
    delta = _delta(before, _counters(chain))
    _all(results, Outcome.TIMEOUT)
    _all(udp, Outcome.SENT)
    assert sent >= len(probes) + len(datagrams), "the packets must have left the intake host"
    assert delta["MYNUMBER.out_dropped"] == 0
    assert delta["DMZ.in_dropped"] >= 3  # the relay host's own addresses (2 TCP, DNS)
    assert delta["DMZ.forward_dropped"] >= 4  # LGWAN hosts, through the DMZ (3 TCP, syslog)
    assert delta["LGWAN witness.from_mynumber"] == 0, "nothing from the My Number zone may arrive in LGWAN"


def test_lgwan_cannot_reach_the_intake(zone_chain: ZoneChain) -> None:
    """(3) From LGWAN — even holding the relay's client certificate — the intake and every other
    My Number address are unreachable; the DMZ drops the packets before they enter the My Number
    zone. The one door LGWAN has is the relay's push API."""
    chain = zone_chain
    z, p = chain.zones, chain.zones.ports
    probes: list[Probe] = [(z.lgwan, MYNUMBER_HOST, p.intake),  # the intake (intake serve)
                           (z.lgwan, MYNUMBER_HOST, p.decoy),
                           (z.lgwan, MYNUMBER_HOST, p.portal),  # a decoy on the intake host
                           (z.lgwan, DMZ_MYNUMBER_ADDR, p.intake),
                           (z.lgwan, DMZ_LGWAN_ADDR, p.decoy)]  # the relay host's other ports
    before = _counters(chain)
    results = tcp_connect(probes, timeout=1.0)

    def stolen_credentials() -> str:
        try:
            httpx.get(f"https://{MYNUMBER_HOST}:{p.intake}/healthz", timeout=1.0, verify=chain.intake_ssl(),
                      trust_env=False)
        except httpx.ConnectTimeout:
            return "connect timeout"
        return "connected"

    https = in_netns(z.lgwan, stolen_credentials)
    delta = _delta(before, _counters(chain))
    _all(results, Outcome.TIMEOUT)
    assert https == "connect timeout"
    assert delta["DMZ.forward_dropped"] >= 4  # three to the intake host, one TLS attempt
    assert delta["DMZ.in_dropped"] >= 2  # the relay host's addresses, ports other than push
    assert delta["MYNUMBER witness.from_lgwan"] == 0, "nothing from LGWAN may arrive in the My Number zone"

    door = in_netns(z.lgwan, lambda: httpx.get(f"http://{DMZ_LGWAN_ADDR}:{p.push}/healthz", timeout=2.0,
                                               trust_env=False).status_code)
    assert door == 200, "an LGWAN terminal must reach the relay's push API"


def test_the_relay_reaches_only_the_portal_and_the_intake(zone_chain: ZoneChain) -> None:
    """(4) From the DMZ the portal port on the portal host and the intake port on the intake host
    connect; every other port or host in LGWAN and the My Number zone is dropped by the relay
    host's output rule — although each of them is listening (control from its own zone)."""
    chain = zone_chain
    z, p = chain.zones, chain.zones.ports
    allowed: list[Probe] = [(z.dmz, LGWAN_HOST, p.portal), (z.dmz, MYNUMBER_HOST, p.intake)]
    forbidden: list[Probe] = [(z.dmz, LGWAN_HOST, p.decoy), (z.dmz, LGWAN_HOST, p.intake),
                              (z.dmz, LGWAN_OTHER_HOST, p.portal), (z.dmz, MYNUMBER_HOST, p.decoy),
                              (z.dmz, MYNUMBER_HOST, p.portal)]
    before = _counters(chain)
    results = tcp_connect(allowed + forbidden, timeout=1.0)
    delta = _delta(before, _counters(chain))
    _all({(zone.label, h, n): results[(zone.label, h, n)] for zone, h, n in allowed}, Outcome.CONNECTED)
    _all({(zone.label, h, n): results[(zone.label, h, n)] for zone, h, n in forbidden}, Outcome.TIMEOUT)
    assert delta["DMZ.out_dropped"] >= len(forbidden)
    assert delta["LGWAN.in_dropped"] == delta["MYNUMBER.in_dropped"] == 0, "dropped on the relay host itself"

    # Control: each forbidden target listens — it answers in its own zone.
    own_zone = {"LGWAN": z.lgwan, "MYNUMBER": z.mynumber}
    home = [(own_zone["LGWAN" if host in (LGWAN_HOST, LGWAN_OTHER_HOST) else "MYNUMBER"], host, port)
            for _, host, port in forbidden]
    _all(tcp_connect(home, timeout=1.0), Outcome.CONNECTED)

    # The relay's own readiness self-test reaches its two peers (portal, intake over mutual TLS).
    done = subprocess.run(z.dmz.argv(sys.executable, "-m", "dmz_relay", "check"), env=chain.relay_env,
                          cwd=chain.work, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"dmz_relay check:\n{done.stdout}\n{done.stderr[-2000:]}"


def test_a_misrouted_packet_is_dropped_by_the_firewall_not_by_routing(zone_chain: ZoneChain) -> None:
    """(5) LGWAN's routing sends a packet for the intake into the DMZ, and the DMZ forwards IPv4:
    only the DMZ's forward chain stops it. Control: with that chain bypassed the same packet
    arrives in the My Number zone (where the intake host's input rule is the second wall), and with
    that bypassed too the connection is made — the zones are kept apart by the rules alone."""
    chain = zone_chain
    z, p = chain.zones, chain.zones.ports
    probe: list[Probe] = [(z.lgwan, MYNUMBER_HOST, p.intake)]
    key = ("LGWAN", MYNUMBER_HOST, p.intake)
    route = z.sh(z.lgwan, "ip", "route", "get", MYNUMBER_HOST)
    assert f"via {DMZ_LGWAN_ADDR} dev lg0" in route, route
    assert z.sh(z.dmz, "sysctl", "-n", "net.ipv4.ip_forward").strip() == "1"

    before = _counters(chain)
    assert tcp_connect(probe)[key] is Outcome.TIMEOUT
    delta = _delta(before, _counters(chain))
    assert delta["DMZ.forward_dropped"] >= 1, "the DMZ's forward chain must be what dropped it"
    assert delta["MYNUMBER witness.from_lgwan"] == 0

    before = _counters(chain)
    with z.temporary_rule(z.dmz, "forward", "counter accept") as forwarded:
        assert tcp_connect(probe)[key] is Outcome.TIMEOUT
        passed = forwarded()
    delta = _delta(before, _counters(chain))
    assert passed >= 1
    assert delta["MYNUMBER witness.from_lgwan"] >= 1, "without the forward rule, routing delivers it"
    assert delta["MYNUMBER.in_dropped"] >= 1

    with z.temporary_rule(z.dmz, "forward", "accept"), \
            z.temporary_rule(z.mynumber, "input", f"ip saddr {LGWAN_HOST} tcp dport {p.intake} accept"):
        assert tcp_connect(probe)[key] is Outcome.CONNECTED

    before = _counters(chain)
    assert tcp_connect(probe)[key] is Outcome.TIMEOUT, "the rules must be back"
    delta = _delta(before, _counters(chain))
    assert delta["DMZ.forward_dropped"] >= 1
    assert delta["MYNUMBER witness.from_lgwan"] == 0


# --- the namespaces do not outlive the test -----------------------------------------------------------


def test_namespaces_and_their_processes_go_even_when_a_test_fails(zones_available: None) -> None:
    z = Zones()
    started: list[subprocess.Popen[bytes]] = []

    def failing_test() -> None:
        with z:
            assert len(z.exists()) == 3
            started.append(subprocess.Popen(z.dmz.argv("sleep", "60")))
            raise RuntimeError("a failing test")

    with pytest.raises(RuntimeError, match="a failing test"):
        failing_test()
    assert started[0].wait(10) == -9, "a process left in a zone must be killed at teardown"
    assert z.exists() == []


def test_namespaces_go_when_set_up_fails_half_way(zones_available: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netzones, "ward_rules", lambda label, ports: "table inet ward { this is not nft }")
    z = Zones()
    with pytest.raises(netzones.ZoneError, match="nft"), z:
        pytest.fail("set-up should have failed")
    assert z.exists() == []


def test_a_killed_runs_namespaces_are_swept_by_the_next_run(zones_available: None) -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    stale = f"shz{pid_max + 1}x0bad0-dz"  # a creator pid that cannot be alive
    subprocess.run(["ip", "netns", "add", stale], check=True, timeout=15)
    try:
        assert stale in netzones.sweep_stale()
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=15)
        assert stale not in listed.stdout.split()
    finally:
        subprocess.run(["ip", "netns", "delete", stale], capture_output=True, check=False, timeout=15)
