"""Business days of the ward office (開庁日): 標準処理期間 due dates and the daily mail's roll-up.

A day is a business day unless it is a Saturday or Sunday, a national holiday (祝日, 振替休日,
国民の休日 — from the maintained ``jpholiday`` library), one of the year-end closing days 12/29–1/3
(年末年始, the closing days most wards' 休日条例 set, following 地方自治法 第4条の2), or an extra
closed day the procedure catalogue lists; an extra *open* day in the catalogue overrides all of it
(an election Sunday the office opens).

Periods follow the civil-code rule for counting days (民法 第140条, 初日不算入): a period of *n*
business days starting on a day ends on the *n*-th business day **after** it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

import jpholiday

__all__ = ["YEAR_END_CLOSING", "WardCalendar"]

#: (month, day) of the year-end closing days, 12/29–1/3.
YEAR_END_CLOSING = frozenset({(12, 29), (12, 30), (12, 31), (1, 1), (1, 2), (1, 3)})
_LIMIT = 3660  # ten years of days: a period longer than that is a configuration error


@dataclass(frozen=True)
class WardCalendar:
    """The ward's business days. ``closed_days`` and ``open_days`` come from the catalogue file."""

    closed_days: frozenset[date] = field(default_factory=frozenset)
    open_days: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def of(cls, closed: Iterable[date] = (), opened: Iterable[date] = ()) -> WardCalendar:
        return cls(frozenset(closed), frozenset(opened))

    def closed_reason(self, d: date) -> str | None:
        """Why the office is closed on ``d`` (in Japanese, for the UI and the mail), ``None`` if open."""
        if d in self.open_days:
            return None
        if d in self.closed_days:
            return "閉庁日"
        if (d.month, d.day) in YEAR_END_CLOSING:
            return "年末年始"
        name = jpholiday.is_holiday_name(d)
        if name:
            return str(name)
        if d.weekday() >= 5:
            return "土曜日" if d.weekday() == 5 else "日曜日"
        return None

    def is_business_day(self, d: date) -> bool:
        return self.closed_reason(d) is None

    def next_business_day(self, d: date) -> date:
        """The first business day strictly after ``d``."""
        return next(self._forward(d))

    def previous_business_day(self, d: date) -> date:
        """The last business day strictly before ``d``."""
        day = d
        for _ in range(_LIMIT):
            day -= timedelta(days=1)
            if self.is_business_day(day):
                return day
        raise ValueError("no business day in ten years")  # pragma: no cover - a configuration error

    def add_business_days(self, start: date, n: int) -> date:
        """The ``n``-th business day after ``start`` (初日不算入); ``start`` itself for ``n == 0``."""
        if n < 0:
            raise ValueError("a period is not negative")
        day = start
        days = self._forward(start)
        for _ in range(n):
            day = next(days)
        return day

    def business_days_between(self, first: date, last: date) -> int:
        """Business days in ``(first, last]`` — how far a period has run from ``first`` to ``last``."""
        if last <= first:
            return 0
        count, day = 0, first
        while day < last:
            day += timedelta(days=1)
            count += self.is_business_day(day)
        return count

    def _forward(self, d: date) -> Iterator[date]:
        day = d
        for _ in range(_LIMIT):
            day += timedelta(days=1)
            if self.is_business_day(day):
                yield day
        raise ValueError("no business day in ten years")  # pragma: no cover - a configuration error
