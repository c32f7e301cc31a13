"""Issue 15 §2: no My Number stands in the clear, wherever the package put it.

Real signed packages (the test package factory) whose forms write 個人番号 in every namespace
style — none, a default namespace, a prefix, a second namespace for the number alone, a default
namespace redeclared inside — plus a field the procedure catalogue declares under another name,
plus a 個人番号 in kousei.xml's 申請者情報 (with and without a namespace), plus My Numbers a resident
typed into the form's free text (a 備考: full-width in hyphenated groups, in an attribute, in a
comment) beside numbers that are not My Numbers and must stay readable. After storing them, the
**whole database** is scanned as bytes: the SQLite file with its WAL, and a PostgreSQL ``pg_dump``.
The numbers are known from the packages' own bytes (every 12-digit value in them), not from the code
under test. Every one of them must be in ``my_numbers`` (sealed, revealable) and nowhere else: not
in the stored form, not in the applicant data, not in the form view, a diff, or a payload to a route
that is not entitled to them.
"""

from __future__ import annotations

import random
import re
import subprocess
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from intake.applications.service import application_detail
from intake.authz import REVEAL_PERMISSION, Actor
from intake.forwarding.payload import build_payload
from intake.forwarding.routes import Route
from intake.models import Application, ApplicationVersion, MyNumberRow
from intake.mynumbers.service import reveal_my_number
from intake.procedures import MyNumberPaths, Procedure, ProcedureCatalogue
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from signature.testing.samples import FORM_STYLES, MY_NUMBER_NAMESPACE, make_my_number, sample_spec
from status import Role
from tests.conftest import NOW, PackageFactory, World
from tests.intake.staffdata import OWN_DEPT, OWN_PROCEDURE, deliver, principal

_TWELVE = re.compile(rb"(?<![0-9])([0-9]{12})(?![0-9])")
#: the catalogue's own name for a My Number field in this form: 配偶者 / 番号
DECLARED = "//配偶者/番号"
CATALOGUE = ProcedureCatalogue({OWN_PROCEDURE: Procedure(OWN_PROCEDURE, "児童手当 認定請求", OWN_DEPT, "子ども家庭課",
                                                         my_number_paths=MyNumberPaths((DECLARED,)))}, configured=True)
SUPERVISOR = Actor("staff-002", "子ども家庭課", "term-02", frozenset({REVEAL_PERMISSION}))


def _with_spouse(form: bytes, number: str) -> bytes:
    """The form with a 配偶者/番号 field (a My Number under another name), in the form's own namespace."""
    prefix = b"f:" if b"<f:DataRoot" in form else b""
    head, sep, tail = form.partition(b"</" + prefix + "請求者>".encode())
    assert sep, "no 請求者 element"
    spouse = ("<{p}配偶者><{p}氏名>配偶者　花子</{p}氏名><{p}番号>{n}</{p}番号></{p}配偶者>"
              .format(p=prefix.decode(), n=number).encode())
    return head + sep + spouse + tail


def _with_remark(form: bytes, text: str, *, attribute: str | None = None, comment: str | None = None) -> bytes:
    """The form with its 備考 (whatever its namespace) holding ``text``, and an attribute or a comment."""
    root = etree.fromstring(form)
    [remark] = [el for el in root.iter() if isinstance(el.tag, str) and etree.QName(el).localname == "備考"]
    remark.text = text
    if attribute is not None:
        remark.set("メモ", attribute)
    if comment is not None:
        remark.append(etree.Comment(comment))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _grouped(number: str, *, full_width: bool) -> str:
    groups = [number[:4], number[4:8], number[8:]]
    if full_width:  # 全角 digits and 全角 hyphens, as an IME writes them
        return "－".join(g.translate(str.maketrans("0123456789", "０１２３４５６７８９")) for g in groups)
    return " ".join(groups)


#: receipt number → My Numbers a resident typed into free text → how they were written there
TYPED: dict[str, dict[str, str]] = {}
#: not My Numbers, in the same 備考: a 法人番号 (13 digits), a phone number, 12 digits whose check digit is wrong
NOT_MY_NUMBERS = ("1234567890123", "03-1234-5678")
WRONG_CHECK_DIGIT: set[str] = set()


