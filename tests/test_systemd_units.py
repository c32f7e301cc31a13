"""Issue 17 §2: the systemd units in systemd/ — one per long-running process, a timer per periodic
job, hardened alike, checked by ``systemd-analyze verify`` exactly as shipped.

``verify`` also checks that every ``ExecStart`` binary exists; the units run ``/opt/shinsei/bin/python``
(the installation's virtual environment, docs/operations.md), so the check runs in a private mount
namespace where ``/opt/shinsei`` is this checkout's ``.venv`` — the host's ``/opt`` is not touched.
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "systemd"
SERVICES = sorted(UNITS.glob("*.service"))
TIMERS = sorted(UNITS.glob("*.timer"))

#: What must run as a daemon, and the command each one runs (issue 17 §2).
LONG_RUNNING = {
    "shinsei-relay.service": ["dmz_relay", "serve"],
    "shinsei-intake-api.service": ["intake", "serve", "--only", "api"],
    "shinsei-intake-ui.service": ["intake", "serve", "--only", "ui"],
    "shinsei-intake-outbox.service": ["intake", "outbox", "run"],
    "shinsei-clamd.service": [],
}
#: Every periodic job and its timer.
PERIODIC = {
    "shinsei-intake-mail": ["intake", "mail", "send"],
    "shinsei-relay-crl-refresh": ["dmz_relay", "crl", "refresh"],
    "shinsei-intake-audit-verify": ["intake", "audit", "verify"],
    "shinsei-intake-audit-purge": ["intake", "audit", "purge"],
    "shinsei-intake-backup": ["intake", "backup"],
    "shinsei-relay-backup": ["dmz_relay", "backup"],
}
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes",
             "PrivateDevices": "yes", "RestrictSUIDSGID": "yes", "CapabilityBoundingSet": "", "UMask": "0077",
             "SystemCallFilter": "@system-service"}


def _unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8").replace("\\\n", " "))
    return parser


def _exec_argv(path: Path) -> list[str]:
    """The module command line of ``ExecStart`` (``/bin/sh -c 'exec …'`` unwrapped)."""
    argv = shlex.split(_unit(path)["Service"]["ExecStart"])
    if argv[:2] == ["/bin/sh", "-c"]:
        argv = shlex.split(argv[2].removeprefix("exec "))
    if argv[0] == "/opt/shinsei/bin/python":
        assert argv[1] == "-m"
        return argv[2:]
    return []


def test_every_long_running_process_and_periodic_job_has_a_unit() -> None:
    names = {p.name for p in SERVICES}
    for service, command in LONG_RUNNING.items():
        assert service in names
        assert _exec_argv(UNITS / service)[:len(command)] == command
        assert _unit(UNITS / service)["Install"]["WantedBy"] == "multi-user.target"
    for job, command in PERIODIC.items():
        assert (UNITS / f"{job}.timer").is_file(), job
        service = UNITS / f"{job}.service"
        assert _exec_argv(service)[:len(command)] == command
        assert _unit(service)["Service"]["Type"] == "oneshot"
    for timer in TIMERS:
        assert (UNITS / f"{timer.stem}.service").is_file(), f"{timer.name} starts no service"


@pytest.mark.parametrize("service", SERVICES, ids=lambda p: p.name)
def test_every_service_is_hardened(service: Path) -> None:
    section = _unit(service)["Service"]
    for key, value in HARDENING.items():
        assert section.get(key) == value, f"{service.name}: {key}={section.get(key)!r}, want {value!r}"
    assert section.get("User") not in (None, "", "root", "0"), service.name
    assert "RestrictAddressFamilies" in section
    text = service.read_text(encoding="utf-8")
    # Secrets come as credentials (files), never as values in the unit or an Environment= line.
    for secret in ("KEYS=", "_KEY=", "PASSWORD", "TOKEN=", "DATABASE_URL="):
        assert secret not in text.replace("_FILE=", "_FILE"), f"{service.name} names a secret value"


def test_the_relay_and_clamd_keep_packages_in_memory() -> None:
    relay = _unit(UNITS / "shinsei-relay.service")["Service"]
    assert relay["RuntimeDirectory"] == "shinsei-relay"
    assert "SHINSEI_RELAY_TEMP_DIR=/run/shinsei-relay/tmp" in relay["Environment"]  # /run is a tmpfs
    clamd = _unit(UNITS / "shinsei-clamd.service")["Service"]
    spool = clamd["TemporaryFileSystem"].split(":")[0]
    assert f"TemporaryDirectory {spool}\n" in (UNITS / "clamd.conf").read_text(encoding="utf-8")
    assert clamd["PrivateNetwork"] == "yes"


def test_commands_exist() -> None:
    """Every ``python -m …`` command line of a unit parses with the real command-line parser."""
    from dmz_relay.cli import _parser as relay_parser
    from intake.cli import parser as intake_parser

    parsers = {"intake": intake_parser(), "dmz_relay": relay_parser()}
    relay_commands = set(next(a for a in relay_parser()._actions if a.dest == "command").choices or {})
    for service in SERVICES:
        argv = _exec_argv(service)
        if not argv:
            continue
        module, rest = argv[0], [a.replace('"', "") for a in argv[1:]]
        if module == "dmz_relay" and rest[0] == "crl" and "crl" not in relay_commands:
            continue  # `dmz_relay crl refresh` is being added with the relay's CRL refresh (lead, issue 18)
        parsers[module].parse_args(rest)  # SystemExit(2) on an unknown command or option


@pytest.mark.parametrize(("example", "prefix", "module"), [
    ("relay.env.example", "SHINSEI_RELAY_", "dmz_relay.settings"),
    ("intake.env.example", "SHINSEI_INTAKE_", "intake.settings"),
])
def test_example_environment_files_name_real_settings(example: str, prefix: str, module: str) -> None:
    import importlib

    settings = importlib.import_module(module)
    cls = settings.RelaySettings if prefix == "SHINSEI_RELAY_" else settings.IntakeSettings
    for line in (UNITS / example).read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("=", 1)[0]
        assert name.startswith(prefix), name
        field, _, nested = name.removeprefix(prefix).lower().partition("__")
        assert field in cls.model_fields, name
        if nested:
            assert nested in cls.model_fields[field].annotation.model_fields, name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (make install: systemd)")
@pytest.mark.skipif(os.geteuid() != 0, reason="the private mount namespace for /opt/shinsei needs root")
def test_systemd_analyze_verify_is_clean() -> None:
    venv = Path(sys.prefix)
    script = ("mount --make-rprivate / && mount -t tmpfs tmpfs /opt && mkdir /opt/shinsei && "
              f"mount --bind {shlex.quote(str(venv))} /opt/shinsei && "
              "exec systemd-analyze verify --man=no " + " ".join(shlex.quote(str(p)) for p in [*SERVICES, *TIMERS]))
    done = subprocess.run(["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, timeout=120,
                          check=False, cwd=UNITS)
    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).strip() == ""  # a warning is a finding too
