"""A small world for the daily-mail tests: a procedure catalogue of three departments, their mail
configuration, settings pointing at a test SMTP server, and a way to write application events."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from intake.events import KIND_BY_APPLICATION_KIND, record_event
from intake.models import Application, ApplicationVersion, Delivery, Event, VersionState
from intake.settings import IntakeSettings, MailSettings
from tests.support.smtp import SmtpSink

__all__ = [
    "DEPARTMENTS",
    "HOIKU",
    "JIDOTEATE",
    "PROCEDURES",
    "TENSHUTSU",
    "UI",
    "add_application_event",
    "mail_settings",
    "write_world",
]

JIDOTEATE = "KOSODATE-JIDOTEATE-NINTEI"  # what signature.testing.samples.sample_spec applies for
HOIKU = "KOSODATE-HOIKU-NYUSHO"
HOIKU_HENKO = "KOSODATE-HOIKU-HENKO"
TENSHUTSU = "JUMIN-TENSHUTSU"
UI = "https://staff.intake.ward.example/ui"
_serial = itertools.count(1)

PROCEDURES = {"procedures": [
    {"id": JIDOTEATE, "name": "児童手当 認定請求", "department": "kodomo-katei",
     "department_name": "子ども家庭支援部 子ども家庭課"},
    {"id": HOIKU, "name": "保育所等 入所申込", "department": "hoiku", "department_name": "保育課"},
    {"id": HOIKU_HENKO, "name": "保育所等 変更届", "department": "hoiku", "department_name": "保育課"},
    {"id": TENSHUTSU, "name": "転出届", "department": "kuminka", "department_name": "区民課"},
]}

DEPARTMENTS = {"departments": [
    {"id": "kodomo-katei", "recipients": ["kodomo-katei@ward.example.lg.jp", "kacho@ward.example.lg.jp"]},
    {"id": "hoiku", "name": "保育課", "recipients": ["hoiku@ward.example.lg.jp"]},
    {"id": "kuminka", "name": "区民課", "recipients": ["kuminka@ward.example.lg.jp"], "unassigned": True},
]}


def write_world(directory: Path, departments: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """(procedures file, departments file)."""
    directory.mkdir(parents=True, exist_ok=True)
    procedures = directory / "procedures.json"
    procedures.write_text(json.dumps(PROCEDURES, ensure_ascii=False), encoding="utf-8")
    depts = directory / "departments.json"
    depts.write_text(json.dumps(departments or DEPARTMENTS, ensure_ascii=False), encoding="utf-8")
    return procedures, depts


def mail_settings(base: IntakeSettings | None, directory: Path, smtp: SmtpSink | None = None,
                  **mail: Any) -> IntakeSettings:
    """Settings with the test world's catalogue and departments, sending to ``smtp`` (plain SMTP) or
    to ``.eml`` files when it is None. A mail every calendar day unless ``calendar="business"`` (the
    production default) is asked for: most mail tests are about sending, not about the calendar."""
    procedures, departments = write_world(directory / "config")
    fields: dict[str, Any] = {"departments_file": departments, "sender": "shinsei-intake@ward.example.lg.jp",
                              "message_id_domain": "intake.ward.example.lg.jp", "staff_ui_base_url": UI,
                              "retry_base_seconds": 1.0, "retry_cap_seconds": 4.0, "calendar": "every_day"}
    if smtp is not None:
        fields.update(transport="smtp", smtp_host=smtp.host, smtp_port=smtp.port, smtp_security="none",
                      smtp_timeout_seconds=10)
    fields.update(mail)
    update: dict[str, Any] = {"procedures_file": procedures, "mail": MailSettings(**fields)}
    if base is None:
        return IntakeSettings(var_dir=directory / "var", **update)
    return base.model_copy(update=update)


def add_application_event(session: Session, kind: str, at: datetime, procedure_id: str, n: int = 1, *,
                          stored_at: datetime | None = None) -> list[Event]:
    """``n`` applications of 申請種別 ``kind`` (新規申請 / 再申請 / 補正 / 取下げ) whose portal 到達日時 is
    ``at``, stored at the intake at ``stored_at`` (default: ``at``): the version rows the mail counts
    and the event the intake writes with them."""
    events = []
    stored = stored_at or at
    for _ in range(n):
        number = next(_serial)
        receipt = f"{at:%Y%m%d}-{number:010d}"
        delivery = Delivery(idempotency_key=f"sha256:{number:064d}", sha256=f"{number:064d}", size=1,
                            receipt_number=receipt, package=b"", received_at=stored, client_id="test")
        app = Application(first_receipt_number=receipt, procedure_id=procedure_id, procedure_name=procedure_id,
                          created_at=stored, updated_at=stored, needs_review=False)
        session.add_all([delivery, app])
        session.flush()
        session.add(ApplicationVersion(
            application_id=app.id, delivery_id=delivery.id, receipt_number=receipt, kind=kind, arrived_at=at,
            stored_at=stored, state=VersionState.CURRENT, indication="PASSED", form_xml="<DataRoot/>",
            form_file="form.xml", applicant=[]))
        events.append(record_event(session, KIND_BY_APPLICATION_KIND[kind], at=stored, receipt_number=receipt,
                                   first_receipt_number=receipt, procedure_id=procedure_id))
    session.flush()
    return events
