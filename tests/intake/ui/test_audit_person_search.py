"""The auditor's search by 宛名番号 finds every access to that person's chains (P13; a review).

An access is logged with the chain's 宛名番号 as it was then: NULL while the chain was not yet linked,
though the page showed the applicant's 4情報. Searched by the number later, those reads were missing.
Now the search also finds the rows about the person's chains by their subject (the chain, its
versions, attachments, forwarding items), and only those: another chain's reads stay out.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from intake.authz import SET_ATENA_PERMISSION, Actor
from intake.linkage.service import set_atena_manually
from intake.models import AccessLogRow
from tests.intake.ui.conftest import UIWorld

ATENA = "0123456789"


def test_reads_before_the_chain_was_linked_are_found_by_its_wadana_number(ui_world: UIWorld) -> None:
    w = ui_world
    viewer = w.login("viewer")
    assert viewer.get(f"/staff/applications/{w.own_app}").status_code == 200  # not linked yet
    assert viewer.get(f"/staff/attachments/{w.own_attachment}").status_code == 200
    viewer.close()
    other = w.login("other-reviewer")
    assert other.get(f"/staff/applications/{w.other_app}").status_code == 200  # another person's chain
    other.close()
    with w.sessions() as s:
        before = [(r.action, r.subject, r.atena_number) for r in s.scalars(
            select(AccessLogRow).where(AccessLogRow.staff_id == "viewer",
                                       AccessLogRow.action.in_(["application.view", "attachment.download"])))]
        assert {atena for *_, atena in before} == {None}  # the premise: logged before the link
        set_atena_manually(s, application_id=w.own_app, atena_number=ATENA, reason="住民記録で本人確認",
                           actor=Actor("clerk", "子ども家庭課", "ip:127.0.0.1", frozenset({SET_ATENA_PERMISSION})),
                           at=w.clock.now + timedelta(seconds=1))
        s.commit()
    auditor = w.login("auditor")
    found = auditor.post("/staff/audit/search", data={"csrf": w.csrf(auditor), "atena": ATENA})
    assert found.status_code == 303
    export = auditor.get(found.headers["location"].replace("/staff/audit?", "/staff/audit.csv?"))
    auditor.close()
    assert export.status_code == 200
    lines = export.content.decode("utf-8-sig").splitlines()[1:]
    subjects = {line.split(",")[5] for line in lines}
    for action, subject, _ in before:
        assert subject in subjects, (action, subject)
    assert any(line.split(",")[4] == "linkage.set_atena" for line in lines)  # and the row that has the number
    assert not any(s.startswith(f"application:{w.other_app}") for s in subjects)
    assert all(line.split(",")[1] != "other-reviewer" for line in lines)
