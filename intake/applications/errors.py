"""Refusals of casework (:mod:`intake.applications`), beside the shared ones in :mod:`intake.errors`.

::

    InvalidRequest
    ├── CommentTooLong       a comment to the resident over the portal's limit (``limit``)
    ├── NoteInvalid          an internal note that is blank or too long (``limit``)
    ├── BulkTooLarge         more cases in one bulk change than allowed (``limit``)
    └── SearchInvalid        a person search without a usable term (which field, never the value)
        └── SearchByMyNumber a My Number typed as the number to search by (never kept, never logged)
    PermissionDenied
    └── NotAColleague        a hand-over to someone who cannot work the case (inactive, other department, role)
"""

from __future__ import annotations

from intake.errors import InvalidRequest, PermissionDenied

__all__ = ["BulkTooLarge", "CommentTooLong", "NotAColleague", "NoteInvalid", "SearchByMyNumber", "SearchInvalid"]


class CommentTooLong(InvalidRequest):
    """The portal shows the applicant at most ``limit`` characters: a longer comment is refused before
    anything is stored (it would be cut, or refused, on the way)."""

    code = "COMMENT_TOO_LONG"

    def __init__(self, limit: int) -> None:
        super().__init__(f"a comment to the applicant is at most {limit} characters")
        self.limit = limit


class NoteInvalid(InvalidRequest):
    code = "NOTE_INVALID"

    def __init__(self, limit: int) -> None:
        super().__init__(f"an internal note is 1 to {limit} characters")
        self.limit = limit


class BulkTooLarge(InvalidRequest):
    code = "BULK_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} cases in one bulk change")
        self.limit = limit


class SearchInvalid(InvalidRequest):
    code = "SEARCH_INVALID"

    def __init__(self, field: str) -> None:
        super().__init__(f"person search: {field} is not usable")
        self.field = field


class SearchByMyNumber(SearchInvalid):
    """The 受付番号・宛名番号 search was given a My Number (12 digits with a valid check digit): the
    list does not search by My Number (P14), and the number is neither kept nor logged."""

    code = "SEARCH_BY_MY_NUMBER"

    def __init__(self) -> None:
        super().__init__("number")


class NotAColleague(PermissionDenied):
    """The case can only be handed to an active member who works cases of its department."""

    code = "NOT_A_COLLEAGUE"
