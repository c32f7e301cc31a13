"""CSV export of the application list and the outbox retry, over real HTTP."""

from __future__ import annotations

import csv
import io
from contextlib import closing

from sqlalchemy import select

from intake.models import AccessLogRow, ForwardItem, ForwardState
from tests.conftest import NOW
from tests.intake.ui.conftest import UIWorld, csrf_of

OWN_RECEIPT = "20261125-0000000001"
OTHER_RECEIPT = "20261125-0000000050"


def _log(w: UIWorld, action: str) -> list[AccessLogRow]:
    with w.sessions() as s:
        return list(s.scalars(select(AccessLogRow).where(AccessLogRow.action == action)))


def test_export_is_scoped_has_no_my_numbers_and_is_logged_once(ui_world: UIWorld) -> None:
    with closing(ui_world.login("reviewer")) as client:
        listing = client.get("/staff/applications?status=到達")
        assert 'href="/staff/applications.csv?status=' in listing.text
        held = client.post("/staff/applications/search", data={"csrf": ui_world.csrf(client), "number": "1234567890"})
        assert held.status_code == 303
        search = held.headers["location"].split("search=")[1]
        answer = client.get("/staff/applications.csv", params={"status": "到達", "search": search})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        assert answer.headers["content-disposition"].startswith("attachment;")
        assert answer.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM for Excel
        assert list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig")))) == [
            ["受付番号", "初回受付番号", "手続", "申請種別", "状態", "到達日時", "宛名番号", "要確認"]]
        answer = client.get("/staff/applications.csv")
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert len(rows) == 2
    assert rows[1][:2] == [OWN_RECEIPT, OWN_RECEIPT]
    assert rows[1][3:5] == ["新規", "到達"]
    assert OTHER_RECEIPT not in answer.text  # other department
    assert "個人番号" not in answer.text
    logged = _log(ui_world, "application.export")
    assert [(r.staff_id, r.atena_number) for r in logged] == [("reviewer", "1234567890"), ("reviewer", None)]
    assert "1234567890" not in logged[0].subject  # the search term stays out of the subject
    assert logged[0].subject.startswith("export:procedure=*;status=到達;")
    assert "search=yes" in logged[0].subject
    assert _log(ui_world, "application.search") == []  # one row per export, not two


def test_viewer_cannot_export_nor_sees_the_link(ui_world: UIWorld) -> None:
    with closing(ui_world.login("viewer")) as client:
        assert "applications.csv" not in client.get("/staff/applications").text
        assert client.get("/staff/applications.csv").status_code == 403
    assert _log(ui_world, "application.export") == []


def test_outbox_lists_failed_items_in_scope_and_retry_resets_them(ui_world: UIWorld) -> None:
    with ui_world.sessions() as s:
        own = ForwardItem(version_id=ui_world.own_version, route="kodomo-system", idempotency_key="t:own",
                          state=ForwardState.FAILED, attempts=5, next_attempt_at=NOW, last_error="HTTP_503: down")
        other = ForwardItem(version_id=ui_world.other_version, route="koseki-system", idempotency_key="t:other",
                            state=ForwardState.FAILED, attempts=3, next_attempt_at=NOW, last_error="REFUSED: 400")
        s.add_all([own, other])
        s.commit()
        own_id, other_id = own.id, other.id
    with closing(ui_world.login("depadmin")) as client:
        page = client.get("/staff/outbox")
        assert page.status_code == 200
        for shown in (OWN_RECEIPT, "kodomo-system", "HTTP_503"):
            assert shown in page.text
        for hidden in (OTHER_RECEIPT, "koseki-system"):
            assert hidden not in page.text
        assert "down" not in page.text  # the error code only
        csrf = csrf_of(page.text)
        assert client.post(f"/staff/outbox/{other_id}/retry", data={"csrf": csrf}).status_code == 404
        answer = client.post(f"/staff/outbox/{own_id}/retry", data={"csrf": csrf})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/staff/outbox"
        assert OWN_RECEIPT not in client.get("/staff/outbox").text
        again = client.post(f"/staff/outbox/{own_id}/retry", data={"csrf": csrf})
        assert again.status_code == 409
        assert "すでに再送待ち" in again.text
    with ui_world.sessions() as s:
        item = s.get(ForwardItem, own_id)
        assert item is not None
        assert (item.state, item.attempts, item.last_error) == (ForwardState.PENDING, 0, "HTTP_503: down")
        untouched = s.get(ForwardItem, other_id)
        assert untouched is not None
        assert untouched.state is ForwardState.FAILED
    logged = _log(ui_world, "outbox.retry")
    assert [(r.staff_id, r.subject) for r in logged] == [("depadmin", f"forward_item:{own_id}")]
    with closing(ui_world.login("sysadmin")) as client:
        page = client.get("/staff/outbox").text
        assert OTHER_RECEIPT in page  # system_admin: every department
