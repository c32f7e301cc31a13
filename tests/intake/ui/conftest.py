"""The staff UI served for real (uvicorn in a thread) over a database with real stored packages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from intake.api import create_app
from intake.db import make_session_factory
from intake.models import Application, ApplicationVersion, Attachment, StaffUser
from intake.procedures import ProcedureCatalogue
from intake.runtime import Runtime
from intake.settings import StaffUISettings
from intake.staff.service import create_user
from signature.testing.builder import ApplicationSpec
from tests.conftest import NOW, PackageFactory
from tests.intake.conftest import Clock
from tests.intake.staffdata import CATALOGUE, OTHER_DEPT, OTHER_PROCEDURE, OWN_DEPT, deliver
from tests.support.servers import serve_in_thread

PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account
_STEP = timedelta(seconds=30)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')

#: name → (roles, department, may reveal My Numbers)
USERS: dict[str, tuple[list[str], str, bool]] = {
    "viewer": (["viewer"], OWN_DEPT, False),
    "reviewer": (["reviewer"], OWN_DEPT, False),
    "revealer": (["reviewer"], OWN_DEPT, True),
    "depadmin": (["department_admin"], OWN_DEPT, False),
    "sysadmin": (["system_admin"], OWN_DEPT, False),
    "auditor": (["auditor"], OWN_DEPT, False),
    "other-reviewer": (["reviewer"], OTHER_DEPT, True),
}


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


@dataclass
class UIWorld:
    base_url: str
    sessions: sessionmaker[Session]
    runtime: Runtime
    clock: Clock
    own_app: int
    other_app: int
    own_version: int
    other_version: int
    own_attachment: int
    other_attachment: int
    secrets: dict[str, str]

    def totp(self, login: str) -> str:
        return pyotp.TOTP(self.secrets[login]).at(self.clock.now)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=20, follow_redirects=False, **kwargs)

    def login(self, login: str, **kwargs: Any) -> httpx.Client:
        """A client with a live session for ``login`` (each TOTP step is accepted once per user: the
        clock moves 30 s after every login)."""
        client = self.client(**kwargs)
        page = client.get("/staff/login")
        answer = client.post("/staff/login", data={"csrf": csrf_of(page.text), "login": login, "password": PASSWORD,
                                                   "totp": self.totp(login)})
        assert answer.status_code == 303, answer.text
        self.clock.now += _STEP
        return client

    def csrf(self, client: httpx.Client) -> str:
        return csrf_of(client.get("/staff/").text)


def build_world(engine: Engine, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec,
                ui: StaffUISettings | None = None, *, catalogue: ProcedureCatalogue = CATALOGUE,
                **server: Any) -> tuple[UIWorld, Any]:
    settings = runtime.settings.model_copy(update={"ui": ui or StaffUISettings()})
    rt = replace(runtime, settings=settings, procedures=catalogue)
    sessions = make_session_factory(engine)
    with sessions() as session:
        deliver(session, rt, make_package())
        other = replace(spec, receipt_number="20261125-0000000050", procedure_id=OTHER_PROCEDURE,
                        procedure_name="戸籍証明書の請求")
        deliver(session, rt, make_package(spec=other))
        own_app = session.scalar(select(Application.id).where(Application.first_receipt_number == spec.receipt_number))
        other_app = session.scalar(select(Application.id).where(
            Application.first_receipt_number == other.receipt_number))
        assert own_app is not None
        assert other_app is not None
        own_v = session.scalar(select(ApplicationVersion.id).where(ApplicationVersion.application_id == own_app))
        other_v = session.scalar(select(ApplicationVersion.id).where(ApplicationVersion.application_id == other_app))
        assert own_v is not None
        assert other_v is not None
        own_att = session.scalar(select(Attachment.id).where(Attachment.version_id == own_v).limit(1))
        other_att = session.scalar(select(Attachment.id).where(Attachment.version_id == other_v).limit(1))
        assert own_att is not None
        assert other_att is not None
        secrets = {}
        for login, (roles, dept, reveal) in USERS.items():
            new = create_user(session, login=login, display_name=f"職員 {login}", roles=roles, departments=[dept],
                              at=NOW, sealer=rt.package_sealer, password=PASSWORD, may_reveal_my_number=reveal)
            assert new.totp_secret is not None
            secrets[login] = new.totp_secret
        session.commit()
    # As `python -m intake serve`: the app itself decides which proxy headers to believe.
    running = serve_in_thread(create_app(rt, sessions), proxy_headers=False, **server)
    base_url = running.__enter__()
    return UIWorld(base_url, sessions, rt, clock, own_app, other_app, own_v, other_v, own_att, other_att,
                   secrets), running


@pytest.fixture
def ui_world(engine: Engine, runtime: Runtime, clock: Clock, make_package: PackageFactory,
             spec: ApplicationSpec) -> Iterator[UIWorld]:
    world, server = build_world(engine, runtime, clock, make_package, spec)
    try:
        yield world
    finally:
        server.__exit__(None, None, None)


def user_id(world: UIWorld, login: str) -> int:
    with world.sessions() as session:
        uid = session.scalar(select(StaffUser.id).where(StaffUser.login == login))
        assert uid is not None
        return uid


def search(world: UIWorld, client: httpx.Client, **fields: str) -> str:
    """A person search as the list page's form sends it (POST), then the list it redirects to: its HTML."""
    return client.get(search_url(world, client, **fields)).text


def search_url(world: UIWorld, client: httpx.Client, **fields: str) -> str:
    """The list URL with the server-side search id (never the search text)."""
    answer = client.post("/staff/applications/search", data={"csrf": world.csrf(client), **fields})
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert all(v not in location for v in fields.values() if v)
    return str(location)