def _typed_in_remarks(specs: list[ApplicationSpec], rng: random.Random) -> list[ApplicationSpec]:
    TYPED.clear()
    WRONG_CHECK_DIGIT.clear()
    out = list(specs)
    for index, how in ((1, "text"), (2, "attribute"), (3, "comment")):
        number = make_my_number(rng)
        spec = out[index]
        if how == "text":
            written = _grouped(number, full_width=True)
            wrong = number[:11] + str((int(number[11]) + 1) % 10)
            WRONG_CHECK_DIGIT.add(wrong)
            remark = _with_remark(spec.form_xml, f"番号は{written}です。法人番号 {NOT_MY_NUMBERS[0]}、"
                                                 f"電話 {NOT_MY_NUMBERS[1]}、控え {wrong}")
        elif how == "attribute":
            written = _grouped(number, full_width=False)
            remark = _with_remark(spec.form_xml, "添付を確認してください", attribute=written)
        else:
            written = number
            remark = _with_remark(spec.form_xml, "後日提出", comment=f" 控え {written} ")
        TYPED[spec.receipt_number] = {number: written}
        out[index] = replace(spec, form_xml=remark)
    return out


def _specs(world: World) -> list[ApplicationSpec]:
    rng = random.Random(15)
    specs = []
    for i, style in enumerate(FORM_STYLES):
        spec = sample_spec(world.residents[i % len(world.residents)], rng,
                           receipt_number=f"20261125-00000015{i:02d}", arrived_at=NOW - timedelta(minutes=40 - i),
                           user_cert_serial=f"15AA{i:02X}", form_style=style,
                           applicant_my_number=make_my_number(rng) if i % 2 == 0 else None,
                           applicant_my_number_namespace=MY_NUMBER_NAMESPACE if i == 2 else None)
        if style in ("none", "prefixed"):
            spec = replace(spec, form_xml=_with_spouse(spec.form_xml, make_my_number(rng)))
        specs.append(spec)
    # a 再申請 of the first, so that a diff between two versions is shown too
    first = specs[0]
    specs.append(replace(first, receipt_number="20261125-0000001599", kind="再申請",
                         first_receipt_number=first.receipt_number, arrived_at=first.arrived_at + timedelta(minutes=10),
                         form_xml=first.form_xml.replace(b"<\xe5\x82\x99\xe8\x80\x83/>",  # <備考/>
                                                         "<備考>口座を変更</備考>".encode())))
    return _typed_in_remarks(specs, rng)


def numbers_in(spec: ApplicationSpec) -> set[str]:
    """Every My Number a package carries, read from its bytes: every 12-digit value of the form but
    the one written with a wrong check digit, the applicant's number of 申請者情報, and the numbers typed
    into a 備考 (TYPED)."""
    found = {m.decode() for m in _TWELVE.findall(spec.form_xml)}
    if spec.applicant.my_number:
        found.add(spec.applicant.my_number)
    return (found - WRONG_CHECK_DIGIT) | set(TYPED.get(spec.receipt_number, {}))


def written(numbers: set[str]) -> set[str]:
    """The numbers, and each as the resident wrote it in free text."""
    return numbers | {w for typed in TYPED.values() for n, w in typed.items() if n in numbers}


@pytest.fixture
def stored(session: Session, runtime: Runtime, make_package: PackageFactory, world: World) -> list[ApplicationSpec]:
    rt = replace(runtime, procedures=CATALOGUE)
    specs = _specs(world)
    for spec in specs:
        deliver(session, rt, make_package(spec=spec))
    return specs


