"""The mainland China working calendar: the statutory schedule, overrides and unknown years."""

from __future__ import annotations

import datetime as dt

from yilian.dispatch import workcalendar
from yilian.dispatch.workcalendar import day_info, horizon, statutory_years


def test_national_day_2026_is_seven_days_off() -> None:
    for day in range(1, 8):
        info = day_info(dt.date(2026, 10, day), {})
        assert (info.is_workday, info.name, info.name_zh, info.source) == (False, "National Day", "国庆节", "statutory")
    assert day_info(dt.date(2026, 10, 8), {}) == workcalendar.DayInfo(dt.date(2026, 10, 8), True, "", "statutory")
    assert day_info(dt.date(2026, 10, 1), {}).is_holiday


def test_an_adjusted_working_weekend_day_in_2026() -> None:
    # Sunday 20 September and Saturday 10 October 2026 are worked to make up for National Day.
    for date in (dt.date(2026, 9, 20), dt.date(2026, 10, 10)):
        info = day_info(date, {})
        assert date.weekday() >= 5
        assert (info.is_workday, info.name, info.source) == (True, "National Day", "statutory")
        assert info.is_adjusted_workday
    ordinary = day_info(dt.date(2026, 10, 17), {})
    assert (ordinary.is_workday, ordinary.name, ordinary.is_adjusted_workday) == (False, "", False)


def test_an_override_wins_over_the_statutory_calendar() -> None:
    overrides = {
        dt.date(2026, 10, 2): (True, "Hospital open day"),
        dt.date(2026, 10, 8): (False, "Local holiday"),
    }
    opened = day_info(dt.date(2026, 10, 2), overrides)
    closed = day_info(dt.date(2026, 10, 8), overrides)
    assert (opened.is_workday, opened.name, opened.source) == (True, "Hospital open day", "override")
    assert (closed.is_workday, closed.name, closed.source) == (False, "Local holiday", "override")

    h = horizon(dt.date(2026, 9, 28), dt.date(2026, 10, 11), overrides)
    assert dt.date(2026, 10, 2) in h.working_days and dt.date(2026, 10, 8) not in h.working_days
    assert sorted(h.working_days) == [
        dt.date(2026, 9, 28),
        dt.date(2026, 9, 29),
        dt.date(2026, 9, 30),
        dt.date(2026, 10, 2),
        dt.date(2026, 10, 9),
        dt.date(2026, 10, 10),
    ]
    assert h.unknown_years == ()


def test_an_unknown_year_falls_back_to_weekdays_and_is_listed() -> None:
    first, last = statutory_years()
    assert first <= 2026 <= last < 2027
    new_year = day_info(dt.date(2027, 1, 1), {})  # a Friday: no data, so an ordinary weekday
    assert (new_year.is_workday, new_year.name, new_year.source) == (True, "", "weekdays")
    assert day_info(dt.date(2027, 1, 2), {}).is_workday is False

    h = horizon(dt.date(2026, 12, 28), dt.date(2027, 1, 10), {})
    assert h.unknown_years == (2027,)
    assert len(h.days) == 14 and h.days[0].date == dt.date(2026, 12, 28)
    assert {d.source for d in h.days if d.date.year == 2026} == {"statutory"}
    assert dt.date(2027, 1, 1) in h.working_days and dt.date(2027, 1, 4) in h.working_days


def test_an_override_in_an_unknown_year_means_it_is_loaded() -> None:
    overrides = {dt.date(2027, 1, 1): (False, "元旦")}
    h = horizon(dt.date(2026, 12, 28), dt.date(2027, 1, 10), overrides)
    assert h.unknown_years == ()
    assert dt.date(2027, 1, 1) not in h.working_days
    assert day_info(dt.date(2027, 1, 1), overrides).name == "元旦"
