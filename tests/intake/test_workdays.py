"""Business days: weekends, 祝日 (jpholiday), 年末年始, the catalogue's own closed and open days."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from intake.procedures import load_procedures
from intake.workdays import WardCalendar

CAL = WardCalendar()


@pytest.mark.parametrize(("day", "reason"), [
    (date(2026, 11, 21), "土曜日"),
    (date(2026, 11, 22), "日曜日"),
    (date(2026, 11, 23), "勤労感謝の日"),
    (date(2026, 11, 24), None),
    (date(2026, 12, 29), "年末年始"),
    (date(2027, 1, 1), "年末年始"),
    (date(2027, 1, 4), None),
    (date(2027, 1, 11), "成人の日"),
    (date(2026, 5, 6), "憲法記念日 振替休日"),  # 2026-05-03 (憲法記念日) is a Sunday
    (date(2026, 9, 22), "国民の休日"),  # between 敬老の日 (9/21) and 秋分の日 (9/23)
])
def test_closed_days(day: date, reason: str | None) -> None:
    assert CAL.closed_reason(day) == reason
    assert CAL.is_business_day(day) is (reason is None)


def test_periods_start_the_day_after() -> None:
    # Friday 2026-11-20: the 1st business day after it is Tuesday 11/24 (weekend, then 勤労感謝の日).
    assert CAL.add_business_days(date(2026, 11, 20), 1) == date(2026, 11, 24)
    assert CAL.add_business_days(date(2026, 11, 20), 0) == date(2026, 11, 20)
    # over the year end: 12/28 (Mon) + 1 → 1/4 (Mon)
    assert CAL.add_business_days(date(2026, 12, 28), 1) == date(2027, 1, 4)
    assert CAL.add_business_days(date(2026, 11, 25), 10) == date(2026, 12, 9)
    assert CAL.business_days_between(date(2026, 11, 20), date(2026, 11, 24)) == 1
    assert CAL.business_days_between(date(2026, 11, 24), date(2026, 11, 20)) == 0
    assert CAL.next_business_day(date(2026, 11, 20)) == date(2026, 11, 24)
    assert CAL.previous_business_day(date(2026, 11, 24)) == date(2026, 11, 20)
    with pytest.raises(ValueError, match="negative"):
        CAL.add_business_days(date(2026, 11, 20), -1)


def test_the_catalogue_sets_standard_days_and_extra_days(tmp_path: Path) -> None:
    path = tmp_path / "procedures.json"
    path.write_text(json.dumps({
        "procedures": [{"id": "A", "name": "甲", "department": "d", "standard_days": 10},
                       {"id": "B", "name": "乙", "department": "d"}],
        "closed_days": ["2026-11-24"], "open_days": ["2026-11-22"],
    }), encoding="utf-8")
    catalogue = load_procedures(path)
    assert catalogue.procedures["A"].standard_days == 10
    assert catalogue.procedures["B"].standard_days is None
    assert catalogue.calendar.closed_reason(date(2026, 11, 24)) == "閉庁日"
    assert catalogue.calendar.is_business_day(date(2026, 11, 22))  # an open Sunday
    for bad in ({"standard_days": 0}, {"standard_days": "10"}, {"standard_days": True}):
        path.write_text(json.dumps({"procedures": [{"id": "A", "name": "甲", "department": "d", **bad}]}),
                        encoding="utf-8")
        with pytest.raises(ValueError, match="standard_days"):
            load_procedures(path)
    path.write_text(json.dumps({"procedures": [], "closed_days": ["11/24"]}), encoding="utf-8")
    with pytest.raises(ValueError, match="closed_days"):
        load_procedures(path)
