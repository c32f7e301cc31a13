"""The auditor's access-log page over real HTTP: filters (JST days), paging, the CSV export (BOM,
injection guard, cap, one logged row), the recorded chain check and its 「今すぐ検証」 button, the
retention panel, and every audit route for every role."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, select, update

from intake.accesslog.checks import run_check
from intake.accesslog.retention import purge_expired
from intake.accesslog.service import GENESIS, ChainProblem, append_access
from intake.authz import Actor
from intake.models import AccessLogRow
from intake.runtime import Runtime
from intake.settings import StaffUISettings
from intake.ui.audit_views import PROBLEM_LABELS
from signature.testing.builder import ApplicationSpec
from tests.conftest import JST, NOW, PackageFactory
from tests.intake.accessrows import committed_ids
from tests.intake.conftest import Clock
from tests.intake.ui.conftest import USERS, UIWorld, build_world, csrf_of

PAGE_SIZE = 10
EXPORT_CAP = 20
_ROW_ID = re.compile(r"<tr><td>(\d+)</td>")

TANAKA = Actor(staff_id="tanaka", department="kodomo", terminal="ip:10.0.0.1")
SUZUKI = Actor(staff_id="suzuki", department="koseki", terminal="ip:10.0.0.2")
SUZUKI_CARD = Actor(staff_id="suzuki", department="koseki", terminal="cert:T-9")


@pytest.fixture
def audit_world(engine: Engine, runtime: Runtime, clock: Clock, make_package: PackageFactory,
                spec: ApplicationSpec) -> Iterator[UIWorld]:
    world, server = build_world(engine, runtime, clock, make_package, spec,
                                ui=StaffUISettings(page_size=PAGE_SIZE, export_max_rows=EXPORT_CAP))
    try:
        yield world
    finally:
        server.__exit__(None, None, None)


def seed(w: UIWorld) -> dict[str, int]:
    """Rows before the world's own (all before 2026-11-25 JST), by name."""
    rows = {
        "view": (TANAKA, NOW - timedelta(days=3), "application.view", "application:12", None, "1111111111"),
        "export": (TANAKA, NOW - timedelta(days=3, hours=-1), "application.export", "export:procedure=*", None, None),
        "accept": (SUZUKI_CARD, NOW - timedelta(days=3, hours=-2), "status.accept", "application:12", None, None),
        "late": (SUZUKI, datetime(2026, 11, 23, 23, 59, 59, tzinfo=JST), "application.view", "application:7", None,
                 None),
        "midnight": (SUZUKI, datetime(2026, 11, 24, 0, 0, tzinfo=JST), "application.view", "application:8", None,
                     None),
        "reveal": (SUZUKI, NOW - timedelta(days=1), "my_number.reveal", "version:3:my_number:0",
                   "=HYPERLINK(\"http://x\")", "2222222222"),
    }
    with w.sessions() as s:
        for actor, at, action, subject, reason, atena in rows.values():
            append_access(s, actor=actor, at=at, action=action, subject=subject, reason=reason, atena_number=atena)
        return dict(zip(rows, committed_ids(s, len(rows)), strict=True))


def shown(html: str) -> list[int]:
    table = html.split('id="access-log"', 1)[1].split("</table>", 1)[0]
    return [int(i) for i in _ROW_ID.findall(table)]


def logged(w: UIWorld, action: str) -> list[AccessLogRow]:
    with w.sessions() as s:
        return list(s.scalars(select(AccessLogRow).where(AccessLogRow.action == action).order_by(AccessLogRow.id)))


def searched(client: httpx.Client, params: dict[str, str]) -> httpx.Response:
    """The search form POSTed (its values kept on the server); the page it redirects to."""
    page = client.get("/staff/audit")
    answer = client.post("/staff/audit/search", data={"csrf": csrf_of(page.text), **params})
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert re.fullmatch(r"/staff/audit\?s=[A-Za-z0-9_-]+", location)  # the filters are not in the URL
    return client.get(location)


