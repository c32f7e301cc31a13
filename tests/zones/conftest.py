"""The real chain in three network zones: portal_sim (LGWAN) → dmz_relay (DMZ) → intake (My Number zone).

Set-up, once for the module (tests/support/netzones.py has the topology and the rules):

1. ``portal_sim generate``: a few days of applications, defective ones included (as the chain tests
   do, the period ended before yesterday, because relay and intake verify at the real time);
2. a TLS PKI for relay ↔ intake: the intake's server certificate names its TEST-NET address;
   a CA that issues only the relay's client certificate (``CLIENT_AUTH=dedicated-ca``);
3. in MYNUMBER: ``intake db upgrade``, ``portal_sim linkage`` + ``intake linkage import`` (no
   network needed), then ``intake serve`` with mutual TLS on 203.0.113.10;
4. in LGWAN: ``portal_sim serve`` on 192.0.2.10;
5. in DMZ: ``dmz_relay pull --once`` and ``dmz_relay statuses --once``, then ``dmz_relay serve`` (the
   push API, for LGWAN terminals) on 192.0.2.1;
6. the drop counters are read (what the chain itself made the firewalls drop), then decoy
   listeners are opened on ports no rule allows, so that a probe that times out proves a drop,
   not an empty port.

Every wait polls a condition with a deadline. The namespaces — and whatever still runs in them —
go when the module ends, also after a failure.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.chain import FAST_RELAY, JST, REPO, PortalData, Service, generate_portal_data
from tests.support.netzones import (
    DMZ_LGWAN_ADDR,
    LGWAN_HOST,
    LGWAN_OTHER_HOST,
    MYNUMBER_HOST,
    Zones,
    in_netns,
    unavailable_reason,
)
from tests.support.tlscerts import TlsFiles, issue, make_ca

SEED = 20261126
APPLICATIONS = 16
RESIDENTS = 8
DEFECT_RATE = 0.3  # at this seed: 2 bad signatures, 1 revoked card, 1 EICAR, 1 cut-off ZIP
_CERT_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class ZoneChain:
    """What the module's set-up ran, and what the checks read."""

    zones: Zones
    portal: PortalData
    work: Path
    tls: dict[str, Path]
    services: dict[str, Service]
    relay_env: dict[str, str]
    intake_env: dict[str, str]
    pull: tuple[int, dict[str, Any]]
    statuses: tuple[int, dict[str, Any]]
    #: {zone label: {counter: packets}} of the ``ward`` tables right after the chain ran, before any probe.
    counters_after_chain: dict[str, dict[str, int]]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def relay_data(self) -> Path:
        return self.work / "relay" / "data"

    @property
    def relay_temp(self) -> Path:
        return self.work / "relay" / "tmp"

    @property
    def intake_db(self) -> Path:
        return self.work / "intake" / "intake.db"

    def intake_ssl(self) -> ssl.SSLContext:
        """The relay's side of the mutual TLS: trusts the intake's CA, shows the relay's certificate."""
        ctx = ssl.create_default_context(cafile=str(self.tls["intake_ca"]))
        ctx.load_cert_chain(str(self.tls["client_cert"]), str(self.tls["client_key"]))
        return ctx

    def tombstones(self) -> list[dict[str, Any]]:
        with sqlite3.connect(f"file:{self.relay_data / 'tombstones.db'}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM tombstones ORDER BY id")]

    def intake_deliveries(self) -> list[tuple[str, str | None]]:
        """(sha256, 受付番号) of every stored delivery, one row per stored copy."""
        with sqlite3.connect(f"file:{self.intake_db}?mode=ro", uri=True) as db:
            return [(sha, number) for sha, number in db.execute("SELECT sha256, receipt_number FROM deliveries")]

    def tails(self) -> str:
        return "\n".join(s.tail() for s in self.services.values() if s.lives)


