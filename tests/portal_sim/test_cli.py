"""``python -m portal_sim``: the generate command gives what the library gives, says nothing personal,
and fails cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from portal_sim.datadir import DataDir
from tests.portal_sim.generated_support import OPTIONS
from tests.portal_sim.test_generate_reproducible import digests


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "portal_sim", *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=False)


def generate_args(out: Path, key_cache: Path) -> list[str | Path]:
    return ["generate", "--out", out, "--residents", str(OPTIONS.residents), "--applications",
            str(OPTIONS.applications), "--seed", str(OPTIONS.seed), "--start", OPTIONS.start.isoformat(),
            "--days", str(OPTIONS.days), "--defect-rate", str(OPTIONS.defect_rate), "--key-cache", key_cache]


def personal_values(data: DataDir) -> set[str]:
    values = set()
    for r in data.residents():
        values |= {r.name, r.name_kana, r.my_number, r.atena_number, r.address, *r.signing_cert_serials,
                   *(c.serial for c in r.user_certs), *(m.my_number for m in r.household)}
    return values


def test_generate_writes_what_the_library_writes_and_logs_nothing_personal(
    generated: DataDir, key_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    result = run(*generate_args(out, key_cache), "--jobs", "1", "--verbose")
    assert result.returncode == 0, result.stderr
    assert digests(out) == digests(generated.path)
    assert "80 applications (12 defective) from 12 residents" in result.stdout
    assert "keys:" in result.stderr  # --verbose logs, and stderr is no TTY: no progress bars
    said = result.stdout + result.stderr
    assert not [v for v in personal_values(generated) if v in said]


def test_generate_refuses_a_non_empty_directory(key_cache: Path, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep").write_text("x")
    result = run(*generate_args(tmp_path / "data", key_cache), "--quiet")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    assert (tmp_path / "data" / "keep").read_text() == "x"


def test_options_out_of_range_are_refused(tmp_path: Path) -> None:
    bad_rate = run("generate", "--out", tmp_path / "d", "--defect-rate", "1.5", "--start", "2026-11-01")
    assert bad_rate.returncode == 1
    assert "--defect-rate" in bad_rate.stderr
    no_days = run("generate", "--out", tmp_path / "d", "--days", "0")
    assert no_days.returncode == 2
    assert not (tmp_path / "d").exists()


def test_usage_names_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "generate" in result.stdout
    assert "linkage" in result.stdout
    assert run("generate").returncode == 2  # --out is required
