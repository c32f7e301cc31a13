"""The admin pages over real HTTP: who may use them, accounts end to end, guards, the access log."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import timedelta

import httpx
import pyotp
import pytest
from sqlalchemy import Engine, select, update

from intake.authz import Actor
from intake.forwarding.routes import Route
from intake.models import AccessLogRow, StaffChangeRequest, StaffSession, StaffUser
from intake.runtime import Runtime
from intake.staff.requests import ChangeKind, file_request
from intake.staff.service import create_user
from signature.testing.builder import ApplicationSpec
from tests.conftest import NOW, PackageFactory
from tests.intake.conftest import Clock
from tests.intake.staffdata import OTHER_PROCEDURE, OWN_DEPT, OWN_PROCEDURE
from tests.intake.ui.conftest import PASSWORD, USERS, UIWorld, build_world, csrf_of, user_id

# The admin service runs on SQLite and PostgreSQL in tests/intake/test_staff_admin.py (row locks of
# the last-admin guard included); over HTTP the engine changes nothing, so SQLite is enough here.
pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)

_SECRET = re.compile(r'id="totp-secret"[^>]*>([A-Z2-7]+)<')
_URI = re.compile(r'id="totp-uri"[^>]*>([^<]+)<')
NEW_PASSWORD = "another long passphrase 2"  # noqa: S105 - a test account
FP = "cd" * 32


def secret_of(html: str) -> str:
    found = _SECRET.search(html)
    assert found is not None, "no TOTP secret on the page"
    return found.group(1)


def admin_rows(w: UIWorld) -> list[AccessLogRow]:
    with w.sessions() as s:
        return list(s.scalars(select(AccessLogRow).where(AccessLogRow.action.like("admin.%"))
                              .order_by(AccessLogRow.id)))


def all_rows(w: UIWorld) -> list[AccessLogRow]:
    with w.sessions() as s:
        return list(s.scalars(select(AccessLogRow).order_by(AccessLogRow.id)))


def account(w: UIWorld, login: str) -> StaffUser:
    with w.sessions() as s:
        user = s.scalar(select(StaffUser).where(StaffUser.login == login))
        assert user is not None
        s.expunge(user)
        return user


def add_target(w: UIWorld, login: str = "target", roles: list[str] | None = None) -> int:
    with w.sessions() as s:
        new = create_user(s, login=login, display_name="対象 職員", roles=roles or ["viewer"], departments=[OWN_DEPT],
                          at=NOW, sealer=w.runtime.package_sealer, password=PASSWORD)
        s.commit()
        assert new.totp_secret is not None
        w.secrets[login] = new.totp_secret
        return new.user.id


def second_admin(w: UIWorld) -> int:
    """The four eyes' second system administrator (issue 15 §3)."""
    return add_target(w, "admin2", ["system_admin"])


def pending(w: UIWorld) -> list[tuple[int, str]]:
    with w.sessions() as s:
        rows = s.scalars(select(StaffChangeRequest).where(StaffChangeRequest.state == "pending")
                         .order_by(StaffChangeRequest.id))
        return [(r.id, r.kind) for r in rows]


def decide(w: UIWorld, client: httpx.Client, request_id: int, verb: str = "approve") -> httpx.Response:
    return client.post(f"/staff/admin/requests/{request_id}/{verb}",
                       data={"csrf": w.csrf(client), "reason": "本人確認済み"})


def lock(w: UIWorld, uid: int) -> None:
    with w.sessions() as s:
        s.execute(update(StaffUser).where(StaffUser.id == uid).values(locked_until=w.clock.now + timedelta(minutes=15)))
        s.commit()


def new_user_form(csrf: str, login: str, **extra: str) -> dict[str, str]:
    return {"csrf": csrf, "login": login, "display_name": "新規 職員", "role_reviewer": "1", f"dept_{OWN_DEPT}": "1",
            "password": PASSWORD, "password_confirm": PASSWORD, "reason": "新規採用", **extra}


def edit_form(csrf: str, **extra: str) -> dict[str, str]:
    return {"csrf": csrf, "display_name": "対象 職員", "role_viewer": "1", f"dept_{OWN_DEPT}": "1",
            "reason": "体制変更", **extra}