def test_each_filter_narrows_the_log(audit_world: UIWorld) -> None:
    ids = seed(audit_world)
    cases: list[tuple[dict[str, str], set[str]]] = [
        ({"staff": "tanaka"}, {"view", "export"}),
        ({"atena": "2222222222"}, {"reveal"}),
        ({"from": "2026-11-24", "to": "2026-11-24"}, {"midnight", "reveal"}),  # JST days: 23:59:59 is the 23rd
        ({"to": "2026-11-23"}, {"view", "export", "accept", "late"}),
        ({"action": "application."}, {"view", "export", "late", "midnight"}),  # a prefix
        ({"action": "application.view"}, {"view", "late", "midnight"}),  # exact
        ({"action": "application"}, set()),
        ({"action": "%"}, set()),  # no wildcards of the database's
        ({"terminal": "cert:T-9"}, {"accept"}),
        ({"department": "koseki"}, {"accept", "late", "midnight", "reveal"}),
        ({"subject": "application:12"}, {"view", "accept"}),
        ({"staff": "suzuki", "subject": "application:12"}, {"accept"}),
    ]
    with closing(audit_world.login("auditor")) as client:
        for params, expected in cases:
            page = searched(client, {"to": "2026-11-24", **params})
            assert page.status_code == 200
            assert shown(page.text) == sorted((ids[n] for n in expected), reverse=True), params  # newest first
            for name, value in params.items():
                assert f'name="{name}" value="{value}"' in page.text  # the form keeps the filters
    views = logged(audit_world, "audit.view")[1::2]  # each search: the form's page, then the result
    assert len(views) == len(cases)  # one row per view
    by_atena = views[1]
    assert by_atena.atena_number == "2222222222"
    assert "2222222222" not in by_atena.subject
    assert by_atena.subject == "access_log:to=2026-11-24;atena=yes"
    assert views[-1].subject == "access_log:staff=suzuki;to=2026-11-24;subject=application:12"


def test_paging_is_newest_first_and_keeps_the_filters(audit_world: UIWorld) -> None:
    with audit_world.sessions() as s:
        for i in range(25):
            append_access(s, actor=TANAKA, at=NOW - timedelta(days=5, minutes=-i), action="test.paging",
                          subject=f"n:{i}")
        ids = committed_ids(s, 25)
    newest_first = ids[::-1]
    with closing(audit_world.login("auditor")) as client:
        first = client.get("/staff/audit", params={"action": "test.paging"}).text
        assert shown(first) == newest_first[:10]
        assert "25 件（1 / 3 ページ）" in first
        assert 'href="/staff/audit?action=test.paging&amp;page=2"' in first
        assert shown(client.get("/staff/audit", params={"action": "test.paging", "page": "2"}).text) == \
            newest_first[10:20]
        last = client.get("/staff/audit", params={"action": "test.paging", "page": "3"}).text
        assert shown(last) == newest_first[20:]
        assert 'page=2"' in last
        assert 'page=4"' not in last
        assert shown(client.get("/staff/audit", params={"action": "test.paging", "page": "99"}).text) == \
            newest_first[20:]


