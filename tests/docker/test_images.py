"""docker/ is validated here because no Docker engine runs on these machines: hadolint on every
Dockerfile, `docker-compose config` on the compose file, and the zone rules read from the file."""

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
    assert nets["portal_sim"] == {"lgwan"}
    assert nets["relay"] == {"lgwan", "dmz-mynumber"}  # the only service on both sides
    assert "lgwan" not in nets["intake"]
    assert nets["postgres"] == {"mynumber"}
    for internal in ("dmz-mynumber", "mynumber", "dmz-scan"):
        assert networks[internal]["internal"] is True
    for name in ("portal_sim", "relay", "intake"):
        assert services[name]["read_only"] is True
        assert any(t.startswith("/tmp") for t in services[name]["tmpfs"])  # noqa: S108 - a mount point
        assert "ALL" in services[name]["cap_drop"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_install_only_the_lock(dockerfile: Path) -> None:
    """No resolution at build time: every pip install takes hashed pins, without dependencies."""
    text = dockerfile.read_text().replace("\\\n", " ")
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs
    for line in installs:
        assert "--require-hashes" in line, line
        assert "--no-deps" in line, line
    assert "pip wheel" not in text
    assert "uv export --frozen" in text  # exported from uv.lock as it is, never re-resolved
