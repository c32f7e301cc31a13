"""Casework services on SQLite and PostgreSQL: hand-over, internal notes (never leaving the intake),
bulk status change (each case as one by one), 標準処理期間 (due dates, the clock stopped during
補正依頼, overdue — the dashboard and the mail agree), and the person search (髙/高, 𠮷/吉, width,
phone, birth date in 和暦) — access-logged without the search text."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.accesslog.service import verify_chain
from intake.applications import casework
from intake.applications.dashboard import dashboard
from intake.applications.errors import BulkTooLarge, NotAColleague, NoteInvalid
from intake.applications.listing import ListFilters, list_applications
from intake.applications.workflow import change_status
from intake.errors import AccessDenied
from intake.forwarding.payload import build_payload
from intake.forwarding.routes import parse_routes
from intake.jst import JST
from intake.mail.config import load_mail_config
from intake.mail.counting import build_report
from intake.models import AccessLogRow, Application, CaseNote, SignerIdentityRow, StaffUser, StatusNotice
from intake.procedures import Procedure, ProcedureCatalogue
from intake.runtime import Runtime
from intake.settings import IntakeSettings, MailSettings
from intake.wareki import format_date
from signature.testing.builder import ApplicationSpec
from status import Action, Role
from tests.conftest import NOW, PackageFactory, World
from tests.intake.staffdata import OTHER_DEPT, OTHER_PROCEDURE, OWN_DEPT, OWN_PROCEDURE, deliver, principal

#: the staff test catalogue with a 標準処理期間 of 10 business days for the own procedure
CATALOGUE = ProcedureCatalogue({
    OWN_PROCEDURE: Procedure(OWN_PROCEDURE, "児童手当 認定請求", OWN_DEPT, "子ども家庭課", standard_days=10),
    OTHER_PROCEDURE: Procedure(OTHER_PROCEDURE, "戸籍証明書の請求", OTHER_DEPT, "区民課"),
}, configured=True)
REVIEWER = replace(principal(Role.REVIEWER, login="tanaka"), catalogue=CATALOGUE)
VIEWER = replace(principal(Role.VIEWER, login="viewer1"), catalogue=CATALOGUE)


def _staff(session: Session, login: str, roles: list[str], dept: str, *, active: bool = True) -> None:
    session.add(StaffUser(login=login, display_name=login, roles=roles, departments=[dept], created_at=NOW,
                          active=active))


@pytest.fixture
def settings(world: World, tmp_path: Path) -> IntakeSettings:
    """A CRL folder of the module's own: a test that runs a later day publishes that day's CRLs there."""
    crl_dir = tmp_path / "crls"
    shutil.copytree(world.crl_dir, crl_dir)
    return IntakeSettings(var_dir=tmp_path / "var", jpki_roots=[world.jpki_roots], portal_roots=[world.portal_roots],
                          crls=[crl_dir], jpki_intermediates=[world.intermediates])


def _publish_crls(world: World, rt: Runtime, *, this_update: datetime, next_update: datetime) -> None:
    """J-LIS's CRLs of a later day (nobody revoked), in use from ``this_update``."""
    (crl_dir,) = rt.settings.crls
    for i, root in enumerate(world.pki.jpki_roots):
        (crl_dir / f"jpki-g{i + 1}.crl").write_bytes(
            world.pki.issue_crl(root, [], this_update=this_update, next_update=next_update))
    (crl_dir / "jpki-intermediate.crl").write_bytes(
        world.pki.issue_crl(world.pki.jpki_intermediate, [], this_update=this_update, next_update=next_update))
    store = rt.trust.revocation
    assert store is not None
    assert store.refresh(at=this_update) is True


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    return replace(runtime, procedures=CATALOGUE)


def _deliver(session: Session, rt: Runtime, make_package: PackageFactory, spec: ApplicationSpec, n: int, *,
             minutes: int = 0, **applicant: str) -> int:
    receipt = f"20261125-{n:010d}"
    one = replace(spec, receipt_number=receipt, arrived_at=spec.arrived_at + timedelta(minutes=minutes),
                  applicant=replace(spec.applicant, **applicant))
    deliver(session, rt, make_package(spec=one))
    app_id = session.scalar(select(Application.id).where(Application.first_receipt_number == receipt))
    assert app_id is not None
    return app_id


