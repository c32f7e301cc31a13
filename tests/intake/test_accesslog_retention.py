"""The access log's 7-year retention and the chain check that starts at the newest purge, on SQLite
and PostgreSQL: the boundary is the JST day, a broken prefix is never purged, and after a purge every
kind of tampering (and a deletion without a purge) still shows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from intake.accesslog.checks import SYSTEM, latest_check, run_check
from intake.accesslog.errors import PurgeRefused
from intake.accesslog.retention import PurgeResult, purge_expired, retention_cutoff
from intake.accesslog.service import ChainProblem, append_access, check_chain, verify_chain, witness_subject
from intake.authz import Actor
from intake.errors import InvalidRequest
from intake.models import AccessLogRetention, AccessLogRow
from intake.settings import IntakeSettings
from tests.conftest import JST, NOW
from tests.intake.accessrows import committed_ids

ACTOR = Actor(staff_id="tanaka", department="kodomo", terminal="ip:10.1.2.3")
#: Seven years after NOW, at 08:00 JST: still the 24th in UTC, so a UTC day would be a day off.
PURGE_AT = datetime(2033, 11, 25, 8, 0, tzinfo=JST)
CUTOFF = datetime(2026, 11, 25, 0, 0, tzinfo=JST)
TINY = timedelta(microseconds=1)


def add(session: Session, *times: datetime, action: str = "application.view") -> list[int]:
    for i, at in enumerate(times):
        append_access(session, actor=ACTOR, at=at, action=action, subject=f"application:{i}",
                      atena_number="1234567890")
    return committed_ids(session, len(times))


def purge(session: Session, *, dry_run: bool = False, at: datetime = PURGE_AT, batch_size: int = 2) -> PurgeResult:
    """As the command does: one transaction, committed (or rolled back for a dry run)."""
    try:
        result = purge_expired(session, at=at, retention_years=7, terminal="host:test", dry_run=dry_run,
                               batch_size=batch_size)
    except Exception:
        session.rollback()
        raise
    if dry_run:
        session.rollback()
    else:
        session.commit()
    return result


def snapshot(session: Session) -> list[tuple[int, str]]:
    return [(r.id, r.hash) for r in session.scalars(select(AccessLogRow).order_by(AccessLogRow.id))]


def ids_of(session: Session) -> list[int]:
    return list(session.scalars(select(AccessLogRow.id).order_by(AccessLogRow.id)))


def test_cutoff_is_midnight_jst_of_the_same_day_n_calendar_years_back() -> None:
    assert retention_cutoff(PURGE_AT, 7) == CUTOFF
    assert retention_cutoff(datetime(2033, 11, 25, 23, 59, tzinfo=JST), 7) == CUTOFF
    assert retention_cutoff(datetime(2033, 11, 24, 15, 0, tzinfo=JST) + timedelta(hours=9), 7) == CUTOFF
    # 29 February: the 28th, seven years back (a day more kept, never a day less)
    assert retention_cutoff(datetime(2032, 2, 29, 10, 0, tzinfo=JST), 7) == datetime(2025, 2, 28, tzinfo=JST)
    assert retention_cutoff(PURGE_AT, 10) == datetime(2023, 11, 25, tzinfo=JST)
    with pytest.raises(InvalidRequest):
        retention_cutoff(datetime(2033, 11, 25), 7)  # noqa: DTZ001 - the naive datetime under test


def test_purge_deletes_exactly_the_rows_before_the_cutoff(session: Session) -> None:
    old, just_before, at_cutoff, after = add(session, CUTOFF - timedelta(days=400), CUTOFF - TINY, CUTOFF,
                                             CUTOFF + timedelta(hours=1))
    last_deleted = session.get(AccessLogRow, just_before)
    assert last_deleted is not None
    last_hash = last_deleted.hash

    result = purge(session)

    assert (result.rows, result.first_id, result.through_id, result.last_hash) == (2, old, just_before, last_hash)
    assert result.cutoff == CUTOFF
    remaining = ids_of(session)
    assert remaining[:2] == [at_cutoff, after]  # the row at the cutoff itself is kept
    record = session.scalars(select(AccessLogRetention)).one()
    assert (record.purged_through_id, record.purged_rows, record.last_hash, record.actor) == (
        just_before, 2, last_hash, "system")
    assert record.cutoff == CUTOFF
    assert record.at == PURGE_AT
    witness = session.scalars(select(AccessLogRow).where(AccessLogRow.action == "audit.purge")).one()
    assert witness.id == remaining[-1]
    assert witness.subject == witness_subject(record)
    assert (witness.staff_id, witness.terminal) == ("system", "host:test")
    assert "7年" in (witness.reason or "")
    check = check_chain(session)
    assert check.intact, check
    assert (check.anchor_through_id, check.rows, check.first_id) == (just_before, 3, at_cutoff)
    assert verify_chain(session) == []


def test_purge_stops_at_the_first_younger_row(session: Session) -> None:
    first, young, late_old = add(session, CUTOFF - timedelta(days=3), CUTOFF + timedelta(days=1),
                                 CUTOFF - timedelta(days=1))  # a row out of time order is not skipped over
    result = purge(session)
    assert (result.rows, result.through_id) == (1, first)
    assert ids_of(session)[:2] == [young, late_old]
    assert verify_chain(session) == []


def test_batches_do_not_change_the_result(session: Session) -> None:
    add(session, *(CUTOFF - timedelta(hours=h) for h in range(11, 0, -1)), *(CUTOFF + timedelta(hours=h)
                                                                           for h in range(4)))
    assert purge(session, dry_run=True, batch_size=1000).rows == purge(session, dry_run=True, batch_size=3).rows == 11
    result = purge(session, batch_size=4)
    assert result.rows == 11
    assert session.scalars(select(AccessLogRetention.purged_rows)).one() == 11
    assert check_chain(session, batch_size=2) == check_chain(session, batch_size=1000)
    assert check_chain(session, batch_size=2).intact


def test_dry_run_changes_nothing(session: Session) -> None:
    add(session, CUTOFF - timedelta(days=2), CUTOFF - timedelta(days=1), CUTOFF + timedelta(days=1))
    before = snapshot(session)
    result = purge(session, dry_run=True)
    assert (result.dry_run, result.rows, result.retention_id) == (True, 2, None)
    assert snapshot(session) == before
    assert session.scalars(select(AccessLogRetention)).all() == []


def test_nothing_to_purge_writes_nothing(session: Session) -> None:
    add(session, CUTOFF, CUTOFF + timedelta(days=1))
    before = snapshot(session)
    result = purge(session)
    assert (result.rows, result.through_id) == (0, None)
    assert snapshot(session) == before
    assert session.scalars(select(AccessLogRetention)).all() == []


def _alter(ids: list[int]) -> Any:
    return update(AccessLogRow).where(AccessLogRow.id == ids[1]).values(reason="書き換え")


def _remove_middle(ids: list[int]) -> Any:
    return delete(AccessLogRow).where(AccessLogRow.id == ids[1])


def _remove_last_old(ids: list[int]) -> Any:
    return delete(AccessLogRow).where(AccessLogRow.id == ids[2])  # the break shows at the first kept row


@pytest.mark.parametrize(("tamper", "broken_at"), [(_alter, 1), (_remove_middle, 2), (_remove_last_old, 3)],
                         ids=["altered", "removed-in-prefix", "removed-at-boundary"])
def test_a_broken_prefix_is_never_purged(session: Session, tamper: Callable[[list[int]], Any],
                                         broken_at: int) -> None:
    ids = add(session, *(CUTOFF - timedelta(days=d) for d in (4, 3, 2)), CUTOFF + timedelta(days=1))
    session.execute(tamper(ids))
    session.commit()
    before = snapshot(session)
    for dry_run in (True, False):
        with pytest.raises(PurgeRefused) as refused:
            purge(session, dry_run=dry_run)
        assert refused.value.broken == (ids[broken_at],)
    assert snapshot(session) == before  # the evidence stays
    assert session.scalars(select(AccessLogRetention)).all() == []


@pytest.fixture
def purged(session: Session) -> tuple[list[int], list[int], dict[str, Any]]:
    """Three old rows purged, three young ones (and the purge's own row) kept; the last purged row's fields."""
    ids = add(session, *(CUTOFF - timedelta(days=d) for d in (3, 2, 1)), *(CUTOFF + timedelta(hours=h)
                                                                          for h in (1, 2, 3)))
    gone = session.get(AccessLogRow, ids[2])
    assert gone is not None
    fields = {c: getattr(gone, c) for c in ("id", "at", "staff_id", "department", "terminal", "action", "reason",
                                            "atena_number", "subject", "prev_hash", "hash")}
    purge(session)
    assert verify_chain(session) == []
    return ids[:3], ids[3:], fields


def test_after_a_purge_deleting_the_first_remaining_row_is_detected(
        session: Session, purged: tuple[list[int], list[int], dict[str, Any]]) -> None:
    _old, kept, _fields = purged
    session.execute(delete(AccessLogRow).where(AccessLogRow.id == kept[0]))
    session.commit()
    assert verify_chain(session) == [kept[1]]


def test_after_a_purge_deleting_old_rows_without_a_record_is_detected(
        session: Session, purged: tuple[list[int], list[int], dict[str, Any]]) -> None:
    _old, kept, _fields = purged
    session.execute(delete(AccessLogRow).where(AccessLogRow.id <= kept[1]))  # "purged" by hand: no record
    session.commit()
    assert verify_chain(session) == [kept[2]]


def test_after_a_purge_a_row_put_back_is_detected(
        session: Session, purged: tuple[list[int], list[int], dict[str, Any]]) -> None:
    old, _kept, fields = purged
    session.add(AccessLogRow(**fields))  # the original row, byte for byte
    session.commit()
    check = check_chain(session)
    assert check.broken == (old[2],)
    assert check.problems == (ChainProblem.ROW_BELOW_ANCHOR,)
    with pytest.raises(PurgeRefused):
        purge(session, at=PURGE_AT + timedelta(days=1))


def test_after_a_purge_an_altered_row_is_detected(
        session: Session, purged: tuple[list[int], list[int], dict[str, Any]]) -> None:
    _old, kept, _fields = purged
    session.execute(update(AccessLogRow).where(AccessLogRow.id == kept[1]).values(atena_number="9999999999"))
    session.commit()
    assert verify_chain(session) == [kept[1]]


def test_a_forged_retention_record_is_detected_and_not_purged_on_from(
        session: Session, purged: tuple[list[int], list[int], dict[str, Any]]) -> None:
    """Young rows deleted behind a record that looks like a purge: only the purge's chained row
    vouches for a record, and this one has none."""
    _old, kept, _fields = purged
    row = session.get(AccessLogRow, kept[1])
    assert row is not None
    session.add(AccessLogRetention(at=PURGE_AT, cutoff=CUTOFF, purged_through_id=kept[1], purged_rows=2,
                                   last_hash=row.hash, actor="system"))
    session.execute(delete(AccessLogRow).where(AccessLogRow.id <= kept[1]))
    session.commit()
    check = check_chain(session)
    assert ChainProblem.ANCHOR_UNWITNESSED in check.problems
    assert check.broken == (kept[2],)
    with pytest.raises(PurgeRefused):
        purge(session, at=PURGE_AT + timedelta(days=2))


def test_rows_deleted_without_any_purge_are_detected(session: Session) -> None:
    ids = add(session, NOW, NOW + timedelta(minutes=1), NOW + timedelta(minutes=2))
    session.execute(delete(AccessLogRow).where(AccessLogRow.id == ids[0]))
    session.commit()
    assert verify_chain(session) == [ids[1]]  # it does not chain to GENESIS


def test_a_second_purge_continues_from_the_first(session: Session) -> None:
    add(session, *(CUTOFF + timedelta(days=d) for d in (-2, -1, 1, 2, 5)))
    first = purge(session)
    second = purge(session, at=PURGE_AT + timedelta(days=3))
    assert (first.rows, second.rows) == (2, 2)
    records = session.scalars(select(AccessLogRetention).order_by(AccessLogRetention.id)).all()
    assert [r.purged_through_id for r in records] == [first.through_id, second.through_id]
    check = check_chain(session)
    assert check.intact, check
    assert check.anchor_through_id == second.through_id
    actions = list(session.scalars(select(AccessLogRow.action).order_by(AccessLogRow.id)))
    assert actions == ["application.view", "audit.purge", "audit.purge"]


def test_the_newest_row_is_never_purged(session: Session) -> None:
    """Even when every row is old (SQLite would give the newest id to the next row again)."""
    ids = add(session, CUTOFF - timedelta(days=3), CUTOFF - timedelta(days=2), CUTOFF - timedelta(days=1))
    result = purge(session)
    assert (result.rows, result.through_id) == (2, ids[1])
    assert ids_of(session)[0] == ids[2]
    add(session, PURGE_AT + timedelta(hours=1))
    assert verify_chain(session) == []
    assert purge(session, at=PURGE_AT + timedelta(days=1)).rows == 1
    witnesses = session.scalars(select(AccessLogRow).where(AccessLogRow.action == "audit.purge")).all()
    assert len(witnesses) == 2
    assert verify_chain(session) == []


def test_rows_cut_off_the_end_are_detected_by_the_recorded_check(session: Session) -> None:
    ids = add(session, *(NOW + timedelta(minutes=m) for m in range(5)))
    first = run_check(session, at=NOW + timedelta(hours=1))
    session.commit()
    assert first.intact
    assert (first.by, first.by_system, first.rows, first.last_id) == (SYSTEM, True, 5, ids[-1])
    session.execute(delete(AccessLogRow).where(AccessLogRow.id >= ids[3]))  # the chain itself stays intact
    session.commit()
    assert verify_chain(session) == []
    second = run_check(session, at=NOW + timedelta(hours=2), by="auditor")
    session.commit()
    assert second.problems == (ChainProblem.HEAD_MISSING,)
    assert second.broken == (ids[-1],)
    assert (second.by, second.by_system) == ("auditor", False)
    add(session, NOW + timedelta(hours=3))
    third = run_check(session, at=NOW + timedelta(hours=4))
    session.commit()
    assert third.problems == (ChainProblem.HEAD_MISSING,)  # the finding does not vanish at the next check
    assert latest_check(session) == third


def test_a_rewritten_head_is_detected_by_the_recorded_check(session: Session) -> None:
    ids = add(session, NOW, NOW + timedelta(minutes=1))
    run_check(session, at=NOW + timedelta(hours=1))
    session.commit()
    session.execute(update(AccessLogRow).where(AccessLogRow.id == ids[-1]).values(hash="f" * 64))
    session.commit()
    check = run_check(session, at=NOW + timedelta(hours=2))
    assert ChainProblem.HEAD_CHANGED in check.problems
    assert check.broken == (ids[-1],)


def test_retention_below_seven_years_is_refused(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    assert IntakeSettings().access_log_retention_years == 7
    assert IntakeSettings(access_log_retention_years=10).access_log_retention_years == 10
    with pytest.raises(ValidationError):
        IntakeSettings(access_log_retention_years=6)
    monkeypatch.setenv("SHINSEI_INTAKE_ACCESS_LOG_RETENTION_YEARS", "5")
    with pytest.raises(ValidationError):
        IntakeSettings()
    add(session, CUTOFF - timedelta(days=1))
    with pytest.raises(InvalidRequest):
        purge_expired(session, at=PURGE_AT, retention_years=6, terminal="host:test")
    assert len(ids_of(session)) == 1
