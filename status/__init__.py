"""Application status workflow (到達 → 受付 → 審査中 → 補正依頼 / 完了 / 却下 / 取下げ) and its history.

A pure, explicit transition table: who may do what from which status, with typed errors for
everything else. No I/O, no clock: the caller passes the actor and the time.
"""

from status.workflow import (
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
    Transition,
    TransitionRule,
    allowed_actions,
)

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
