"""One stored form that the hardened parser refuses must not stop ``mynumbers seal-typed`` for good
(in 6be0648 every run started again from the first version and died at the same one, so the forms
stored after it kept their typed My Numbers in the clear).

A form can be stored unparseable: ［個人番号］ is 18 bytes of UTF-8 where 12 digits stood, so a form
near the 10 MB limit grows past it (test_typed_my_numbers_hostile.py::test_a_masked_form_still_parses),
and serialisation escapes (``>`` → ``&gt;``) grow a form too.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import delete, select

from intake.db import make_engine, make_session_factory
from intake.models import ApplicationVersion, MyNumberRow
from intake.mynumbers.service import TEXT, TEXT_MASK, seal_typed_numbers
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from signature.xmlparse import DEFAULT_MAX_XML_BYTES
from tests.conftest import PackageFactory
from tests.intake.staffdata import deliver
from tests.intake.test_seal_typed_numbers import TYPED, _with_remark


def test_seal_typed_goes_past_a_form_it_cannot_read(
    env: dict[str, str], database_url: str, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    try:
        with sessions() as session:
            big = replace(spec, receipt_number="20261125-0000000002", kind="新規申請")
            deliver(session, runtime, make_package(spec=_with_remark(big, "特になし")))
            deliver(session, runtime, make_package(spec=_with_remark(spec, f"番号 {TYPED} を記入")))
            unreadable, typed = session.scalars(select(ApplicationVersion).order_by(ApplicationVersion.id)).all()
            # the first as a stored form the parser refuses (over its byte limit)
            unreadable.form_xml = "<様式>" + "<余白>x</余白>" * (DEFAULT_MAX_XML_BYTES // 17) + "</様式>"
            # the second as the code before stored it: the typed number in the clear
            typed.form_xml = typed.form_xml.replace(TEXT_MASK, TYPED)
            session.execute(delete(MyNumberRow).where(MyNumberRow.source == TEXT))
            session.commit()
            typed_id = typed.id

        done = list(seal_typed_numbers(sessions, runtime.my_number_sealer, batch=1))[-1]
        assert (done.examined, done.masked, done.sealed, done.unreadable) == (2, 1, 1, 1)

        with sessions() as session:
            stored = session.get(ApplicationVersion, typed_id)
            assert stored is not None
            assert TYPED not in stored.form_xml
    finally:
        engine.dispose()
