"""The private temp directory: created 0700, must be empty at start-up, becomes the process' TMPDIR."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dmz_relay.errors import RelayConfigError, TempDirNotEmpty
from dmz_relay.runtime import Relay
from dmz_relay.settings import RelaySettings
from dmz_relay.tmpdir import prepare_temp_dir
from tests.conftest import World


@pytest.fixture(autouse=True)
def _restore_tempdir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)
    monkeypatch.setenv("TMPDIR", os.environ.get("TMPDIR", "/tmp"))  # noqa: S108 - restored value only


def test_created_private_and_installed(tmp_path: Path) -> None:
    path = prepare_temp_dir(tmp_path / "relay" / "tmp")
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert tempfile.gettempdir() == str(path)
    assert os.environ["TMPDIR"] == str(path)
    with tempfile.NamedTemporaryFile() as f:  # what a library would do lands in the private directory
        assert Path(f.name).parent == path


def test_a_leftover_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "tmp"
    path.mkdir(mode=0o700)
    (path / "spool-123").write_bytes(b"left over")
    with pytest.raises(TempDirNotEmpty) as info:
        prepare_temp_dir(path)
    assert info.value.entries == 1
    assert tempfile.tempdir != str(path)


def test_a_shared_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tmp"
    path.mkdir()
    path.chmod(0o755)
    with pytest.raises(RelayConfigError, match="0700"):
        prepare_temp_dir(path)


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "tmp").symlink_to(target)
    with pytest.raises(RelayConfigError, match="symlink"):
        prepare_temp_dir(tmp_path / "tmp")


def test_the_relay_refuses_to_start_with_a_non_empty_temp_dir(world: World, tmp_path: Path) -> None:
    settings = RelaySettings(data_dir=tmp_path / "relay", scanner="none", jpki_roots=[world.jpki_roots],
                             portal_roots=[world.portal_roots], crls=[world.crl_dir])
    settings.effective_temp_dir.mkdir(parents=True, mode=0o700)
    (settings.effective_temp_dir / "x").write_bytes(b"plaintext?")
    with pytest.raises(TempDirNotEmpty):
        Relay.from_settings(settings)


def test_the_cli_exits_2_with_a_non_empty_temp_dir(world: World, tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o700)
    (temp / "x").write_bytes(b"")
    env = {**os.environ, "SHINSEI_RELAY_DATA_DIR": str(tmp_path / "relay"), "SHINSEI_RELAY_TEMP_DIR": str(temp),
           "SHINSEI_RELAY_SCANNER": "none", "SHINSEI_RELAY_JPKI_ROOTS": f'["{world.jpki_roots}"]',
           "SHINSEI_RELAY_PORTAL_ROOTS": f'["{world.portal_roots}"]'}
    done = subprocess.run([sys.executable, "-m", "dmz_relay", "check"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2
    assert "not empty" in done.stderr
