"""``python -m intake mynumbers seal-typed``: forms stored before a My Number typed into their text
was sealed (docs/decisions.md, 2026-12-07) get it masked and sealed after an upgrade, as a delivery
now does — resumably, once, with positions after the version's own numbers.

The database is made as the code before stored it: the form's text holds the number as the resident
typed it, and ``my_numbers`` has only the field's numbers.
"""

from __future__ import annotations

import random
import subprocess
import sys
from dataclasses import replace

from lxml import etree
from sqlalchemy import delete, select

from intake.db import make_engine, make_session_factory
from intake.models import ApplicationVersion, MyNumberRow
from intake.mynumbers.service import TEXT, TEXT_MASK, reveal_my_number
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from signature.testing.samples import make_my_number
from tests.conftest import NOW, PackageFactory
from tests.intake.staffdata import deliver
from tests.intake.test_my_numbers_apart import SUPERVISOR

NUMBER = make_my_number(random.Random(20261207))
TYPED = f"{NUMBER[:4]} {NUMBER[4:8]} {NUMBER[8:]}"


def _with_remark(spec: ApplicationSpec, text: str) -> ApplicationSpec:
    root = etree.fromstring(spec.form_xml)
    [remark] = [el for el in root.iter() if isinstance(el.tag, str) and etree.QName(el).localname == "備考"]
    remark.text = text
    return replace(spec, form_xml=etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intake", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_an_upgrade_seals_the_numbers_typed_into_forms_stored_before(
    env: dict[str, str], database_url: str, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    try:
        with sessions() as session:
            deliver(session, runtime, make_package(spec=_with_remark(spec, f"番号 {TYPED} を記入")))
            clean = replace(spec, receipt_number="20261125-0000000002", arrived_at=spec.arrived_at, kind="新規申請")
            deliver(session, runtime, make_package(spec=_with_remark(clean, "特になし")))
            # as the code before stored it: the typed number in the clear, no row for it
            [version] = session.scalars(select(ApplicationVersion).where(
                ApplicationVersion.receipt_number == spec.receipt_number)).all()
            assert TEXT_MASK in version.form_xml
            version.form_xml = version.form_xml.replace(TEXT_MASK, TYPED)
            session.execute(delete(MyNumberRow).where(MyNumberRow.source == TEXT))
            session.commit()
            version_id = version.id
            field_positions = sorted(session.scalars(select(MyNumberRow.position)
                                                     .where(MyNumberRow.version_id == version_id)))
        assert field_positions == [0, 1]  # the form's 個人番号 fields: the applicant's and the child's

        first = _cli(env, "mynumbers", "seal-typed", "--batch", "1")
        assert first.returncode == 0, first.stderr
        assert first.stdout == "2 version(s) read: 1 form(s) held a typed My Number, 1 sealed\n"
        again = _cli(env, "mynumbers", "seal-typed")
        assert again.stdout == "2 version(s) read: 0 form(s) held a typed My Number, 0 sealed\n"
        assert NUMBER not in first.stderr + again.stderr  # the log line carries counts only

        with sessions() as session:
            stored = session.get(ApplicationVersion, version_id)
            assert stored is not None
            assert f"番号 {TEXT_MASK} を記入" in stored.form_xml
            assert TYPED not in stored.form_xml
            row = session.scalar(select(MyNumberRow).where(MyNumberRow.version_id == version_id,
                                                           MyNumberRow.source == TEXT))
            assert row is not None
            assert (row.position, row.path.endswith("/備考/text()[1]"), row.valid_check_digit) == (2, True, True)
            assert reveal_my_number(session, actor=SUPERVISOR, version_id=version_id, position=2, reason="検査",
                                    at=NOW, sealer=runtime.my_number_sealer) == NUMBER
            session.rollback()
    finally:
        engine.dispose()


def test_the_batch_is_a_whole_number(env: dict[str, str]) -> None:
    refused = _cli(env, "mynumbers", "seal-typed", "--batch", "0")
    assert refused.returncode == 2
    assert "a whole number of 1 or more" in refused.stderr
