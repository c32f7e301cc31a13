"""The intake dies right after the SMTP server accepted the mail and before the sent-log said SENT:
after a restart the same mail (same Message-ID, same bytes) is sent at most once more, never a
different one. Real processes, a real SMTP server, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from intake.jst import JST
from intake.models import MailSentLog, MailState
from tests.support.dailymail import JIDOTEATE, add_application_event, write_world
from tests.support.smtp import SmtpSink, smtp_server

DAY = date(2026, 11, 24)
PINNED = "2026-11-25T09:00:00+09:00"

#: The intake's mail service in a process of its own, with the pinned clock. With ``--crash`` it
#: dies (``os._exit``) in the commit that would record SENT — after the SMTP server said 250.
PROCESS = """
import os, sys
from datetime import date, datetime
from sqlalchemy import event
from sqlalchemy.orm import Session
from intake.db import make_engine, make_session_factory
from intake.mail.service import DailyMailer
from intake.models import MailSentLog, MailState
from intake.procedures import load_procedures
from intake.settings import IntakeSettings

if "--crash" in sys.argv:
    @event.listens_for(Session, "before_commit")
    def _die(session):
        if any(isinstance(o, MailSentLog) and o.state is MailState.SENT for o in session.identity_map.values()):
            os._exit(137)

settings = IntakeSettings()
engine = make_engine(settings.effective_database_url)
pinned = datetime.fromisoformat(sys.argv[1])
mailer = DailyMailer.from_settings(settings, load_procedures(settings.procedures_file), make_session_factory(engine),
                                   clock=lambda: pinned)
run = mailer.send(date.fromisoformat(sys.argv[2]))
print(run.summary())
engine.dispose()
"""


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with smtp_server() as sink:
        yield sink


@pytest.fixture
def env(engine: Engine, tmp_path: Path, smtp: SmtpSink) -> dict[str, str]:
    procedures, departments = write_world(tmp_path / "config")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHINSEI_")}
    env.update({
        "SHINSEI_INTAKE_ENVIRONMENT": "development",
        "SHINSEI_INTAKE_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "SHINSEI_INTAKE_VAR_DIR": str(tmp_path / "var"),
        "SHINSEI_INTAKE_PROCEDURES_FILE": str(procedures),
        "SHINSEI_INTAKE_MAIL": json.dumps({
            "departments_file": str(departments), "transport": "smtp", "smtp_host": smtp.host,
            "smtp_port": smtp.port, "smtp_security": "none", "smtp_timeout_seconds": 10,
            "sender": "shinsei-intake@ward.example.lg.jp", "message_id_domain": "intake.ward.example.lg.jp",
            "retry_base_seconds": 0}),
    })
    return env


def run(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROCESS, PINNED, DAY.isoformat(), *extra], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_killed_after_the_server_accepted(session: Session, env: dict[str, str], smtp: SmtpSink) -> None:
    add_application_event(session, "新規申請", datetime(2026, 11, 24, 10, tzinfo=JST), JIDOTEATE, n=2)
    session.commit()

    crashed = run(env, "--crash")
    assert crashed.returncode == 137, crashed.stderr
    assert len(smtp.received) == 1  # the server has the first department's mail …
    first = smtp.received[0]
    rows = session.scalars(select(MailSentLog)).all()
    assert [(r.department, r.state) for r in rows] == [("kodomo-katei", MailState.CLAIMED)]  # … we do not know

    # Late data for the day: a re-rendered mail would now say 3件; the claimed one says 2件.
    add_application_event(session, "補正", datetime(2026, 11, 24, 23, 59, 59, tzinfo=JST), JIDOTEATE)
    session.commit()
    restarted = run(env)
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.strip() == "3 sent"
    ids = smtp.message_ids()
    assert ids == ["<daily-20261124-kodomo-katei@intake.ward.example.lg.jp>",
                   "<daily-20261124-kodomo-katei@intake.ward.example.lg.jp>",
                   "<daily-20261124-hoiku@intake.ward.example.lg.jp>",
                   "<daily-20261124-kuminka@intake.ward.example.lg.jp>"]
    assert smtp.received[1].data == first.data  # the very same mail, not a re-rendered one
    assert " 2件 " in str(first.parsed()["Subject"])

    again = run(env)
    assert (again.returncode, again.stdout.strip()) == (0, "3 already sent")
    assert len(smtp.received) == 4
    session.expire_all()
    assert {(r.department, r.state) for r in session.scalars(select(MailSentLog))} == {
        (d, MailState.SENT) for d in ("kodomo-katei", "hoiku", "kuminka")}
