"""The status workflow: the table, the typed errors, and (hypothesis) no sequence reaches an undefined state."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from status import (
    FINAL_STATUSES,
    TRANSITIONS,
    Action,
    Actor,
    CommentRequired,
    IllegalTransition,
    NotPermitted,
    Role,
    Status,
    StatusError,
    StatusHistory,
    allowed_actions,
)

JST = timezone(timedelta(hours=9))
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=JST)
REVIEWER = Actor("staff-1", frozenset({Role.REVIEWER}))
VIEWER = Actor("staff-2", frozenset({Role.VIEWER}))
AUDITOR = Actor("staff-3", frozenset({Role.AUDITOR}))
SYSTEM = Actor("system", frozenset({Role.SYSTEM}))


def history(*steps: tuple[Action, Actor, str]) -> StatusHistory:
    h = StatusHistory(T0)
    for i, (action, actor, comment) in enumerate(steps):
        h = h.apply(action, actor=actor, at=T0 + timedelta(minutes=i + 1), comment=comment)
    return h


def test_the_happy_path_records_who_when_and_why() -> None:
    h = history((Action.ACCEPT, REVIEWER, ""), (Action.START_REVIEW, REVIEWER, ""),
                (Action.REQUEST_CORRECTION, REVIEWER, "保険証の写しが不鮮明です"), (Action.NEW_VERSION, SYSTEM, ""),
                (Action.COMPLETE, REVIEWER, ""))
    assert [t.target for t in h.transitions] == [Status.ACCEPTED, Status.IN_REVIEW, Status.CORRECTION_REQUESTED,
                                                 Status.IN_REVIEW, Status.COMPLETED]
    assert h.transitions[2].comment == "保険証の写しが不鮮明です"
    assert h.transitions[2].actor_id == "staff-1"
    assert h.transitions[3].at == T0 + timedelta(minutes=4)
    assert h.is_final


@pytest.mark.parametrize(
    ("steps", "error"),
    [
        pytest.param([(Action.COMPLETE, REVIEWER, "")], IllegalTransition, id="complete-before-review"),
        pytest.param([(Action.ACCEPT, VIEWER, "")], NotPermitted, id="viewer-cannot-accept"),
        pytest.param([(Action.ACCEPT, AUDITOR, "")], NotPermitted, id="auditor-cannot-accept"),
        pytest.param([(Action.ACCEPT, REVIEWER, ""), (Action.REJECT, REVIEWER, " ")], CommentRequired,
                     id="reject-needs-a-comment"),
        pytest.param([(Action.ACCEPT, REVIEWER, ""), (Action.NEW_VERSION, REVIEWER, "")], IllegalTransition,
                     id="new-version-only-during-review"),
        pytest.param([(Action.ACCEPT, REVIEWER, ""), (Action.START_REVIEW, REVIEWER, ""),
                      (Action.NEW_VERSION, REVIEWER, "")], NotPermitted, id="only-the-system-reports-versions"),
        pytest.param([(Action.WITHDRAW, SYSTEM, ""), (Action.ACCEPT, REVIEWER, "")], IllegalTransition,
                     id="nothing-after-withdrawal"),
    ],
)
def test_refusals_are_typed(steps: list[tuple[Action, Actor, str]], error: type[StatusError]) -> None:
    with pytest.raises(error):
        history(*steps)


def test_new_version_puts_it_back_in_the_queue_until_reviewed() -> None:
    h = history((Action.ACCEPT, REVIEWER, ""), (Action.START_REVIEW, REVIEWER, ""),
                (Action.REQUEST_CORRECTION, REVIEWER, "不足"), (Action.NEW_VERSION, SYSTEM, ""))
    assert h.current is Status.IN_REVIEW
    assert h.needs_review is True
    assert h.reviewed().needs_review is False
    assert h.apply(Action.COMPLETE, actor=REVIEWER, at=T0 + timedelta(hours=1)).needs_review is False


def test_withdrawal_from_every_open_status() -> None:
    for status in set(Status) - FINAL_STATUSES:
        assert Action.WITHDRAW in allowed_actions(status, frozenset({Role.SYSTEM}))
    for status in FINAL_STATUSES:
        assert allowed_actions(status, frozenset(Role)) == []


def test_naive_times_are_refused() -> None:
    with pytest.raises(StatusError):
        StatusHistory(datetime(2026, 11, 25))  # noqa: DTZ001 - the point of the test
    with pytest.raises(StatusError):
        StatusHistory(T0).apply(Action.ACCEPT, actor=REVIEWER, at=datetime(2026, 11, 25))  # noqa: DTZ001


ACTORS = [REVIEWER, VIEWER, AUDITOR, SYSTEM, Actor("admin", frozenset({Role.DEPARTMENT_ADMIN})),
          Actor("sys-admin", frozenset({Role.SYSTEM_ADMIN}))]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Action)), st.sampled_from(ACTORS), st.sampled_from(["", "理由"])),
                max_size=25))
def test_no_sequence_reaches_an_undefined_state(steps: list[tuple[Action, Actor, str]]) -> None:
    h = StatusHistory(T0)
    for i, (action, actor, comment) in enumerate(steps):
        before = h.current
        offered = action in allowed_actions(before, actor.roles)
        try:
            h = h.apply(action, actor=actor, at=T0 + timedelta(minutes=i), comment=comment)
        except StatusError:
            assert h.current is before  # a refusal changes nothing
            continue
        assert offered  # the UI offers exactly what succeeds (comment aside)
        rule = next(r for r in TRANSITIONS if r.action is action)
        assert before in rule.sources
        assert h.current is rule.target
        assert h.current in set(Status)
        if before in FINAL_STATUSES:
            pytest.fail("a final status was left")
    # the history is a chain: each step starts where the last one ended
    current = Status.ARRIVED
    for t in h.transitions:
        assert t.source is current
        current = t.target