def _server_cert(directory: Path, stem: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
                 ip: str) -> TlsFiles:
    """A server certificate for ``ip`` (tests/support/tlscerts.py names 127.0.0.1 only)."""
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_CERT_EPOCH).not_valid_after(_CERT_EPOCH + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{stem}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return TlsFiles(directory / f"{stem}.pem", directory / f"{stem}.key", cert.fingerprint(hashes.SHA256()).hex())


def _make_tls(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True)
    intake_ca_files, intake_ca_cert, intake_ca_key = make_ca(directory, "intake-ca")
    server = _server_cert(directory, "intake", (intake_ca_cert, intake_ca_key), MYNUMBER_HOST)
    relay_ca_files, relay_ca_cert, relay_ca_key = make_ca(directory, "relay-ca")  # issues the relay's cert only
    client = issue(directory, "relay", (relay_ca_cert, relay_ca_key), server=False)
    return {"intake_ca": intake_ca_files.cert, "server_cert": server.cert, "server_key": server.key,
            "relay_ca": relay_ca_files.cert, "client_cert": client.cert, "client_key": client.key}


def _base_env() -> dict[str, str]:
    """The test's environment without our settings and without proxies (nothing may leave a zone
    through a proxy that the test process happens to know)."""
    drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_") and k.lower() not in drop}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _trust(portal: PortalData) -> dict[str, str]:
    return {"JPKI_ROOTS": json.dumps([str(portal.jpki_roots)]), "PORTAL_ROOTS": json.dumps([str(portal.portal_roots)]),
            "JPKI_INTERMEDIATES": json.dumps([str(portal.intermediates)]), "CRLS": json.dumps([str(portal.crl_dir)]),
            "REVOCATION": "require"}


def _intake_env(portal: PortalData, work: Path) -> dict[str, str]:
    procedures = work / "intake" / "procedures.json"
    manifest = json.loads((portal.path / "manifest.json").read_text("utf-8"))
    procedures.write_text(json.dumps({"procedures": [
        {"id": p["procedure_id"], "name": p["procedure_name"], "department": p["department_code"],
         "department_name": p["department"]} for p in manifest.get("procedures", [])]}, ensure_ascii=False),
        encoding="utf-8")
    values = {**_trust(portal), "DATABASE_URL": f"sqlite:///{work / 'intake' / 'intake.db'}",
              "VAR_DIR": str(work / "intake"), "CLIENT_AUTH": "dedicated-ca", "MAIL__ENABLED": "false",
              "ENVIRONMENT": "development", "PROCEDURES_FILE": str(procedures)}
    return {**_base_env(), **{f"SHINSEI_INTAKE_{k}": v for k, v in values.items()}}


def _relay_env(portal: PortalData, work: Path, tls: dict[str, Path], zones: Zones, *, pull: bool) -> dict[str, str]:
    """The relay's settings with the zones' addresses; ``pull=False``: the push API only (no portal)."""
    p = zones.ports
    values = {**_trust(portal), **FAST_RELAY, "ENVIRONMENT": "development",
              "DATA_DIR": str(work / "relay" / "data"), "TEMP_DIR": str(work / "relay" / "tmp"),
              "INTAKE_URL": f"https://{MYNUMBER_HOST}:{p.intake}", "INTAKE_CA": str(tls["intake_ca"]),
              "CLIENT_CERT": str(tls["client_cert"]), "CLIENT_KEY": str(tls["client_key"]),
              "SCANNER": "none", "LISTEN_HOST": DMZ_LGWAN_ADDR, "LISTEN_PORT": str(p.push)}
    if pull:
        values.update(PORTAL_URL=f"http://{LGWAN_HOST}:{p.portal}", MUNICIPALITY_CODE=portal.municipality_code,
                      PORTAL_API_KEY=portal.api_key)
    return {**_base_env(), **{f"SHINSEI_RELAY_{k}": v for k, v in values.items()}}


def _http_ok(zones: Zones, zone_label: str, url: str, verify: ssl.SSLContext | bool = False) -> bool:
    zone = {z.label: z for z in zones.all}[zone_label]

    def get() -> bool:
        try:
            return httpx.get(url, timeout=1.0, verify=verify, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    return in_netns(zone, get)


def _run_in(argv: list[str], env: dict[str, str], cwd: Path, log: Path, timeout: float = 180) -> tuple[int, str]:
    with log.open("ab") as err:
        done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=err, timeout=timeout,
                              check=False)
    return done.returncode, done.stdout.decode("utf-8", errors="replace")


def _last_json(stdout: str) -> dict[str, Any]:
    lines = stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]) if lines else {}
    except ValueError:
        return {"unparsed": lines[-1]}