# --- who may use the admin pages -------------------------------------------------------------------


@dataclass(frozen=True)
class AdminRoute:
    name: str
    path: str
    admin_status: int
    #: the form of a POST (``None``: a GET), from the acting user's name and the CSRF token
    data: Callable[[str, str], dict[str, str]] | None = None

    def call(self, client: httpx.Client, user: str, csrf: str, uid: int, rid: int = 0, **override: str
             ) -> httpx.Response:
        path = self.path.format(uid=uid, rid=rid)
        if self.data is None:
            return client.get(path)
        return client.post(path, data={**self.data(user, csrf), **override})


def _get(path: str, status: int = 200) -> AdminRoute:
    return AdminRoute(path, path, status)


def _post(name: str, path: str, status: int, data: Callable[[str, str], dict[str, str]]) -> AdminRoute:
    return AdminRoute(name, path, status, data)


def _reason(_user: str, csrf: str) -> dict[str, str]:
    return {"csrf": csrf, "reason": "確認のため"}


ADMIN_ROUTES = [
    _get("/staff/admin", 303),
    _get("/staff/admin/users"),
    _get("/staff/admin/users/new"),
    _get("/staff/admin/users/{uid}"),
    _get("/staff/admin/roles"),
    _get("/staff/admin/departments"),
    _get("/staff/admin/procedures"),
    _get("/staff/admin/routes"),
    _get("/staff/admin/requests"),
    _post("create", "/staff/admin/users", 200, lambda user, csrf: new_user_form(csrf, f"matrix-{user}")),
    _post("update", "/staff/admin/users/{uid}", 303,
          lambda user, csrf: edit_form(csrf, display_name=f"対象 {user}")),
    _post("deactivate", "/staff/admin/users/{uid}/deactivate", 303, _reason),
    _post("reactivate", "/staff/admin/users/{uid}/reactivate", 303, _reason),
    _post("unlock", "/staff/admin/users/{uid}/unlock", 303, _reason),
    # another's TOTP and password: requests for a second administrator (four eyes), nothing shown yet
    _post("totp", "/staff/admin/users/{uid}/totp", 303, _reason),
    _post("password", "/staff/admin/users/{uid}/password", 303,
          lambda _u, csrf: {"csrf": csrf, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD,
                            "reason": "再設定"}),
    # a request filed at the command line (cli:ops): the admin approves it, then it is decided (409)
    _post("approve", "/staff/admin/requests/{rid}/approve", 303, _reason),
    _post("deny", "/staff/admin/requests/{rid}/deny", 409, _reason),
]


def cli_request(w: UIWorld, uid: int) -> int:
    """A pending grant of the reveal for ``uid``, filed by an operator at the command line."""
    with w.sessions() as s:
        user = s.get(StaffUser, uid)
        assert user is not None
        filed = file_request(s, Actor(staff_id="cli:ops", department="-", terminal="cli"), user,
                             ChangeKind.GRANT_REVEAL, reason="新任", at=w.clock.now, ttl=timedelta(hours=24))
        s.commit()
        return filed.request_id


def test_admin_route_matrix(ui_world: UIWorld) -> None:
    uid = add_target(ui_world)
    rid = cli_request(ui_world, uid)
    got: dict[tuple[str, str], int] = {}
    want: dict[tuple[str, str], int] = {}
    for user in USERS:
        with closing(ui_world.login(user)) as client:
            csrf = ui_world.csrf(client)
            for route in ADMIN_ROUTES:
                lock(ui_world, uid)  # so that "unlock" has something to do
                answer = route.call(client, user, csrf, uid, rid)
                got[(route.name, user)] = answer.status_code
                want[(route.name, user)] = route.admin_status if user == "sysadmin" else 403
                if answer.status_code == 403:
                    assert "この操作を行う権限がありません" in answer.text
                    assert "対象 職員" not in answer.text
                    assert "target" not in answer.text
    assert {k: v for k, v in got.items() if want[k] != v} == {}
    assert len(got) == len(USERS) * len(ADMIN_ROUTES)
    # Only the admin's calls left a trace, one row per change.
    assert [r.action for r in admin_rows(ui_world)] == [
        "admin.request.grant_reveal", "admin.user.create", "admin.user.update", "admin.user.deactivate",
        "admin.user.reactivate", "admin.user.unlock", "admin.request.reset_totp", "admin.request.set_password",
        "admin.request.approve"]
    assert {r.staff_id for r in admin_rows(ui_world)} == {"cli:ops", "sysadmin"}
    assert account(ui_world, "target").may_reveal_my_number is True  # approved by the second person
    assert account(ui_world, "target").display_name == "対象 sysadmin"


