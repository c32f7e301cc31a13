"""Free text staff type — internal notes, hand-over messages, comments for the resident, 処理事由 —
holds no My Number (P14).

Such text is read by colleagues without the reveal permission, a status comment goes to the portal
and a 処理事由 is kept in the access log for seven years; a My Number belongs in its sealed table only.
A My Number is recognised as 12 digits with a valid check digit, typed in one run or in groups of four
(spaces or hyphens between), half- or full-width, and not part of a longer number: a 13-digit
法人番号 or a phone number is not refused. Only a check-digit-valid run is refused, so an arbitrary
12-digit figure is refused about once in ten.
"""

from __future__ import annotations

import re
import unicodedata

from intake.errors import MyNumberInText
from signature.mynumber import is_valid_my_number

__all__ = ["check_no_my_number"]

_CANDIDATE = re.compile(r"(?<![0-9])([0-9]{4})[ \-]?([0-9]{4})[ \-]?([0-9]{4})(?![0-9])")


def check_no_my_number(text: str) -> str:
    """``text``, or :class:`intake.errors.MyNumberInText` when it holds what looks like a My Number."""
    folded = unicodedata.normalize("NFKC", text)
    for found in _CANDIDATE.finditer(folded):
        if is_valid_my_number("".join(found.groups())):
            raise MyNumberInText
    return text