@pytest.fixture(scope="module")
def zones_available() -> None:
    """Skip, with the reason shown, where root, ``ip netns`` or ``nft`` are missing."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def zones(zones_available: None) -> Iterator[Zones]:
    with Zones() as z:
        yield z


@pytest.fixture(scope="module")
def zone_chain(zones: Zones, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZoneChain]:
    from portal_sim.cli import default_key_cache

    timings: dict[str, float] = {"namespaces + rules": zones.setup_seconds}
    mark = time.monotonic()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        timings[name] = now - mark
        mark = now

    work = tmp_path_factory.mktemp("zones")
    (work / "intake").mkdir()
    logs = work / "logs"
    logs.mkdir()
    today = datetime.now(JST).date()  # relay and intake verify at the real time: the data must be current
    portal = generate_portal_data(work / "portal", today=today, applications=APPLICATIONS, residents=RESIDENTS,
                                  seed=SEED, defect_rate=DEFECT_RATE, key_cache=default_key_cache(),
                                  jobs=min(2, os.cpu_count() or 1))
    tls = _make_tls(work / "tls")
    lap("portal data + TLS")

    py = sys.executable
    p = zones.ports
    intake_env = _intake_env(portal, work)
    relay_env = _relay_env(portal, work, tls, zones, pull=True)
    mn, lg, dz = zones.mynumber, zones.lgwan, zones.dmz
    services = {
        "portal": Service("portal", log_dir=logs, env=_base_env(), cwd=work),
        "intake": Service("intake", log_dir=logs, env=intake_env, cwd=work),
        "relay": Service("relay", log_dir=logs, env=_relay_env(portal, work, tls, zones, pull=False), cwd=work),
    }
    chain = ZoneChain(zones, portal, work, tls, services, relay_env, intake_env, pull=(-1, {}), statuses=(-1, {}),
                      counters_after_chain={}, timings=timings)
    try:
        # The intake's own commands, in its zone: none of them needs the network.
        linkage = work / "intake" / "linkage-full.csv"
        for argv, env in (([py, "-m", "intake", "db", "upgrade"], intake_env),
                          ([py, "-m", "portal_sim", "linkage", "--data", str(portal.path), "--out", str(linkage)],
                           _base_env()),
                          ([py, "-m", "intake", "linkage", "import", str(linkage)], intake_env)):
            code, out = _run_in(mn.argv(*argv), env, work, logs / "intake-setup.log")
            assert code == 0, f"{' '.join(argv[1:5])} failed in MYNUMBER:\n{out}\n" + (
                logs / "intake-setup.log").read_text("utf-8", errors="replace")[-3000:]
        lap("intake db + linkage")

        services["portal"].start(lg.argv(py, "-m", "portal_sim", "serve", "--data", str(portal.path),
                                         "--host", LGWAN_HOST, "--port", str(p.portal),
                                         "--clock", f"fixed:{portal.period_end.isoformat()}",
                                         "--log-level", "warning", "--rate", "0"),
                                 ready=lambda: _http_ok(zones, "DMZ", f"http://{LGWAN_HOST}:{p.portal}/healthz"),
                                 timeout=60)
        services["intake"].start(mn.argv(py, "-m", "intake", "serve", "--host", MYNUMBER_HOST, "--port", str(p.intake),
                                         "--tls-cert", str(tls["server_cert"]), "--tls-key", str(tls["server_key"]),
                                         "--client-ca", str(tls["relay_ca"])),
                                 ready=lambda: _http_ok(zones, "DMZ", f"https://{MYNUMBER_HOST}:{p.intake}/healthz",
                                                        chain.intake_ssl()),
                                 timeout=60)
        lap("portal + intake started")

        code, out = _run_in(dz.argv(py, "-m", "dmz_relay", "pull", "--once"), relay_env, work, logs / "relay-pull.log")
        pull = (code, _last_json(out))
        lap("relay pull --once")
        code, out = _run_in(dz.argv(py, "-m", "dmz_relay", "statuses", "--once"), relay_env, work,
                            logs / "relay-statuses.log")
        statuses = (code, _last_json(out))
        lap("relay statuses --once")
        # Before any probe: what did the chain itself make the firewalls drop?
        counters = {z.label: zones.counters(z) for z in zones.all}

        services["relay"].start(dz.argv(py, "-m", "dmz_relay", "serve"),
                                ready=lambda: _http_ok(zones, "DMZ", f"http://{DMZ_LGWAN_ADDR}:{p.push}/healthz"),
                                timeout=60)
        lap("relay serve (push API) started")

        # Decoys: listeners on ports that no rule allows, one per zone, and the portal's port on
        # another LGWAN host. A probe that times out against them met a firewall, not an empty port.
        for zone in zones.all:
            zones.listen(zone, "0.0.0.0", p.decoy)  # noqa: S104 - inside a private test namespace
        zones.listen(lg, LGWAN_OTHER_HOST, p.portal)
        zones.listen(lg, LGWAN_HOST, p.intake)  # the intake's port number on an LGWAN host
        zones.listen(mn, MYNUMBER_HOST, p.portal)  # the portal's port number on the intake host
        chain.pull, chain.statuses, chain.counters_after_chain = pull, statuses, counters
        yield chain
    finally:
        for service in services.values():
            if service.running():
                service.terminate(15)
