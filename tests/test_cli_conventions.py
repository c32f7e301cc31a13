"""Issue 17 §5: every command line is operable — ``--version`` on each, a help text on every
command and option, one clear line (no traceback) for a bad setting, and ``make demo`` stops
every process it started on SIGTERM and on SIGINT."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import selectors
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import demo.chain
import dmz_relay
import dmz_relay.cli
import intake
import intake.cli
import portal_sim
import portal_sim.cli
import signature
import signature.cli
from tests.support.servers import descendants

ROOT = Path(__file__).resolve().parents[1]
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "intake": intake.cli.parser,
    "dmz_relay": dmz_relay.cli._parser,  # private, but its shape is the contract checked here
    "portal_sim": portal_sim.cli.build_parser,
    "demo": demo.chain.parser,
    "signature": signature.cli._parser,
}


def _walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    """(where, action) for every argument of this parser and of every sub-command below it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield f"{path} {choice.dest}", choice
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")
        else:
            yield f"{path} {'/'.join(action.option_strings) or action.dest}", action


def test_pyproject_names_the_same_release_as_every_package() -> None:
    release = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert {p.__name__: p.__version__ for p in (intake, dmz_relay, portal_sim, signature)} == dict.fromkeys(
        ("intake", "dmz_relay", "portal_sim", "signature"), release)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_command_and_option_has_a_help_text(name: str) -> None:
    missing = [where for where, action in _walk(PARSERS[name](), f"python -m {name}")
               if not isinstance(action, argparse._HelpAction)
               and (not action.help or action.help == argparse.SUPPRESS or not action.help.strip())]
    assert not missing, f"no help text: {missing}"


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_version_is_answered_in_process_and_by_the_module(name: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as leaving:
        PARSERS[name]().parse_args(["--version"])
    assert leaving.value.code == 0
    assert out.getvalue() == f"python -m {name} {intake.__version__}\n"
    run = subprocess.run([sys.executable, "-m", name, "--version"], capture_output=True, text=True, timeout=120,
                         check=False, cwd=ROOT, env=_clean_env())
    assert (run.returncode, run.stdout) == (0, out.getvalue()), run.stderr


@pytest.mark.parametrize(("module", "setting", "field"), [
    ("intake", "SHINSEI_INTAKE_ENVIRONMENT", "environment"),
    ("dmz_relay", "SHINSEI_RELAY_ENVIRONMENT", "environment"),
])
def test_a_bad_setting_stops_with_one_clear_line(module: str, setting: str, field: str, tmp_path: Path) -> None:
    env = {**_clean_env(), setting: "staging-typo", "SHINSEI_VAR_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", module, "check"], capture_output=True, text=True, timeout=120,
                         check=False, cwd=ROOT, env=env)
    assert run.returncode == 2
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"{module}: cannot start: invalid settings: {field}:"), lines[0]
    assert "Traceback" not in run.stderr


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def demo_var(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``SHINSEI_VAR_DIR`` for both runs: the demo starts afresh each time but keeps its key cache."""
    return tmp_path_factory.mktemp("demo") / "var"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_make_demo_stops_every_child_on_a_signal(sig: signal.Signals, demo_var: Path) -> None:
    env = {**_clean_env(), "SHINSEI_VAR_DIR": str(demo_var), "PYTHONUNBUFFERED": "1"}
    demo_proc = subprocess.Popen([sys.executable, "-m", "demo", "--residents", "4", "--applications", "8"],
                                 cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # its own group: a failed test can still clean up
    assert demo_proc.stdout is not None
    seen = b""
    children: set[int] = set()
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(demo_proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 600
            while b"stops everything" not in seen:  # bounded: the demo is up, or it ended, or the deadline
                assert time.monotonic() < deadline, seen.decode(errors="replace")[-2000:]
                if sel.select(timeout=5):
                    chunk = os.read(demo_proc.stdout.fileno(), 65536)
                    assert chunk, "demo ended early: " + seen.decode(errors="replace")[-2000:]
                    seen += chunk
        children = descendants(demo_proc.pid)
        assert len(children) >= 3, children  # portal_sim, the intake (mTLS) and the staff UI at least
        demo_proc.send_signal(sig)
        rest, _ = demo_proc.communicate(timeout=120)
        assert demo_proc.returncode == 0, (seen + rest).decode(errors="replace")[-2000:]
        assert b"Traceback" not in seen + rest
        assert f"stopped ({sig.name})".encode() in rest
        assert [pid for pid in children if _alive(pid)] == []
    finally:
        if demo_proc.poll() is None:
            os.killpg(demo_proc.pid, signal.SIGKILL)
            demo_proc.wait(30)
        for pid in children:  # what the demo left behind, if the test failed
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
