"""Mail configuration (departments file, settings, production refusals) and the ``mail`` command."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from intake.mail.config import load_mail_config
from intake.mail.errors import MailConfigError
from intake.procedures import load_procedures
from intake.settings import IntakeSettings, MailSettings
from tests.support.dailymail import DEPARTMENTS, HOIKU, JIDOTEATE, TENSHUTSU, write_world


def load(tmp_path: Path, departments: Any, **mail: Any) -> Any:
    procedures, path = write_world(tmp_path, departments)
    if not isinstance(departments, dict):
        path.write_text(departments if isinstance(departments, str) else json.dumps(departments), encoding="utf-8")
    settings = IntakeSettings(var_dir=tmp_path / "var", procedures_file=procedures,
                              mail=MailSettings(departments_file=path, **mail))
    return load_mail_config(settings, load_procedures(procedures))


def test_departments_own_their_catalogue_procedures(tmp_path: Path) -> None:
    config = load(tmp_path, DEPARTMENTS, sender="intake@ward.example.lg.jp", staff_ui_base_url="https://ui.example/x/")
    kodomo = config.department("kodomo-katei")
    assert kodomo.name == "子ども家庭支援部 子ども家庭課"  # from the catalogue when the file has none
    assert kodomo.procedures == (JIDOTEATE,)
    assert config.department("hoiku").procedures == (HOIKU, "KOSODATE-HOIKU-HENKO")
    assert config.owner(TENSHUTSU).id == "kuminka"  # type: ignore[union-attr]
    assert config.owner("NOT-IN-THE-CATALOGUE").id == "kuminka"  # type: ignore[union-attr]
    assert config.message_id_domain == "ward.example.lg.jp"  # the sender's domain by default
    assert config.staff_ui_base_url == "https://ui.example/x"


def test_a_department_without_mail_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    only = {"departments": [DEPARTMENTS["departments"][0]]}
    with caplog.at_level(logging.WARNING, logger="intake.mail.config"):
        config = load(tmp_path, only)
    assert config.owner(HOIKU) is None
    assert "['hoiku', 'kuminka'] own procedures but get no daily mail" in caplog.text


@pytest.mark.parametrize(("departments", "where"), [
    pytest.param({"departments": [{"id": "a b", "recipients": ["x@y.jp"]}]}, "departments[0].id", id="bad-id"),
    pytest.param({"departments": [{"id": "a..b", "recipients": ["x@y.jp"]}]}, "departments[0].id", id="double-dot"),
    pytest.param({"departments": [{"id": "a", "recipients": []}]}, "department 'a'.recipients", id="no-recipients"),
    pytest.param({"departments": [{"id": "a", "recipients": ["not an address"]}]}, "department 'a'.recipients",
                 id="bad-address"),
    pytest.param({"departments": [{"id": "a", "recipients": ["x@y.jp"], "cc": []}]}, "department 'a'",
                 id="unknown-key"),
    pytest.param({"departments": [{"id": "a", "recipients": ["x@y.jp"]}, {"id": "a", "recipients": ["x@y.jp"]}]},
                 "department 'a'", id="twice"),
    pytest.param({"departments": [{"id": "a", "recipients": ["x@y.jp"], "unassigned": True},
                                  {"id": "b", "recipients": ["x@y.jp"], "unassigned": True}]}, "departments_file",
                 id="two-unassigned"),
    pytest.param({"depts": []}, "departments_file", id="wrong-shape"),
    pytest.param("{not json", "departments_file", id="not-json"),
])
def test_broken_departments_files_are_refused(tmp_path: Path, departments: Any, where: str) -> None:
    with pytest.raises(MailConfigError) as info:
        load(tmp_path, departments)
    assert str(info.value).startswith(where + ":")


def test_bad_sender_and_base_url_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MailConfigError, match=r"^sender:"):
        load(tmp_path, DEPARTMENTS, sender="intake")
    with pytest.raises(MailConfigError, match=r"^staff_ui_base_url:"):
        load(tmp_path, DEPARTMENTS, staff_ui_base_url="javascript:alert(1)")
    with pytest.raises(MailConfigError, match=r"^message_id_domain:"):
        load(tmp_path, DEPARTMENTS, message_id_domain="bad domain")


def test_development_default_is_one_local_department(tmp_path: Path) -> None:
    config = load_mail_config(IntakeSettings(var_dir=tmp_path), load_procedures(None))
    (dept,) = config.departments
    assert (dept.id, dept.recipients, dept.unassigned) == ("all", ("shinsei-dev@localhost",), True)
    assert config.owner("ANYTHING") == dept


def test_production_refuses_an_unconfigured_or_insecure_mail() -> None:
    def problems(**mail: Any) -> str:
        with pytest.raises(ValueError, match="mail") as info:
            IntakeSettings(environment="production", mail=MailSettings(**mail))
        return str(info.value)

    assert "mail.departments_file is required" in problems()
    assert "mail.smtp_ca_file is required" in problems(departments_file=Path("d.json"), transport="smtp")
    assert "no password in clear" in problems(departments_file=Path("d.json"), transport="smtp", smtp_security="none",
                                              smtp_username="u", smtp_password="p")  # noqa: S106 - a test value


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHINSEI_INTAKE_MAIL__SEND_TIME", "07:15")
    monkeypatch.setenv("SHINSEI_INTAKE_MAIL__TRANSPORT", "smtp")
    monkeypatch.setenv("SHINSEI_INTAKE_MAIL__SMTP_PASSWORD", "secret")
    settings = IntakeSettings()
    assert settings.mail.send_time.hour == 7
    assert settings.mail.send_time.minute == 15
    assert settings.mail.transport == "smtp"
    assert "secret" not in repr(settings)


def intake(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intake", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_mail_command_dry_run_send_and_status(tmp_path: Path) -> None:
    """``python -m intake mail …`` in a real process on a migrated SQLite database, writing .eml files.
    The process runs on the development clock (``dev_clock``): Wednesday 2026-11-25 noon, so the day
    is Tuesday, whose business-day mail covers it alone, whatever day the suite runs on."""
    procedures, departments = write_world(tmp_path / "config")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update({"SHINSEI_INTAKE_ENVIRONMENT": "development", "SHINSEI_INTAKE_VAR_DIR": str(tmp_path / "var"),
                "SHINSEI_INTAKE_PROCEDURES_FILE": str(procedures),
                "SHINSEI_INTAKE_MAIL__DEPARTMENTS_FILE": str(departments),
                "SHINSEI_INTAKE_MAIL__SENDER": "intake@ward.example.lg.jp",
                "SHINSEI_INTAKE_DEV_CLOCK": "2026-11-25T12:00:00+09:00"})
    assert intake(env, "db", "upgrade").returncode == 0
    day = "2026-11-24"

    dry = intake(env, "mail", "send", "--date", day, "--department", "hoiku", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Subject: 【電子申請 日次件数】" in dry.stdout
    assert "保育課 御中" in dry.stdout
    assert f"{day} hoiku: dry_run" in dry.stdout
    mail_dir = tmp_path / "var" / "mail"
    assert not mail_dir.exists()

    sent = intake(env, "mail", "send", "--date", day)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip().endswith("3 sent")
    files = sorted(p.name for p in mail_dir.iterdir())
    compact = day.replace("-", "")
    assert files == [f"daily-{compact}-{d}.eml" for d in ("hoiku", "kodomo-katei", "kuminka")]
    msg = message_from_bytes((mail_dir / files[0]).read_bytes(), policy=policy.default)
    assert msg["Message-ID"] == f"<daily-{compact}-hoiku@ward.example.lg.jp>"

    again = intake(env, "mail", "send", "--date", day)
    assert again.stdout.strip().endswith("3 already sent")
    shown = intake(env, "mail", "send", "--date", day, "--department", "hoiku", "--dry-run")
    assert f"Message-ID: <daily-{compact}-hoiku@ward.example.lg.jp>" in shown.stdout  # the stored mail, decoded
    assert "保育課 御中" in shown.stdout
    assert f"{day} hoiku: already_sent" in shown.stdout
    status = intake(env, "mail", "status")
    assert status.returncode == 0
    assert json.loads(status.stdout)["failing"] == []

    today = intake(env, "mail", "send", "--date", "2026-11-25")
    assert today.returncode == 2
    assert "INVALID_MAIL_DAY" in today.stderr
    unknown = intake(env, "mail", "send", "--date", day, "--department", "nope")
    assert (unknown.returncode, "UNKNOWN_DEPARTMENT" in unknown.stderr) == (2, True)
