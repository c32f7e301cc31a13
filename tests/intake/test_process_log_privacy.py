"""Issue 15 §6: the intake's process log holds no personal data, whatever the requests carried.

A real `python -m intake serve` (its stdout and stderr in one file, as systemd's journal gets them)
stores a real package, and a member of staff made with `staff add` logs in and searches by フリガナ
and 宛名番号 in query strings, opens the application, and a failed login types a resident's name
into the login field. Then the log file is scanned for the resident's name and kana, the searched
宛名番号 and every 12-digit number in the package (its My Numbers): none may appear.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pyotp
from sqlalchemy import select

from intake.db import make_engine, make_session_factory
from intake.deliveries.service import expected_key
from intake.models import Application
from signature.testing.builder import ApplicationSpec
from tests.conftest import PackageFactory
from tests.intake.conftest import intake_process
from tests.intake.ui.conftest import csrf_of

PASSWORD = "a long enough password"  # noqa: S105 - a test account
ATENA = "0000123456"
_MY_NUMBER_LIKE = re.compile(rb"(?<!\d)\d{12}(?!\d)")


def _app_ids(url: str) -> list[int]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            return list(s.scalars(select(Application.id)))
    finally:
        engine.dispose()


def test_the_process_log_holds_no_personal_data(
        env: dict[str, str], database_url: str, make_package: PackageFactory, spec: ApplicationSpec) -> None:
    body = make_package()
    my_numbers = {m.decode() for m in _MY_NUMBER_LIKE.findall(spec.form_xml)}
    assert my_numbers  # the sample form carries My Numbers
    made = subprocess.run([sys.executable, "-m", "intake", "staff", "add", "shinsa", "--name", "審査 花子", "--role",
                           "reviewer", "--department", "all", "--password-stdin"], env=env, input=PASSWORD + "\n",
                          capture_output=True, text=True, timeout=120, check=True)
    secret = next(ln.split(": ", 1)[1] for ln in made.stdout.splitlines() if ln.startswith("TOTP secret"))
    with intake_process(env) as (url, _proc):
        stored = httpx.post(f"{url}/api/v1/deliveries", content=body, timeout=60,
                            headers={"Content-Type": "application/zip", "Idempotency-Key": expected_key(body)})
        assert stored.status_code == 201, stored.text
        [app_id] = _app_ids(database_url)
        with httpx.Client(base_url=url, timeout=20) as client:
            page = client.get("/staff/login")
            wrong = client.post("/staff/login", data={"csrf": csrf_of(page.text), "login": spec.applicant.name,
                                                      "password": "x", "totp": "000000"})
            assert wrong.status_code == 401
            page = client.get("/staff/login")
            ok = client.post("/staff/login", data={"csrf": csrf_of(page.text), "login": "shinsa",
                                                   "password": PASSWORD, "totp": pyotp.TOTP(secret).now()})
            assert ok.status_code == 303, ok.text
            for params in ({"kana": spec.applicant.name_kana}, {"atena": ATENA}, {"q": spec.applicant.name}):
                assert client.get("/staff/applications", params=params).status_code == 200
            detail = client.get(f"/staff/applications/{app_id}")
            assert detail.status_code == 200
            assert spec.applicant.name in detail.text  # the page did carry the data the log must not
    log = b"".join(p.read_bytes() for p in Path(env["SHINSEI_INTAKE_VAR_DIR"]).glob("serve-*.log"))
    assert b"/staff/applications" in log  # the requests were logged at all (else the scan proves nothing)
    text = log.decode("utf-8", errors="replace")
    kana = spec.applicant.name_kana
    personal = {spec.applicant.name, spec.applicant.name.replace(" ", "").replace("\u3000", ""), kana,
                kana.replace(" ", "").replace("\u3000", ""), spec.applicant.address, ATENA, *my_numbers}
    found = sorted(value for value in personal if value and value in text)
    assert found == []
    # nor percent-encoded, as a query string would carry them
    encoded = {str(httpx.QueryParams({"v": v}))[2:] for v in personal if v}
    assert sorted(e for e in encoded if e in text) == []