def test_hand_over_to_a_colleague_of_the_department(
    session: Session, rt: Runtime, make_package: PackageFactory, spec: ApplicationSpec
) -> None:
    app_id = _deliver(session, rt, make_package, spec, 1)
    _staff(session, "suzuki", ["reviewer"], OWN_DEPT)
    _staff(session, "sato", ["reviewer"], OTHER_DEPT)
    _staff(session, "yamada", ["viewer"], OWN_DEPT)
    _staff(session, "kato", ["reviewer"], OWN_DEPT, active=False)
    session.commit()
    assert casework.hand_over(session, REVIEWER, app_id, to_login="suzuki", message="電話で申請者に確認中",
                              at=NOW) == "suzuki"
    session.commit()
    app = session.get(Application, app_id)
    assert app is not None
    assert app.assigned_to == "suzuki"
    # the colleague finds it under 自分の担当
    suzuki = replace(REVIEWER, login="suzuki")
    mine = list_applications(session, suzuki, ListFilters(assigned="me"), page_size=50, at=NOW)
    assert [r.id for r in mine.rows] == [app_id]
    note = session.scalar(select(CaseNote))
    assert note is not None
    assert (note.author, note.body) == ("tanaka", "【引継ぎ】電話で申請者に確認中")
    row = session.scalar(select(AccessLogRow).where(AccessLogRow.action == "application.assign"))
    assert row is not None
    assert (row.staff_id, row.reason) == ("tanaka", "引継ぎ: - → suzuki")
    for who in ("sato", "yamada", "kato", "nobody"):  # other department, not a case worker, inactive, unknown
        with pytest.raises(NotAColleague):
            casework.hand_over(session, REVIEWER, app_id, to_login=who, message="", at=NOW)
        session.rollback()
    with pytest.raises(AccessDenied):
        casework.hand_over(session, VIEWER, app_id, to_login="suzuki", message="", at=NOW)


def test_internal_notes_never_leave_the_intake(
    session: Session, rt: Runtime, make_package: PackageFactory, spec: ApplicationSpec, tmp_path: Path
) -> None:
    app_id = _deliver(session, rt, make_package, spec, 1)
    canary = "内部メモCANARY-9f2: 申請者の勤務先に在籍確認済み"
    note = casework.add_note(session, REVIEWER, app_id, body=f"  {canary}  ", at=NOW)
    change_status(session, application_id=app_id, action=Action.ACCEPT, actor=REVIEWER, comment="受け付けました",
                  at=NOW + timedelta(minutes=1))
    session.commit()
    assert note.body == canary
    assert [n.body for n in casework.notes_of(session, app_id)] == [canary]
    logged = session.scalar(select(AccessLogRow).where(AccessLogRow.action == "application.note"))
    assert logged is not None
    assert logged.subject == f"application:{app_id}:note:{note.id}"
    assert canary not in (logged.reason or "")  # the note is its own record, not copied into the log
    # not in the portal notice, not in the business system's payload, not in the daily mail
    notices = session.scalars(select(StatusNotice)).all()
    assert [n.comment for n in notices] == ["受け付けました"]
    app = session.get(Application, app_id)
    assert app is not None
    version = app.versions[0]
    route = parse_routes({"routes": [{"name": "r", "procedures": ["*"], "kind": "file", "target": str(tmp_path),
                                      "format": "json", "my_number_entitled": True}]}, base_dir=tmp_path)[0]
    payload = build_payload(session, rt, version_id=version.id, idempotency_key="k", route=route, at=NOW)
    assert canary.encode() not in payload.body
    assert "勤務先".encode() not in payload.body
    settings = IntakeSettings(var_dir=rt.settings.var_dir, mail=MailSettings())
    config = load_mail_config(settings, CATALOGUE)
    report = build_report(session, config, config.departments[0], NOW.date(), as_of=NOW)
    assert canary not in repr(report)
    for bad in ("", "   ", "あ" * (casework.NOTE_MAX_CHARS + 1)):
        with pytest.raises(NoteInvalid):
            casework.add_note(session, REVIEWER, app_id, body=bad, at=NOW)
    with pytest.raises(AccessDenied):
        casework.add_note(session, VIEWER, app_id, body="見ただけ", at=NOW)


