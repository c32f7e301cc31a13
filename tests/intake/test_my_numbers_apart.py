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
from intake.applications.service import application_detail
from intake.authz import REVEAL_PERMISSION, Actor
from intake.deliveries.service import expected_key, store_delivery
from intake.errors import NotFound, ReasonRequired
from intake.models import AccessLogRow, ApplicationVersion, MyNumberRow
from intake.mynumbers.errors import MyNumberAccessDenied
from intake.mynumbers.service import MAX_PATH, TEXT_MASK, extract_my_numbers, reveal_my_number
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from status import Role
from tests.conftest import NOW, PackageFactory
from tests.intake.staffdata import principal

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


def test_my_numbers_in_a_form_s_other_text_are_found_in_order_with_where_they_were() -> None:
    """Two in one 備考, one in the text after a child (mixed content), one in a comment before the
    document element (dropped with the prolog: the stored form is the element), none in a 13-digit
    法人番号 or in 12 digits whose check digit is wrong. The field's own number comes first."""
    number, other = "123456789018", "000000000019"
    form = (f"<!-- {number} --><DataRoot><個人番号>{other}</個人番号>"
            f"<備考>{number} と {other[:4]} {other[4:8]} {other[8:]}</備考>"
            f"<連絡>前<b/>後 {number}</連絡><法人>1{number}</法人><誤り>123456789010</誤り></DataRoot>")
    masked, found = extract_my_numbers(form.encode())
    assert [(n.position, n.path, n.source, n.value) for n in found] == [
        (0, "/DataRoot/個人番号", "form", other),
        (1, "/DataRoot/備考/text()[1]", "text", number),
        (2, "/DataRoot/備考/text()[2]", "text", other),
        (3, "/DataRoot/連絡/text()[1]", "text", number),
    ]
    assert masked == ("<DataRoot><個人番号/><備考>［個人番号］ と ［個人番号］</備考><連絡>前<b/>後 ［個人番号］</連絡>"
                      f"<法人>1{number}</法人><誤り>123456789010</誤り></DataRoot>")


def test_a_my_number_nested_deeper_than_its_path_column_is_stored_and_shown_apart(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    """A hostile resident's form nests its 個人番号 (and a 備考 with another number) 150 elements deep:
    the paths are ~800 characters, longer than ``my_numbers.path``. PostgreSQL refused the row and
    the delivery failed; now the path keeps its end, the application is stored, and the form view
    lists both numbers apart, revealable."""
    field, typed = "123456789018", "000000000019"
    opening = "".join(f"<階層{i}>" for i in range(150))
    closing = "".join(f"</階層{i}>" for i in reversed(range(150)))
    form = spec.form_xml.decode().replace(
        "<備考/>", f"<備考/>{opening}<個人番号>{field}</個人番号><備考>控え {typed}</備考>{closing}", 1)
    body = make_package(spec=replace(spec, form_xml=form.encode()))
    store_delivery(session, runtime, body=body, key=expected_key(body), client_id="relay", relay_report=None)
    session.commit()
    version = session.scalar(select(ApplicationVersion))
    assert version is not None
    paths = {row.path for row in session.scalars(select(MyNumberRow).where(MyNumberRow.version_id == version.id))}
    deep = sorted(p for p in paths if p.startswith("…"))
    assert [len(p) for p in deep] == [MAX_PATH, MAX_PATH]
    assert deep[0].endswith("/階層149/個人番号")
    assert deep[1].endswith("/階層149/備考/text()[1]")
    detail = application_detail(session, principal(Role.REVIEWER, reveal=True), version.application_id, at=NOW)
    assert len(detail.my_numbers_elsewhere) == 2
    revealed = {reveal_my_number(session, actor=SUPERVISOR, version_id=version.id, position=p, reason="検査", at=NOW,
                                 sealer=runtime.my_number_sealer) for p in detail.my_numbers_elsewhere}
    assert revealed == {field, typed}
    session.rollback()


def test_a_my_number_typed_into_the_applicant_s_contact_data_is_sealed_and_no_search_key(
    engine: Engine, session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    """申請者情報 is shown to every reader of the case, and its 電話番号 becomes a search key: a My
    Number a resident typed there (as an IME writes it) is masked, sealed, listed apart for the
    reveal, and in no cell of the database in the clear."""
    number, other = "123456789018", "000000000019"
    typed = "１２３４ー５６７８ー９０１８"
    applicant = replace(spec.applicant, phone=typed, address=f"{spec.applicant.address}（番号 {other}）")
    body = make_package(spec=replace(spec, applicant=applicant))
    store_delivery(session, runtime, body=body, key=expected_key(body), client_id="relay", relay_report=None)
    session.commit()
    version = session.scalar(select(ApplicationVersion))
    assert version is not None
    typed_fields = dict((str(k), str(v)) for k, v in version.applicant)
    assert typed_fields["電話番号"] == TEXT_MASK
    assert typed_fields["住所"] == f"{spec.applicant.address}（番号 {TEXT_MASK}）"
    rows = session.scalars(select(MyNumberRow).where(MyNumberRow.source == "text")).all()
    assert sorted(r.path.rsplit("/", 2)[-2] for r in rows) == ["住所", "電話番号"]
    detail = application_detail(session, principal(Role.REVIEWER, reveal=True), version.application_id, at=NOW)
    revealed = {reveal_my_number(session, actor=SUPERVISOR, version_id=version.id, position=p, reason="検査", at=NOW,
                                 sealer=runtime.my_number_sealer) for p in detail.my_numbers_elsewhere}
    assert revealed == {number, other}
    session.rollback()
    session.close()
    cells = " ".join(v.decode(errors="replace") if isinstance(v, bytes) else str(v) for _t, _c, v in _cells(engine))
    assert [n for n in (number, other, typed) if n in cells] == []
