"""和暦 (Japanese era dates): the one conversion the intake uses wherever a person reads or types a date.

The staff UI, the PDF of an application and the daily mail all format dates through this module,
and the person search parses what staff type through it. The era boundaries are the project's one
table, :data:`signature.identity.ERAS` (the JPKI certificate's era-coded 生年月日 uses it too):

* 昭和 ends 1989-01-07, 平成 begins 1989-01-08 (平成元年1月8日);
* 平成 ends 2019-04-30, 令和 begins 2019-05-01 (令和元年5月1日).

The first year of an era is written 元年. Dates before 1873-01-01 (明治6年, when Japan adopted the
Gregorian calendar) have no 和暦 form here: they are shown in the Western calendar only, and refused
when typed as 和暦 (the day would be a lunar-calendar day). A typed era year outside its era
(平成31年5月1日, 昭和64年1月8日) is refused, not silently moved to the next era.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime

from intake.errors import InvalidDate
from intake.jst import JST, require_aware
from signature.identity import ERAS, Era

__all__ = [
    "GREGORIAN_FROM",
    "WEEKDAYS",
    "Wareki",
    "format_date",
    "format_datetime",
    "format_with_western",
    "parse_date",
    "to_wareki",
]

#: 明治6年1月1日: the first day of the Gregorian calendar in Japan.
GREGORIAN_FROM = date(1873, 1, 1)
WEEKDAYS = "月火水木金土日"
_MEIJI_FIRST = date(1868, 1, 25)  # 明治元年 as counted back (the year, not the proclamation day)
_ABBREVIATIONS = {"M": "明治", "T": "大正", "S": "昭和", "H": "平成", "R": "令和",
                  "明": "明治", "大": "大正", "昭": "昭和", "平": "平成", "令": "令和"}
_BY_NAME = {e.name: e for e in ERAS}


def _first_day(era: Era) -> date:
    return era.first or _MEIJI_FIRST


@dataclass(frozen=True)
class Wareki:
    """One day as an era date: ``era`` name, ``year`` of the era (1 = 元年), month, day."""

    era: str
    year: int
    month: int
    day: int

    @property
    def year_label(self) -> str:
        return f"{self.era}{'元' if self.year == 1 else self.year}年"

    def __str__(self) -> str:
        return f"{self.year_label}{self.month}月{self.day}日"


def to_wareki(d: date) -> Wareki | None:
    """The era date of ``d``; ``None`` before :data:`GREGORIAN_FROM`."""
    if d < GREGORIAN_FROM:
        return None
    era = next(e for e in reversed(ERAS) if e.contains(d))
    return Wareki(era.name, d.year - _first_day(era).year + 1, d.month, d.day)


def format_date(d: date | None, *, weekday: bool = False) -> str:
    """``令和8年11月25日`` (``（水）`` with ``weekday``); the Western form before 1873; ``""`` for None."""
    if d is None:
        return ""
    w = to_wareki(d)
    text = str(w) if w is not None else f"{d.year}年{d.month}月{d.day}日"
    return f"{text}（{WEEKDAYS[d.weekday()]}）" if weekday else text


def format_with_western(d: date | None) -> str:
    """``平成15年8月2日（2003-08-02）``: where staff compare with Western dates (a birth date beside a
    register's, an arrival time beside the portal's)."""
    if d is None:
        return ""
    return f"{format_date(d)}（{d.isoformat()}）"


def format_datetime(moment: datetime | None, *, seconds: bool = False) -> str:
    """An aware moment as the JST day in 和暦 and the time: ``令和8年11月25日 14:03``."""
    if moment is None:
        return ""
    local = require_aware(moment).astimezone(JST)
    return f"{format_date(local.date())} {local:%H:%M:%S}" if seconds else f"{format_date(local.date())} {local:%H:%M}"


_WESTERN = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?")
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_ERA = re.compile(r"(明治|大正|昭和|平成|令和|[MTSHR明大昭平令])(元|\d{1,2})[-/.年](\d{1,2})[-/.月](\d{1,2})日?")


def parse_date(text: str) -> date:
    """A date as staff type it: ``2003-08-02``, ``2003/8/2``, ``20030802``, ``2003年8月2日``,
    ``平成15年8月2日``, ``平成元年1月8日``, ``H15.8.2``, ``R8/11/25`` (full-width digits and spaces
    allowed). :class:`intake.errors.InvalidDate` for anything else, for a day that does not exist, and
    for an era year outside its era."""
    folded = "".join(unicodedata.normalize("NFKC", text).split()).upper()
    if m := _ERA.fullmatch(folded):
        era_text, year_text, month, day = m.groups()
        era = _BY_NAME[_ABBREVIATIONS.get(era_text, era_text)]
        year = 1 if year_text == "元" else int(year_text)
        if year < 1:
            raise InvalidDate()
        d = _real_day(_first_day(era).year + year - 1, int(month), int(day))
        if d < GREGORIAN_FROM or not era.contains(d) or d < _first_day(era):
            raise InvalidDate("the day is not in that era")
        return d
    m = _WESTERN.fullmatch(folded) or _COMPACT.fullmatch(folded)
    if m:
        return _real_day(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    raise InvalidDate()


def _real_day(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidDate("not a day of the calendar") from None
