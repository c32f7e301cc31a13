"""A My Number a resident typed into the form's free text (a 備考), as staff see it: masked where it
was typed, revealable only with the reveal permission and a 処理事由, never in the page otherwise.

The stored side (every namespace style, attributes, comments, a byte scan of the database) is in
tests/intake/test_my_numbers_everywhere.py.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from lxml import etree
from sqlalchemy import select

from intake.models import AccessLogRow, MyNumberRow
from signature.testing.builder import ApplicationSpec
from signature.testing.samples import make_my_number
from tests.intake.ui.conftest import UIWorld, csrf_of

NUMBER = make_my_number(random.Random(1207))
#: as an IME writes it: 全角 digits, 全角 hyphens between groups of four
TYPED = "－".join(NUMBER[i:i + 4] for i in (0, 4, 8)).translate(str.maketrans("0123456789", "０１２３４５６７８９"))


@pytest.fixture
def spec(spec: ApplicationSpec) -> ApplicationSpec:
    """The usual test application, with the resident's My Number typed into its 備考 as well."""
    root = etree.fromstring(spec.form_xml)
    [remark] = [el for el in root.iter() if isinstance(el.tag, str) and etree.QName(el).localname == "備考"]
    remark.text = f"念のため番号を書きます：{TYPED}。よろしくお願いします。"
    return replace(spec, form_xml=etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def test_a_my_number_typed_into_a_remark_is_masked_there_and_revealed_only_on_request(ui_world: UIWorld) -> None:
    w = ui_world
    with w.sessions() as s:
        row = s.scalar(select(MyNumberRow).where(MyNumberRow.version_id == w.own_version,
                                                 MyNumberRow.source == "text"))
        assert row is not None
        position = row.position
    assert row.path.endswith("/備考/text()[1]")
    reveal_form = f'name="position" value="{position}"'
    reviewer = w.login("reviewer")  # reads the case; may not reveal
    page = reviewer.get(f"/staff/applications/{w.own_app}").text
    assert "念のため番号を書きます：［個人番号］。よろしくお願いします。" in page
    assert "記載中の個人番号 1" in page
    assert NUMBER not in page
    assert TYPED not in page
    assert reveal_form not in page
    reviewer.close()
    revealer = w.login("revealer")
    page = revealer.get(f"/staff/applications/{w.own_app}").text
    assert reveal_form in page
    assert NUMBER not in page
    answer = revealer.post(f"/staff/applications/{w.own_app}/my-number", data={
        "csrf": csrf_of(page), "version_id": str(w.own_version), "position": str(position), "reason": "本人確認のため"})
    assert answer.status_code == 200
    assert f'id="my-number-{position}">{NUMBER}<' in answer.text
    revealer.close()
    with w.sessions() as s:
        logged = s.scalars(select(AccessLogRow).where(AccessLogRow.action == "my_number.reveal")).all()
    assert [(r.subject, r.reason) for r in logged] == [
        (f"version:{w.own_version}:my_number:{position}", "本人確認のため")]
