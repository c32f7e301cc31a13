"""lxml and xmlsec on different libxml2 builds: every service refuses to start, in one line naming both.

A real mismatch, not a simulated one: an older lxml wheel (pinned with hashes in tests/support/lxml/)
is installed into a folder that goes first on PYTHONPATH, beside the locked xmlsec. lxml 5.4.0 carries
libxml2 2.13.8 (xmlsec's own import check refuses it, without naming versions); lxml 6.0.0 carries
2.14.4, which xmlsec's major.minor check lets through although its own is 2.14.6.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import xmlsec
from lxml import etree

from signature.libxml2 import LibxmlMismatch, load_xmlsec, version_text

REPO = Path(__file__).resolve().parents[2]
UV = REPO / ".uv" / "bin" / "uv"
PINS = REPO / "tests" / "support" / "lxml"


@pytest.fixture(scope="module", params=["5.4.0", "6.0.0"], ids=["minor-differs", "patch-differs"])
def other_lxml(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    version: str = request.param
    target = tmp_path_factory.mktemp(f"lxml-{version}")
    assert UV.exists(), "uv is installed by `make install`"
    subprocess.run([str(UV), "pip", "install", "--quiet", "--no-deps", "--require-hashes", "--python", sys.executable,
                    "--target", str(target), "-r", str(PINS / f"lxml-{version}.txt")], check=True, timeout=300)
    return version, target


def test_the_locked_pair_shares_one_libxml2() -> None:
    assert load_xmlsec() is xmlsec
    assert tuple(xmlsec.get_libxml_version()) == tuple(etree.LIBXML_VERSION)


@pytest.mark.parametrize("command", [["intake", "serve"], ["dmz_relay", "serve"], ["portal_sim", "serve"]],
                         ids=lambda c: c[0])
def test_services_refuse_to_start_naming_both_versions(other_lxml: tuple[str, Path], command: list[str],
                                                      tmp_path: Path) -> None:
    version, target = other_lxml
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(REPO)])
    result = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, timeout=120,
                            env=env, cwd=tmp_path, check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    line = lines[0]
    assert line.startswith(f"{command[0]}: cannot start: ")
    assert f"lxml {version} uses libxml2 " in line
    if version == "6.0.0":  # xmlsec's own check passed: ours names both versions
        ours = version_text(tuple(xmlsec.get_libxml_version()))
        assert f"uses libxml2 {ours} but lxml 6.0.0 uses libxml2 2.14.4" in line


def test_mismatch_is_an_import_error_of_xmlsec() -> None:
    exc = LibxmlMismatch("x")
    assert isinstance(exc, ImportError)
    assert exc.name == "xmlsec"