def test_bulk_change_is_each_case_as_one_by_one(
    session: Session, rt: Runtime, make_package: PackageFactory, spec: ApplicationSpec
) -> None:
    ids = [_deliver(session, rt, make_package, spec, n, minutes=n) for n in range(1, 7)]
    other = replace(spec, receipt_number="20261125-0000000050", procedure_id=OTHER_PROCEDURE,
                    procedure_name="戸籍証明書の請求")
    deliver(session, rt, make_package(spec=other))
    other_id = session.scalar(select(Application.id).where(Application.procedure_id == OTHER_PROCEDURE))
    assert other_id is not None
    change_status(session, application_id=ids[5], action=Action.ACCEPT, actor=REVIEWER, comment="", at=NOW)
    change_status(session, application_id=ids[5], action=Action.REJECT, actor=REVIEWER, comment="要件外", at=NOW)
    session.commit()
    before = session.scalar(select(AccessLogRow.id).order_by(AccessLogRow.id.desc()).limit(1))
    result = casework.bulk_change(session, REVIEWER, [*ids, other_id, ids[0]], action=Action.ACCEPT, comment="",
                                  at=NOW + timedelta(minutes=5))
    session.commit()
    assert result.done == 5
    assert [(i.application_id, i.code) for i in result.refused] == [(ids[5], "ILLEGAL_TRANSITION"),
                                                                     (other_id, "NOT_FOUND")]
    assert result.refused[1].receipt_number is None  # out of scope: not even its 受付番号
    statuses = {a.id: a.status for a in session.scalars(select(Application))}
    assert [statuses[i] for i in ids] == ["受付"] * 5 + ["却下"]
    assert statuses[other_id] == "到達"
    rows = session.scalars(select(AccessLogRow).where(AccessLogRow.id > (before or 0))).all()
    assert sorted(r.subject for r in rows if r.action == "status.accept") == sorted(
        f"application:{i}" for i in ids[:5])  # one row per case, as if done one by one
    accepted = session.scalars(select(StatusNotice).where(StatusNotice.status == "受付")).all()
    assert len(accepted) == 6  # these 5, and ids[5] before its 却下
    assert verify_chain(session) == []
    # 却下 needs a comment (to the resident) for each case
    refused = casework.bulk_change(session, REVIEWER, ids[:2], action=Action.REJECT, comment="",
                                   at=NOW + timedelta(minutes=6))
    assert [i.code for i in refused.items] == ["COMMENT_REQUIRED", "COMMENT_REQUIRED"]
    with pytest.raises(BulkTooLarge):
        casework.bulk_change(session, REVIEWER, list(range(1, casework.BULK_LIMIT + 2)), action=Action.ACCEPT,
                             comment="", at=NOW)
    with pytest.raises(AccessDenied):
        casework.bulk_change(session, VIEWER, ids, action=Action.ACCEPT, comment="", at=NOW)


