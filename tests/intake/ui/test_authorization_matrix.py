"""Every route × every role × own/other department → the expected status, over real HTTP.

Scope is enforced in the services: a record of another department answers 404, exactly like a
record that does not exist, so ids cannot be probed; a role without the function answers 403.
Every refused attempt (403, 404, a forged CSRF token) leaves exactly one access-log row naming the
member of staff, the terminal, the time and what was tried (issue 15 §5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass

import httpx
from fastapi.routing import APIRoute
from sqlalchemy import delete, func, select, update
from starlette.routing import BaseRoute

from intake.models import AccessLogRow, Application, ForwardItem, ForwardState, StatusNotice, StatusTransitionRow
from intake.ui.app import create_ui_app
from tests.conftest import NOW
from tests.intake.ui.conftest import USERS, UIWorld

_ROUTE = "matrix-route"


@dataclass(frozen=True)
class Route:
    name: str
    call: Callable[[httpx.Client, UIWorld, str, bool], httpx.Response]
    #: the route as registered in the UI app, for the completeness check
    method: str
    path: str


def _app(w: UIWorld, own: bool) -> int:
    return w.own_app if own else w.other_app


def _post(path: str, **data: str) -> Callable[[httpx.Client, UIWorld, str, bool], httpx.Response]:
    def call(c: httpx.Client, w: UIWorld, csrf: str, own: bool) -> httpx.Response:
        values = {k: v.format(version=w.own_version if own else w.other_version, app=_app(w, own))
                  for k, v in data.items()}
        target = path.format(app=_app(w, own), version=w.own_version if own else w.other_version)
        return c.post(target, data={"csrf": csrf, **values})
    return call


def _item(w: UIWorld, own: bool) -> int:
    """A FAILED forward item of the own or the other department's application (created once)."""
    version = w.own_version if own else w.other_version
    with w.sessions() as s:
        found = s.scalar(select(ForwardItem.id).where(ForwardItem.version_id == version, ForwardItem.route == _ROUTE))
        if found is not None:
            return found
        item = ForwardItem(version_id=version, route=_ROUTE, idempotency_key=f"matrix:{version}",
                           state=ForwardState.FAILED, attempts=5, next_attempt_at=NOW, last_error="HTTP_503: down")
        s.add(item)
        s.commit()
        return item.id


ROUTES = [
    Route("dashboard", lambda c, w, _s, _o: c.get("/staff/"), "GET", "/"),
    Route("list", lambda c, w, _s, _o: c.get("/staff/applications"), "GET", "/applications"),
    Route("detail", lambda c, w, _s, own: c.get(f"/staff/applications/{_app(w, own)}"), "GET",
          "/applications/{app_id}"),
    Route("attachment", lambda c, w, _s, own: c.get(
        f"/staff/attachments/{w.own_attachment if own else w.other_attachment}"), "GET",
          "/attachments/{attachment_id}"),
    Route("audit", lambda c, w, _s, _o: c.get("/staff/audit"), "GET", "/audit"),
    Route("audit_export", lambda c, w, _s, _o: c.get("/staff/audit.csv"), "GET", "/audit.csv"),
    Route("audit_verify", lambda c, w, csrf, _o: c.post("/staff/audit/verify", data={"csrf": csrf}), "POST",
          "/audit/verify"),
    Route("audit_search", lambda c, w, csrf, _o: c.post("/staff/audit/search",
                                                         data={"csrf": csrf, "atena": "1111111111"}),
          "POST", "/audit/search"),
    Route("status", _post("/staff/applications/{app}/status", action="accept"), "POST",
          "/applications/{app_id}/status"),
    Route("reviewed", _post("/staff/applications/{app}/reviewed"), "POST", "/applications/{app_id}/reviewed"),
    Route("atena", _post("/staff/applications/{app}/atena", atena_number="1234567890", reason="窓口で本人確認"),
          "POST", "/applications/{app_id}/atena"),
    Route("assign", _post("/staff/applications/{app}/assign", to="me"), "POST", "/applications/{app_id}/assign"),
    Route("reveal", _post("/staff/applications/{app}/my-number", version_id="{version}", position="0",
                          reason="児童手当の審査"), "POST", "/applications/{app_id}/my-number"),
    # The world's versions are admitted, not held: a role that may decide reaches the rule (409).
    Route("decision", _post("/staff/applications/{app}/versions/{version}/decision", decision="accept",
                            reason="窓口で同一人と確認"),
          "POST", "/applications/{app_id}/versions/{version_id}/decision"),
    Route("export", lambda c, w, _s, _o: c.get("/staff/applications.csv"), "GET", "/applications.csv"),
    Route("outbox", lambda c, w, _s, _o: c.get("/staff/outbox"), "GET", "/outbox"),
    Route("retry", lambda c, w, csrf, own: c.post(f"/staff/outbox/{_item(w, own)}/retry", data={"csrf": csrf}),
          "POST", "/outbox/{item_id}/retry"),
    Route("admin", lambda c, w, _s, _o: c.get("/staff/admin"), "GET", "/admin"),
    *(Route(f"admin_{page}", lambda c, w, _s, _o, page=page: c.get(f"/staff/admin/{page}"), "GET", f"/admin/{page}")
      for page in ("users", "users/new", "requests", "roles", "departments", "procedures", "routes")),
    Route("linkage", lambda c, w, _s, _o: c.get("/staff/linkage"), "GET", "/linkage"),
    Route("search", _post("/staff/applications/search", name="高橋"), "POST", "/applications/search"),
    Route("bulk", _post("/staff/applications/bulk", ids="{app}", action="accept"), "POST", "/applications/bulk"),
    Route("handover", _post("/staff/applications/{app}/handover", to="depadmin"), "POST",
          "/applications/{app_id}/handover"),
    Route("notes", _post("/staff/applications/{app}/notes", body="電話で確認済み"), "POST",
          "/applications/{app_id}/notes"),
    Route("print", _post("/staff/applications/{app}/print", reason="窓口での審査のため"), "POST",
          "/applications/{app_id}/print"),
    Route("pdf", _post("/staff/applications/{app}/pdf", reason="決裁のため"), "POST", "/applications/{app_id}/pdf"),
]