def test_without_a_session_every_admin_route_sends_to_login(ui_world: UIWorld) -> None:
    uid = add_target(ui_world)
    with closing(ui_world.client()) as client:
        for route in ADMIN_ROUTES:
            answer = route.call(client, "anon", "x", uid)
            assert (answer.status_code, answer.headers.get("location")) == (303, "/staff/login?expired=1"), route.name
    assert admin_rows(ui_world) == []


def test_unknown_user_ids_are_404_for_the_admin(ui_world: UIWorld) -> None:
    with closing(ui_world.login("sysadmin")) as client:
        csrf = ui_world.csrf(client)
        for path in ("/staff/admin/users/999999", "/staff/admin/users/abc"):
            assert client.get(path).status_code == 404, path
        for action in ("", "/deactivate", "/reactivate", "/unlock", "/totp", "/password"):
            answer = client.post(f"/staff/admin/users/999999{action}",
                                 data={**edit_form(csrf), "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
            assert answer.status_code == 404, action
    with closing(ui_world.login("depadmin")) as client:  # the role is refused before the id is looked up
        assert client.get("/staff/admin/users/999999").status_code == 403


def test_posts_without_the_csrf_token_are_refused(ui_world: UIWorld) -> None:
    uid = add_target(ui_world)
    lock(ui_world, uid)
    before = account(ui_world, "target")
    with closing(ui_world.login("sysadmin")) as client:
        for route in ADMIN_ROUTES:
            if route.data is None:
                continue
            for csrf in ("", "forged"):
                answer = route.call(client, "sysadmin", csrf, uid)
                assert answer.status_code == 403, (route.name, csrf)
    after = account(ui_world, "target")
    assert (after.active, after.locked_until, after.totp_secret, after.password_hash, after.display_name) == (
        before.active, before.locked_until, before.totp_secret, before.password_hash, before.display_name)
    assert admin_rows(ui_world) == []
    with ui_world.sessions() as s:
        assert s.scalar(select(StaffUser.id).where(StaffUser.login == "matrix-sysadmin")) is None


# --- accounts end to end ---------------------------------------------------------------------------


def test_create_a_user_and_log_in_with_the_shown_secret(ui_world: UIWorld) -> None:
    with closing(ui_world.login("sysadmin")) as client:
        form = client.get("/staff/admin/users/new")
        assert form.status_code == 200
        for label in ("審査担当", "閲覧者", "所属管理者", "システム管理者", "監査担当", "子ども家庭課", "区民課"):
            assert label in form.text
        answer = client.post("/staff/admin/users", data=new_user_form(
            csrf_of(form.text), "tanaka.k", cert=FP, reveal="1", role_department_admin="1"))
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        secret = secret_of(answer.text)
        uri = _URI.search(answer.text)
        assert uri is not None
        assert uri.group(1).startswith("otpauth://totp/")
        assert f"secret={secret}" in uri.group(1)
        assert PASSWORD not in answer.text
        assert "承認待ちとして申請しました" in answer.text  # the reveal and the IC card wait (four eyes)
        listing = client.get("/staff/admin/users").text
        assert "tanaka.k" in listing
        assert "パスワード＋TOTP" in listing
        assert "ICカード" not in listing
        assert secret not in listing
        detail = client.get(f"/staff/admin/users/{user_id(ui_world, 'tanaka.k')}").text
        assert secret not in detail  # shown once
        assert "承認待ち" in detail
        # Nobody approves their own request: refused, nothing changes, and the attempt is logged.
        requests = pending(ui_world)
        assert [kind for _, kind in requests] == ["grant_reveal", "bind_ic_card"]
        own = decide(ui_world, client, requests[0][0])
        assert own.status_code == 403
        assert "自分が申請した変更は承認・却下できません" in own.text
    assert account(ui_world, "tanaka.k").may_reveal_my_number is False
    assert [(r.action, r.staff_id, r.subject) for r in all_rows(ui_world) if r.action.startswith("refused.")] == [
        ("refused.forbidden", "sysadmin", f"POST /staff/admin/requests/{requests[0][0]}/approve")]
    second_admin(ui_world)
    with closing(ui_world.login("admin2")) as client:
        page = client.get("/staff/admin/requests").text
        assert all(f'action="/staff/admin/requests/{rid}/approve"' in page for rid, _ in requests)
        reveal = decide(ui_world, client, requests[0][0])
        # sysadmin chose the password and saw the TOTP secret: the approval issues a new secret, to admin2.
        assert reveal.status_code == 200, reveal.text
        new_secret = secret_of(reveal.text)
        assert new_secret != secret
        assert decide(ui_world, client, requests[1][0]).status_code == 303
        assert "ICカード" in client.get("/staff/admin/users").text
    created = account(ui_world, "tanaka.k")
    assert (created.roles, created.departments, created.may_reveal_my_number, created.client_cert_sha256) == (
        ["department_admin", "reviewer"], [OWN_DEPT], True, FP)
    ui_world.secrets["tanaka.k"] = secret  # what sysadmin saw no longer logs in
    with closing(ui_world.client()) as client:
        page = client.get("/staff/login")
        refused = client.post("/staff/login", data={"csrf": csrf_of(page.text), "login": "tanaka.k",
                                                    "password": PASSWORD, "totp": ui_world.totp("tanaka.k")})
        assert refused.status_code == 401
    ui_world.secrets["tanaka.k"] = new_secret
    with closing(ui_world.login("tanaka.k")) as client:
        assert client.get("/staff/applications").status_code == 200
        assert client.get("/staff/admin/users").status_code == 403
    rows = admin_rows(ui_world)
    assert [(r.action, r.staff_id) for r in rows] == [
        ("admin.user.create", "sysadmin"), ("admin.request.grant_reveal", "sysadmin"),
        ("admin.request.bind_ic_card", "sysadmin"), ("admin.request.approve", "admin2"),
        ("admin.request.approve", "admin2")]
    row = rows[0]
    assert (row.action, row.subject, row.staff_id) == ("admin.user.create", f"staff_user:{created.id}", "sysadmin")
    assert row.reason is not None
    assert row.reason.startswith("新規採用 [login=tanaka.k;")
    assert_no_secrets(ui_world, [PASSWORD, secret, new_secret, created.password_hash or "-", FP])


def assert_no_secrets(w: UIWorld, secrets: list[str]) -> None:
    for row in all_rows(w):
        for column in (row.staff_id, row.department, row.terminal, row.action, row.reason or "", row.atena_number or "",
                       row.subject):
            for secret in secrets:
                assert secret not in column, (row.action, secret)


def test_login_id_validation(ui_world: UIWorld) -> None:
    cases = [("Tanaka", 400), ("ab", 400), ("a" * 65, 400), ("tanaka k", 400), ("田中", 400), ("tanaka/k", 400),
             ("sysadmin", 409)]
    with closing(ui_world.login("sysadmin")) as client:
        csrf = ui_world.csrf(client)
        for login, shown in cases:
            answer = client.post("/staff/admin/users", data=new_user_form(csrf, login, display_name="入力した氏名"))
            assert answer.status_code == shown, login
            message = "英小文字・数字" if shown == 400 else "すでに使われています"
            assert message in answer.text
            assert 'value="入力した氏名"' in answer.text  # the form keeps what was typed…
            assert PASSWORD not in answer.text  # …but never the password
        accepted = client.post("/staff/admin/users", data=new_user_form(csrf, "a.b_c-9"))
        assert accepted.status_code == 200
    assert account(ui_world, "a.b_c-9").roles == ["reviewer"]
    assert [r.action for r in admin_rows(ui_world)] == ["admin.user.create"]
    with ui_world.sessions() as s:
        assert s.scalar(select(StaffUser.id).where(StaffUser.display_name == "入力した氏名")) is None


def test_reason_is_required_for_every_change(ui_world: UIWorld) -> None:
    uid = add_target(ui_world)
    lock(ui_world, uid)
    before = account(ui_world, "target")
    with closing(ui_world.login("sysadmin")) as client:
        csrf = ui_world.csrf(client)
        for route in ADMIN_ROUTES:
            if route.data is None:
                continue
            for reason in ("", "   "):
                answer = route.call(client, "sysadmin", csrf, uid, reason=reason)
                assert answer.status_code == 400, (route.name, reason)
                assert "処理事由を入力してください" in answer.text
    after = account(ui_world, "target")
    assert (after.roles, after.active, after.locked_until, after.totp_secret, after.password_hash) == (
        before.roles, before.active, before.locked_until, before.totp_secret, before.password_hash)
    assert admin_rows(ui_world) == []


def test_role_change_takes_effect_on_the_next_request(ui_world: UIWorld) -> None:
    uid = user_id(ui_world, "viewer")
    with closing(ui_world.login("viewer")) as viewer, closing(ui_world.login("sysadmin")) as client:
        assert viewer.get("/staff/applications.csv").status_code == 403
        csrf = ui_world.csrf(client)
        answer = client.post(f"/staff/admin/users/{uid}", data={
            **edit_form(csrf, display_name="職員 viewer"), "role_viewer": "", "role_reviewer": "1"})
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/staff/admin/users/{uid}?done=update"
        assert "アカウントを更新しました" in client.get(answer.headers["location"]).text
        assert viewer.get("/staff/applications.csv").status_code == 200  # same session, new role
        client.post(f"/staff/admin/users/{uid}", data={
            **edit_form(csrf, display_name="職員 viewer"), "role_viewer": "", "role_auditor": "1"})
        assert viewer.get("/staff/applications").status_code == 403
        assert viewer.get("/staff/audit").status_code == 200
        # Nothing changed: refused, no row.
        again = client.post(f"/staff/admin/users/{uid}", data={
            **edit_form(csrf, display_name="職員 viewer"), "role_viewer": "", "role_auditor": "1"})
        assert again.status_code == 400
        assert "変更された項目がありません" in again.text
    rows = admin_rows(ui_world)
    assert [(r.action, r.subject) for r in rows] == [("admin.user.update", f"staff_user:{uid}")] * 2
    assert rows[0].reason == "体制変更 [roles=viewer→reviewer]"


def test_unknown_department_is_refused(ui_world: UIWorld) -> None:
    uid = add_target(ui_world)
    with closing(ui_world.login("sysadmin")) as client:
        answer = client.post(f"/staff/admin/users/{uid}", data={**edit_form(ui_world.csrf(client)),
                                                                 "dept_nowhere": "1"})
    assert answer.status_code == 400
    assert "手続カタログにある部署" in answer.text
    assert account(ui_world, "target").departments == [OWN_DEPT]


def test_deactivation_ends_a_live_session(ui_world: UIWorld) -> None:
    uid = user_id(ui_world, "reviewer")
    with closing(ui_world.login("reviewer")) as reviewer, closing(ui_world.login("sysadmin")) as client:
        assert reviewer.get("/staff/").status_code == 200
        answer = client.post(f"/staff/admin/users/{uid}/deactivate",
                             data={"csrf": ui_world.csrf(client), "reason": "退職"})
        assert answer.status_code == 303
        gone = reviewer.get("/staff/applications")
        assert (gone.status_code, gone.headers["location"]) == (303, "/staff/login?expired=1")
        with closing(ui_world.client()) as fresh:
            login_page = fresh.get("/staff/login")
            refused = fresh.post("/staff/login", data={"csrf": csrf_of(login_page.text), "login": "reviewer",
                                                       "password": PASSWORD, "totp": ui_world.totp("reviewer")})
            assert refused.status_code == 401  # a fresh login is refused as well
        listing = client.get("/staff/admin/users").text
        assert 'class="inactive"' in listing
        assert client.post(f"/staff/admin/users/{uid}/reactivate",
                           data={"csrf": ui_world.csrf(client), "reason": "復職"}).status_code == 303
    ui_world.clock.now += timedelta(seconds=30)
    with closing(ui_world.login("reviewer")) as reviewer:
        assert reviewer.get("/staff/applications").status_code == 200
    with ui_world.sessions() as s:
        ended = s.scalars(select(StaffSession.end_reason).where(StaffSession.user_id == uid)).all()
    assert "deactivated" in ended
    assert [(r.action, r.reason) for r in admin_rows(ui_world)] == [
        ("admin.user.deactivate", "退職 [sessions_ended=1]"), ("admin.user.reactivate", "復職")]


def _fail_login(w: UIWorld, login: str) -> httpx.Response:
    with closing(w.client()) as client:
        page = client.get("/staff/login")
        return client.post("/staff/login", data={"csrf": csrf_of(page.text), "login": login, "password": "wrong",
                                                 "totp": "000000"})


def test_unlock_a_locked_account(ui_world: UIWorld) -> None:
    uid = user_id(ui_world, "auditor")
    for _ in range(ui_world.runtime.settings.ui.max_failed_logins):
        assert _fail_login(ui_world, "auditor").status_code == 401
    with closing(ui_world.client()) as client:
        page = client.get("/staff/login")
        locked = client.post("/staff/login", data={"csrf": csrf_of(page.text), "login": "auditor",
                                                   "password": PASSWORD, "totp": ui_world.totp("auditor")})
        assert "ロックされています" in locked.text
    with closing(ui_world.login("sysadmin")) as client:
        detail = client.get(f"/staff/admin/users/{uid}").text
        assert "ロック中" in detail
        assert f"/staff/admin/users/{uid}/unlock" in detail
        assert "ロック中" in client.get("/staff/admin/users").text
        answer = client.post(f"/staff/admin/users/{uid}/unlock", data={"csrf": ui_world.csrf(client),
                                                                      "reason": "本人確認済み"})
        assert answer.status_code == 303
        again = client.post(f"/staff/admin/users/{uid}/unlock", data={"csrf": ui_world.csrf(client),
                                                                     "reason": "本人確認済み"})
        assert again.status_code == 409
        assert "ロックされていません" in again.text
    ui_world.clock.now += timedelta(seconds=30)
    with closing(ui_world.login("auditor")) as client:  # well within the 15-minute lockout
        assert client.get("/staff/audit").status_code == 200
    assert [r.action for r in admin_rows(ui_world)] == ["admin.user.unlock"]


def test_totp_reset_invalidates_the_old_secret(ui_world: UIWorld) -> None:
    uid = user_id(ui_world, "reviewer")
    old = ui_world.secrets["reviewer"]
    second_admin(ui_world)
    with closing(ui_world.login("reviewer")) as reviewer, closing(ui_world.login("sysadmin")) as client, \
            closing(ui_world.login("admin2")) as approver:
        answer = client.post(f"/staff/admin/users/{uid}/totp", data={"csrf": ui_world.csrf(client),
                                                                    "reason": "スマートフォン紛失"})
        assert answer.status_code == 303  # a request: nothing shown, nothing changed yet
        assert _SECRET.search(client.get(answer.headers["location"]).text) is None
        assert reviewer.get("/staff/").status_code == 200
        [(request_id, kind)] = pending(ui_world)
        assert kind == "reset_totp"
        approved = decide(ui_world, approver, request_id)
        assert approved.status_code == 200
        new = secret_of(approved.text)  # shown to the approver, once
        assert new != old
        assert reviewer.get("/staff/").status_code == 303  # the session opened with the old device ended
        assert approver.get("/staff/admin/users").status_code == 200  # the admin's own session did not
    with closing(ui_world.client()) as client:
        page = client.get("/staff/login")
        refused = client.post("/staff/login", data={"csrf": csrf_of(page.text), "login": "reviewer",
                                                    "password": PASSWORD,
                                                    "totp": pyotp.TOTP(old).at(ui_world.clock.now)})
        assert refused.status_code == 401
    ui_world.secrets["reviewer"] = new
    with closing(ui_world.login("reviewer")) as reviewer:
        assert reviewer.get("/staff/applications").status_code == 200
    assert_no_secrets(ui_world, [old, new, PASSWORD])


def test_set_password(ui_world: UIWorld) -> None:
    uid = user_id(ui_world, "viewer")
    with closing(ui_world.login("sysadmin")) as client:
        csrf = ui_world.csrf(client)
        short = client.post(f"/staff/admin/users/{uid}/password", data={
            "csrf": csrf, "password": "short", "password_confirm": "short", "reason": "再設定"})
        assert short.status_code == 400
        assert "12文字以上" in short.text
        mismatch = client.post(f"/staff/admin/users/{uid}/password", data={
            "csrf": csrf, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD + "x", "reason": "再設定"})
        assert mismatch.status_code == 400
        assert "一致しません" in mismatch.text
        ok = client.post(f"/staff/admin/users/{uid}/password", data={
            "csrf": csrf, "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD, "reason": "再設定"})
        assert ok.status_code == 303
        assert ok.headers["location"].endswith("done=requested")
    assert account(ui_world, "viewer").password_set_by is None  # not applied yet
    second_admin(ui_world)
    with closing(ui_world.login("admin2")) as approver:
        [(request_id, kind)] = pending(ui_world)
        assert kind == "set_password"
        assert decide(ui_world, approver, request_id).status_code == 303
    with closing(ui_world.client()) as client:
        page = client.get("/staff/login")
        old = client.post("/staff/login", data={"csrf": csrf_of(page.text), "login": "viewer", "password": PASSWORD,
                                                "totp": ui_world.totp("viewer")})
        assert old.status_code == 401
        new = client.post("/staff/login", data={"csrf": csrf_of(page.text), "login": "viewer",
                                                "password": NEW_PASSWORD, "totp": ui_world.totp("viewer")})
        assert new.status_code == 303
    assert [r.action for r in admin_rows(ui_world)] == ["admin.request.set_password", "admin.request.approve"]
    assert admin_rows(ui_world)[1].reason == (
        f"本人確認済み [request={request_id}; kind=set_password; requested_by=sysadmin; sessions_ended=0; "
        "totp_issued=no]")
    assert_no_secrets(ui_world, [PASSWORD, NEW_PASSWORD, account(ui_world, "viewer").password_hash or "-"])


# --- guards ----------------------------------------------------------------------------------------


def test_admin_guards(ui_world: UIWorld) -> None:
    me = user_id(ui_world, "sysadmin")
    with closing(ui_world.login("sysadmin")) as client:
        csrf = ui_world.csrf(client)
        # The only active system_admin.
        alone = client.post(f"/staff/admin/users/{me}/deactivate", data={"csrf": csrf, "reason": "テスト"})
        assert alone.status_code == 409
        assert "有効なシステム管理者が他にいない" in alone.text
        demote = client.post(f"/staff/admin/users/{me}", data={**edit_form(csrf, display_name="職員 sysadmin")})
        assert demote.status_code == 409
        assert "有効なシステム管理者が他にいない" in demote.text
        # A second admin: now the self-rules answer.
        second_admin(ui_world)
        itself = client.post(f"/staff/admin/users/{me}/deactivate", data={"csrf": csrf, "reason": "テスト"})
        assert itself.status_code == 409
        assert "自分自身のアカウントは無効にできません" in itself.text
        demote = client.post(f"/staff/admin/users/{me}", data={**edit_form(csrf, display_name="職員 sysadmin")})
        assert demote.status_code == 409
        assert "自分自身からシステム管理者の役割を外す" in demote.text
        # Nor grant themselves more: the My Number reveal, on top of system_admin.
        grant = client.post(f"/staff/admin/users/{me}", data={
            **edit_form(csrf, display_name="職員 sysadmin"), "role_viewer": "", "role_system_admin": "1",
            "reveal": "1"})
        assert grant.status_code == 409
        assert "自分自身の役割・所属部署・個人番号の表示権限は変更できません" in grant.text
        # The other admin can be deactivated; then sysadmin is the last one again.
        other = user_id(ui_world, "admin2")
        assert client.post(f"/staff/admin/users/{other}/deactivate",
                           data={"csrf": csrf, "reason": "異動"}).status_code == 303
        assert client.post(f"/staff/admin/users/{me}/deactivate",
                           data={"csrf": csrf, "reason": "テスト"}).status_code == 409
        assert client.get("/staff/admin/users").status_code == 200
    me_now = account(ui_world, "sysadmin")
    assert (me_now.active, me_now.roles) == (True, ["system_admin"])
    assert [r.action for r in admin_rows(ui_world)] == ["admin.user.deactivate"]


# --- read-only configuration pages ----------------------------------------------------------------

ROUTES = (
    Route("kodomo-system", frozenset({OWN_PROCEDURE}), "http",
          "http://kodomo.internal.example:8443/api/in?token=ROUTE-TOKEN-123", my_number_entitled=True),
    Route("koseki-drop", frozenset({OTHER_PROCEDURE}), "file", "/srv/shinsei/koseki-drop", format="xml"),
)


@pytest.fixture
def routed_world(engine: Engine, runtime: Runtime, clock: Clock, make_package: PackageFactory,
                 spec: ApplicationSpec) -> Iterator[UIWorld]:
    world, server = build_world(engine, replace(runtime, routes=ROUTES), clock, make_package, spec)
    try:
        yield world
    finally:
        server.__exit__(None, None, None)


def _forms(html: str) -> list[str]:
    return re.findall(r'<form[^>]*action="([^"]+)"', html)


def test_configuration_pages_are_read_only_and_hide_route_paths(routed_world: UIWorld) -> None:
    w = routed_world
    with closing(w.login("sysadmin")) as client:
        roles = client.get("/staff/admin/roles").text
        for label in ("閲覧者", "審査担当", "所属管理者", "システム管理者", "監査担当", "アクセスログの閲覧"):
            assert label in roles
        matrix = roles.split('id="matrix"')[1]
        audit_row = matrix.split("アクセスログの閲覧・検索")[1].split("</tr>")[0]
        # columns: viewer, reviewer, department_admin, auditor, system_admin
        assert re.findall(r'class="(yes|no)"', audit_row) == ["no", "no", "no", "yes", "no"]
        departments = client.get("/staff/admin/departments").text
        assert "子ども家庭課" in departments
        assert "区民課" in departments
        assert OWN_PROCEDURE in departments
        procedures = client.get("/staff/admin/procedures").text
        assert "kodomo-system" in procedures
        assert "koseki-drop" in procedures
        routes = client.get("/staff/admin/routes").text
        assert "http://kodomo.internal.example:8443" in routes
        assert "/srv/shinsei/koseki-drop" in routes
        assert "ROUTE-TOKEN-123" not in routes
        assert "/api/in" not in routes
        assert "送信する（個人番号を利用できる業務システム）" in routes
        assert "送信しない" in routes
        for page in (roles, departments, procedures, routes):
            assert _forms(page) == ["/staff/logout"]  # nothing to submit: configuration is deployed, not edited
        for page in (departments, procedures, routes):
            assert "画面からは変更できません" in page
            assert "レビューを経た配備" in page
    with closing(w.login("depadmin")) as client:
        assert client.get("/staff/admin/routes").status_code == 403


def test_department_page_counts_active_users(ui_world: UIWorld) -> None:
    with closing(ui_world.login("sysadmin")) as client:
        page = client.get("/staff/admin/departments").text
    rows = {m.group(1): int(m.group(2)) for m in re.finditer(
        r"<tr>\s*<td>([a-z-]+)</td>.*?<td>(\d+)</td>\s*</tr>", page, flags=re.S)}
    # conftest USERS: six in kodomo, one in kuminka
    assert rows == {"kodomo": 6, "kuminka": 1, "unassigned": 0}
