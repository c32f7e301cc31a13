"""The locked dependency set: what `make install` installs, the check that the lock matches
pyproject.toml, and `make audit` (tools/audit.py) against a vulnerability service that answers,
one that reports a finding, and one that cannot be reached."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
UV = REPO / ".uv" / "bin" / "uv"
LOCK = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))


def _uv_lock_check(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(UV), "lock", "--check"], cwd=project, capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(REPO / name, tmp_path / name)
    return tmp_path


def test_lock_check_passes_on_the_committed_pair(project_copy: Path) -> None:
    result = _uv_lock_check(project_copy)
    assert result.returncode == 0, result.stderr


def test_lock_check_fails_when_a_dependency_is_added_without_relocking(project_copy: Path) -> None:
    pyproject = project_copy / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    # certifi is already in the lock (through httpx), so this needs no download: only the direct
    # requirement is new, and that alone must make the lock stale.
    pyproject.write_text(text.replace('"tqdm>=4.67",', '"tqdm>=4.67",\n    "certifi>=2024.2",', 1), encoding="utf-8")
    assert pyproject.read_text(encoding="utf-8") != text
    result = _uv_lock_check(project_copy)
    assert result.returncode != 0
    assert "needs to be updated" in result.stderr


def test_every_locked_distribution_is_pinned_and_hashed() -> None:
    packages = [p for p in LOCK["package"] if p.get("source", {}).get("registry")]
    assert len(packages) > 50
    for package in packages:
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert files, package["name"]
        for file in files:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", file["hash"]), (package["name"], file)


def test_the_running_environment_is_the_lock() -> None:
    """What pytest runs with is exactly what uv.lock pins (make install syncs it exactly)."""
    locked = {p["name"]: p["version"] for p in LOCK["package"] if p.get("source", {}).get("registry")}
    installed = {metadata.metadata(d.name)["Name"].lower().replace("_", "-"): d.version
                 for d in metadata.distributions() if d.name}
    for name in ("cryptography", "lxml", "xmlsec", "sqlalchemy", "starlette", "fastapi", "ruff", "pytest"):
        assert installed[name] == locked[name], name


def test_the_uv_bootstrap_is_pinned_with_hashes() -> None:
    text = (REPO / "tools" / "uv-requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^uv==\d+\.\d+\.\d+ \\$", text, re.MULTILINE)
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", text)) >= 2


# --- make audit -----------------------------------------------------------------------------------


class _Osv(BaseHTTPRequestHandler):
    """The OSV query API (POST /v1/query), as a ward's mirror of it would answer."""

    vulnerable: ClassVar[dict[str, str]] = {}  # package name -> vulnerability id
    queries: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = query["package"]["name"]
        self.queries.append(name)
        body: dict[str, object] = {}
        if name in self.vulnerable:
            body = {"vulns": [{"id": self.vulnerable[name], "summary": "test finding", "affected": [
                {"package": {"name": name, "ecosystem": "PyPI"},
                 "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "999.0"}]}]}]}]}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def osv() -> Iterator[tuple[str, type[_Osv]]]:
    handler = type("Osv", (_Osv,), {"vulnerable": {}, "queries": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query", handler
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def _audit(*args: str, ignore_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO / "tools" / "audit.py"), "--uv", str(UV), *args]
    if ignore_file is not None:
        command += ["--ignore-file", str(ignore_file)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=REPO)


def _locked_for_this_platform() -> set[str]:
    exported = subprocess.run([str(UV), "export", "--frozen", "--all-extras", "--no-emit-project", "--no-hashes",
                               "--format", "requirements-txt", "--quiet"], cwd=REPO, capture_output=True, text=True,
                              check=True, timeout=120).stdout
    requirements = [Requirement(line) for line in exported.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    return {canonicalize_name(r.name) for r in requirements if r.marker is None or r.marker.evaluate()}


def test_audit_passes_when_every_locked_package_was_looked_up(osv: tuple[str, type[_Osv]]) -> None:
    url, handler = osv
    result = _audit("--osv-url", url)
    assert result.returncode == 0, result.stderr
    expected = _locked_for_this_platform()
    assert len(expected) > 50
    assert set(handler.queries) == expected  # every locked package that applies here, and only those
    assert f"no known vulnerabilities in {len(expected)} locked packages" in result.stdout


def test_audit_fails_on_a_known_vulnerability(osv: tuple[str, type[_Osv]]) -> None:
    url, handler = osv
    handler.vulnerable["jinja2"] = "PYSEC-2099-1"
    result = _audit("--osv-url", url)
    assert result.returncode == 1
    version = next(p["version"] for p in LOCK["package"] if p["name"] == "jinja2")
    assert f"jinja2 {version}: PYSEC-2099-1 (fixed in: 999.0)" in result.stdout
    assert "1 known vulnerabilities" in result.stderr


def test_an_ignored_vulnerability_needs_a_reason(osv: tuple[str, type[_Osv]], tmp_path: Path) -> None:
    url, handler = osv
    handler.vulnerable["jinja2"] = "PYSEC-2099-1"
    ignore = tmp_path / "ignore.txt"
    ignore.write_text("PYSEC-2099-1\n", encoding="utf-8")
    refused = _audit("--osv-url", url, ignore_file=ignore)
    assert refused.returncode == 2
    assert "needs a reason" in refused.stderr
    ignore.write_text("# comment\nPYSEC-2099-1  # sandbox-only code path, review 2027-01-31\n", encoding="utf-8")
    accepted = _audit("--osv-url", url, ignore_file=ignore)
    assert accepted.returncode == 0, accepted.stderr
    assert "1 ignored" in accepted.stdout


def test_audit_says_clearly_when_the_data_is_unreachable() -> None:
    # Port 9 on loopback (discard): nothing listens, the connection is refused at once.
    result = _audit("--osv-url", "http://127.0.0.1:9/v1/query")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "was unreachable: nothing was checked" in lines[0]
    assert result.stdout == ""
