"""Scoped reads for the staff UI on SQLite and PostgreSQL: version diff, list search and filters, logging."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.applications.dashboard import dashboard
from intake.applications.listing import ListFilters, list_applications
from intake.applications.service import FieldChange, application_detail
from intake.errors import NotFound
from intake.models import AccessLogRow, Application
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from status import Role
from tests.conftest import NOW, PackageFactory
from tests.intake.staffdata import CATALOGUE, OTHER_DEPT, deliver, principal

READER = principal(Role.VIEWER)


@pytest.fixture
def chain(session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec) -> ApplicationSpec:
    rt = replace(runtime, procedures=CATALOGUE)
    deliver(session, rt, make_package())
    form = spec.form_xml.decode().replace("<備考/>", "<備考>口座を変更しました</備考>")
    re = replace(spec, receipt_number="20261125-0000000002", kind="再申請", first_receipt_number=spec.receipt_number,
                 arrived_at=spec.arrived_at + timedelta(minutes=5), form_xml=form.encode())
    deliver(session, rt, make_package(spec=re))
    return re


def test_detail_diffs_the_newest_version_against_the_previous(session: Session, chain: ApplicationSpec) -> None:
    app = session.scalar(select(Application))
    assert app is not None
    detail = application_detail(session, READER, app.id, at=NOW)
    assert detail.version.receipt_number == chain.receipt_number
    assert detail.changes == [FieldChange("児童手当認定請求書 / 備考", "", "口座を変更しました")]
    numbers = [f for f in detail.fields if f.my_number_position is not None]
    assert [(f.my_number_position, f.value) for f in numbers] == [(0, ""), (1, "")]  # masked in the view
    assert detail.my_number_positions == [0, 1]
    assert detail.actions == []  # a viewer gets no buttons
    assert detail.identity.name_matches is True
    session.commit()  # access-log rows are written at commit
    rows = session.scalars(select(AccessLogRow)).all()
    assert [(r.action, r.staff_id, r.atena_number) for r in rows] == [("application.view", "staff1", None)]
    # the diff showed the previous version's values too: the row names both versions read
    older = next(v for v in detail.versions if v.id != detail.version.id)
    assert rows[0].subject == f"application:{app.id}:version:{detail.version.id}:compare:{older.id}"
    with pytest.raises(NotFound):
        application_detail(session, principal(Role.VIEWER, department=OTHER_DEPT), app.id, at=NOW)


def test_list_search_filters_and_scope(session: Session, chain: ApplicationSpec) -> None:
    def rows(p: object = READER, **kw: object) -> list[str]:
        page = list_applications(session, p, ListFilters(**kw), page_size=10, at=NOW)  # type: ignore[arg-type]
        return [r.receipt_number for r in page.rows]

    assert rows() == [chain.receipt_number]
    assert rows(query=chain.receipt_number) == rows(query="20261125-0000000001") == [chain.receipt_number]
    assert rows(query="20261125-0000009999") == []
    assert rows(needs_review=True) == [chain.receipt_number]
    assert rows(date_from=(NOW + timedelta(days=1)).date()) == []
    assert rows(principal(Role.REVIEWER, department=OTHER_DEPT)) == []
    board = dashboard(session, READER, at=NOW)
    assert board is not None
    assert (board.today_arrivals, board.my_queue, board.unlinked) == (2, 1, 1)
    assert dashboard(session, principal(Role.AUDITOR), at=NOW) is None