def test_export_is_the_filtered_log_with_a_bom_guarded_and_logged_once(audit_world: UIWorld) -> None:
    ids = seed(audit_world)
    with closing(audit_world.login("auditor")) as client:
        page = client.get("/staff/audit", params={"department": "koseki", "to": "2026-11-24"})
        assert 'href="/staff/audit.csv?department=koseki&amp;to=2026-11-24"' in page.text
        # a 宛名番号 in a URL is not a filter: it is searched through the form only
        assert client.get("/staff/audit", params={"atena": "2222222222", "to": "2026-11-24"}).text.count(
            'class="action"') > 1
        with_atena = searched(client, {"department": "koseki", "to": "2026-11-24", "atena": "2222222222"})
        export = re.search(r'href="(/staff/audit\.csv\?s=[A-Za-z0-9_-]+)"', with_atena.text)
        assert export is not None
        assert "2222222222" not in export.group(1)
        answer = client.get(export.group(1))
        # the saved search is this session's own: another auditor's session is told to search again
        # (never the unfiltered log in its place)
        with closing(audit_world.login("auditor")) as other:
            elsewhere = other.get(export.group(1).replace(".csv", ""))
            assert elsewhere.status_code == 400
            assert "検索の有効期限が切れました" in elsewhere.text
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith('attachment; filename="access-log-')
    assert answer.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0] == ["処理日時(JST)", "職員", "部署", "端末", "処理", "対象", "処理事由", "宛名番号", "ハッシュ"]
    with audit_world.sessions() as s:
        reveal = s.get(AccessLogRow, ids["reveal"])
        assert reveal is not None
        digest = reveal.hash
    assert rows[1:] == [["2026-11-24 12:00:00", "suzuki", "koseki", "ip:10.0.0.2", "my_number.reveal",
                         "version:3:my_number:0", "'=HYPERLINK(\"http://x\")", "2222222222", digest]]
    exports = logged(audit_world, "audit.export")
    assert [(r.staff_id, r.atena_number) for r in exports] == [("auditor", "2222222222")]
    assert exports[0].subject == "export:to=2026-11-24;department=koseki;atena=yes"

    with closing(audit_world.login("auditor")) as client:
        whole = client.get("/staff/audit.csv", params={"to": "2026-11-24"})
        assert whole.status_code == 200
        assert [r[4] for r in csv.reader(io.StringIO(whole.content.decode("utf-8-sig")))][1:] == [
            "my_number.reveal", "application.view", "application.view", "status.accept", "application.export",
            "application.view"]  # newest first
    assert len(logged(audit_world, "audit.export")) == 2


def test_an_export_over_the_cap_is_refused_and_nothing_leaves(audit_world: UIWorld) -> None:
    with audit_world.sessions() as s:
        for i in range(EXPORT_CAP + 1):  # the first a day earlier than the others
            append_access(s, actor=TANAKA, at=NOW - timedelta(days=3 if i == 0 else 2, minutes=-i),
                          action="test.bulk", subject=f"n:{i}")
        s.commit()
    with closing(audit_world.login("auditor")) as client:
        refused = client.get("/staff/audit.csv", params={"action": "test.bulk"})
        assert refused.status_code == 400
        assert refused.headers["content-type"].startswith("text/html")
        assert "条件を絞り込んでください" in refused.text
        assert "20 件" in refused.text
        fits = client.get("/staff/audit.csv", params={"action": "test.bulk", "from": "2026-11-23"})
        assert fits.status_code == 200
        assert len(fits.content.decode("utf-8-sig").splitlines()) == EXPORT_CAP + 1
    assert [r.subject for r in logged(audit_world, "audit.export")] == ["export:from=2026-11-23;action=test.bulk"]


def test_the_page_shows_the_recorded_check_and_the_button_runs_it(audit_world: UIWorld) -> None:
    ids = seed(audit_world)
    with closing(audit_world.login("auditor")) as client:
        page = client.get("/staff/audit").text
        assert "ハッシュ連鎖はまだ検証されていません" in page
        csrf = csrf_of(page)
        assert client.post("/staff/audit/verify", data={"note": "no token"}).status_code == 403
        assert client.post("/staff/audit/verify", data={"csrf": csrf[::-1]}).status_code == 403
        assert logged(audit_world, "audit.verify") == []
        done = client.post("/staff/audit/verify", data={"csrf": csrf})
        assert done.status_code == 303
        assert done.headers["location"] == "/staff/audit"
        page = client.get("/staff/audit").text
        assert "ハッシュ連鎖: 異常なし" in page
        assert "職員 auditor" in page
        assert "ログの先頭" in page

        with audit_world.sessions() as s:  # tampering: a view does not re-hash, so the page still says ok
            s.execute(update(AccessLogRow).where(AccessLogRow.id == ids["accept"]).values(reason="改ざん"))
            s.commit()
        assert "ハッシュ連鎖: 異常なし" in client.get("/staff/audit").text
        assert client.post("/staff/audit/verify", data={"csrf": csrf}).status_code == 303
        page = client.get("/staff/audit").text
        assert f"改ざんの疑い: 連鎖が途切れている行 {ids['accept']}（" in page

    with audit_world.sessions() as s:  # `python -m intake audit verify` records its result the same way
        run_check(s, at=audit_world.clock.now)
        s.commit()
    with closing(audit_world.login("auditor")) as client:
        page = client.get("/staff/audit").text
        assert "システム（定期実行・コマンド）" in page
        assert "最終検証の後に記録された行: <span id=\"unchecked\">1</span> 件" in page  # the login
    verifies = logged(audit_world, "audit.verify")
    assert [r.staff_id for r in verifies] == ["auditor", "auditor"]


