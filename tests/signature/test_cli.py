"""The `python -m signature` contract (issue 2 §9): exit codes, JSON keys, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import NOW, PackageFactory, World


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "signature", *map(str, args)],
                          capture_output=True, text=True, timeout=120, check=False)


def verify_args(world: World, package: Path, *extra: str) -> list[str | Path]:
    return ["verify", package, "--jpki-roots", world.jpki_roots, "--portal-roots", world.portal_roots,
            "--crl", world.crl_dir, "--at", NOW.isoformat(), *extra]


@pytest.fixture
def package(tmp_path: Path, make_package: PackageFactory) -> Path:
    path = tmp_path / "20261125-0000000001.zip"
    path.write_bytes(make_package())
    return path


def test_passed_json_has_the_contract_keys(world: World, package: Path) -> None:
    result = run(*verify_args(world, package, "--json"))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["indication"] == "PASSED"
    assert out["sub_indication"] is None
    assert out["receipt_number"] == "20261125-0000000001"
    assert out["procedure_id"] == "KOSODATE-JIDOTEATE-NINTEI"
    assert out["application_kind"] == "新規申請"
    assert out["first_receipt_number"] is None
    assert out["user_cert_serial"] == "1A2B3C4D5E6F"
    assert out["arrived_at"] == (NOW - timedelta(minutes=30)).isoformat()
    signer = out["signer"]
    resident = world.residents[0]
    assert signer["name"] == resident.name
    assert signer["address"] == resident.address
    assert signer["birth_date"] == resident.birth_date.isoformat()
    assert signer["sex"] == resident.sex
    assert signer["cert_serial"] == format(world.signer.cert.serial_number, "X")
    assert "JPKI-TEST" in signer["issuer"]
    assert {"not_before", "not_after"} <= signer.keys()
    roles = {f["name"]: f["role"] for f in out["files"]}
    assert roles == {"kousei.xml": "manifest", "到達情報.xml": "arrival", "JIDOTEATE-01_01.xml": "form",
                     "保険証.pdf": "attachment", "口座確認.png": "attachment"}
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in out["files"])


def test_failed_exits_1(world: World, tmp_path: Path, package: Path) -> None:
    data = bytearray(package.read_bytes())
    tampered = tmp_path / "tampered.zip"
    # Flip a byte inside the stored PNG's data region: the ZIP's CRC then fails → FAILED.
    tampered.write_bytes(bytes(data[:-200]) + bytes([data[-200] ^ 0xFF]) + bytes(data[-199:]))
    result = run(*verify_args(world, tampered, "--json"))
    assert result.returncode == 1, result.stdout
    assert json.loads(result.stdout)["indication"] == "FAILED"


def test_revoked_before_arrival_exits_2(world: World, tmp_path: Path, make_package: PackageFactory) -> None:
    """Revoked before 到達日時: INDETERMINATE / REVOKED_NO_POE (ETSI EN 319 102-1), exit code 2."""
    path = tmp_path / "revoked.zip"
    path.write_bytes(make_package(signer=world.revoked_signer))
    result = run(*verify_args(world, path, "--json"))
    assert result.returncode == 2
    out = json.loads(result.stdout)
    assert (out["sub_indication"], out["reason_code"]) == ("REVOKED_NO_POE", "CERT_REVOKED")
    assert datetime.fromisoformat(out["signer_revoked_at"]) == NOW - timedelta(days=3)
    assert out["revoked_after_validation_time"] is False


def test_at_is_the_processing_time_and_the_applicant_is_judged_at_arrival(world: World, package: Path) -> None:
    """--at is when the package is processed (the portal certificate is validated then); the
    applicant's certificate is judged at the portal-signed 到達日時. Two days later, after every
    CRL's nextUpdate, the CRL that was current at 到達日時 still decides: same answer."""
    later = (NOW + timedelta(days=2)).isoformat()
    for at in (NOW.isoformat(), later):
        args = verify_args(world, package, "--json")
        args[args.index("--at") + 1] = at
        result = run(*args)
        assert result.returncode == 0, result.stdout
        out = json.loads(result.stdout)
        assert out["validation_time"] == (NOW - timedelta(minutes=30)).isoformat()
        assert out["validation_time_source"] == "arrival"
        assert out["processing_time"] == at


def test_no_crl_is_indeterminate_exit_2_and_soft_fail_passes(world: World, package: Path) -> None:
    args = ["verify", package, "--jpki-roots", world.jpki_roots, "--portal-roots", world.portal_roots,
            "--at", NOW.isoformat(), "--json"]
    result = run(*args)
    assert result.returncode == 2
    assert json.loads(result.stdout)["sub_indication"] == "TRY_LATER"
    result = run(*args, "--revocation", "soft-fail")
    assert result.returncode == 0
    assert json.loads(result.stdout)["revocation_checked"] is False


def test_readable_report(world: World, package: Path) -> None:
    result = run(*verify_args(world, package))
    assert result.returncode == 0
    assert "indication      : PASSED" in result.stdout
    assert "20261125-0000000001" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["verify"], id="no-package"),
        pytest.param(["verify", "x.zip", "--portal-roots", "p"], id="no-jpki-roots"),
        pytest.param(["frobnicate"], id="unknown-command"),
    ],
)
def test_usage_errors_exit_3(args: list[str]) -> None:
    assert run(*args).returncode == 3


def test_naive_time_is_a_usage_error(world: World, package: Path) -> None:
    args = verify_args(world, package)
    args[args.index("--at") + 1] = "2026-11-25T12:00:00"
    result = run(*args)
    assert result.returncode == 3
    assert "UTC offset" in result.stderr


def test_missing_package_and_missing_roots_exit_3(world: World, tmp_path: Path, package: Path) -> None:
    assert run(*verify_args(world, tmp_path / "absent.zip")).returncode == 3
    args = verify_args(world, package)
    args[args.index("--jpki-roots") + 1] = tmp_path / "absent-roots"
    result = run(*args)
    assert result.returncode == 3
    assert "does not exist" in result.stderr


def test_testpki_and_build_make_a_package_that_verifies(tmp_path: Path) -> None:
    now = NOW.isoformat()
    assert run("testpki", tmp_path / "pki", "--now", now, "--seed", "3").returncode == 0
    result = run("build", "--pki", tmp_path / "pki", "--out", tmp_path / "p.zip", "--now", now,
                 "--uri-style", "percent", "--folder", "申請", "--cp932")
    assert result.returncode == 0, result.stderr
    result = run("verify", tmp_path / "p.zip", "--jpki-roots", tmp_path / "pki" / "jpki-roots",
                 "--portal-roots", tmp_path / "pki" / "portal-roots", "--at", now, "--revocation", "soft-fail",
                 "--json")
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout)["indication"] == "PASSED"
