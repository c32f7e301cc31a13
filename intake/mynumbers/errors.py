"""Exceptions of the My Number package. Messages never hold a number."""

from __future__ import annotations

from intake.errors import AccessDenied, Denial

__all__ = ["MyNumberAccessDenied"]


class MyNumberAccessDenied(AccessDenied):
    """The actor lacks the reveal permission (:data:`intake.authz.REVEAL_PERMISSION`). A missing
    処理事由 is the shared :class:`intake.errors.ReasonRequired`."""

    def __init__(self) -> None:
        super().__init__("the reveal permission is required", cause=Denial.PERMISSION)
