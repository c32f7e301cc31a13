"""Free text staff type holds no My Number (P14; a hostile-insider review).

A reviewer allowed to reveal My Numbers read one and wrote it into an internal note: colleagues
without the permission then read it on the detail page. The same went for hand-over messages, status
comments (which go to the resident through the portal) and 処理事由 (kept in the access log for seven
years). Each is now refused with a message saying why, nothing of the request is saved, and the text
is not echoed; a 13-digit 法人番号, a phone number or a 12-digit figure without a valid check digit
still pass.
"""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData, select

from intake.errors import MyNumberInText
from intake.freetext import check_no_my_number
from intake.models import CaseNote, StatusTransitionRow
from signature.mynumber import is_valid_my_number
from tests.intake.ui.conftest import UIWorld

MY_NUMBER = "123456789018"
MESSAGE = "個人番号（マイナンバー）と思われる12桁の番号が含まれています"


@pytest.mark.parametrize("typed", [
    MY_NUMBER, f"番号{MY_NUMBER}を確認", "1234 5678 9018", "1234-5678-9018", "１２３４５６７８９０１８",
])
def test_a_my_number_is_recognised_however_it_is_typed(typed: str) -> None:
    with pytest.raises(MyNumberInText):
        check_no_my_number(typed)


@pytest.mark.parametrize("typed", [
    "1234567890180",  # 13 digits: a 法人番号, not a My Number
    "090-1234-5678",  # a phone number
    "123456789012",  # 12 digits, check digit wrong
    "受付番号 20261125-0000000001 の件",
])
def test_other_numbers_pass(typed: str) -> None:
    assert not is_valid_my_number(MY_NUMBER[:-1] + "2")
    assert check_no_my_number(typed) == typed


def _cells(world: UIWorld) -> list[str]:
    meta = MetaData()
    with world.sessions() as s:
        meta.reflect(s.get_bind())
        return [str(v) for table in meta.sorted_tables for row in s.execute(table.select()) for v in row]


def test_every_free_text_field_refuses_a_my_number_and_saves_nothing(ui_world: UIWorld) -> None:
    w = ui_world
    app = w.own_app
    revealer = w.login("revealer")
    csrf = w.csrf(revealer)
    with w.sessions() as s:
        notes_before = len(s.scalars(select(CaseNote)).all())
        transitions_before = len(s.scalars(select(StatusTransitionRow)).all())
    typed = f"個人番号 {MY_NUMBER} 確認済み"
    posts = {
        "note": (f"/staff/applications/{app}/notes", {"body": typed}),
        "hand-over": (f"/staff/applications/{app}/handover", {"to": "reviewer", "message": typed}),
        "status comment": (f"/staff/applications/{app}/status", {"action": "accept", "comment": typed}),
        "bulk comment": ("/staff/applications/bulk", {"ids": str(app), "action": "accept", "comment": typed}),
        "print reason": (f"/staff/applications/{app}/print", {"reason": typed}),
        "reveal reason": (f"/staff/applications/{app}/my-number",
                          {"version_id": str(w.own_version), "position": "0", "reason": typed}),
        "linkage reason": (f"/staff/applications/{app}/atena", {"atena_number": "0123456789", "reason": typed}),
    }
    for what, (path, data) in posts.items():
        answer = revealer.post(path, data={"csrf": csrf, **data})
        assert answer.status_code == 400, (what, answer.status_code)
        assert MESSAGE in answer.text, what
        assert MY_NUMBER not in answer.text, what
    revealer.close()
    with w.sessions() as s:
        assert len(s.scalars(select(CaseNote)).all()) == notes_before
        assert len(s.scalars(select(StatusTransitionRow)).all()) == transitions_before
    assert not [cell for cell in _cells(w) if MY_NUMBER in cell]


def test_a_note_without_a_my_number_is_saved(ui_world: UIWorld) -> None:
    revealer = ui_world.login("revealer")
    answer = revealer.post(f"/staff/applications/{ui_world.own_app}/notes",
                           data={"csrf": ui_world.csrf(revealer), "body": "法人番号 1234567890180、電話 090-1234-5678"})
    revealer.close()
    assert answer.status_code == 303
