"""宛名番号 linkage on SQLite and PostgreSQL: import (full, delta, idempotent, all or nothing),
resolution on arrival and after imports, validity on the arrival day, renewed cards, conflicts,
manual setting with an access-log row, and the staff queue."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from intake.accesslog.service import verify_chain
from intake.authz import SET_ATENA_PERMISSION, Actor
from intake.db import make_session_factory
from intake.deliveries.service import expected_key, store_delivery
from intake.errors import IntakeError, NotFound, ReasonRequired
from intake.linkage.errors import InvalidAtenaNumber, LinkagePermissionDenied
from intake.linkage.importer import ImportResult, Mode, import_linkage, import_linkage_file
from intake.linkage.service import list_unresolved, set_atena_manually
from intake.models import (
    AccessLogRow,
    Application,
    Event,
    LinkageDecision,
    LinkageEntry,
    LinkageImport,
    LinkageState,
)
from intake.runtime import Runtime
from portal_sim import linkage as sim
from portal_sim.datadir import ResidentRecord, UserCert
from signature.testing.builder import ApplicationSpec
from tests.conftest import JST, NOW, PackageFactory, World
from tests.intake.conftest import Clock

SERIAL = "1A2B3C4D5E6F"  # the spec fixture's user_cert_serial
OTHER = "FEDCBA987654"
ATENA = "0000012345"
ATENA_2 = "0000067890"
CREATED = datetime(2026, 11, 25, 0, 0, tzinfo=JST)
STAFF = Actor("staff-0042", "子ども家庭課", "term-07", frozenset({SET_ATENA_PERMISSION}))


def link(
    serial: str = SERIAL, atena: str = ATENA, valid_from: date = date(2025, 4, 1), valid_to: date = date(2030, 3, 31),
    *, category: sim.Category = sim.Category.FULL, revoked_at: datetime | None = None, created: datetime = CREATED,
) -> sim.LinkageRow:
    return sim.LinkageRow(serial, atena, valid_from, valid_to, revoked_at, category, created)


def run_import(session: Session, clock: Clock, *rows: sim.LinkageRow, mode: Mode = "auto") -> ImportResult:
    result = import_linkage(session, sim.to_csv(rows), file_name="linkage.csv", at=clock(), mode=mode)
    session.commit()
    return result


def deliver(session: Session, runtime: Runtime, body: bytes) -> Application:
    store_delivery(session, runtime, body=body, key=expected_key(body), client_id="relay-test", relay_report=None)
    session.commit()
    app = session.scalars(select(Application).order_by(Application.updated_at.desc(), Application.id.desc())).first()
    assert app is not None
    return app


def decisions(session: Session, app: Application) -> list[LinkageDecision]:
    return list(session.scalars(select(LinkageDecision).where(LinkageDecision.application_id == app.id)
                                .order_by(LinkageDecision.id)))


def active_entries(session: Session) -> set[tuple[str, str, date | None, date | None]]:
    return {(e.cert_serial, e.atena_number, e.valid_from, e.valid_to)
            for e in session.scalars(select(LinkageEntry).where(LinkageEntry.active.is_(True)))}


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


# -- resolution ----------------------------------------------------------------------------------

def test_full_import_then_arrival_resolves_on_arrival(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory,
) -> None:
    result = run_import(session, clock, link(), link(OTHER, ATENA_2))
    assert (result.ok, result.mode, result.rows, result.added, result.resolved) == (True, "full", 2, 2, 0)
    app = deliver(session, runtime, make_package())
    assert (app.linkage_state, app.atena_number) == (LinkageState.AUTO, ATENA)
    [decision] = decisions(session, app)
    assert (decision.state, decision.atena_number, decision.import_id) == (LinkageState.AUTO, ATENA, result.import_id)
    assert decision.staff_id is None
    assert decision.reason is not None
    assert decision.reason.startswith("arrival of 20261125-0000000001")
    assert list_unresolved(session) == []


def test_arrival_before_import_waits_then_a_later_import_resolves_it(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    app = deliver(session, runtime, make_package())
    assert (app.linkage_state, app.atena_number) == (LinkageState.UNRESOLVED, None)
    [queued] = list_unresolved(session)
    assert (queued.application_id, queued.first_receipt_number, queued.linkage_state) == (
        app.id, spec.receipt_number, LinkageState.UNRESOLVED)
    assert queued.last_reason is not None
    assert "no linkage entry" in queued.last_reason

    clock.now = NOW + timedelta(days=1)
    result = run_import(session, clock, link())
    assert (result.resolved, result.waiting) == (1, 0)
    session.refresh(app)
    assert (app.linkage_state, app.atena_number) == (LinkageState.AUTO, ATENA)
    first, second = decisions(session, app)
    assert (first.state, first.import_id) == (LinkageState.UNRESOLVED, None)
    assert (second.state, second.atena_number, second.import_id, second.at) == (
        LinkageState.AUTO, ATENA, result.import_id, clock.now)
    assert second.reason is not None
    assert second.reason.startswith(f"import {result.import_id}")
    imp = session.get(LinkageImport, result.import_id)
    assert imp is not None
    assert (imp.mode, imp.rows, imp.resolved, imp.imported_at) == ("full", 1, 1, clock.now)
    assert list_unresolved(session) == []


def test_auto_link_survives_its_entry_leaving_a_later_full_file(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory,
) -> None:
    run_import(session, clock, link(), link(OTHER, ATENA_2))
    app = deliver(session, runtime, make_package())
    result = run_import(session, clock, link(OTHER, ATENA_2, created=CREATED + timedelta(days=1)))
    assert result.deactivated == 1
    session.refresh(app)
    assert (app.linkage_state, app.atena_number) == (LinkageState.AUTO, ATENA)
    assert len(decisions(session, app)) == 1


# -- import: idempotent, full, delta, all or nothing ----------------------------------------------

def test_the_same_file_twice_is_a_reported_noop(session: Session, clock: Clock, tmp_path: Path) -> None:
    path = tmp_path / "linkage-20261125.csv"
    path.write_bytes(sim.to_csv([link(), link(OTHER, ATENA_2)]))
    first = import_linkage_file(session, path, at=clock())
    session.commit()
    entries = active_entries(session)
    clock.now = NOW + timedelta(hours=1)
    second = import_linkage_file(session, path, at=clock(), mode="full")
    session.commit()
    assert (first.ok, first.duplicate, first.added) == (True, False, 2)
    assert (second.ok, second.duplicate, second.import_id, second.added) == (True, True, first.import_id, 0)
    assert second.file_sha256 == first.file_sha256
    assert "already imported" in second.summary()
    assert count(session, LinkageImport) == 1
    assert count(session, LinkageEntry) == 2
    assert active_entries(session) == entries
    imp = session.get(LinkageImport, first.import_id)
    assert imp is not None
    assert imp.file_name == path.name


def test_full_import_replaces_the_active_set_and_keeps_unchanged_entries(session: Session, clock: Clock) -> None:
    run_import(session, clock, link(), link(OTHER, ATENA_2), link("ABC", "0000000003"))
    kept_id = session.scalar(select(LinkageEntry.id).where(LinkageEntry.cert_serial == SERIAL))
    later = CREATED + timedelta(days=1)
    result = run_import(session, clock, link(created=later), link("ABC", "0000000003", valid_to=date(2026, 12, 31),
                                                                    created=later))
    assert (result.added, result.deactivated) == (1, 2)
    assert active_entries(session) == {(SERIAL, ATENA, date(2025, 4, 1), date(2030, 3, 31)),
                                       ("ABC", "0000000003", date(2025, 4, 1), date(2026, 12, 31))}
    assert session.scalar(select(LinkageEntry.id).where(LinkageEntry.cert_serial == SERIAL,
                                                        LinkageEntry.active.is_(True))) == kept_id
    assert count(session, LinkageEntry) == 4  # nothing deleted: inactive rows are history


def test_delta_adds_changes_and_deletes(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory,
) -> None:
    run_import(session, clock, link("AAAA", "0000000001"), link("BBBB", "0000000002"))
    later = CREATED + timedelta(days=1)
    revoked = datetime(2026, 11, 25, 8, 0, tzinfo=JST)
    result = run_import(
        session, clock,
        link(SERIAL, ATENA, date(2026, 11, 1), date(2031, 10, 31), category=sim.Category.ADDED, created=later),
        link("AAAA", "0000000001", date(2025, 4, 1), date(2026, 11, 25), category=sim.Category.CHANGED,
             revoked_at=revoked, created=later),
        link("BBBB", "0000000002", category=sim.Category.DELETED, created=later),
    )
    assert (result.mode, result.rows, result.added, result.deactivated, result.notices) == ("delta", 3, 2, 2, ())
    assert active_entries(session) == {
        (SERIAL, ATENA, date(2026, 11, 1), date(2031, 10, 31)),
        ("AAAA", "0000000001", date(2025, 4, 1), date(2026, 11, 25)),
    }
    app = deliver(session, runtime, make_package())
    assert (app.linkage_state, app.atena_number) == (LinkageState.AUTO, ATENA)


def test_delta_rows_that_match_nothing_are_noticed_by_line(session: Session, clock: Clock) -> None:
    result = run_import(
        session, clock,
        link("CCCC", "0000000001", category=sim.Category.CHANGED),
        link("DDDD", "0000000002", category=sim.Category.DELETED),
    )
    assert result.ok
    assert [n.line for n in result.notices] == [2, 3]
    assert active_entries(session) == {("CCCC", "0000000001", date(2025, 4, 1), date(2030, 3, 31))}
    assert "line 2" in result.summary()


def test_a_line_can_carry_both_kinds_of_notice(session: Session, clock: Clock) -> None:
    result = run_import(
        session, clock,
        link(SERIAL, ATENA, category=sim.Category.CHANGED),  # not held, and a second number below
        link(SERIAL, ATENA_2, category=sim.Category.ADDED),
    )
    assert result.ok
    assert [(n.line, n.column) for n in result.notices] == [(2, "宛名番号"), (2, None), (3, "宛名番号")]
    assert {e[1] for e in active_entries(session)} == {ATENA, ATENA_2}


def test_full_then_delta_equals_portal_sims_later_full_export(session: Session, clock: Clock) -> None:
    # Three residents: a card renewed (old one revoked) in the window, a card that expires in it,
    # a card issued in it. full(D) + delta(D, T) must give exactly full(T).
    def resident(i: int, certs: tuple[UserCert, ...]) -> ResidentRecord:
        return ResidentRecord(f"R{i}", f"00000000{i:02d}", "", "", "", "1", date(1980, 1, 1), "", None, None,
                              certs, ())

    d = datetime(2026, 11, 1, tzinfo=JST)
    t = datetime(2026, 12, 1, tzinfo=JST)
    residents = [
        resident(1, (UserCert("A1", date(2022, 1, 1), date(2027, 1, 1), datetime(2026, 11, 10, 9, 0, tzinfo=JST)),
                     UserCert("A2", date(2026, 11, 10), date(2031, 11, 10)))),
        resident(2, (UserCert("B1", date(2021, 11, 15), date(2026, 11, 15)),)),
        resident(3, (UserCert("C1", date(2026, 11, 20), date(2031, 11, 20)),)),
    ]
    full_d = sim.full_export(residents, as_of=d)
    delta = sim.delta_export(residents, since=d, as_of=t)
    assert {r.category for r in delta} == {sim.Category.ADDED, sim.Category.CHANGED, sim.Category.DELETED}
    assert run_import(session, clock, *full_d).ok
    result = run_import(session, clock, *delta)
    assert (result.ok, result.mode, result.notices) == (True, "delta", ())
    expected = {(r.serial, r.atena_number, r.valid_from, r.valid_to) for r in sim.full_export(residents, as_of=t)}
    assert active_entries(session) == expected


def test_broken_file_imports_nothing_and_reports_every_line(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory,
) -> None:
    app = deliver(session, runtime, make_package())
    good = sim.to_csv([link(), link(OTHER, ATENA_2)]).decode()
    bad = good + "".join(f"{line}\r\n" for line in [
        f"{SERIAL[:4]}-XYZ,{ATENA},2025-04-01,2030-03-31,,全件,{CREATED.isoformat()}",  # line 4: serial
        f"ABCD,12345,2025-04-01,2030-03-31,,全件,{CREATED.isoformat()}",  # line 5: 宛名番号
        f"ABCE,{ATENA_2},2025-02-30,2030-03-31,,全件,{CREATED.isoformat()}",  # line 6: date
        f"ABCF,{ATENA_2},2025-04-01,2030-03-31,,更新,{CREATED.isoformat()}",  # line 7: 区分
        f"{SERIAL},{ATENA_2},2025-04-01,2030-03-31,,全件,{CREATED.isoformat()}",  # line 8: a conflict, not broken
    ])
    result = import_linkage(session, bad.encode(), file_name="bad.csv", at=clock())
    session.commit()
    assert not result.ok
    assert [(p.line, p.column) for p in result.problems] == [
        (4, "利用者証明用電子証明書シリアル番号"), (5, "宛名番号"), (6, "有効開始日"), (7, "区分")]
    summary = result.summary()
    for line in (4, 5, 6, 7):
        assert f"line {line}:" in summary
    for value in (SERIAL, ATENA, ATENA_2, "12345", "2025-02-30", "更新"):
        assert value not in summary
    assert count(session, LinkageImport) == 0
    assert count(session, LinkageEntry) == 0
    session.refresh(app)
    assert app.linkage_state is LinkageState.UNRESOLVED
    rejected = session.scalar(select(Event).where(Event.kind == "linkage.import_rejected"))
    assert rejected is not None
    assert rejected.detail["lines"] == [4, 5, 6, 7]
    # Fixed, the same content imports (a rejection does not block the file's next version).
    fixed = import_linkage(session, good.encode(), file_name="fixed.csv", at=clock())
    assert (fixed.ok, fixed.resolved) == (True, 1)


def test_a_file_older_than_the_last_import_is_rejected(session: Session, clock: Clock) -> None:
    run_import(session, clock, link(created=CREATED))
    result = run_import(session, clock, link(OTHER, ATENA_2, created=CREATED - timedelta(days=1)))
    assert not result.ok
    assert [(p.line, p.column) for p in result.problems] == [(0, "作成日時")]
    assert active_entries(session) == {(SERIAL, ATENA, date(2025, 4, 1), date(2030, 3, 31))}


def test_unreadable_file_is_a_rejection(session: Session, clock: Clock, tmp_path: Path) -> None:
    result = import_linkage_file(session, tmp_path / "missing.csv", at=clock())
    assert not result.ok
    assert [p.line for p in result.problems] == [0]


def test_naive_time_is_refused(session: Session) -> None:
    with pytest.raises(IntakeError) as info:
        import_linkage(session, sim.to_csv([link()]), file_name="x.csv", at=datetime(2026, 11, 25, 12, 0))  # noqa: DTZ001
    assert info.value.code == "NAIVE_DATETIME"


# -- validity, renewal, conflicts ----------------------------------------------------------------

@pytest.mark.parametrize(("valid_from", "valid_to", "arrived", "state"), [
    pytest.param(date(2026, 11, 25), date(2026, 11, 25), "2026-11-25T00:30:00+09:00", LinkageState.AUTO,
                 id="first-jst-minute-of-valid-from"),  # 2026-11-24 in UTC: the JST day decides
    pytest.param(date(2026, 11, 26), date(2030, 1, 1), "2026-11-25T23:59:00+09:00", LinkageState.UNRESOLVED,
                 id="day-before-valid-from"),
    pytest.param(date(2020, 1, 1), date(2026, 11, 24), "2026-11-25T00:30:00+09:00", LinkageState.UNRESOLVED,
                 id="day-after-valid-to"),
    pytest.param(date(2020, 1, 1), date(2026, 11, 25), "2026-11-25T11:30:00+09:00", LinkageState.AUTO,
                 id="last-valid-day"),
])
def test_validity_is_judged_on_the_arrival_day(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec,
    valid_from: date, valid_to: date, arrived: str, state: LinkageState,
) -> None:
    run_import(session, clock, link(valid_from=valid_from, valid_to=valid_to))
    # The intake receives it after it arrived at the portal (the arrival is the validation time).
    clock.now = max(clock.now, datetime.fromisoformat(arrived) + timedelta(minutes=1))
    app = deliver(session, runtime, make_package(spec=replace(spec, arrived_at=datetime.fromisoformat(arrived))))
    assert app.linkage_state is state


def test_validity_is_the_arrival_days_not_the_import_days(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory,
) -> None:
    # Arrived 2026-11-25 while the card was valid; the link is imported ten days after it ended.
    app = deliver(session, runtime, make_package())
    clock.now = NOW + timedelta(days=10)
    result = run_import(session, clock, link(valid_from=date(2021, 11, 26), valid_to=date(2026, 11, 25)))
    assert result.resolved == 1
    session.refresh(app)
    assert (app.linkage_state, app.atena_number) == (LinkageState.AUTO, ATENA)
    _, decision = decisions(session, app)
    assert decision.at == clock.now


def test_serial_known_but_not_valid_on_arrival_waits_with_that_reason(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory,
) -> None:
    run_import(session, clock, link(valid_to=date(2026, 11, 24)))
    app = deliver(session, runtime, make_package())
    [decision] = decisions(session, app)
    assert decision.state is LinkageState.UNRESOLVED
    assert decision.reason is not None
    assert "no entry valid on the arrival day" in decision.reason


def test_renewed_card_old_and_new_serial_resolve_one_chain(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec,
    world: World,
) -> None:
    renewed = datetime(2026, 11, 20, 10, 0, tzinfo=JST)
    old = replace(spec, arrived_at=datetime(2026, 11, 19, 15, 0, tzinfo=JST), user_cert_serial=OTHER)
    new = replace(spec, receipt_number="20261125-0000000002", kind="再申請", first_receipt_number=spec.receipt_number)
    # The old card, valid when the first application arrived (it is judged at its 到達日時).
    old_card = world.pki.issue_signer(world.residents[0], not_before=datetime(2021, 6, 1, tzinfo=JST))
    app = deliver(session, runtime, make_package(spec=old, signer=old_card))
    deliver(session, runtime, make_package(spec=new))
    assert app.linkage_state is LinkageState.UNRESOLVED
    result = run_import(
        session, clock,
        link(OTHER, ATENA, date(2021, 6, 1), date(2026, 11, 20), revoked_at=renewed),
        link(SERIAL, ATENA, date(2026, 11, 20), date(2031, 11, 19)),
    )
    assert result.resolved == 1
    session.refresh(app)
    assert (app.linkage_state, app.atena_number) == (LinkageState.AUTO, ATENA)
    # A correction signed with the new card keeps it so, also once the old card's link is gone.
    run_import(session, clock, link(SERIAL, ATENA, date(2026, 11, 20), date(2031, 11, 19),
                                    created=CREATED + timedelta(days=1)))
    fix = replace(new, receipt_number="20261125-0000000003", kind="補正", arrived_at=NOW - timedelta(minutes=5))
    deliver(session, runtime, make_package(spec=fix))
    session.refresh(app)
    assert (app.linkage_state, app.atena_number) == (LinkageState.AUTO, ATENA)
    assert [d.state for d in decisions(session, app)] == [LinkageState.UNRESOLVED, LinkageState.AUTO]


def test_versions_with_serials_of_two_people_are_a_conflict(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    run_import(session, clock, link(SERIAL, ATENA), link(OTHER, ATENA_2))
    app = deliver(session, runtime, make_package())
    new = replace(spec, receipt_number="20261125-0000000002", kind="再申請", first_receipt_number=spec.receipt_number,
                  user_cert_serial=OTHER, arrived_at=NOW - timedelta(minutes=10))
    deliver(session, runtime, make_package(spec=new))
    session.refresh(app)
    assert (app.linkage_state, app.atena_number) == (LinkageState.CONFLICT, None)


def test_one_serial_two_numbers_in_a_file_is_a_conflict_never_a_guess(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory,
) -> None:
    result = run_import(session, clock, link(SERIAL, ATENA), link(SERIAL, ATENA_2))
    assert result.ok
    assert [n.line for n in result.notices] == [2, 3]
    app = deliver(session, runtime, make_package())
    assert (app.linkage_state, app.atena_number) == (LinkageState.CONFLICT, None)
    [queued] = list_unresolved(session)
    assert queued.linkage_state is LinkageState.CONFLICT
    # The register corrects itself: the next import resolves the conflict.
    fixed = run_import(session, clock, link(SERIAL, ATENA_2, created=CREATED + timedelta(days=1)))
    assert fixed.resolved == 1
    session.refresh(app)
    assert (app.linkage_state, app.atena_number) == (LinkageState.AUTO, ATENA_2)


def test_register_naming_another_number_for_a_linked_chain_is_a_conflict(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory,
) -> None:
    run_import(session, clock, link(SERIAL, ATENA))
    app = deliver(session, runtime, make_package())
    result = run_import(session, clock, link(SERIAL, ATENA_2, category=sim.Category.CHANGED,
                                             created=CREATED + timedelta(days=1)))
    assert result.conflicts == 1
    session.refresh(app)
    assert (app.linkage_state, app.atena_number) == (LinkageState.CONFLICT, None)
    assert decisions(session, app)[-1].import_id == result.import_id


def test_manual_decision_resolves_a_conflict(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory,
) -> None:
    run_import(session, clock, link(SERIAL, ATENA), link(SERIAL, ATENA_2))
    app = deliver(session, runtime, make_package())
    set_atena_manually(session, application_id=app.id, atena_number=ATENA_2, actor=STAFF,
                       reason="窓口で本人確認済み", at=clock())
    session.commit()
    session.refresh(app)
    assert (app.linkage_state, app.atena_number) == (LinkageState.MANUAL, ATENA_2)
    assert list_unresolved(session) == []


# -- manual setting ------------------------------------------------------------------------------

def test_manual_setting_is_recorded_and_never_overwritten(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    app = deliver(session, runtime, make_package())
    clock.now = NOW + timedelta(hours=2)
    decision = set_atena_manually(session, application_id=app.id, atena_number=ATENA_2, actor=STAFF,
                                  reason="  住民記録で確認  ", at=clock())
    session.commit()
    assert (decision.state, decision.atena_number, decision.staff_id, decision.reason, decision.at,
            decision.import_id) == (LinkageState.MANUAL, ATENA_2, "staff-0042", "住民記録で確認", clock.now, None)
    before = len(decisions(session, app))
    result = run_import(session, clock, link(SERIAL, ATENA))  # the register says another number
    assert result.resolved == 0
    fix = replace(spec, receipt_number="20261125-0000000002", kind="補正", first_receipt_number=spec.receipt_number,
                  arrived_at=NOW - timedelta(minutes=10))
    deliver(session, runtime, make_package(spec=fix))
    session.refresh(app)
    assert (app.linkage_state, app.atena_number) == (LinkageState.MANUAL, ATENA_2)
    assert len(decisions(session, app)) == before


def test_manual_setting_writes_an_access_log_row(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory,
) -> None:
    app = deliver(session, runtime, make_package())
    set_atena_manually(session, application_id=app.id, atena_number=ATENA, actor=STAFF, reason="窓口で確認",
                       at=clock())
    session.commit()
    [row] = session.scalars(select(AccessLogRow)).all()
    assert (row.at, row.staff_id, row.department, row.terminal, row.action, row.reason, row.atena_number,
            row.subject) == (NOW, "staff-0042", "子ども家庭課", "term-07", "linkage.set_atena", "窓口で確認", ATENA,
                             f"application:{app.id}")
    assert verify_chain(session) == []


@pytest.mark.parametrize(("changes", "error"), [
    pytest.param({"atena_number": "12345"}, InvalidAtenaNumber, id="atena-too-short"),
    pytest.param({"atena_number": "00000123456"}, InvalidAtenaNumber, id="atena-too-long"),
    pytest.param({"atena_number": "000001234X"}, InvalidAtenaNumber, id="atena-not-digits"),
    pytest.param({"reason": "  "}, ReasonRequired, id="blank-reason"),
    pytest.param({"actor": Actor("staff-9", "総務課", "term-1")}, LinkagePermissionDenied, id="no-permission"),
    pytest.param({"application_id": 999_999}, NotFound, id="unknown-application"),
])
def test_manual_setting_refuses_bad_requests_and_changes_nothing(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory,
    changes: dict[str, object], error: type[Exception],
) -> None:
    app = deliver(session, runtime, make_package())
    kwargs: dict[str, object] = {"application_id": app.id, "atena_number": ATENA, "actor": STAFF,
                                 "reason": "窓口で確認", "at": clock()}
    kwargs.update(changes)
    with pytest.raises(error) as info:
        set_atena_manually(session, **kwargs)  # type: ignore[arg-type]
    assert str(changes.get("atena_number", "§")) not in str(info.value)
    session.rollback()
    session.refresh(app)
    assert (app.linkage_state, app.atena_number) == (LinkageState.UNRESOLVED, None)
    assert count(session, AccessLogRow) == 0


def test_queue_lists_waiting_and_conflicting_chains_oldest_first(
    session: Session, runtime: Runtime, clock: Clock, make_package: PackageFactory, spec: ApplicationSpec,
) -> None:
    run_import(session, clock, link(OTHER, ATENA), link(OTHER, ATENA_2), link("ABCDEF", ATENA))
    first = deliver(session, runtime, make_package())
    clock.now = NOW + timedelta(minutes=1)
    second = deliver(session, runtime, make_package(spec=replace(spec, receipt_number="20261125-0000000002",
                                                                 user_cert_serial=OTHER)))
    clock.now = NOW + timedelta(minutes=2)
    deliver(session, runtime, make_package(spec=replace(spec, receipt_number="20261125-0000000003",
                                                        user_cert_serial="ABCDEF")))
    queue = list_unresolved(session)
    assert [(q.application_id, q.linkage_state) for q in queue] == [
        (first.id, LinkageState.UNRESOLVED), (second.id, LinkageState.CONFLICT)]
    assert [q.waiting_since for q in queue] == [NOW, NOW + timedelta(minutes=1)]


def test_concurrent_imports_of_one_file_store_it_once(engine: Engine, clock: Clock) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: the second import fails on the unique file hash, writes nothing, "
                    "and a re-run reports the file as already imported")
    data = sim.to_csv([link()])
    sessions = make_session_factory(engine)
    outcome: list[ImportResult | BaseException] = []
    with sessions() as first:
        assert import_linkage(first, data, file_name="a.csv", at=clock()).ok

        def second() -> None:
            with sessions() as other:
                try:
                    outcome.append(import_linkage(other, data, file_name="b.csv", at=clock()))
                    other.commit()
                except Exception as exc:  # noqa: BLE001 - the assertion below shows what happened
                    outcome.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)  # the second import is now waiting for the first one's lock
        first.commit()
        thread.join(timeout=30)
    [result] = outcome
    assert isinstance(result, ImportResult)
    assert result.duplicate
    with sessions() as check:
        assert count(check, LinkageImport) == 1
        assert count(check, LinkageEntry) == 1