def test_every_chain_problem_has_a_label() -> None:
    assert set(PROBLEM_LABELS) == set(ChainProblem)


def test_a_tail_rewritten_without_the_key_shows_on_the_page(audit_world: UIWorld) -> None:
    ids = seed(audit_world)
    # A database-only insider rewrites the tail with keyless hashes (the exact recomputation is
    # tests/intake/test_accesslog_keys_seals.py's; here: the page names what the check found).
    with audit_world.sessions() as s:
        rows = s.scalars(select(AccessLogRow).where(AccessLogRow.id >= ids["accept"]).order_by(AccessLogRow.id))
        prev = s.scalar(select(AccessLogRow.hash).where(AccessLogRow.id < ids["accept"])
                        .order_by(AccessLogRow.id.desc()).limit(1)) or GENESIS
        for row in rows:
            row.reason, row.key_id, row.prev_hash = "書換え", None, prev
            row.hash = prev = hashlib.sha256(f"{row.id}:{prev}".encode()).hexdigest()
        s.commit()
    with closing(audit_world.login("auditor")) as client:
        csrf = csrf_of(client.get("/staff/audit").text)
        assert client.post("/staff/audit/verify", data={"csrf": csrf}).status_code == 303
        page = client.get("/staff/audit").text
    assert PROBLEM_LABELS[ChainProblem.UNKEYED_ROW] in page
    assert "ハッシュ連鎖: 異常なし" not in page


def test_the_retention_and_the_last_purge_are_shown(audit_world: UIWorld) -> None:
    with closing(audit_world.login("auditor")) as client:
        page = client.get("/staff/audit").text
        assert "保存期間 7年" in page
        assert "保存期間による削除はまだ行われていません" in page
    later = NOW + timedelta(days=7 * 366)
    with audit_world.sessions() as s:
        result = purge_expired(s, at=later, retention_years=7, terminal="host:test")
        s.commit()
    assert result.rows > 0
    audit_world.clock.now = later
    with closing(audit_world.login("auditor")) as client:
        csrf = csrf_of(client.get("/staff/audit").text)
        assert client.post("/staff/audit/verify", data={"csrf": csrf}).status_code == 303
        page = client.get("/staff/audit").text
    assert f"{result.rows} 件（ID {result.through_id} まで、実行者 system）" in page
    assert "ハッシュ連鎖: 異常なし" in page
    assert f"保存期間による削除の記録（ID {result.through_id} まで削除済み）" in page


def _requests(client: httpx.Client, csrf: str) -> dict[str, httpx.Response]:
    return {"page": client.get("/staff/audit"), "export": client.get("/staff/audit.csv"),
            "verify": client.post("/staff/audit/verify", data={"csrf": csrf})}


@pytest.mark.parametrize("user", sorted(USERS))
def test_every_audit_route_for_every_role(audit_world: UIWorld, user: str) -> None:
    expected = {"page": 200, "export": 200, "verify": 303} if user == "auditor" else \
        {"page": 403, "export": 403, "verify": 403}
    with closing(audit_world.login(user)) as client:
        answers = _requests(client, audit_world.csrf(client))
    assert {route: a.status_code for route, a in answers.items()} == expected
    if user != "auditor":
        assert logged(audit_world, "audit.view") == logged(audit_world, "audit.export") == []
        assert logged(audit_world, "audit.verify") == []


def test_no_audit_route_without_a_session(audit_world: UIWorld) -> None:
    with closing(audit_world.client()) as client:
        for route, answer in _requests(client, "x").items():
            assert answer.status_code == 303, route
            assert answer.headers["location"] == "/staff/login?expired=1"