#: Routes whose role × state matrix lives with their area (they need a staff account, an inbox file
#: or a running import to act on); the completeness check below holds them to that list.
COVERED_ELSEWHERE = {
    ("GET", "/login"): "test_login_and_security.py",
    ("POST", "/login"): "test_login_and_security.py",
    ("POST", "/login/certificate"): "test_login_and_security.py",
    ("POST", "/logout"): "test_login_and_security.py::test_idle_timeout_and_logout_over_http",
    **{("POST", path): "test_admin.py::test_admin_route_matrix" for path in (
        "/admin/users", "/admin/users/{user_id}", "/admin/users/{user_id}/deactivate",
        "/admin/users/{user_id}/reactivate", "/admin/users/{user_id}/unlock", "/admin/users/{user_id}/totp",
        "/admin/users/{user_id}/password", "/admin/requests/{request_id}/approve",
        "/admin/requests/{request_id}/deny")},
    ("GET", "/admin/users/{user_id}"): "test_admin.py::test_admin_route_matrix",
    ("POST", "/linkage/preview"): "test_linkage_page.py::test_every_route_for_every_role",
    ("POST", "/linkage/run"): "test_linkage_page.py::test_every_route_for_every_role",
    ("GET", "/linkage/jobs/{job_id}"): "test_linkage_page.py::test_every_route_for_every_role",
}

READERS = {"viewer", "reviewer", "revealer", "depadmin"}
CHANGERS = {"reviewer", "revealer", "depadmin"}
EXPORTERS = CHANGERS  # reviewer and department_admin (EXPORT_ROLES)
OUTBOX = {"depadmin", "sysadmin"}  # department_admin (own departments), system_admin (every department)


def expected(route: str, user: str, own: bool) -> int:
    reads = user in READERS
    if route == "dashboard":
        return 200
    if route == "admin":
        return 303 if user == "sysadmin" else 403  # to the user list
    if route.startswith("admin_") or route == "linkage":
        return 200 if user == "sysadmin" else 403
    if route == "audit_export":
        return 200 if user == "auditor" else 403
    if route in ("audit_verify", "audit_search"):
        return 303 if user == "auditor" else 403
    if route == "list":
        return 200 if reads else 403
    if route == "audit":
        return 200 if user == "auditor" else 403
    if route == "export":
        return 200 if user in EXPORTERS else 403
    if route == "outbox":
        return 200 if user in OUTBOX else 403
    if route == "search":
        return 303 if reads else 403
    if route == "bulk":  # a case out of scope is one of the result page's refusals
        return 200 if user in CHANGERS else 403
    if route == "retry":
        if user not in OUTBOX:
            return 403
        return 303 if own or user == "sysadmin" else 404
    if not reads or not own:
        return 404  # out of scope looks exactly like missing
    if route in {"detail", "attachment"}:
        return 200
    if route in {"print", "pdf"}:
        return 200
    if route in {"status", "reviewed", "atena", "assign", "handover", "notes"}:
        return 303 if user in CHANGERS else 403
    if route == "reveal":
        return 200 if user == "revealer" else 403
    if route == "decision":
        return 409 if user in CHANGERS else 403
    raise AssertionError(route)


def _reset(w: UIWorld) -> None:
    """Undo a successful status change so that every cell starts from 到達."""
    with w.sessions() as s:
        s.execute(delete(StatusNotice))
        s.execute(delete(StatusTransitionRow))
        s.execute(update(Application).values(status="到達", needs_review=True, assigned_to=None))
        s.execute(update(ForwardItem).where(ForwardItem.route == _ROUTE).values(state=ForwardState.FAILED, attempts=5))
        s.commit()


def _last_id(w: UIWorld) -> int:
    with w.sessions() as s:
        return s.scalar(select(func.max(AccessLogRow.id))) or 0


def refusals_since(w: UIWorld, after: int) -> list[tuple[str, str, str, str, str]]:
    """The refusal rows appended after ``after``: (action, staff, terminal, subject, reason)."""
    with w.sessions() as s:
        rows = s.scalars(select(AccessLogRow).where(AccessLogRow.id > after, AccessLogRow.action.startswith("refused."))
                         .order_by(AccessLogRow.id)).all()
        assert all(r.at == w.clock.now for r in rows)
        return [(r.action, r.staff_id, r.terminal, r.subject, r.reason or "") for r in rows]


