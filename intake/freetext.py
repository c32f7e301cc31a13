"""What looks like a My Number in free text (P14). Staff's free text — internal notes, hand-over
messages, comments for the resident, 処理事由 — refuses one (:func:`check_no_my_number`); a resident's
free text in a form keeps none in the clear either: :func:`intake.mynumbers.service.extract_my_numbers`
seals what :func:`my_number_spans` finds and masks it.

Such text is read by colleagues without the reveal permission, a status comment goes to the portal
and a 処理事由 is kept in the access log for seven years; a My Number belongs in its sealed table only.
A My Number is recognised as 12 digits with a valid check digit, typed in one run or in groups of four
(spaces or hyphens between), half- or full-width, and not part of a longer number: a 13-digit
法人番号 or a phone number is not refused. Only a check-digit-valid run is refused, so an arbitrary
12-digit figure is refused about once in ten.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from intake.errors import MyNumberInText
from signature.mynumber import is_valid_my_number

__all__ = ["MyNumberSpan", "check_no_my_number", "my_number_spans"]

_CANDIDATE = re.compile(r"(?<![0-9])([0-9]{4})[ \-]?([0-9]{4})[ \-]?([0-9]{4})(?![0-9])")

#: (start, end, the twelve digits in ASCII) of one My Number in a text
MyNumberSpan = tuple[int, int, str]


@functools.lru_cache(maxsize=4096)
def _fold(char: str) -> str:
    """``char`` as NFKC makes it when that is one character (full-width digits, spaces and hyphens
    become ASCII), else a character that matches nothing: one character in, one out, so a span found
    in the folded text is the same span in the text."""
    folded = unicodedata.normalize("NFKC", char)
    return folded if len(folded) == 1 else "\0"


def my_number_spans(text: str) -> list[MyNumberSpan]:
    """Where ``text`` holds what looks like a My Number (the module's docstring says what does)."""
    folded = "".join(map(_fold, text))
    spans = []
    for found in _CANDIDATE.finditer(folded):
        digits = "".join(found.groups())
        if is_valid_my_number(digits):
            spans.append((found.start(), found.end(), digits))
    return spans


def check_no_my_number(text: str) -> str:
    """``text``, or :class:`intake.errors.MyNumberInText` when it holds what looks like a My Number."""
    if my_number_spans(text):
        raise MyNumberInText
    return text
