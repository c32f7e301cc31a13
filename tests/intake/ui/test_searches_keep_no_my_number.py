"""What staff type into the person searches, as a tired clerk types it (a hostile-insider review).

* The resident at the counter holds out the My Number card and the clerk types its number into the
  list's 受付番号・宛名番号 box, or the auditor into the access log's 宛名番号 box. It was searched,
  kept in the search store and written to the access log's 宛名番号 column: a My Number in the
  clear, kept for 7 years and exported with the log. Now it is refused with a message saying why,
  before it is kept or logged; and the access log takes a 宛名番号 (10 digits) in that column or
  nothing (:func:`intake.accesslog.service.append_access`), whoever calls it.
* A search id that is no longer held (30 minutes passed, the UI restarted, a bookmarked link,
  another session's id) showed the list or the log *unfiltered*, and the export copied the whole
  department's list or the ward's whole access log, while staff believed it was one person's. Now
  the pages show nothing and ask for the search again, and the exports are refused.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.accesslog.service import append_access
from intake.authz import Actor
from intake.models import AccessLogRow
from signature.mynumber import is_valid_my_number
from tests.intake.ui.conftest import UIWorld, search_url

MY_NUMBER = "123456789018"
ATENA = "0123456789"
#: a search id this session does not hold: expired, from before a restart, bookmarked
UNKNOWN_ID = "expired-restarted-or-bookmarked"


def my_numbers_in_the_log(world: UIWorld) -> list[str]:
    with world.sessions() as s:
        cells = [c for row in s.execute(select(AccessLogRow.atena_number, AccessLogRow.subject, AccessLogRow.reason))
                 for c in row if c]
    return [m for c in cells for m in re.findall(r"\d{12}", c) if is_valid_my_number(m)]


def logged(world: UIWorld, action: str) -> list[tuple[str, str | None]]:
    with world.sessions() as s:
        return [(r.subject, r.atena_number) for r in s.scalars(
            select(AccessLogRow).where(AccessLogRow.action == action).order_by(AccessLogRow.id))]


def test_a_my_number_typed_into_the_list_search_is_refused_and_kept_nowhere(ui_world: UIWorld) -> None:
    assert is_valid_my_number(MY_NUMBER)
    reviewer = ui_world.login("reviewer")
    answer = reviewer.post("/staff/applications/search", data={"csrf": ui_world.csrf(reviewer), "number": MY_NUMBER})
    assert answer.status_code == 400
    assert "個人番号（マイナンバー）では検索できません" in answer.text
    assert MY_NUMBER not in answer.text  # not echoed either
    reviewer.close()
    assert my_numbers_in_the_log(ui_world) == []
    assert logged(ui_world, "application.search") == []  # nothing was searched


def test_a_number_search_logs_a_wadana_number_in_its_column_and_a_receipt_number_without_value(
    ui_world: UIWorld,
) -> None:
    reviewer = ui_world.login("reviewer")
    for number in (ATENA, "20261125-0000000001"):
        url = search_url(ui_world, reviewer, number=number)
        assert reviewer.get(url).status_code == 200
        assert reviewer.get(url.replace("/staff/applications?", "/staff/applications.csv?")).status_code == 200
    reviewer.close()
    assert logged(ui_world, "application.search") == [("search:atena_or_receipt", ATENA),
                                                      ("search:atena_or_receipt", None)]
    assert [atena for _subject, atena in logged(ui_world, "application.export")] == [ATENA, None]


def test_a_my_number_typed_into_the_auditors_search_is_refused(ui_world: UIWorld) -> None:
    auditor = ui_world.login("auditor")
    for typed in (MY_NUMBER, "012345678"):  # a My Number, and a 宛名番号 missing a digit
        answer = auditor.post("/staff/audit/search", data={"csrf": ui_world.csrf(auditor), "atena": typed})
        assert answer.status_code == 400, typed
        assert "宛名番号は10桁の数字で入力してください" in answer.text
    answer = auditor.post("/staff/audit/search", data={"csrf": ui_world.csrf(auditor), "atena": ATENA})
    assert answer.status_code == 303
    assert auditor.get(answer.headers["location"]).status_code == 200
    auditor.close()
    assert my_numbers_in_the_log(ui_world) == []
    assert [atena for _subject, atena in logged(ui_world, "audit.view")] == [ATENA]


def test_the_access_log_column_takes_a_wadana_number_or_nothing(ui_world: UIWorld) -> None:
    """Whoever calls it: a caller passing anything else is refused before the row is noted."""
    actor = Actor(staff_id="reviewer", department="d", terminal="ip:127.0.0.1")
    with ui_world.sessions() as session:
        assert isinstance(session, Session)
        for value in (MY_NUMBER, "12345", "０１２３４５６７８９", ""):
            with pytest.raises(ValueError, match="宛名番号"):
                append_access(session, actor=actor, at=datetime(2026, 12, 7, tzinfo=UTC), action="x",
                              subject="y", atena_number=value)
        append_access(session, actor=actor, at=datetime(2026, 12, 7, tzinfo=UTC), action="x", subject="y",
                      atena_number=ATENA)
        session.rollback()


@pytest.mark.parametrize("whose", ["unknown", "another-session"])
def test_a_search_no_longer_held_shows_and_exports_nothing(ui_world: UIWorld, whose: str) -> None:
    reviewer = ui_world.login("reviewer")
    if whose == "unknown":
        token = UNKNOWN_ID
    else:
        other = ui_world.login("reviewer")
        token = search_url(ui_world, other, number=ATENA).split("search=", 1)[1]
        other.close()
    page = reviewer.get(f"/staff/applications?search={token}")
    assert page.status_code == 200
    assert "検索の有効期限が切れました" in page.text
    assert "20261125-" not in page.text  # no application listed in the search's place
    export = reviewer.get(f"/staff/applications.csv?search={token}")
    assert export.status_code == 400
    assert "検索の有効期限が切れました" in export.text
    reviewer.close()
    auditor = ui_world.login("auditor")
    if whose == "unknown":
        audit_token = UNKNOWN_ID
    else:
        other = ui_world.login("auditor")
        saved = other.post("/staff/audit/search", data={"csrf": ui_world.csrf(other), "atena": ATENA})
        audit_token = saved.headers["location"].split("s=", 1)[1]
        other.close()
    for path in ("/staff/audit", "/staff/audit.csv"):
        answer = auditor.get(f"{path}?s={audit_token}")
        assert answer.status_code == 400, path
        assert "検索の有効期限が切れました" in answer.text
    auditor.close()
    assert logged(ui_world, "application.export") == []
    assert logged(ui_world, "audit.export") == []