def _path(route: Route, w: UIWorld, own: bool) -> str:
    """The path a cell requested, as the refusal row names it (ids only)."""
    ids = {"app_id": _app(w, own), "attachment_id": w.own_attachment if own else w.other_attachment,
           "item_id": _item(w, own), "version_id": w.own_version if own else w.other_version}
    return "/staff" + route.path.format(**ids).rstrip("/") if route.path != "/" else "/staff/"


def test_authorization_matrix(ui_world: UIWorld) -> None:
    users = [u for u in USERS if u != "other-reviewer"]
    got: dict[tuple[str, str, str], int] = {}
    want: dict[tuple[str, str, str], int] = {}
    logged: dict[tuple[str, str, str], list[tuple[str, str, str, str]]] = {}
    want_logged: dict[tuple[str, str, str], list[tuple[str, str, str, str]]] = {}
    for user in users:
        client = ui_world.login(user)
        csrf = ui_world.csrf(client)
        for route in ROUTES:
            for own in (True, False):
                cell = (route.name, user, "own" if own else "other")
                before = _last_id(ui_world)
                got[cell] = route.call(client, ui_world, csrf, own).status_code
                want[cell] = expected(route.name, user, own)
                logged[cell] = [row[:4] for row in refusals_since(ui_world, before)]
                action = {403: "refused.forbidden", 404: "refused.not_found"}.get(want[cell])
                want_logged[cell] = ([(action, user, "ip:127.0.0.1", f"{route.method} {_path(route, ui_world, own)}")]
                                     if action else [])
                _reset(ui_world)
        client.close()
    assert {k: v for k, v in got.items() if want[k] != v} == {}
    assert len(got) == len(users) * len(ROUTES) * 2
    assert {k: v for k, v in logged.items() if want_logged[k] != v} == {}
    assert sum(1 for v in want_logged.values() if v) > 100  # the refusals were many, and every one is logged


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """FastAPI ≥ 0.16x wraps an included router (``original_router``) instead of copying its routes."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        else:
            yield from _api_routes(getattr(getattr(route, "original_router", None), "routes", []))


def test_every_ui_route_is_in_a_matrix(ui_world: UIWorld) -> None:
    """A new route fails here until someone decides who may call it and writes that down."""
    ui = create_ui_app(ui_world.runtime, ui_world.sessions)
    registered = {(method, r.path) for r in _api_routes(ui.routes) for method in r.methods}
    assert ("GET", "/applications/{app_id}") in registered  # the walk below found the routes at all
    in_matrix = {(r.method, r.path) for r in ROUTES}
    assert registered - in_matrix - set(COVERED_ELSEWHERE) == set()
    assert (in_matrix | set(COVERED_ELSEWHERE)) - registered == set()  # no stale entries


def test_other_department_sees_its_own_only(ui_world: UIWorld) -> None:
    with closing(ui_world.login("other-reviewer")) as client:
        assert client.get(f"/staff/applications/{ui_world.other_app}").status_code == 200
        assert client.get(f"/staff/applications/{ui_world.own_app}").status_code == 404
        listing = client.get("/staff/applications").text
        assert "20261125-0000000050" in listing
        assert "20261125-0000000001" not in listing


def test_without_a_session_every_route_sends_to_login(ui_world: UIWorld) -> None:
    with closing(ui_world.client()) as client:
        for route in ROUTES:
            answer = route.call(client, ui_world, "x", True)
            assert answer.status_code == 303, route.name
            assert answer.headers["location"] == "/staff/login?expired=1"


def test_posts_without_the_csrf_token_are_refused(ui_world: UIWorld) -> None:
    with closing(ui_world.login("depadmin")) as client:
        for route in ROUTES:
            if route.method == "POST":
                before = _last_id(ui_world)
                assert route.call(client, ui_world, "forged", True).status_code == 403, route.name
                assert refusals_since(ui_world, before) == [
                    ("refused.csrf", "depadmin", "ip:127.0.0.1", f"POST {_path(route, ui_world, True)}", "CSRF")]
        assert "受付" not in client.get(f"/staff/applications/{ui_world.own_app}").text.split('id="status">')[1][:10]


def test_unknown_and_malformed_ids_are_plain_404(ui_world: UIWorld) -> None:
    with closing(ui_world.login("reviewer")) as client:
        for path in ("/staff/applications/999999", "/staff/applications/abc", "/staff/attachments/-1", "/staff/nope"):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert "Traceback" not in answer.text
            assert "ページまたは申請が見つかりません" in answer.text
        before = _last_id(ui_world)
        client.get("/staff/applications/999999?kana=ヤマダ")
        # a guessed id is an attempt: logged with who, where, when and the path — never the query string
        assert refusals_since(ui_world, before) == [
            ("refused.not_found", "reviewer", "ip:127.0.0.1", "GET /staff/applications/999999", "NOT_FOUND")]
