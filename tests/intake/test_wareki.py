"""和暦: one conversion, across the era boundaries, both ways."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from intake.errors import InvalidDate, NaiveDateTime
from intake.jst import JST
from intake.wareki import format_date, format_datetime, format_with_western, parse_date, to_wareki


@pytest.mark.parametrize(("day", "expected"), [
    (date(2019, 4, 30), "平成31年4月30日"),
    (date(2019, 5, 1), "令和元年5月1日"),
    (date(2019, 12, 31), "令和元年12月31日"),
    (date(2020, 1, 1), "令和2年1月1日"),
    (date(1989, 1, 7), "昭和64年1月7日"),
    (date(1989, 1, 8), "平成元年1月8日"),
    (date(1926, 12, 24), "大正15年12月24日"),
    (date(1926, 12, 25), "昭和元年12月25日"),
    (date(1912, 7, 29), "明治45年7月29日"),
    (date(1912, 7, 30), "大正元年7月30日"),
    (date(1873, 1, 1), "明治6年1月1日"),
    (date(2003, 8, 2), "平成15年8月2日"),
    (date(2026, 11, 25), "令和8年11月25日"),
], ids=lambda v: v.isoformat() if isinstance(v, date) else v)
def test_format_across_era_boundaries(day: date, expected: str) -> None:
    assert format_date(day) == expected
    assert parse_date(expected) == day  # and back


def test_before_the_gregorian_calendar_there_is_no_wareki() -> None:
    assert to_wareki(date(1872, 12, 31)) is None
    assert format_date(date(1872, 12, 31)) == "1872年12月31日"
    with pytest.raises(InvalidDate):
        parse_date("明治5年12月31日")


def test_weekday_and_both_calendars() -> None:
    assert format_date(date(2026, 11, 25), weekday=True) == "令和8年11月25日（水）"
    assert format_with_western(date(2003, 8, 2)) == "平成15年8月2日（2003-08-02）"
    assert format_date(None) == ""
    assert format_with_western(None) == ""


def test_datetime_is_shown_in_jst() -> None:
    utc = datetime(2019, 4, 30, 15, 0, tzinfo=UTC)  # 2019-05-01 00:00 in Tokyo
    assert format_datetime(utc) == "令和元年5月1日 00:00"
    assert format_datetime(utc - timedelta(seconds=1), seconds=True) == "平成31年4月30日 23:59:59"
    assert format_datetime(datetime(2026, 11, 25, 14, 3, tzinfo=JST)) == "令和8年11月25日 14:03"
    with pytest.raises(NaiveDateTime):
        format_datetime(datetime(2026, 11, 25, 14, 3))  # noqa: DTZ001 - the refusal is the point


@pytest.mark.parametrize(("text", "expected"), [
    ("2003-08-02", date(2003, 8, 2)),
    ("2003/8/2", date(2003, 8, 2)),
    ("20030802", date(2003, 8, 2)),
    ("２００３年８月２日", date(2003, 8, 2)),
    ("H15.8.2", date(2003, 8, 2)),
    ("h15/8/2", date(2003, 8, 2)),
    ("平15年8月2日", date(2003, 8, 2)),
    ("平成 15年 8月 2日", date(2003, 8, 2)),
    ("R1.5.1", date(2019, 5, 1)),
    ("令和元年5月1日", date(2019, 5, 1)),
    ("S64.1.7", date(1989, 1, 7)),
    ("H1.1.8", date(1989, 1, 8)),
])
def test_parse_what_staff_type(text: str, expected: date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", [
    "平成31年5月1日",  # that day is 令和元年5月1日
    "昭和64年1月8日",  # that day is 平成元年1月8日
    "令和元年4月30日",  # 令和 had not begun
    "平成0年1月1日", "2003-02-30", "令和8年13月1日", "yesterday", "", "2003-08", "X15.8.2",
])
def test_refuses_days_that_do_not_exist(text: str) -> None:
    with pytest.raises(InvalidDate) as caught:
        parse_date(text)
    assert text not in str(caught.value) or not text  # the refusal never repeats the value
