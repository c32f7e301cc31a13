"""docker/ read without an engine (fast, everywhere): hadolint on every Dockerfile, `docker-compose
config` on the compose file, and the zone rules read from the file. tests/deploy/ builds and runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
DOCKERFILES = sorted(DOCKER.glob("*Dockerfile"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), "--no-color", str(dockerfile)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_run_as_a_non_root_user(dockerfile: Path) -> None:
    users = [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed (make install)")
def test_compose_file_is_valid() -> None:
    result = subprocess.run(["docker-compose", "-f", str(DOCKER / "compose.yaml"), "config", "-q"],
                            capture_output=True, text=True, timeout=60, check=False, cwd=DOCKER)
    assert result.returncode == 0, result.stderr


def test_zones_hold_in_the_compose_file(compose: dict[str, Any]) -> None:
    services, networks = compose["services"], compose["networks"]
    nets = {name: set(s.get("networks", [])) for name, s in services.items()}
    assert nets["portal"] == {"lgwan-portal"}
    assert nets["relay"] == {"lgwan", "dmz-mynumber"}  # the only service on both sides
    assert nets["intake-api"] == {"dmz-mynumber", "mynumber"}
    assert "lgwan" not in nets["intake-ui"]
    assert "dmz-mynumber" not in nets["intake-ui"]
    assert nets["postgres"] == {"mynumber"}
    assert services["clamd"]["network_mode"] == "none"  # reached through its socket only
    assert services["clamd-intake"]["network_mode"] == "none"
    # Each zone scans with its own clamd (P11): no socket volume is shared across the zones.
    assert any(v.startswith("clamd-socket:") for v in services["relay"]["volumes"])
    assert any(v.startswith("clamd-intake-socket:") for v in services["intake-api"]["volumes"])
    assert not any(v.startswith("clamd-socket:") for v in services["intake-api"]["volumes"])
    for internal in ("dmz-mynumber", "mynumber", "staff-ui", "lgwan-portal"):
        assert networks[internal]["internal"] is True
    for name, service in services.items():
        assert service["read_only"] is True, name
        assert "ALL" in service["cap_drop"], name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_every_address_is_test_net(compose: dict[str, Any]) -> None:
    """RFC 5737 TEST-NET only: no 10/8, 172.16/12 or 192.168/16 anywhere (the daemon: tests/support/dockerd.py)."""
    import ipaddress

    test_nets = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
    for name, network in compose["networks"].items():
        for pool in network["ipam"]["config"]:
            subnet = ipaddress.ip_network(pool["subnet"])
            assert any(subnet.subnet_of(t) for t in test_nets), name
    text = (DOCKER / "compose.yaml").read_text(encoding="utf-8")
    for private in ("10.", "172.16.", "172.17.", "172.18.", "192.168."):
        assert f" {private}" not in text
        assert f'"{private}' not in text


def test_images_install_only_the_lock() -> None:
    """No resolution at build time: every pip install takes hashed pins, without dependencies, from
    the wheelhouse (no index). The other images install only Debian packages."""
    dockerfile = DOCKER / "python-service.Dockerfile"
    text = dockerfile.read_text().replace("\\\n", " ")
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs
    for line in installs:
        assert "--require-hashes" in line, line
        assert "--no-deps" in line, line
        assert "--no-index" in line, line
    assert "pip wheel" not in text
    assert "uv export --frozen" in text  # exported from uv.lock as it is, never re-resolved


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_image_is_built_from_the_debian_made_base(dockerfile: Path) -> None:
    froms = [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("FROM ")]
    assert froms
    assert all(f == "${BASE_IMAGE}" for f in froms), froms
    assert "ARG BASE_IMAGE=" in dockerfile.read_text()
