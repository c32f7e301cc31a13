"""The list's フリガナ, 版 and 担当者 filters, taking and releasing a case, the export cap and the
dashboard's 14-day chart, over real HTTP against stored packages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from intake.applications.listing import ApplicationPage, ListFilters, list_applications
from intake.kana import search_key
from intake.models import AccessLogRow, Application
from intake.runtime import Runtime
from intake.settings import StaffUISettings
from signature.testing.builder import ApplicationSpec
from status import Role
from tests.conftest import NOW, PackageFactory
from tests.intake.conftest import Clock
from tests.intake.staffdata import deliver, principal
from tests.intake.ui.conftest import UIWorld, build_world, search, search_url

OWN = "20261125-0000000001"  # the world's own application; its applicant is resident 0
SATO = "20261125-0000000002"
RESUBMISSION = "20261125-0000000003"
_RECEIPT = re.compile(r'<a href="/staff/applications/\d+">(\d{8}-\d{10})</a>')


def receipts(html: str) -> set[str]:
    return set(_RECEIPT.findall(html))


@pytest.fixture
def two_apps(engine: Engine, runtime: Runtime, clock: Clock, make_package: PackageFactory,
          spec: ApplicationSpec) -> Iterator[UIWorld]:
    """The UI world plus a second own-department application by ヤマダ ハナコ."""
    w, server = build_world(engine, runtime, clock, make_package, spec)
    sato = replace(spec, receipt_number=SATO, applicant=replace(spec.applicant, name="山田　花子",
                                                                  name_kana="ヤマダ　ハナコ"))
    with w.sessions() as s:
        deliver(s, w.runtime, make_package(spec=sato))
    try:
        yield w
    finally:
        server.__exit__(None, None, None)


def _own_kana(w: UIWorld) -> str:
    with w.sessions() as s:
        kana = s.scalar(select(Application.applicant_kana).where(Application.first_receipt_number == OWN))
    assert kana
    assert not kana.startswith("ヤ")
    return kana


def test_search_key_folds_widths_scripts_and_spaces() -> None:
    assert search_key("ﾐﾅﾄ　たろう") == search_key("ミナト タロウ") == "ミナトタロウ"
    assert search_key("  ") == ""
    assert len(search_key("ア" * 500)) == 128


def test_kana_prefix_search_whatever_the_script_and_logged_without_the_name(two_apps: UIWorld) -> None:
    own_prefix = _own_kana(two_apps)[:2]
    hiragana = "".join(chr(ord(c) - 0x60) for c in own_prefix)
    with closing(two_apps.login("reviewer")) as client:
        assert receipts(client.get("/staff/applications").text) == {OWN, SATO}
        assert receipts(search(two_apps, client, kana="やまだ　は")) == {SATO}
        assert receipts(search(two_apps, client, kana="ﾔﾏﾀﾞ")) == {SATO}
        assert receipts(search(two_apps, client, kana=hiragana)) == {OWN}
        assert receipts(search(two_apps, client, kana="ハナコ")) == set()  # a prefix only
        assert receipts(search(two_apps, client, kana="%")) == set()  # not a wildcard
    with two_apps.sessions() as s:
        logged = list(s.scalars(select(AccessLogRow).where(AccessLogRow.subject == "search:kana")))
    assert len(logged) == 5
    for row in logged:
        assert not any("ヤマ" in str(v) or "ﾔﾏ" in str(v) or "やま" in str(v)
                       for v in (row.subject, row.reason, row.atena_number))


def test_kana_search_follows_the_current_version(two_apps: UIWorld, make_package: PackageFactory,
                                                 spec: ApplicationSpec) -> None:
    renamed = replace(spec, receipt_number=RESUBMISSION, kind="再申請", first_receipt_number=OWN,
                      arrived_at=spec.arrived_at + timedelta(minutes=10),
                      applicant=replace(spec.applicant, name_kana="ワタナベ　タロウ"))
    with two_apps.sessions() as s:
        deliver(s, two_apps.runtime, make_package(spec=renamed))
    with closing(two_apps.login("reviewer")) as client:
        assert receipts(search(two_apps, client, kana="ワタナベ")) == {RESUBMISSION}


def test_version_filter(two_apps: UIWorld, make_package: PackageFactory, spec: ApplicationSpec) -> None:
    again = replace(spec, receipt_number=RESUBMISSION, kind="再申請", first_receipt_number=OWN,
                    arrived_at=spec.arrived_at + timedelta(minutes=10))
    with two_apps.sessions() as s:
        deliver(s, two_apps.runtime, make_package(spec=again))
    with closing(two_apps.login("reviewer")) as client:
        def listed(version: str) -> set[str]:
            return receipts(client.get("/staff/applications", params={"version": version}).text)

        assert listed("single") == {SATO}
        assert listed("resubmitted") == {RESUBMISSION}  # the list names the chain by its newest 受付番号
        assert listed("new_unreviewed") == {RESUBMISSION}
        csrf = two_apps.csrf(client)
        assert client.post(f"/staff/applications/{two_apps.own_app}/reviewed", data={"csrf": csrf}).status_code == 303
        assert listed("new_unreviewed") == set()
        assert listed("resubmitted") == {RESUBMISSION}
        assert listed("bogus") == {RESUBMISSION, SATO}  # an unknown value filters nothing
        # a chain is found by the 受付番号 of any of its versions
        for receipt in (OWN, RESUBMISSION):
            assert receipts(search(two_apps, client, number=receipt)) == {RESUBMISSION}
        assert receipts(search(two_apps, client, number="20261125-0000000099")) == set()


def _assigned(w: UIWorld) -> str | None:
    with w.sessions() as s:
        return s.scalar(select(Application.assigned_to).where(Application.id == w.own_app))


def test_start_review_assigns_and_the_assigned_filter(two_apps: UIWorld) -> None:
    with closing(two_apps.login("reviewer")) as client:
        csrf = two_apps.csrf(client)
        for action in ("accept", "start_review"):
            answer = client.post(f"/staff/applications/{two_apps.own_app}/status",
                                 data={"csrf": csrf, "action": action})
            assert answer.status_code == 303
        assert _assigned(two_apps) == "reviewer"
        assert receipts(client.get("/staff/applications", params={"assigned": "me"}).text) == {OWN}
        assert receipts(client.get("/staff/applications", params={"assigned": "none"}).text) == {SATO}
        assert 'id="mine">1<' in client.get("/staff/").text
    with closing(two_apps.login("revealer")) as client:
        assert receipts(client.get("/staff/applications", params={"assigned": "me"}).text) == set()
        assert receipts(client.get("/staff/applications", params={"assigned": "reviewer"}).text) == {OWN}
        assert '<option value="reviewer"' in client.get("/staff/applications").text


def test_take_over_and_release(two_apps: UIWorld) -> None:
    url = f"/staff/applications/{two_apps.own_app}/assign"
    with closing(two_apps.login("reviewer")) as client:
        assert client.post(url, data={"csrf": two_apps.csrf(client), "to": "me"}).status_code == 303
    assert _assigned(two_apps) == "reviewer"
    with closing(two_apps.login("revealer")) as client:
        csrf = two_apps.csrf(client)
        assert client.post(url, data={"csrf": csrf, "to": "none"}).status_code == 403  # not theirs to release
        assert _assigned(two_apps) == "reviewer"
        assert client.post(url, data={"csrf": csrf, "to": "me"}).status_code == 303  # taking over is allowed
    assert _assigned(two_apps) == "revealer"
    with closing(two_apps.login("viewer")) as client:
        assert client.post(url, data={"csrf": two_apps.csrf(client), "to": "me"}).status_code == 403
    with closing(two_apps.login("depadmin")) as client:
        csrf = two_apps.csrf(client)
        assert client.post(url, data={"to": "none"}).status_code == 403  # no CSRF token
        assert client.post(url, data={"csrf": csrf, "to": "none"}).status_code == 303
        other = f"/staff/applications/{two_apps.other_app}/assign"
        assert client.post(other, data={"csrf": csrf, "to": "me"}).status_code == 404  # other department
    assert _assigned(two_apps) is None
    with two_apps.sessions() as s:
        rows = list(s.scalars(select(AccessLogRow).where(AccessLogRow.action == "application.assign")
                              .order_by(AccessLogRow.id)))
    assert [(r.staff_id, r.reason) for r in rows] == [
        ("reviewer", "担当変更: - → reviewer"), ("revealer", "担当変更: reviewer → revealer"),
        ("depadmin", "担当変更: revealer → -")]


def test_export_is_capped_and_a_refused_export_is_not_logged(
        engine: Engine, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec) -> None:
    w, server = build_world(engine, runtime, clock, make_package, spec, ui=StaffUISettings(export_max_rows=1))
    try:
        with w.sessions() as s:
            deliver(s, w.runtime, make_package(spec=replace(spec, receipt_number=SATO)))
        with closing(w.login("reviewer")) as client:
            refused = client.get("/staff/applications.csv")
            assert refused.status_code == 400
            assert "上限（1 件）" in refused.text
            held = search_url(w, client, number=SATO).split("?", 1)[1]
            assert client.get(f"/staff/applications.csv?{held}").status_code == 200
        with w.sessions() as s:
            exports = list(s.scalars(select(AccessLogRow).where(AccessLogRow.action == "application.export")))
        assert len(exports) == 1
    finally:
        server.__exit__(None, None, None)


def test_dashboard_chart_counts_arrivals_per_procedure_and_day(two_apps: UIWorld, make_package: PackageFactory,
                                                             spec: ApplicationSpec) -> None:
    # NOW is 2026-11-25 12:00 JST; the two applications arrived at 11:30. One more, 13 days ago at
    # 00:00 JST (the first day of the chart), and one 14 days ago at 23:59:59 JST (just outside).
    first_day = NOW.replace(hour=0, minute=0, second=0) - timedelta(days=13)
    with two_apps.sessions() as s:
        deliver(s, two_apps.runtime, make_package(spec=replace(spec, receipt_number="20261112-0000000001",
                                                            arrived_at=first_day)))
        deliver(s, two_apps.runtime, make_package(spec=replace(spec, receipt_number="20261111-0000000001",
                                                            arrived_at=first_day - timedelta(seconds=1))))
    with closing(two_apps.login("reviewer")) as client:
        page = client.get("/staff/").text
    section = page[page.index('id="trend"'):]
    row = section[section.index(">児童手当 認定請求</th>"):]
    row = row[:row.index("</tr>")]
    counts = [int(c) for c in re.findall(r'<td class="num">(\d+)</td>', row)]
    assert counts == [1] + [0] * 12 + [2] + [3]  # 14 days, then the total
    assert "戸籍証明書の請求" not in section  # the other department's procedure is not charted
    assert '<rect x="1" y="' in row
    assert "<script" not in page


def test_failed_forward_card_links_to_the_outbox_only_for_who_may_open_it(two_apps: UIWorld) -> None:
    with closing(two_apps.login("depadmin")) as client:
        assert '<a href="/staff/outbox"><span class="label">転送失敗' in client.get("/staff/").text
    with closing(two_apps.login("reviewer")) as client:
        page = client.get("/staff/").text
        assert 'id="failed"' in page
        assert '<a href="/staff/outbox"><span class="label">転送失敗' not in page


def test_the_list_counts_up_to_a_cap_and_still_pages_beyond_it(two_apps: UIWorld, make_package: PackageFactory,
                                                               spec: ApplicationSpec) -> None:
    with two_apps.sessions() as s:
        deliver(s, two_apps.runtime, make_package(spec=replace(spec, receipt_number="20261125-0000000009")))
    reviewer = principal(Role.REVIEWER, login="reviewer")

    def listed(page: int, cap: int) -> ApplicationPage:
        with two_apps.sessions() as s:
            return list_applications(s, reviewer, ListFilters(page=page), page_size=1, at=NOW, count_cap=cap)

    exact = listed(1, 3)
    assert (exact.total, exact.capped, exact.pages, exact.has_next) == (3, False, 3, True)
    assert listed(3, 3).has_next is False
    assert listed(9, 3).page == 3  # an exact count clamps the page
    first = listed(1, 2)
    assert (first.total, first.capped, first.pages, first.has_next) == (2, True, 2, True)
    last = listed(3, 2)  # past what was counted: still served
    assert (last.page, last.pages, last.has_next, len(last.rows)) == (3, 3, False, 1)
    assert {r.receipt_number for p in (1, 2, 3) for r in listed(p, 2).rows} == {
        OWN, SATO, "20261125-0000000009"}
    with closing(two_apps.login("reviewer")) as client:
        page = client.get("/staff/applications").text
    assert "3 件（1 / 1 ページ）" in page


def test_a_date_at_the_ends_of_the_calendar_is_a_filter_not_an_error(ui_world: UIWorld) -> None:
    """A hand-edited URL (a review): ``from=0001-01-01`` or ``to=9999-12-31`` gave a 500 (arithmetic
    past the calendar's ends); it is the widest filter, the same rows as none."""
    viewer = ui_world.login("viewer")
    auditor = ui_world.login("auditor")
    try:
        unfiltered = viewer.get("/staff/applications").text.count("<tr")
        for query in ("from=0001-01-01", "to=9999-12-31", "from=0001-01-01&to=9999-12-31"):
            page = viewer.get(f"/staff/applications?{query}")
            assert page.status_code == 200, query
            assert page.text.count("<tr") == unfiltered, query
            assert auditor.get(f"/staff/audit?{query}").status_code == 200, query
    finally:
        viewer.close()
        auditor.close()
