"""The persistent status workflow on SQLite and PostgreSQL: rules, scope, notices, arrival hooks."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.accesslog.service import verify_chain
from intake.applications.workflow import change_status, history_of, mark_reviewed
from intake.errors import InvalidRequest, NotFound
from intake.models import AccessLogRow, Application, Event, StatusNotice, StatusTransitionRow
from intake.runtime import Runtime
from signature.testing.builder import ApplicationSpec
from status import Action, CommentRequired, IllegalTransition, NotPermitted, Role, Status
from tests.conftest import NOW, PackageFactory
from tests.intake.conftest import Clock
from tests.intake.staffdata import CATALOGUE, OTHER_DEPT, deliver, principal

REVIEWER = principal(Role.REVIEWER)


@pytest.fixture
def app_id(session: Session, runtime: Runtime, make_package: PackageFactory) -> int:
    deliver(session, replace(runtime, procedures=CATALOGUE), make_package())
    app = session.scalar(select(Application))
    assert app is not None
    return app.id


def _step(session: Session, app_id: int, action: Action, comment: str = "", minutes: int = 1) -> None:
    change_status(session, application_id=app_id, action=action, actor=REVIEWER, comment=comment,
                  at=NOW + timedelta(minutes=minutes))
    session.commit()


def test_staff_path_with_a_correction_round(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec, app_id: int
) -> None:
    _step(session, app_id, Action.ACCEPT)
    _step(session, app_id, Action.START_REVIEW, minutes=2)
    _step(session, app_id, Action.REQUEST_CORRECTION, "口座の写しが不鮮明です", minutes=3)
    app = session.get(Application, app_id)
    assert app is not None
    assert (app.status, app.needs_review) == ("補正依頼", True)
    mark_reviewed(session, application_id=app_id, actor=REVIEWER, at=NOW + timedelta(minutes=4))
    session.commit()
    assert app.needs_review is False
    # The resident corrects: the chain is back in 審査中 and in the reviewer's queue, visibly.
    fix = replace(spec, receipt_number="20261125-0000000002", kind="補正", first_receipt_number=spec.receipt_number,
                  arrived_at=spec.arrived_at + timedelta(minutes=40))
    clock.now = fix.arrived_at + timedelta(minutes=1)  # the intake receives it after it arrived
    deliver(session, replace(runtime, procedures=CATALOGUE), make_package(spec=fix))
    session.refresh(app)
    assert (app.status, app.needs_review) == ("審査中", True)
    _step(session, app_id, Action.COMPLETE, minutes=90)
    rows = session.scalars(select(StatusTransitionRow).order_by(StatusTransitionRow.id)).all()
    assert [(r.action, r.target, r.actor_id) for r in rows] == [
        ("accept", "受付", "staff1"), ("start_review", "審査中", "staff1"),
        ("request_correction", "補正依頼", "staff1"), ("new_version", "審査中", "system"),
        ("complete", "完了", "staff1"),
    ]
    assert rows[2].comment == "口座の写しが不鮮明です"
    # Notices name the chain's current 受付番号 and carry nothing personal.
    notices = [(n.receipt_number, n.status) for n in session.scalars(select(StatusNotice).order_by(StatusNotice.id))]
    first = spec.receipt_number
    assert notices == [(first, "受付"), (first, "審査中"), (first, "補正依頼"),
                       (fix.receipt_number, "審査中"), (fix.receipt_number, "完了")]
    assert history_of(session, app).current is Status.COMPLETED
    assert (app.status, app.needs_review) == ("完了", False)
    events = session.scalars(select(Event).where(Event.kind == "status.changed").order_by(Event.id)).all()
    assert [e.detail["target"] for e in events] == ["受付", "審査中", "補正依頼", "審査中", "完了"]
    session.commit()  # access-log rows are written at commit
    actions = session.scalars(select(AccessLogRow.action).order_by(AccessLogRow.id)).all()
    assert actions == ["status.accept", "status.start_review", "status.request_correction", "application.reviewed",
                       "status.complete"]
    assert verify_chain(session) == []


def test_refusals_are_typed(session: Session, app_id: int) -> None:
    with pytest.raises(IllegalTransition):
        _step(session, app_id, Action.COMPLETE)
    with pytest.raises(NotPermitted):
        change_status(session, application_id=app_id, action=Action.ACCEPT, actor=principal(Role.VIEWER),
                      comment="", at=NOW)
    _step(session, app_id, Action.ACCEPT)
    with pytest.raises(CommentRequired):
        _step(session, app_id, Action.REJECT, "  ")
    _step(session, app_id, Action.START_REVIEW)
    with pytest.raises(NotPermitted):  # NEW_VERSION is the intake's own action
        _step(session, app_id, Action.NEW_VERSION)
    with pytest.raises(InvalidRequest):
        change_status(session, application_id=app_id, action=Action.COMPLETE, actor=REVIEWER, comment="",
                      at=NOW.replace(tzinfo=None))
    session.rollback()
    assert session.scalars(select(StatusTransitionRow.action)).all() == ["accept", "start_review"]


@pytest.mark.parametrize("actor", [
    principal(Role.REVIEWER, department=OTHER_DEPT),
    principal(Role.DEPARTMENT_ADMIN, department=OTHER_DEPT),
    principal(Role.AUDITOR),
    principal(Role.SYSTEM_ADMIN),
], ids=["other-dept-reviewer", "other-dept-admin", "auditor", "system-admin"])
def test_out_of_scope_looks_like_missing(session: Session, app_id: int, actor: object) -> None:
    for target in (app_id, app_id + 1000):
        with pytest.raises(NotFound):
            change_status(session, application_id=target, action=Action.ACCEPT, actor=actor,  # type: ignore[arg-type]
                          comment="", at=NOW)
    assert session.scalars(select(StatusTransitionRow)).all() == []


def test_withdrawal_package_withdraws_an_open_chain(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec, app_id: int
) -> None:
    _step(session, app_id, Action.ACCEPT)
    wd = replace(spec, receipt_number="20261125-0000000009", kind="取下げ", first_receipt_number=spec.receipt_number,
                 arrived_at=spec.arrived_at + timedelta(minutes=10))
    deliver(session, replace(runtime, procedures=CATALOGUE), make_package(spec=wd))
    app = session.get(Application, app_id)
    assert app is not None
    session.refresh(app)
    assert app.status == "取下げ"
    last = session.scalars(select(StatusNotice).order_by(StatusNotice.id.desc())).first()
    assert last is not None
    assert (last.receipt_number, last.status) == (wd.receipt_number, "取下げ")
    with pytest.raises(IllegalTransition):
        _step(session, app_id, Action.START_REVIEW)


def test_new_version_before_review_changes_no_status(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec, app_id: int
) -> None:
    _step(session, app_id, Action.ACCEPT)
    re = replace(spec, receipt_number="20261125-0000000003", kind="再申請", first_receipt_number=spec.receipt_number,
                 arrived_at=spec.arrived_at + timedelta(minutes=10))
    deliver(session, replace(runtime, procedures=CATALOGUE), make_package(spec=re))
    app = session.get(Application, app_id)
    assert app is not None
    session.refresh(app)
    assert (app.status, app.needs_review) == ("受付", True)
    assert session.scalars(select(StatusTransitionRow.action)).all() == ["accept"]


def test_withdrawal_after_completion_keeps_the_final_status(
    session: Session, runtime: Runtime, make_package: PackageFactory, spec: ApplicationSpec, app_id: int
) -> None:
    for i, action in enumerate((Action.ACCEPT, Action.START_REVIEW, Action.COMPLETE)):
        _step(session, app_id, action, minutes=i + 1)
    wd = replace(spec, receipt_number="20261125-0000000004", kind="取下げ", first_receipt_number=spec.receipt_number,
                 arrived_at=spec.arrived_at + timedelta(minutes=10))
    deliver(session, replace(runtime, procedures=CATALOGUE), make_package(spec=wd))
    app = session.get(Application, app_id)
    assert app is not None
    session.refresh(app)
    assert app.status == "完了"
