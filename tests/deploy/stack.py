"""The container stack of docker/compose.yaml for the deployment test: images, configuration, life.

* :func:`build_images` builds the Debian-made base (docker/build-base.sh) and every image FROM it,
  each tagged with a hash of what goes into it (Dockerfiles, uv.lock, the sources), so a warm run
  builds nothing. Old tags of ours are removed; the engine's data-root is the cache.
* :func:`write_config` makes SHINSEI_CONFIG_DIR: a fresh TLS PKI (every certificate naming its
  service), random keys and tokens, the portal simulator's data, the tiny EICAR signature DB; every
  service's folder owned by that service's user, secrets mode 0600/0640.
* :class:`Stack` runs docker-compose (v1, Debian's) against the engine.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.chain import PortalData
from tests.support.clamd import BODY_SIGNATURE, EICAR, HASH_SIGNATURE
from tests.support.dockerd import AddressClash, DockerEngine, clashes

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = ROOT / "docker"
COMPOSE = "/usr/bin/docker-compose"
PROJECT = "shzdeploy"
APP_UID, POSTGRES_UID, PROXY_UID, MAIL_UID = 10001, 10002, 10004, 10005

_SOURCES = ("signature", "status", "handover", "malware", "tlsreload", "intake", "dmz_relay", "portal_sim")


def _digest(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _tree(*names: str) -> list[Path]:
    files: list[Path] = []
    for name in names:
        base = ROOT / name
        if base.is_dir():
            files += [p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        else:
            files.append(base)
    return files


@dataclass(frozen=True)
class Images:
    base: str
    app: str
    postgres: str
    clamd: str
    proxy: str
    mailsink: str

    def env(self) -> dict[str, str]:
        return {"SHINSEI_APP_IMAGE": self.app, "SHINSEI_POSTGRES_IMAGE": self.postgres,
                "SHINSEI_CLAMD_IMAGE": self.clamd, "SHINSEI_PROXY_IMAGE": self.proxy,
                "SHINSEI_MAILSINK_IMAGE": self.mailsink}


def _exists(engine: DockerEngine, tag: str) -> bool:
    return engine.docker("image", "inspect", tag, check=False, timeout=30).returncode == 0


_KEEP = 3  # tags per image kept in the cache: worktrees that differ a little stay warm in turn


def _drop_old(engine: DockerEngine, repo: str, keep: str) -> None:
    """Remove all but the newest few tags of ``repo`` (``docker images`` lists newest first)."""
    tags = engine.docker("images", repo, "--format", "{{.Repository}}:{{.Tag}}", timeout=30).stdout.split()
    for tag in [t for t in tags if t != keep][_KEEP - 1:]:
        engine.docker("rmi", tag, check=False, timeout=60)


def build_images(engine: DockerEngine, timings: dict[str, float]) -> Images:
    """Build what is missing; every tag is a content hash (a warm run builds nothing)."""
    base_tag = f"shinsei-base:{_digest([DOCKER_DIR / 'build-base.sh'])}"
    started = time.monotonic()
    if not _exists(engine, base_tag):
        done = subprocess.run([str(DOCKER_DIR / "build-base.sh"), base_tag],
                              env={**engine.env, "DOCKER": "/usr/bin/docker"},
                              capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"build-base.sh failed: {done.stderr[-3000:]}")
        _drop_old(engine, "shinsei-base", base_tag)
    timings["base image"] = time.monotonic() - started
    base_hash = base_tag.split(":")[1]
    recipes = {
        "app": ("python-service.Dockerfile",
                _tree(*_SOURCES, "pyproject.toml", "uv.lock", "tools/uv-requirements.txt", "wheelhouse")),
        "postgres": ("postgres.Dockerfile", _tree("docker/postgres")),
        "clamd": ("clamd.Dockerfile", _tree("docker/clamd")),
        "proxy": ("proxy.Dockerfile", []),
        "mailsink": ("mailsink.Dockerfile", []),
    }
    tags: dict[str, str] = {}
    for name, (dockerfile, inputs) in recipes.items():
        started = time.monotonic()
        tag = f"shinsei-{name}:{_digest([DOCKER_DIR / dockerfile, *inputs])}-{base_hash[:6]}"
        if not _exists(engine, tag):
            # --network host: apt and pip reach the package mirrors the way this host does; the
            # running containers never get that network.
            engine.docker("build", "--network", "host", "--pull=false", "-q", "-f", str(DOCKER_DIR / dockerfile),
                          "--build-arg", f"BASE_IMAGE={base_tag}", "-t", tag, str(ROOT), timeout=1800)
            _drop_old(engine, f"shinsei-{name}", tag)
        tags[name] = tag
        timings[f"image {name}"] = time.monotonic() - started
    # Dangling images older than a week only: the build stage's untagged image is the layer cache.
    engine.docker("image", "prune", "-f", "--filter", "until=168h", check=False, timeout=120)
    return Images(base=base_tag, **tags)


# --- configuration ---------------------------------------------------------------------------------

_NOW = datetime.now(UTC).replace(microsecond=0)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


@dataclass(frozen=True)
class CA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def make(cls, name: str) -> CA:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(_NOW - timedelta(days=1))
                .not_valid_after(_NOW + timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                               critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return cls(cert, key)

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, directory: Path, stem: str, *, names: tuple[str, ...] = (), client: bool = False) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(_NOW - timedelta(days=1))
                   .not_valid_after(_NOW + timedelta(days=90))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                                         else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(directory / f"{stem}.key", key)


def _random_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Config:
    root: Path
    portal: PortalData
    host_tls: Path  # CA bundles and the LGWAN terminal's client certificate, for the test itself
    relay_metrics_token: str
    intake_metrics_token: str


def _own(directory: Path, uid: int) -> None:
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, uid, uid)
        if path.is_dir():
            path.chmod(0o700)
        else:
            path.chmod(0o600)


def write_config(root: Path, portal: PortalData) -> Config:
    """SHINSEI_CONFIG_DIR for one run (see the module docstring)."""
    dirs = {name: root / name for name in ("relay", "intake", "postgres", "proxy", "portal-tls", "mail", "clamav-db",
                                           "host")}
    for d in dirs.values():
        d.mkdir(parents=True)
    intake_ca, relay_ca = CA.make("intake-server-ca"), CA.make("relay-only-ca")
    terminal_ca = CA.make("lgwan-terminal-ca")
    lgwan_ca, ui_ca, mail_ca = CA.make("portal-tls-ca"), CA.make("staff-ui-ca"), CA.make("mail-ca")
    intake_ca.issue(dirs["intake"], "intake-api", names=("intake-api",))
    (dirs["intake"] / "relay-ca.pem").write_bytes(relay_ca.pem())
    (dirs["intake"] / "mail-ca.pem").write_bytes(mail_ca.pem())
    relay_ca.issue(dirs["relay"], "relay-client", client=True)
    (dirs["relay"] / "intake-ca.pem").write_bytes(intake_ca.pem())
    terminal_ca.issue(dirs["relay"], "push", names=("localhost", "127.0.0.1"))
    (dirs["relay"] / "terminal-ca.pem").write_bytes(terminal_ca.pem())
    (dirs["relay"] / "portal-ca.pem").write_bytes(lgwan_ca.pem())
    lgwan_ca.issue(dirs["portal-tls"], "portal", names=("portal-tls",))
    ui_ca.issue(dirs["proxy"], "ui", names=("localhost", "127.0.0.1"))
    mail_ca.issue(dirs["mail"], "mail", names=("mail",))
    terminal_ca.issue(dirs["host"], "terminal", client=True)
    (dirs["host"] / "push-ca.pem").write_bytes(terminal_ca.pem())
    (dirs["host"] / "ui-ca.pem").write_bytes(ui_ca.pem())
    shutil.copy(DOCKER_DIR / "proxy" / "staff-ui.conf", dirs["proxy"] / "nginx.conf")
    shutil.copy(DOCKER_DIR / "proxy" / "portal-tls.conf", dirs["portal-tls"] / "nginx.conf")

    password = secrets.token_urlsafe(24)
    (dirs["postgres"] / "password").write_text(password, encoding="ascii")
    (dirs["intake"] / "database-url").write_text(f"postgresql+psycopg://shinsei:{password}@postgres/shinsei",
                                                 encoding="ascii")
    (dirs["intake"] / "keys.json").write_text(json.dumps({
        "my_number_keys": {"m1": _random_key()}, "my_number_active_key": "m1",
        "package_keys": {"p1": _random_key()}, "package_active_key": "p1"}), encoding="ascii")
    (dirs["intake"] / "access-log-keys.json").write_text(json.dumps({"keys": {"a1": _random_key()}, "active": "a1"}),
                                                         encoding="ascii")
    relay_token, intake_token = secrets.token_hex(32), secrets.token_hex(32)
    (dirs["relay"] / "metrics-token").write_text(relay_token, encoding="ascii")
    (dirs["intake"] / "metrics-token").write_text(intake_token, encoding="ascii")
    (dirs["relay"] / "portal-api-key").write_text(portal.api_key, encoding="ascii")
    for side in ("relay", "intake"):
        trust = dirs[side] / "trust"
        shutil.copytree(portal.jpki_roots, trust / "jpki-roots")
        shutil.copytree(portal.portal_roots, trust / "portal-roots")
        shutil.copytree(portal.crl_dir, trust / "crl")
    manifest = json.loads((portal.path / "manifest.json").read_text("utf-8"))
    procedures = manifest.get("procedures", [])
    (dirs["intake"] / "procedures.json").write_text(json.dumps({"procedures": [
        {"id": p["procedure_id"], "name": p["procedure_name"], "department": p["department_code"],
         "department_name": p["department"]} for p in procedures]}, ensure_ascii=False), encoding="utf-8")
    codes = sorted({p["department_code"]: p["department"] for p in procedures}.items())
    (dirs["intake"] / "departments.json").write_text(json.dumps({"departments": [
        {"id": code, "name": name, "recipients": [f"dept-{code}@example.lg.jp"]} for code, name in codes]},
        ensure_ascii=False), encoding="utf-8")
    digest = hashlib.md5(EICAR).hexdigest()  # noqa: S324 - ClamAV's .hdb format is MD5
    (dirs["clamav-db"] / "eicar.hdb").write_text(f"{digest}:{len(EICAR)}:{HASH_SIGNATURE}\n", encoding="ascii")
    (dirs["clamav-db"] / "eicar.ndb").write_text(f"{BODY_SIGNATURE}:0:*:{EICAR.hex()}\n", encoding="ascii")

    portal_copy = portal.copy_to(root / "portal-data")
    for name, uid in (("relay", APP_UID), ("intake", APP_UID), ("postgres", POSTGRES_UID), ("proxy", PROXY_UID),
                      ("portal-tls", PROXY_UID), ("mail", MAIL_UID), ("portal-data", APP_UID)):
        _own(root / name, uid)
    for path in [dirs["clamav-db"], *dirs["clamav-db"].iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # public signatures, read by clamd's user
    return Config(root, portal_copy, dirs["host"], relay_token, intake_token)


# --- running it ---------------------------------------------------------------------------------


@dataclass
class Stack:
    engine: DockerEngine
    images: Images
    config: Config
    env: dict[str, str]

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([COMPOSE, "-p", PROJECT, "-f", str(DOCKER_DIR / "compose.yaml"), *args],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              env={**self.engine.env, **self.images.env(), **self.env}, cwd=DOCKER_DIR)
        if check and done.returncode != 0:
            raise RuntimeError(f"docker-compose {' '.join(args[:3])} exited {done.returncode}:\n{done.stderr[-4000:]}")
        return done

    def container(self, service: str) -> str:
        return f"{PROJECT}_{service}_1"

    def exec(self, service: str, *argv: str, stdin: str | None = None, user: str | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
        extra = ["-u", user] if user else []
        return subprocess.run(["/usr/bin/docker", "exec", *(["-i"] if stdin is not None else []), *extra,
                               self.container(service), *argv], input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False, env=self.engine.env)

    def sql(self, query: str) -> str:
        done = self.exec("postgres", "/usr/lib/postgresql/15/bin/psql", "-h", "/run/postgresql", "-U", "postgres",
                         "-d", "shinsei", "-tAc", query)
        if done.returncode != 0:
            raise RuntimeError(f"psql: {done.stderr}")
        return done.stdout.strip()

    def health(self, service: str) -> str:
        done = self.engine.docker("inspect", "--format",
                                  "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}} "
                                  "{{.State.ExitCode}}", self.container(service), check=False, timeout=30)
        return done.stdout.strip() if done.returncode == 0 else "missing"

    def logs(self, services: Iterable[str] = ()) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", *services, check=False, timeout=120).stdout[-12000:]


def compose_subnets() -> list[str]:
    import yaml

    loaded = yaml.safe_load((DOCKER_DIR / "compose.yaml").read_text(encoding="utf-8"))
    return [pool["subnet"] for network in loaded["networks"].values() for pool in network["ipam"]["config"]]


def check_addresses() -> None:
    """Refuse to bring the stack up where its networks would cut the host off (tests/support/dockerd.py)."""
    clash = clashes(compose_subnets())
    if clash:
        raise AddressClash("docker/compose.yaml's subnets would cut the host off: " + "; ".join(clash))


def ours(engine: DockerEngine) -> Mapping[str, list[str]]:
    """Containers, networks and volumes of the project that still exist."""
    label = f"label=com.docker.compose.project={PROJECT}"
    return {
        "containers": engine.docker("ps", "-aq", "--filter", label, timeout=30).stdout.split(),
        "networks": engine.docker("network", "ls", "-q", "--filter", label, timeout=30).stdout.split(),
        "volumes": engine.docker("volume", "ls", "-q", "--filter", label, timeout=30).stdout.split(),
    }
