"""Every route × every role × own/other department → the expected status, over real HTTP.

Scope is enforced in the services: a record of another department answers 404, exactly like a
record that does not exist, so ids cannot be probed; a role without the function answers 403.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass

import httpx
from sqlalchemy import delete, select, update

from intake.models import Application, ForwardItem, ForwardState, StatusTransitionRow
from tests.conftest import NOW
from tests.intake.ui.conftest import USERS, UIWorld

_ROUTE = "matrix-route"


@dataclass(frozen=True)
class Route:
    name: str
    call: Callable[[httpx.Client, UIWorld, str, bool], httpx.Response]


def _app(w: UIWorld, own: bool) -> int:
    return w.own_app if own else w.other_app


def _post(path: str, **data: str) -> Callable[[httpx.Client, UIWorld, str, bool], httpx.Response]:
    def call(c: httpx.Client, w: UIWorld, csrf: str, own: bool) -> httpx.Response:
        values = {k: v.format(version=w.own_version if own else w.other_version) for k, v in data.items()}
        return c.post(path.format(app=_app(w, own)), data={"csrf": csrf, **values})
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
    Route("dashboard", lambda c, w, _s, _o: c.get("/staff/")),
    Route("list", lambda c, w, _s, _o: c.get("/staff/applications")),
    Route("detail", lambda c, w, _s, own: c.get(f"/staff/applications/{_app(w, own)}")),
    Route("attachment", lambda c, w, _s, own: c.get(
        f"/staff/attachments/{w.own_attachment if own else w.other_attachment}")),
    Route("audit", lambda c, w, _s, _o: c.get("/staff/audit")),
    Route("status", _post("/staff/applications/{app}/status", action="accept")),
    Route("reviewed", _post("/staff/applications/{app}/reviewed")),
    Route("atena", _post("/staff/applications/{app}/atena", atena_number="1234567890", reason="窓口で本人確認")),
    Route("reveal", _post("/staff/applications/{app}/my-number", version_id="{version}", position="0",
                          reason="児童手当の審査")),
    Route("export", lambda c, w, _s, _o: c.get("/staff/applications.csv")),
    Route("outbox", lambda c, w, _s, _o: c.get("/staff/outbox")),
    Route("retry", lambda c, w, csrf, own: c.post(f"/staff/outbox/{_item(w, own)}/retry", data={"csrf": csrf})),
]

READERS = {"viewer", "reviewer", "revealer", "depadmin"}
CHANGERS = {"reviewer", "revealer", "depadmin"}
EXPORTERS = CHANGERS  # reviewer and department_admin (EXPORT_ROLES)
OUTBOX = {"depadmin", "sysadmin"}  # department_admin (own departments), system_admin (every department)


def expected(route: str, user: str, own: bool) -> int:
    reads = user in READERS
    if route == "dashboard":
        return 200
    if route == "list":
        return 200 if reads else 403
    if route == "audit":
        return 200 if user == "auditor" else 403
    if route == "export":
        return 200 if user in EXPORTERS else 403
    if route == "outbox":
        return 200 if user in OUTBOX else 403
    if route == "retry":
        if user not in OUTBOX:
            return 403
        return 303 if own or user == "sysadmin" else 404
    if not reads or not own:
        return 404  # out of scope looks exactly like missing
    if route in {"detail", "attachment"}:
        return 200
    if route in {"status", "reviewed", "atena"}:
        return 303 if user in CHANGERS else 403
    if route == "reveal":
        return 200 if user == "revealer" else 403
    raise AssertionError(route)


def _reset(w: UIWorld) -> None:
    """Undo a successful status change so that every cell starts from 到達."""
    with w.sessions() as s:
        s.execute(delete(StatusTransitionRow))
        s.execute(update(Application).values(status="到達", needs_review=True))
        s.execute(update(ForwardItem).where(ForwardItem.route == _ROUTE).values(state=ForwardState.FAILED, attempts=5))
        s.commit()


def test_authorization_matrix(ui_world: UIWorld) -> None:
    users = [u for u in USERS if u != "other-reviewer"]
    got: dict[tuple[str, str, str], int] = {}
    want: dict[tuple[str, str, str], int] = {}
    for user in users:
        client = ui_world.login(user)
        csrf = ui_world.csrf(client)
        for route in ROUTES:
            for own in (True, False):
                cell = (route.name, user, "own" if own else "other")
                got[cell] = route.call(client, ui_world, csrf, own).status_code
                want[cell] = expected(route.name, user, own)
                _reset(ui_world)
        client.close()
    assert {k: v for k, v in got.items() if want[k] != v} == {}
    assert len(got) == len(users) * len(ROUTES) * 2


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
            if route.name in {"status", "reviewed", "atena", "reveal", "retry"}:
                assert route.call(client, ui_world, "forged", True).status_code == 403, route.name
        assert "受付" not in client.get(f"/staff/applications/{ui_world.own_app}").text.split('id="status">')[1][:10]


def test_unknown_and_malformed_ids_are_plain_404(ui_world: UIWorld) -> None:
    with closing(ui_world.login("reviewer")) as client:
        for path in ("/staff/applications/999999", "/staff/applications/abc", "/staff/attachments/-1", "/staff/nope"):
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert "Traceback" not in answer.text
            assert "ページまたは申請が見つかりません" in answer.text
