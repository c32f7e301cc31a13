"""``serve`` options → settings, without a socket; and the command itself, end to end."""

from __future__ import annotations

import argparse
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from portal_sim.api import AcceleratedClock, ConfigurationError, FaultInjection, FixedClock, RateLimit, SystemClock
from portal_sim.api.serve import add_serve_parser, settings_from_args
from tests.conftest import NOW, World
from tests.portal_sim.api_support import API_KEY, MUNICIPALITY, PLAN, bearer, write_data_dir


@pytest.fixture
def data_dir(world: World, tmp_path: Path) -> Path:
    write_data_dir(world, tmp_path / "data")
    return tmp_path / "data"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="portal_sim")
    add_serve_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["serve", *argv])


def test_defaults(data_dir: Path) -> None:
    args = parse("--data", str(data_dir))
    assert (args.host, args.port) == ("127.0.0.1", 8700)
    settings = settings_from_args(args)
    assert isinstance(settings.clock, SystemClock)
    assert settings.session_clock is None
    assert settings.rate_limit == RateLimit(per_second=10, burst=20)
    assert not settings.faults.enabled
    assert settings.token_ttl == timedelta(hours=1)


def test_options_map_to_settings(data_dir: Path) -> None:
    settings = settings_from_args(parse(
        "--data", str(data_dir), "--clock", "fixed:2026-11-25T12:00:00+09:00", "--rate", "2", "--burst", "5",
        "--fail-every", "7", "--fail-rate", "0.25", "--fail-seed", "3", "--retry-after", "4", "--token-ttl", "60"))
    assert isinstance(settings.clock, FixedClock)
    assert settings.clock.now() == NOW
    # a frozen calendar must not freeze the rate limit: the bucket refills on the wall clock
    assert isinstance(settings.session_clock, SystemClock)
    assert settings.rate_limit == RateLimit(per_second=2, burst=5)
    assert settings.faults == FaultInjection(every=7, probability=0.25, seed=3, retry_after=4)
    assert settings.token_ttl == timedelta(seconds=60)


def test_rate_zero_turns_the_limit_off(data_dir: Path) -> None:
    assert settings_from_args(parse("--data", str(data_dir), "--rate", "0")).rate_limit is None


def test_accelerated_clock_starts_at_the_first_arrival_and_tokens_use_the_wall_clock(data_dir: Path) -> None:
    settings = settings_from_args(parse("--data", str(data_dir), "--clock", "accelerated:1"))
    assert isinstance(settings.clock, AcceleratedClock)
    assert isinstance(settings.session_clock, SystemClock)
    first = NOW + timedelta(minutes=min(minutes for _, minutes, _, _ in PLAN))
    assert timedelta(0) <= settings.clock.now() - first < timedelta(seconds=5)


@pytest.mark.parametrize("argv", [
    pytest.param(["--clock", "sometimes"], id="bad-clock"),
    pytest.param(["--rate", "-1"], id="negative-rate"),
    pytest.param(["--fail-every", "0"], id="fail-every-zero"),
    pytest.param(["--fail-rate", "2"], id="fail-rate-above-one"),
    pytest.param(["--token-ttl", "0"], id="ttl-zero"),
])
def test_bad_options_are_configuration_errors(data_dir: Path, argv: list[str]) -> None:
    with pytest.raises(ConfigurationError):
        settings_from_args(parse("--data", str(data_dir), *argv))


def test_accelerated_clock_on_a_missing_directory_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        settings_from_args(parse("--data", str(tmp_path / "missing"), "--clock", "accelerated:60"))


@contextmanager
def serve_process(*argv: str) -> Iterator[str]:
    """Run ``python -m portal_sim serve`` on a free port; yields its base URL once uvicorn says so."""
    with subprocess.Popen([sys.executable, "-m", "portal_sim", "serve", "--port", "0", *argv],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as process:
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            while True:
                line = lines.get(timeout=30)
                assert line is not None, "serve exited before it was ready"
                match = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
                if match:
                    break
            yield match.group(1)
        finally:
            process.terminate()
            process.wait(timeout=10)
            reader.join(timeout=10)  # the pipe is at its end; Popen's exit closes it


def test_serve_command_serves_the_data_directory(data_dir: Path) -> None:
    with serve_process("--data", str(data_dir), "--clock", "fixed:2026-11-25T12:00:00+09:00",
                       "--fail-every", "4", "--retry-after", "2") as base_url, \
            httpx.Client(base_url=base_url, timeout=10) as client:
        login = client.post("/api/v1/login", json={"municipality_code": MUNICIPALITY, "api_key": API_KEY})
        token = login.json()["access_token"]
        listing = client.get("/api/v1/applications", headers=bearer(token)).json()
        assert len(listing["items"]) == 7  # the clock is fixed at NOW: two have not arrived
        number = listing["items"][0]["receipt_number"]
        package = client.get(f"/api/v1/applications/{number}/package", headers=bearer(token))
        assert package.content == (data_dir / "packages" / f"{number}.zip").read_bytes()
        faulted = client.get("/api/v1/applications", headers=bearer(token))  # the 4th request
        assert (faulted.status_code, faulted.headers["Retry-After"]) == (503, "2")


def test_serve_command_refuses_a_directory_that_is_not_one(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "portal_sim", "serve", "--data", str(tmp_path), "--port", "0"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "not a usable portal_sim data directory" in result.stderr