def test_due_date_stops_during_a_correction_and_overdue_is_the_same_everywhere(
    session: Session, rt: Runtime, make_package: PackageFactory, spec: ApplicationSpec, world: World
) -> None:
    app_id = _deliver(session, rt, make_package, spec, 1)  # arrived Wed 2026-11-25 11:30 JST
    app = session.get(Application, app_id)
    assert app is not None
    # 10 business days after Wed 11/25 (初日不算入): 11/26 … 12/9 (Wed)
    assert app.due_on == date(2026, 12, 9)
    # 補正依頼 on Thu 11/26; the 補正 arrives on Wed 12/2: 4 business days stood still (11/27, 11/30, 12/1, 12/2)
    change_status(session, application_id=app_id, action=Action.ACCEPT, actor=REVIEWER, comment="", at=NOW)
    change_status(session, application_id=app_id, action=Action.START_REVIEW, actor=REVIEWER, comment="", at=NOW)
    asked = datetime(2026, 11, 26, 10, tzinfo=JST)
    change_status(session, application_id=app_id, action=Action.REQUEST_CORRECTION, actor=REVIEWER,
                  comment="口座の写しを添付してください", at=asked)
    session.commit()
    assert app.clock_stopped_at is not None
    fix = replace(spec, receipt_number="20261202-0000000002", kind="補正", first_receipt_number=spec.receipt_number,
                  arrived_at=datetime(2026, 12, 2, 9, tzinfo=JST))
    # The 補正 is admitted (its signature passes with the CRLs of its day), so the clock runs again.
    _publish_crls(world, rt, this_update=datetime(2026, 12, 2, 8, tzinfo=JST),
                  next_update=datetime(2026, 12, 4, 8, tzinfo=JST))
    deliver(session, replace(rt, clock=lambda: datetime(2026, 12, 2, 9, 5, tzinfo=JST)), make_package(spec=fix))
    session.refresh(app)
    assert (app.status, app.clock_stopped_at, app.due_on) == ("審査中", None, date(2026, 12, 15))
    # overdue on 12/16: the list, the dashboard and the mail say the same
    later = datetime(2026, 12, 16, 9, tzinfo=JST)
    listed = list_applications(session, REVIEWER, ListFilters(overdue=True), page_size=50, at=later)
    assert [r.id for r in listed.rows] == [app_id]
    assert list_applications(session, REVIEWER, ListFilters(overdue=True), page_size=50,
                             at=datetime(2026, 12, 15, 17, tzinfo=JST)).rows == []
    board = dashboard(session, REVIEWER, at=later)
    assert board is not None
    assert board.overdue == 1
    settings = IntakeSettings(var_dir=rt.settings.var_dir, mail=MailSettings())
    config = load_mail_config(settings, CATALOGUE)
    report = build_report(session, config, config.departments[0], date(2026, 12, 15), as_of=later)
    assert report.open_total.overdue == board.overdue
    assert (report.open_total.unreviewed, report.open_total.unlinked, report.open_total.signature_errors,
            report.open_total.failed_forwards) == (board.my_queue, board.unlinked, board.signature_errors,
                                                   board.failed_forwards)


def test_person_search_folds_variants_width_and_eras(
    session: Session, rt: Runtime, make_package: PackageFactory, spec: ApplicationSpec
) -> None:
    takahashi = _deliver(session, rt, make_package, spec, 1, name="髙橋　花子", name_kana="タカハシ　ハナコ",
                         phone="090-1234-5678")
    yoshida = _deliver(session, rt, make_package, spec, 2, minutes=1, name="𠮷田　太郎", name_kana="ヨシダ　タロウ",
                       phone="03-0000-1111")
    session.commit()

    def found(**kwargs: object) -> set[int]:
        page = list_applications(session, REVIEWER, ListFilters(**kwargs), page_size=50, at=NOW)  # type: ignore[arg-type]
        return {r.id for r in page.rows}

    assert found(name="高橋") == {takahashi}
    assert found(name="髙橋 花") == {takahashi}
    assert found(name="たかはし") == {takahashi}
    assert found(name="ﾀｶﾊｼ") == {takahashi}
    assert found(name="吉田") == {yoshida}
    assert found(name="𠮷田太郎") == {yoshida}
    assert found(name="花子") == set()  # a prefix of the name, not anywhere in it
    assert found(name="%") == set()
    assert found(phone="０９０（１２３４）５６７８") == {takahashi}
    assert found(phone="+81 90 1234 5678") == {takahashi}
    assert found(phone="1234") == set()
    birth = session.scalar(select(SignerIdentityRow.birth_date).limit(1))
    assert birth is not None
    assert found(birth=birth) == {takahashi, yoshida}  # the same signer
    assert found(birth=birth + timedelta(days=1)) == set()
    rows = {r.id: r for r in list_applications(session, REVIEWER, ListFilters(), page_size=50, at=NOW).rows}
    assert rows[takahashi].applicant_name == "髙橋　花子"  # as written
    # who searched is logged, what they typed is not (access-log rows are written at the commit)
    session.commit()
    logged = session.scalars(select(AccessLogRow).where(AccessLogRow.action == "application.search")).all()
    assert {r.subject for r in logged} == {"search:name", "search:phone", "search:birth"}
    text = " ".join(f"{r.subject} {r.reason} {r.atena_number}" for r in session.scalars(select(AccessLogRow)))
    for typed in ("高橋", "髙橋", "たかはし", "吉田", "090", "1234", birth.isoformat(), format_date(birth)):
        assert typed not in text
    # the list page itself is a logged read (it shows names), without names
    listed = session.scalars(select(AccessLogRow).where(AccessLogRow.action == "application.list")).all()
    assert listed
    assert all("花子" not in r.subject for r in listed)
