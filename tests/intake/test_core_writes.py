"""A delivery's rows written with Core outside the unit of work (docs/decisions.md, "Core for a
delivery's writes"): the objects callers get behave as if loaded, a rolled-back savepoint takes its
objects with it, and the batched events keep their order.

Real databases (both engines), real deliveries; statements are counted, never timed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from intake.db import insert_loaded, rows_inserted
from intake.deliveries.service import DeliveryRequest, expected_key, store_once
from intake.events import events_batched, write_event
from intake.models import Application, ApplicationVersion, Delivery, Event, SignerIdentityRow
from intake.runtime import Runtime
from tests.conftest import PackageFactory

AT = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


@contextmanager
def statements(session: Session) -> Iterator[list[str]]:
    sent: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split()[:3]))

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", on_execute)
    try:
        yield sent
    finally:
        event.remove(bind, "before_cursor_execute", on_execute)


def delivery_values(key: str) -> dict[str, Any]:
    return {"idempotency_key": key, "sha256": "0" * 64, "size": 1, "receipt_number": None, "package": b"x",
            "received_at": AT, "client_id": "test", "relay_report": None, "scan_report": None,
            "malware_flagged": False, "awaiting_revocation": False, "judged_with": None}


def test_an_inserted_row_is_an_object_as_if_loaded(session: Session) -> None:
    with session.begin():
        with statements(session) as sent:
            delivery = insert_loaded(session, Delivery, delivery_values("k1"))
        assert sent == ["INSERT INTO deliveries"]  # one statement, nothing read back
        assert delivery in session
        assert not session.new
        assert not session.dirty
        with statements(session) as sent:
            assert (delivery.idempotency_key, delivery.client_id, delivery.received_at) == ("k1", "test", AT)
            assert session.get(Delivery, delivery.id) is delivery  # the identity map holds it
        assert sent == []
        delivery.client_id = "changed"  # a change is an UPDATE at the next flush, like any loaded object
        with statements(session) as sent:
            session.flush()
        assert sent == ["UPDATE deliveries SET"]
    session.expunge_all()
    assert session.scalar(select(Delivery.client_id).where(Delivery.idempotency_key == "k1")) == "changed"


def test_every_column_must_be_given(session: Session) -> None:
    values = delivery_values("k2")
    del values["judged_with"]
    with statements(session) as sent, pytest.raises(ValueError, match="judged_with"):
        insert_loaded(session, Delivery, values)
    assert sent == []


def test_a_rolled_back_savepoint_takes_its_objects_along(session: Session) -> None:
    with session.begin():
        kept = insert_loaded(session, Delivery, delivery_values("kept"))
        inserted: list[Delivery] = []

        def refused_after_the_insert() -> None:
            with rows_inserted(session), session.begin_nested():
                inserted.append(insert_loaded(session, Delivery, delivery_values("gone")))
                raise RuntimeError("refused after the insert")

        with pytest.raises(RuntimeError):
            refused_after_the_insert()
        (gone,) = inserted
        # Without rows_inserted the object would stay in the identity map as if its row existed.
        assert gone not in session
        assert kept in session
    assert session.scalars(select(Delivery.idempotency_key)).all() == ["kept"]


def test_batched_events_are_one_statement_in_order_and_dropped_on_error(session: Session) -> None:
    with session.begin():
        with statements(session) as sent, events_batched(session):
            for kind in ("a.first", "b.second", "c.third"):
                write_event(session, kind, at=AT, n=kind[0])
            assert sent == []  # nothing before the end of the batch
        assert len(sent) == 1
        assert sent[0].startswith("INSERT INTO events")

        def refused_after_an_event() -> None:
            with events_batched(session):
                write_event(session, "d.dropped", at=AT)
                raise RuntimeError("refused")

        with pytest.raises(RuntimeError):
            refused_after_an_event()
    rows = session.execute(select(Event.kind, Event.detail).order_by(Event.id)).all()
    assert [tuple(r) for r in rows] == [("a.first", {"n": "a"}), ("b.second", {"n": "b"}), ("c.third", {"n": "c"})]


def test_a_stored_delivery_s_objects_are_linked_as_the_unit_of_work_would(
    session: Session, runtime: Runtime, make_package: PackageFactory,
) -> None:
    body = make_package()
    with session.begin():
        receipt = store_once(session, runtime, DeliveryRequest(body, expected_key(body), "relay-test", None))
        app = session.scalar(select(Application))
        assert app is not None
        (version,) = app.versions
        assert version.application is app
        assert version.delivery_id == receipt.delivery_id
        assert version.receipt_number == receipt.receipt_number
        assert version.admitted_at is not None  # what admission changed on the object is there
        assert isinstance(version.signer, SignerIdentityRow)
        assert version.signer.version is version
        assert not session.new
        assert not session.dirty
    session.expunge_all()  # and the database holds what the objects said
    stored = session.scalar(select(ApplicationVersion))
    assert stored is not None
    assert stored.admitted_at is not None
    assert stored.signer is not None
    assert session.scalar(select(func.count()).select_from(SignerIdentityRow)) == 1
    delivery = session.get(Delivery, receipt.delivery_id)
    assert delivery is not None
    assert delivery.sha256 == receipt.sha256
