"""What looks like a My Number in free text (P14). Staff's free text — internal notes, hand-over
messages, comments for the resident, 処理事由 — refuses one (:func:`check_no_my_number`); a resident's
free text in a form keeps none in the clear either: :func:`intake.mynumbers.service.extract_my_numbers`
seals what :func:`my_number_spans` finds and masks it.

Such text is read by colleagues without the reveal permission, a status comment goes to the portal
and a 処理事由 is kept in the access log for seven years; a My Number belongs in its sealed table only.
A My Number is recognised as 12 digits with a valid check digit, typed in one run or in groups of four
(up to three separators between: spaces, line breaks, hyphens and dashes, ー as an IME writes the
hyphen key, 中黒, dots, slashes; invisible characters anywhere), half- or full-width, and not part of
a longer number: a 13-digit 法人番号 or a phone number is not refused. Only a check-digit-valid run is
refused, so an arbitrary 12-digit figure is refused about once in ten.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from intake.errors import MyNumberInText
from signature.mynumber import is_valid_my_number

__all__ = ["MyNumberSpan", "check_no_my_number", "my_number_spans"]

#: What may stand between the groups, after NFKC: spaces of every kind and line breaks, every dash,
#: the long vowel mark an IME writes for the hyphen key in かな mode (ー, ｰ), 中黒, dots, slashes.
_SEPARATORS = frozenset(" \t\r\n-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\u30fb./")
#: What a reader does not see (zero-width space and joiners, soft hyphen, BOM, variation selectors, the
#: keycap mark): allowed between any two digits.
_INVISIBLE = "\x01"
_DIGIT = rf"[0-9]{_INVISIBLE}*"
_GROUP = rf"((?:{_DIGIT}){{4}})"
_SEP = rf"[\-{_INVISIBLE}]{{0,3}}"
#: every start, overlapping: a rejected candidate must not hide a My Number that begins inside it
_CANDIDATE = re.compile(rf"(?=({_GROUP}{_SEP}{_GROUP}{_SEP}{_GROUP}))")

#: (start, end, the twelve digits in ASCII) of one My Number in a text
MyNumberSpan = tuple[int, int, str]


@functools.lru_cache(maxsize=4096)
def _fold(char: str) -> str:
    """``char`` as NFKC makes it when that is one character (full-width digits, spaces and hyphens
    become ASCII), a separator as ``-``, an invisible character as ``\\x01``, else a character that
    matches nothing: one character in, one out, so a span found in the folded text is the same span
    in the text."""
    folded = unicodedata.normalize("NFKC", char)
    if len(folded) != 1:
        return "\0"
    if folded in _SEPARATORS or unicodedata.category(folded) == "Zs":
        return "-"
    if unicodedata.category(folded) in ("Cf", "Me") or "\ufe00" <= folded <= "\ufe0f":
        return _INVISIBLE
    return folded


def _digit_at(folded: str, index: int, step: int) -> bool:
    """Whether the first visible character from ``index`` on, going ``step``, is a digit."""
    while 0 <= index < len(folded) and folded[index] == _INVISIBLE:
        index += step
    return 0 <= index < len(folded) and folded[index].isascii() and folded[index].isdigit()


def my_number_spans(text: str) -> list[MyNumberSpan]:
    """Where ``text`` holds what looks like a My Number (the module's docstring says what does)."""
    folded = "".join(map(_fold, text))
    spans: list[MyNumberSpan] = []
    taken = 0
    for found in _CANDIDATE.finditer(folded):
        start = found.start()
        end = start + len(found.group(1))
        while end > start and folded[end - 1] == _INVISIBLE:
            end -= 1
        if start < taken or _digit_at(folded, start - 1, -1) or _digit_at(folded, end, 1):
            continue
        digits = "".join(c for c in found.group(1) if c.isdigit())
        if is_valid_my_number(digits):
            spans.append((start, end, digits))
            taken = end
    return spans


def check_no_my_number(text: str) -> str:
    """``text``, or :class:`intake.errors.MyNumberInText` when it holds what looks like a My Number."""
    if my_number_spans(text):
        raise MyNumberInText
    return text
