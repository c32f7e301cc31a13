"""P14: My Numbers live only in `my_numbers`, encrypted; reading one needs permission and a reason
and leaves an access-log row. This test fails if a My Number appears anywhere else."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, select
from sqlalchemy.orm import Session

from intake.accesslog.service import verify_chain
from intake.authz import REVEAL_PERMISSION, Actor
from intake.deliveries.service import expected_key, store_delivery
from intake.errors import NotFound, ReasonRequired
from intake.models import AccessLogRow, ApplicationVersion
from intake.mynumbers.errors import MyNumberAccessDenied
from intake.mynumbers.service import extract_my_numbers, reveal_my_number
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from tests.conftest import NOW, PackageFactory

CLERK = Actor("staff-001", "子ども家庭課", "term-01", frozenset())
SUPERVISOR = Actor("staff-002", "子ども家庭課", "term-02", frozenset({REVEAL_PERMISSION}))


@pytest.fixture
def numbers(spec: ApplicationSpec) -> list[str]:
    values = [n.value for n in extract_my_numbers(spec.form_xml)[1]]
    assert len(values) == 2
    return values


@pytest.fixture
def version_id(session: Session, runtime: Runtime, make_package: PackageFactory) -> int:
    body = make_package()
    store_delivery(session, runtime, body=body, key=expected_key(body), client_id="relay", relay_report=None)
    session.commit()
    version = session.scalar(select(ApplicationVersion))
    assert version is not None
    return version.id


def _cells(engine: Engine) -> list[tuple[str, str, Any]]:
    meta = MetaData()
    meta.reflect(engine)
    cells = []
    with engine.connect() as c:
        for table in meta.sorted_tables:
            for row in c.execute(table.select()):
                for column, value in zip(table.columns, row, strict=True):
                    cells.append((table.name, column.name, value))
    return cells


def test_no_my_number_outside_its_table_or_in_logs(
    engine: Engine, version_id: int, numbers: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cells = _cells(engine)
    assert any(t == "my_numbers" for t, _, _ in cells)
    for table, column, value in cells:
        for n in numbers:
            if isinstance(value, bytes):
                assert n.encode() not in value, f"{table}.{column}"
            else:
                assert n not in str(value), f"{table}.{column}"
    for n in numbers:
        assert n not in caplog.text


def test_reveal_needs_permission_and_reason_and_is_logged(
    session: Session, runtime: Runtime, version_id: int, numbers: list[str]
) -> None:
    with pytest.raises(MyNumberAccessDenied):
        reveal_my_number(session, actor=CLERK, version_id=version_id, position=0, reason="審査のため", at=NOW,
                         sealer=runtime.my_number_sealer)
    with pytest.raises(ReasonRequired):
        reveal_my_number(session, actor=SUPERVISOR, version_id=version_id, position=0, reason="  ", at=NOW,
                         sealer=runtime.my_number_sealer)
    assert session.scalar(select(AccessLogRow)) is None
    value = reveal_my_number(session, actor=SUPERVISOR, version_id=version_id, position=1, reason="児童の確認",
                             at=NOW, sealer=runtime.my_number_sealer, atena_number="0000012345")
    session.commit()
    assert value == numbers[1]
    row = session.scalar(select(AccessLogRow))
    assert row is not None
    assert (row.staff_id, row.department, row.terminal, row.reason, row.atena_number) == (
        "staff-002", "子ども家庭課", "term-02", "児童の確認", "0000012345")
    assert numbers[1] not in row.subject
    with pytest.raises(NotFound):
        reveal_my_number(session, actor=SUPERVISOR, version_id=version_id, position=7, reason="x", at=NOW,
                         sealer=runtime.my_number_sealer)


def test_access_log_chain_detects_a_deleted_or_altered_row(
    session: Session, runtime: Runtime, version_id: int
) -> None:
    for i in range(4):
        reveal_my_number(session, actor=SUPERVISOR, version_id=version_id, position=i % 2, reason=f"理由{i}",
                         at=NOW, sealer=runtime.my_number_sealer)
    session.commit()
    assert verify_chain(session) == []
    rows = session.scalars(select(AccessLogRow).order_by(AccessLogRow.id)).all()
    session.delete(rows[1])
    session.commit()
    assert verify_chain(session) == [rows[2].id]
    rows[3].reason = "改ざん"
    session.commit()
    assert rows[3].id in verify_chain(session)


def test_a_my_number_hidden_in_an_attribute_or_a_comment_of_the_field_is_not_stored(
    engine: Engine, session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    """A hostile resident's form (a review): the number in an attribute of 個人番号 and in a comment
    inside it. Only the field's text was emptied, so the attribute stayed in the stored form in the
    clear. Now the field keeps nothing: text, children, attributes."""
    hidden = "123456789018"
    form = spec.form_xml.decode()
    assert "<個人番号>" in form
    doctored = form.replace("<個人番号>", f'<個人番号 番号="{hidden}" note="x"><!-- {hidden} -->', 1)
    body = make_package(spec=replace(spec, form_xml=doctored.encode()))
    store_delivery(session, runtime, body=body, key=expected_key(body), client_id="relay", relay_report=None)
    session.commit()
    for table, column, value in _cells(engine):  # the package itself, the evidence, is sealed too
        assert hidden not in (value.decode(errors="replace") if isinstance(value, bytes) else str(value)), \
            f"{table}.{column}"
    masked, _found = extract_my_numbers(doctored.encode())
    assert "note=" not in masked
