"""The transition table and the history it produces.

Statuses are the portal's own words (they travel to the portal as they are). ``Action`` names what
happens; the table says from which status it may happen, to which status it leads, who may do it
and whether a comment is required. A new version arriving while an application is 審査中 or
補正依頼 puts it (back) into 審査中 and flags it for the reviewer's queue.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "FINAL_STATUSES",
    "TRANSITIONS",
    "Action",
    "Actor",
    "CommentRequired",
    "IllegalTransition",
    "NotPermitted",
    "Role",
    "Status",
    "StatusError",
    "StatusHistory",
    "Transition",
    "TransitionRule",
    "allowed_actions",
]


class Status(enum.StrEnum):
    ARRIVED = "到達"
    ACCEPTED = "受付"
    IN_REVIEW = "審査中"
    CORRECTION_REQUESTED = "補正依頼"
    COMPLETED = "完了"
    REJECTED = "却下"
    WITHDRAWN = "取下げ"


FINAL_STATUSES = frozenset({Status.COMPLETED, Status.REJECTED, Status.WITHDRAWN})


class Role(enum.StrEnum):
    VIEWER = "viewer"
    REVIEWER = "reviewer"
    DEPARTMENT_ADMIN = "department_admin"
    SYSTEM_ADMIN = "system_admin"
    AUDITOR = "auditor"
    #: the intake itself, acting on what arrives (a new version, a 取下げ package)
    SYSTEM = "system"


class Action(enum.StrEnum):
    ACCEPT = "accept"  # 受付: the ward has taken the application in
    START_REVIEW = "start_review"
    REQUEST_CORRECTION = "request_correction"
    NEW_VERSION = "new_version"  # a 再申請 or 補正 arrived
    COMPLETE = "complete"
    REJECT = "reject"
    WITHDRAW = "withdraw"  # a 取下げ arrived, or staff record a withdrawal made by other means


_STAFF = frozenset({Role.REVIEWER, Role.DEPARTMENT_ADMIN})
_DECIDE = frozenset({Role.REVIEWER, Role.DEPARTMENT_ADMIN})


@dataclass(frozen=True)
class TransitionRule:
    action: Action
    sources: frozenset[Status]
    target: Status
    roles: frozenset[Role]
    comment_required: bool = False


_OPEN = frozenset(Status) - FINAL_STATUSES

TRANSITIONS: tuple[TransitionRule, ...] = (
    TransitionRule(Action.ACCEPT, frozenset({Status.ARRIVED}), Status.ACCEPTED, _STAFF | {Role.SYSTEM}),
    TransitionRule(Action.START_REVIEW, frozenset({Status.ACCEPTED}), Status.IN_REVIEW, _STAFF),
    TransitionRule(Action.REQUEST_CORRECTION, frozenset({Status.IN_REVIEW}), Status.CORRECTION_REQUESTED, _DECIDE,
                   comment_required=True),
    TransitionRule(Action.NEW_VERSION, frozenset({Status.IN_REVIEW, Status.CORRECTION_REQUESTED}),
                   Status.IN_REVIEW, frozenset({Role.SYSTEM})),
    TransitionRule(Action.COMPLETE, frozenset({Status.IN_REVIEW}), Status.COMPLETED, _DECIDE),
    TransitionRule(Action.REJECT, frozenset({Status.ACCEPTED, Status.IN_REVIEW}), Status.REJECTED, _DECIDE,
                   comment_required=True),
    TransitionRule(Action.WITHDRAW, _OPEN, Status.WITHDRAWN, _STAFF | {Role.SYSTEM}, comment_required=False),
)

_BY_ACTION: dict[Action, TransitionRule] = {rule.action: rule for rule in TRANSITIONS}


class StatusError(Exception):
    """Base class of workflow errors."""


class IllegalTransition(StatusError):
    """``action`` is not possible from ``current`` (e.g. anything after 完了)."""

    def __init__(self, current: Status, action: Action) -> None:
        super().__init__(f"{action.value} is not possible from {current.value}")
        self.current = current
        self.action = action


class NotPermitted(StatusError):
    """None of the actor's roles may perform ``action``."""

    def __init__(self, action: Action, roles: frozenset[Role]) -> None:
        super().__init__(f"{action.value} needs one of {sorted(r.value for r in _BY_ACTION[action].roles)}")
        self.action = action
        self.roles = roles


class CommentRequired(StatusError):
    """``action`` records a decision the resident will be told about: a comment is required."""

    def __init__(self, action: Action) -> None:
        super().__init__(f"{action.value} requires a comment")
        self.action = action


@dataclass(frozen=True)
class Actor:
    id: str
    roles: frozenset[Role]


@dataclass(frozen=True)
class Transition:
    source: Status
    target: Status
    action: Action
    actor_id: str
    at: datetime
    comment: str = ""


@dataclass(frozen=True)
class StatusHistory:
    """An application's status history, oldest first. Immutable: :meth:`apply` returns a new one."""

    arrived_at: datetime
    transitions: tuple[Transition, ...] = ()
    #: set when a new version arrives during review: the reviewer must look again
    needs_review: bool = field(default=False)

    def __post_init__(self) -> None:
        if self.arrived_at.tzinfo is None:
            raise StatusError("arrived_at must be timezone-aware")

    @property
    def current(self) -> Status:
        return self.transitions[-1].target if self.transitions else Status.ARRIVED

    @property
    def is_final(self) -> bool:
        return self.current in FINAL_STATUSES

    def apply(self, action: Action, *, actor: Actor, at: datetime, comment: str = "") -> StatusHistory:
        """The history after ``action``; raises :class:`StatusError` subclasses, nothing else."""
        if at.tzinfo is None:
            raise StatusError("the time must be timezone-aware")
        rule = _BY_ACTION[action]
        if self.current not in rule.sources:
            raise IllegalTransition(self.current, action)
        if not (actor.roles & rule.roles):
            raise NotPermitted(action, actor.roles)
        comment = comment.strip()
        if rule.comment_required and not comment:
            raise CommentRequired(action)
        step = Transition(self.current, rule.target, action, actor.id, at, comment)
        # A new version flags the application until the reviewer has looked; a final status ends it.
        needs_review = (self.needs_review or action is Action.NEW_VERSION) and rule.target not in FINAL_STATUSES
        return StatusHistory(self.arrived_at, (*self.transitions, step), needs_review)

    def reviewed(self) -> StatusHistory:
        """The reviewer has looked at the newest version."""
        return StatusHistory(self.arrived_at, self.transitions, False)


def allowed_actions(current: Status, roles: frozenset[Role]) -> list[Action]:
    """What the UI may offer an actor with ``roles`` now (the service checks again on submit)."""
    return [rule.action for rule in TRANSITIONS if current in rule.sources and roles & rule.roles]