def _database_bytes(engine: Engine, tmp_path: Path) -> bytes:
    """The database as bytes: SQLite's file, WAL and shared memory; PostgreSQL's pg_dump."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        assert database is not None
        engine.dispose()
        return b"".join(p.read_bytes() for p in Path(database).parent.glob(Path(database).name + "*"))
    url = urlsplit(engine.url.render_as_string(hide_password=False).replace("+psycopg", ""))
    host = parse_qs(url.query)["host"][0]
    dump = subprocess.run(["pg_dump", "-h", host, "-U", url.username or "postgres", "--no-owner",
                           url.path.lstrip("/")], capture_output=True, timeout=120, check=True)
    assert b"COPY public.my_numbers" in dump.stdout  # a dump of the data, not of an empty schema
    return dump.stdout


def test_whole_database_holds_no_my_number_in_the_clear(
    engine: Engine, session: Session, runtime: Runtime, stored: list[ApplicationSpec], tmp_path: Path,
) -> None:
    numbers = set().union(*(numbers_in(s) for s in stored))
    # two in each of five forms, two spouses (declared path), three in 申請者情報, three typed in a 備考
    assert len(numbers) == 18
    # all of them sealed and revealable: extraction found every one
    revealed = set()
    for row in session.scalars(select(MyNumberRow)):
        revealed.add(reveal_my_number(session, actor=SUPERVISOR, version_id=row.version_id, position=row.position,
                                      reason="検査", at=NOW, sealer=runtime.my_number_sealer))
    session.rollback()
    assert revealed == numbers
    assert session.scalar(select(func.count()).where(MyNumberRow.source == "kousei")) == 4  # the 再申請 repeats one
    assert session.scalar(select(func.count()).where(MyNumberRow.source == "text")) == 3
    session.close()
    dump = _database_bytes(engine, tmp_path)
    assert b"DataRoot" in dump  # the forms themselves are in what was scanned
    leaked = sorted(n for n in written(numbers) if n.encode() in dump)
    assert leaked == [], f"{len(leaked)} My Number(s) in the clear in the database"


def test_views_diffs_and_payloads_show_none(session: Session, runtime: Runtime, stored: list[ApplicationSpec]) -> None:
    reader = principal(Role.REVIEWER, reveal=True)
    for spec in stored:
        version = session.scalar(select(ApplicationVersion).where(ApplicationVersion.receipt_number ==
                                                                  spec.receipt_number))
        assert version is not None, spec.receipt_number
        numbers = numbers_in(spec)
        stored_text = version.form_xml + repr(version.applicant)
        assert not [n for n in written(numbers) if n in stored_text]
        detail = application_detail(session, reader, version.application_id, at=NOW, version_id=version.id)
        shown = repr(detail.fields) + repr(detail.changes) + repr(detail.identity.applicant)
        assert not [n for n in written(numbers) if n in shown]
        positions = {f.my_number_position for f in detail.fields if f.my_number_position is not None}
        positions |= set(detail.identity.applicant_my_numbers.values())
        positions |= {p for f in detail.fields for p in f.in_text} | set(detail.my_numbers_elsewhere)
        assert positions == set(detail.my_number_positions)  # every sealed number has its masked field
        assert len(positions) == len(numbers)
        for entitled in (False, True):
            route = Route(name=f"r{int(entitled)}", procedures=frozenset({"*"}), kind="file", target="/nonexistent",
                          format="xml", my_number_entitled=entitled)
            body = build_payload(session, runtime, version_id=version.id, idempotency_key="k", route=route,
                                 at=NOW).body.decode()
            carried = {n for n in numbers if n in body}
            assert carried == (numbers if entitled else set()), (spec.receipt_number, entitled)
    second = session.scalar(select(Application).where(Application.first_receipt_number == stored[0].receipt_number))
    assert second is not None
    detail = application_detail(session, reader, second.id, at=NOW)
    assert [c.label for c in detail.changes] == ["児童手当認定請求書 / 備考"]  # the numbers are not "changes"
    session.rollback()


def test_a_resident_s_free_text_keeps_what_is_not_a_my_number(
    session: Session, stored: list[ApplicationSpec],
) -> None:
    """Only a My Number is masked: a 法人番号, a phone number and 12 digits with a wrong check digit
    stay as the resident typed them, and staff see where each masked number was (the 備考 field, its
    attribute; a comment is not a field, so it is listed apart)."""
    reader = principal(Role.REVIEWER, reveal=True)
    shown = {}
    for spec in stored[1:4]:
        version = session.scalar(select(ApplicationVersion).where(ApplicationVersion.receipt_number ==
                                                                  spec.receipt_number))
        assert version is not None
        detail = application_detail(session, reader, version.application_id, at=NOW, version_id=version.id)
        remarks = [f for f in detail.fields if f.label.endswith("備考")]
        shown[spec.receipt_number] = (remarks[0].value if remarks else None,
                                      len(remarks[0].in_text) if remarks else 0, len(detail.my_numbers_elsewhere))
    text, attribute, comment = (shown[s.receipt_number] for s in stored[1:4])
    [number] = TYPED[stored[1].receipt_number]
    wrong = number[:11] + str((int(number[11]) + 1) % 10)
    kept = f"法人番号 {NOT_MY_NUMBERS[0]}、電話 {NOT_MY_NUMBERS[1]}、控え {wrong}"
    assert text == (f"番号は［個人番号］です。{kept}", 1, 0)
    assert attribute == ("添付を確認してください", 1, 0)
    assert comment == (None, 0, 1)  # 備考 holds a comment: not a leaf, listed apart
    session.rollback()
