"""The UI's front door over real HTTP: terminals, cookies, headers, CSRF at login, certificate login."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from intake.models import AccessLogRow, StaffUser
from intake.runtime import Runtime
from intake.settings import StaffUISettings
from signature.testing.builder import ApplicationSpec
from tests.conftest import PackageFactory
from tests.intake.conftest import Clock
from tests.intake.ui.conftest import PASSWORD, UIWorld, build_world, csrf_of

# The front door does not depend on the database engine: SQLite is enough here.
pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
FP = "ef" * 32


@pytest.fixture
def proxied(engine: Engine, runtime: Runtime, clock: Clock, make_package: PackageFactory,
            spec: ApplicationSpec) -> Iterator[UIWorld]:
    """Behind a trusted front proxy (127.0.0.1) that passes client address, terminal and staff certificate."""
    ui = StaffUISettings(trusted_proxies=["127.0.0.1"], terminal_networks=["10.1.0.0/16"],
                         terminal_cert_ids=["TERM-0042"])
    world, server = build_world(engine, runtime, clock, make_package, spec, ui=ui)
    with world.sessions() as s:
        user = s.scalar(select(StaffUser).where(StaffUser.login == "reviewer"))
        assert user is not None
        user.client_cert_sha256 = FP
        s.commit()
    try:
        yield world
    finally:
        server.__exit__(None, None, None)


def test_headers_cookies_and_error_pages(ui_world: UIWorld) -> None:
    with closing(ui_world.client()) as client:
        page = client.get("/staff/login")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src" not in csp
        assert "unsafe-inline" not in csp
        for name, value in [("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"),
                            ("referrer-policy", "no-referrer"), ("cache-control", "no-store")]:
            assert page.headers[name] == value
        assert "<script" not in page.text
        assert "style=" not in page.text
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "path=/staff" in cookie
        assert "secure" not in cookie  # plain http in the test; https makes it Secure (next test)
        # login CSRF: a POST without the token is refused before any password check
        refused = client.post("/staff/login", data={"login": "reviewer", "password": PASSWORD, "totp": "000000"})
        assert refused.status_code == 403
        assert "content-security-policy" in refused.headers
        big = client.post("/staff/login", content=b"a=" + b"x" * 40000,
                          headers={"content-type": "application/x-www-form-urlencoded"})
        assert big.status_code == 413
        multipart = client.post("/staff/login", files={"f": ("a.txt", b"x")})
        assert multipart.status_code == 400
    with closing(ui_world.login("reviewer")) as client:
        set_cookie = [v for k, v in client.get("/staff/").headers.multi_items() if k == "set-cookie"]
        assert set_cookie == []  # the session token is set once, at login


def test_cookie_is_secure_when_configured(engine: Engine, runtime: Runtime, clock: Clock,
                                          make_package: PackageFactory, spec: ApplicationSpec) -> None:
    world, server = build_world(engine, runtime, clock, make_package, spec, ui=StaffUISettings(cookie_secure=True))
    try:
        with closing(world.client()) as client:
            assert "secure" in client.get("/staff/login").headers["set-cookie"].lower()
    finally:
        server.__exit__(None, None, None)


def test_wrong_factor_shows_one_generic_message(ui_world: UIWorld) -> None:
    with closing(ui_world.client()) as client:
        token = csrf_of(client.get("/staff/login").text)
        for login, password in (("reviewer", "wrong password!"), ("nobody", PASSWORD)):
            answer = client.post("/staff/login", data={"csrf": token, "login": login, "password": password,
                                                       "totp": ui_world.totp("reviewer")})
            assert answer.status_code == 401
            assert "ログインID、パスワードまたは確認コードが正しくありません。" in answer.text


def test_idle_timeout_and_logout_over_http(ui_world: UIWorld) -> None:
    with closing(ui_world.login("reviewer")) as client:
        assert client.get("/staff/").status_code == 200
        ui_world.clock.now += timedelta(minutes=16)
        assert client.get("/staff/").headers["location"] == "/staff/login?expired=1"
    with closing(ui_world.login("reviewer")) as client:
        token = client.cookies.get("shinsei_staff")
        out = client.post("/staff/logout", data={"csrf": ui_world.csrf(client)})
        assert (out.status_code, out.headers["location"]) == (303, "/staff/login")
        with closing(ui_world.client(cookies={"shinsei_staff": token or ""})) as stale:
            assert stale.get("/staff/").status_code == 303


def test_a_terminal_outside_the_allowlist_is_refused_and_logged(
    engine: Engine, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    world, server = build_world(engine, runtime, clock, make_package, spec,
                                ui=StaffUISettings(terminal_networks=["10.0.0.0/8"]))
    try:
        with closing(world.client()) as client:
            for path in ("/staff/login", "/staff/", "/staff/applications/1"):
                answer = client.get(path)
                assert answer.status_code == 403
                assert "この端末からは利用できません" in answer.text
                assert "content-security-policy" in answer.headers
        with world.sessions() as s:
            rows = s.scalars(select(AccessLogRow).where(AccessLogRow.action == "terminal.refused")).all()
            assert [r.terminal for r in rows] == ["ip:127.0.0.1"] * 3
    finally:
        server.__exit__(None, None, None)


def test_front_proxy_terminals_and_certificate_login(proxied: UIWorld) -> None:
    xff = {"X-Forwarded-For": "10.1.2.3"}
    with closing(proxied.client(headers=xff)) as client:
        page = client.get("/staff/login")
        assert page.status_code == 200
        assert "ICカードでログイン" in page.text
        answer = client.post("/staff/login/certificate", data={"csrf": csrf_of(page.text)},
                             headers={"X-Staff-Cert-Sha256": FP})
        assert answer.status_code == 303
        assert client.get("/staff/").status_code == 200
        # the session is bound to its terminal
        assert client.get("/staff/", headers={"X-Forwarded-For": "10.1.2.4"}).status_code == 303
    with closing(proxied.client(headers={"X-Terminal-Cert-Id": "TERM-0042"})) as client:
        assert client.get("/staff/login").status_code == 200
    with closing(proxied.client(headers={"X-Terminal-Cert-Id": "TERM-9999"})) as client:
        assert client.get("/staff/login").status_code == 403
    with closing(proxied.client(headers={"X-Forwarded-For": "192.168.0.9"})) as client:
        assert client.get("/staff/login").status_code == 403
    with proxied.sessions() as s:
        methods = s.scalars(select(AccessLogRow.reason).where(AccessLogRow.action == "login.success")).all()
        assert methods == ["certificate"]


def test_certificate_header_from_an_untrusted_peer_is_ignored(ui_world: UIWorld) -> None:
    with closing(ui_world.client()) as client:
        page = client.get("/staff/login")
        assert "ICカードでログイン" not in page.text
        answer = client.post("/staff/login/certificate", data={"csrf": csrf_of(page.text)},
                             headers={"X-Staff-Cert-Sha256": FP})
        assert answer.status_code == 401
