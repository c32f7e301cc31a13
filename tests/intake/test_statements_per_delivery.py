"""How many SQL statements one delivery sends (issue 19): a budget, counted, not timed.

Each statement is a round trip to the database inside the request's transaction; on a loaded
PostgreSQL server the round trips, not the Python work, are most of a delivery's time
(docs/benchmarks.md, "Intake deliveries"). A change that adds a query per attachment, per event or
per version (an N+1) shows here as a count over the budget, on both engines, before any benchmark.
The budgets are today's counts; lowering them is welcome, raising one needs a reason in the commit.
"""

from __future__ import annotations

import collections
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from intake.deliveries.service import DeliveryRequest, expected_key, store_once
from intake.models import ApplicationVersion, Attachment, VersionState
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from signature.testing.builder import Attachment as SpecAttachment
from tests.conftest import PackageFactory

#: statements for a 新規申請 opening its chain, and for a 補正 joining it (the chain's row is locked
#: and its versions re-read), by dialect. (Before the delivery's rows were written with Core and its
#: events in one statement: 25 and 31 on PostgreSQL, 28 and 33 on SQLite; before linkage on arrival
#: read the chain's admitted versions from memory and a new chain skipped deleting search keys it
#: cannot have: 23 and 28, 22 and 26.)
NEW_CHAIN = {"postgresql": 21, "sqlite": 20}
JOINING = {"postgresql": 27, "sqlite": 25}
#: statements per attachment on top. PostgreSQL inserts all of a version's attachments in one
#: statement (insertmanyvalues with RETURNING); SQLAlchemy inserts them one by one on SQLite, where a
#: statement is a call into the same process, not a round trip.
PER_ATTACHMENT = {"postgresql": 0, "sqlite": 1}


def count_statements(session: Session, runtime: Runtime, body: bytes) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    bind = session.get_bind()

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        counts[" ".join(statement.split()[:3])] += 1

    event.listen(bind, "before_cursor_execute", on_execute)
    try:
        with session.begin():
            store_once(session, runtime, DeliveryRequest(body, expected_key(body), "relay-test", None))
    finally:
        event.remove(bind, "before_cursor_execute", on_execute)
    return counts


@pytest.mark.parametrize("attachments", [1, 6], ids=["one-attachment", "six-attachments"])
def test_a_delivery_stays_within_its_statement_budget(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec, attachments: int,
) -> None:
    dialect = session.get_bind().dialect.name
    extra = tuple(SpecAttachment(f"添付{i}", f"add{i}.pdf", b"%PDF-1.4 " + bytes([i]) * 200)
                  for i in range(attachments - len(spec.attachments)))
    first = replace(spec, attachments=(*spec.attachments[:attachments], *extra))
    session.commit()  # the fixture's session may have begun a transaction: start clean
    opened = count_statements(session, runtime, make_package(spec=first))
    joining = count_statements(session, runtime, make_package(spec=replace(
        first, receipt_number="20261125-0000000002", kind="補正", first_receipt_number=first.receipt_number)))
    # Both were stored for real (the counts are of work done, not of a refusal) ...
    states = {v.receipt_number: v.state for v in session.scalars(select(ApplicationVersion))}
    assert states == {first.receipt_number: VersionState.SUPERSEDED, "20261125-0000000002": VersionState.CURRENT}
    assert len(session.scalars(select(Attachment)).all()) == 2 * attachments
    # ... and on PostgreSQL the number of attachments does not change the number of statements.
    assert sum(opened.values()) <= NEW_CHAIN[dialect] + PER_ATTACHMENT[dialect] * attachments, opened
    assert sum(joining.values()) <= JOINING[dialect] + PER_ATTACHMENT[dialect] * attachments, joining
