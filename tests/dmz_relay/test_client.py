"""``dmz_relay push``: local files are deleted only after the intake's receipt for their bytes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from dmz_relay.client import FileOutcome, collect_files, push_files
from dmz_relay.push import create_app
from signature.testing.builder import ApplicationSpec
from signature.testing.samples import sample_pdf
from tests.conftest import PackageFactory
from tests.dmz_relay.conftest import Intake, RelayFactory, Sleeps
from tests.support.servers import free_port, serve_in_thread


@pytest.fixture
def relay_url(intake: Intake, make_relay: RelayFactory) -> Iterator[str]:
    with serve_in_thread(create_app(make_relay(intake.url))) as url:
        yield url


@pytest.fixture
def outbox(tmp_path: Path, make_package: PackageFactory, spec: ApplicationSpec) -> Path:
    folder = tmp_path / "outbox"
    folder.mkdir()
    (folder / "a.zip").write_bytes(make_package())
    (folder / "b.ZIP").write_bytes(make_package(spec=replace(spec, receipt_number="20261125-0000000002")))
    (folder / "c-same-as-a.zip").write_bytes(make_package())
    (folder / "hostile.zip").write_bytes(sample_pdf("not a zip"))
    (folder / "notes.txt").write_text("not sent")
    return folder


def test_collect_takes_zip_files_of_folders_and_named_files(outbox: Path, tmp_path: Path) -> None:
    extra = tmp_path / "single.bin"
    extra.write_bytes(b"x")
    names = [p.name for p in collect_files([outbox, extra])]
    assert names == ["a.zip", "b.ZIP", "c-same-as-a.zip", "hostile.zip", "single.bin"]
    with pytest.raises(FileNotFoundError):
        collect_files([tmp_path / "missing"])


def test_delivered_files_are_deleted_refused_ones_kept(
    relay_url: str, outbox: Path, intake: Intake, sleeps: Sleeps
) -> None:
    out = io.StringIO()
    with httpx.Client(base_url=relay_url, timeout=60) as http:
        summary = push_files(http, collect_files([outbox]), out=out, sleep=sleeps, progress=False)
    outcomes = {r.path.name: r.outcome for r in summary.results}
    assert outcomes == {"a.zip": FileOutcome.DELIVERED, "b.ZIP": FileOutcome.DELIVERED,
                        "c-same-as-a.zip": FileOutcome.DUPLICATE, "hostile.zip": FileOutcome.REFUSED}
    assert sorted(os.listdir(outbox)) == ["hostile.zip", "notes.txt"]
    assert intake.deliveries() == 2
    text = out.getvalue()
    assert "REFUSED" in text
    assert "NOT_A_ZIP" in text
    assert "ZIP形式" in text
    assert "4 file(s): 2 delivered, 1 already delivered, 1 refused, 0 to retry later" in text
    assert not summary.ok


def test_nothing_is_deleted_when_the_intake_cannot_be_reached(
    make_relay: RelayFactory, outbox: Path, sleeps: Sleeps
) -> None:
    relay = make_relay(f"http://127.0.0.1:{free_port()}", forward_attempts=1)
    out = io.StringIO()
    with serve_in_thread(create_app(relay)) as url, httpx.Client(base_url=url, timeout=60) as http:
        summary = push_files(http, [outbox / "a.zip"], out=out, retries=2, sleep=sleeps, progress=False)
    assert summary.results[0].outcome is FileOutcome.FAILED
    assert summary.results[0].code == "INTAKE_UNAVAILABLE"
    assert (outbox / "a.zip").exists()
    assert sleeps.waits == [7.0, 7.0]  # the relay's Retry-After, twice, then the file waits for next time
    assert "RETRY" in out.getvalue()


def test_a_2xx_that_is_not_a_receipt_for_the_file_deletes_nothing(outbox: Path, sleeps: Sleeps) -> None:
    liar = FastAPI()

    @liar.post("/api/v1/packages")
    def accept() -> JSONResponse:
        return JSONResponse({"delivery_id": 1, "receipt_number": None, "sha256": "0" * 64,
                             "stored_at": "2026-11-25T03:00:00+00:00", "duplicate": False}, status_code=201)

    with serve_in_thread(liar) as url, httpx.Client(base_url=url, timeout=60) as http:
        summary = push_files(http, [outbox / "a.zip"], out=io.StringIO(), sleep=sleeps, progress=False)
    assert (summary.results[0].outcome, summary.results[0].code) == (FileOutcome.FAILED, "BAD_RECEIPT")
    assert (outbox / "a.zip").exists()


def test_the_command_line(relay_url: str, outbox: Path, intake: Intake) -> None:
    done = subprocess.run([sys.executable, "-m", "dmz_relay", "push", str(outbox), "--url", relay_url,
                           "--no-progress"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stderr  # one file was refused
    assert "1 refused" in done.stdout
    assert sorted(os.listdir(outbox)) == ["hostile.zip", "notes.txt"]
    assert intake.deliveries() == 2
