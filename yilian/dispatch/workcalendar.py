"""The mainland China working calendar: which days are working days, and why.

Pure Python (no Django models): the caller passes the overrides a person entered (the consortium's
own calendar days). For each day, in order:

1. an override wins (``source="override"``);
2. else the State Council's schedule as the ``chinese_calendar`` package knows it: public holidays
   off, adjusted working days (调休上班, usually a Saturday or Sunday) on (``source="statutory"``);
3. else, for a year the package has no data for, Monday to Friday (``source="weekdays"``), and the
   year is listed in ``Horizon.unknown_years`` so the UI can warn that its holidays are not loaded.

The package is updated once a year after the State Council publishes the next year's schedule
(usually in November); until then that year falls back to weekdays unless overrides cover it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Literal

import chinese_calendar  # type: ignore[import-untyped]

Source = Literal["override", "statutory", "weekdays"]

# The package names holidays in English and keeps the Chinese name on its enum.
_CHINESE_NAMES: dict[str, str] = {h.value: h.chinese for h in chinese_calendar.Holiday}


@dataclass(frozen=True)
class DayInfo:
    date: dt.date
    is_workday: bool
    # The holiday's name on a holiday, the compensated holiday's name on an adjusted working day,
    # the name a person gave an override, else "".
    name: str
    source: Source
    name_zh: str = ""  # the Chinese name of a statutory day; for an override, the name as entered

    @property
    def is_adjusted_workday(self) -> bool:
        """A Saturday or Sunday that is a working day (调休上班)."""
        return self.is_workday and self.date.weekday() >= 5

    @property
    def is_holiday(self) -> bool:
        """A Monday-to-Friday day that is not a working day (a public holiday or a day off in lieu)."""
        return not self.is_workday and self.date.weekday() < 5


@dataclass(frozen=True)
class Horizon:
    days: list[DayInfo]  # every day from start to end, in order
    working_days: frozenset[dt.date]
    unknown_years: tuple[int, ...]  # years with no statutory data and no override: the UI warns


@cache
def statutory_years() -> tuple[int, int]:
    """The first and last year the ``chinese_calendar`` package has the State Council's schedule for."""
    years = [d.year for d in chinese_calendar.holidays]
    return min(years), max(years)


def _statutory(day: dt.date) -> DayInfo | None:
    first, last = statutory_years()
    if not first <= day.year <= last:
        return None
    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        return None
    name = name or ""
    return DayInfo(day, not on_holiday, name, "statutory", _CHINESE_NAMES.get(name, name))


def day_info(day: dt.date, overrides: Mapping[dt.date, tuple[bool, str]]) -> DayInfo:
    if day in overrides:
        is_workday, name = overrides[day]
        return DayInfo(day, is_workday, name, "override", name)
    return _statutory(day) or DayInfo(day, day.weekday() < 5, "", "weekdays")


def horizon(start: dt.date, end: dt.date, overrides: Mapping[dt.date, tuple[bool, str]]) -> Horizon:
    """The days from ``start`` to ``end`` (both included)."""
    days = [day_info(start + dt.timedelta(days=i), overrides) for i in range((end - start).days + 1)]
    first, last = statutory_years()
    overridden = {d.year for d in overrides}
    unknown = sorted({d.date.year for d in days if not first <= d.date.year <= last} - overridden)
    return Horizon(
        days=days,
        working_days=frozenset(d.date for d in days if d.is_workday),
        unknown_years=tuple(unknown),
    )
