"""Japan Standard Time, the one clock people read: calendar days, day boundaries, aware moments.

Every day a person means (the day an application arrived, the daily mail's day, the access log's
search days, the retention cutoff) is a JST calendar day; every moment the code compares is aware.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

from intake.errors import NaiveDateTime

__all__ = ["JST", "day_bounds", "day_start", "jst_day", "require_aware"]

JST = timezone(timedelta(hours=9), "JST")


def require_aware(moment: datetime) -> datetime:
    """``moment`` if it is aware, else :class:`intake.errors.NaiveDateTime` (time is an input, and
    an input must say which time it is)."""
    if moment.tzinfo is None:
        raise NaiveDateTime
    return moment


def jst_day(moment: datetime) -> date:
    """The JST calendar day of an aware moment."""
    return require_aware(moment).astimezone(JST).date()


def day_start(day: date) -> datetime:
    """Midnight JST at the start of ``day``."""
    return datetime.combine(day, time(0), JST)


def day_bounds(first: date, last: date | None = None) -> tuple[datetime, datetime]:
    """``[first 00:00 JST, (last or first) + 1 day 00:00 JST)`` as aware UTC moments."""
    end = (last or first) + timedelta(days=1)
    return day_start(first).astimezone(UTC), day_start(end).astimezone(UTC)
