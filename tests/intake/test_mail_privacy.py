"""No personal data in the daily mail: real packages stored through ``store_delivery`` (names,
addresses, birth dates, contact data, My Numbers), then the mail as the SMTP server received it —
raw bytes and both decoded bodies — holds none of them, while the counts are right."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from intake.db import make_session_factory
from intake.deliveries.service import expected_key, store_delivery
from intake.jst import JST
from intake.mail.service import DailyMailer
from intake.mynumbers.service import extract_my_numbers
from intake.procedures import load_procedures
from intake.runtime import Runtime
from intake.settings import IntakeSettings
from signature.testing.builder import ApplicationSpec
from signature.testing.samples import sample_spec
from tests.conftest import NOW, PackageFactory, World
from tests.intake.conftest import Clock
from tests.support.dailymail import mail_settings
from tests.support.smtp import SmtpSink, smtp_server


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with smtp_server() as sink:
        yield sink


def deliver(session: Session, runtime: Runtime, body: bytes) -> None:
    store_delivery(session, runtime, body=body, key=expected_key(body), client_id="relay-test", relay_report=None)
    session.commit()


def secrets_of(spec: ApplicationSpec, world: World, index: int) -> set[str]:
    resident = world.residents[index]
    values = {resident.name, resident.name_kana, resident.address, resident.name_alt, resident.address_alt,
              spec.applicant.name, spec.applicant.name_kana, spec.applicant.address, spec.applicant.phone,
              spec.applicant.email, spec.applicant.postal_code, spec.user_cert_serial,
              resident.birth_date.isoformat(), resident.birth_date.strftime("%Y%m%d")}
    values |= {n.value for n in extract_my_numbers(spec.form_xml)[1]}
    values |= {part for part in (resident.name.split() + resident.address.split()) if len(part) >= 2}
    return {v for v in values if v}


def test_the_mail_holds_counts_and_no_personal_data(
    engine: Engine, session: Session, runtime: Runtime, settings: IntakeSettings, clock: Clock, world: World,
    make_package: PackageFactory, spec: ApplicationSpec, smtp: SmtpSink, tmp_path: Path,
) -> None:
    first = spec.receipt_number
    deliver(session, runtime, make_package())
    deliver(session, runtime, make_package(spec=replace(
        spec, receipt_number="20261125-0000000002", kind="補正", first_receipt_number=first,
        arrived_at=spec.arrived_at + timedelta(minutes=5))))
    other = sample_spec(world.residents[1], random.Random(5), receipt_number="20261125-0000000003",
                        arrived_at=NOW - timedelta(minutes=20), user_cert_serial="7F00AA")
    deliver(session, runtime, make_package(spec=other, signer=world.revoked_signer))  # a signature error
    third = sample_spec(world.residents[2], random.Random(6), receipt_number="20261125-0000000004",
                        arrived_at=NOW - timedelta(minutes=10), user_cert_serial="7F00AB", kind="取下げ",
                        first_receipt_number="20261120-0000000009")
    deliver(session, runtime, make_package(spec=third, signer=world.pki.issue_signer(world.residents[2])))

    mail_env = mail_settings(settings, tmp_path, smtp)
    clock.now = datetime(2026, 11, 26, 8, 30, tzinfo=JST)
    mailer = DailyMailer.from_settings(mail_env, load_procedures(mail_env.procedures_file),
                                       make_session_factory(engine), clock=clock)
    run = mailer.send(date(2026, 11, 25))
    assert [o.result for o in run.outcomes] == ["sent"] * 3

    kodomo = next(r for r in smtp.received if "kodomo-katei@ward.example.lg.jp" in r.rcpt_tos)
    msg = kodomo.parsed()
    text = "".join(str(p.get_content()) for p in msg.walk() if p.get_content_maintype() == "text")
    assert "新規申請 2 ／ 再申請 0 ／ 補正 1 ／ 取下げ 1 ／ 計 4" in text  # the counts are there
    assert "・署名検証エラー: 1件" in text
    secrets = (secrets_of(spec, world, 0) | secrets_of(other, world, 1) | secrets_of(third, world, 2))
    assert len(secrets) > 20
    everything = [r.data.decode("ascii") for r in smtp.received]
    everything += ["".join(str(p.get_content()) for p in r.parsed().walk() if p.get_content_maintype() == "text")
                   + str(r.parsed()["Subject"]) for r in smtp.received]
    for secret in secrets:
        for blob in everything:
            assert secret not in blob, "personal data in the daily mail"
    for receipt in (first, "20261125-0000000002", other.receipt_number, third.receipt_number):
        assert receipt not in text

