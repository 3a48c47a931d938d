"""Request and response bodies of the indicator API, and the period arithmetic it shares with the
dashboard: a range asked for is widened to whole periods of its grain (a quarter that starts in
the middle of a month would count half a month), and ``to`` is the last day included while the
engine's ends are exclusive."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.utils.translation import gettext as _
from ninja import Field, Schema
from pydantic import field_validator

from yilian.core.schemas import iso_text, plausible_day

GrainName = Literal["month", "quarter", "year"]
MAX_YEARS = 10
MAX_ORGS = 50


# ----------------------------------------------------------------------------------------
# Periods


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(day: dt.date, n: int) -> dt.date:
    """The first day of the month ``n`` months after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


def period_start(day: dt.date, grain: str) -> dt.date:
    if grain == "year":
        return dt.date(day.year, 1, 1)
    if grain == "quarter":
        return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return month_start(day)


def period_after(day: dt.date, grain: str) -> dt.date:
    """The first day after the period of ``grain`` that contains ``day``."""
    start = period_start(day, grain)
    return add_months(start, {"year": 12, "quarter": 3}.get(grain, 1))


def last_full_year(today: dt.date) -> tuple[dt.date, dt.date]:
    """(first day, last day) of the last calendar year that has ended."""
    return dt.date(today.year - 1, 1, 1), dt.date(today.year - 1, 12, 31)


def whole_periods(start: dt.date, last: dt.date, grain: str) -> tuple[dt.date, dt.date]:
    """The range from ``start`` to ``last`` (included), widened to whole periods: (start, end
    exclusive). Raises ValueError with a message for the user when the range is backwards or too long."""
    if last < start:
        raise ValueError(_("The end cannot come before the start."))
    begin, end = period_start(start, grain), period_after(last, grain)
    if end > add_months(begin, 12 * MAX_YEARS):
        raise ValueError(_("Ask for at most %(n)d years at a time.") % {"n": MAX_YEARS})
    return begin, end


# ----------------------------------------------------------------------------------------
# Requests


class ValuesQuery(Schema):
    org: list[str] = Field(
        default_factory=list,
        description="Organisation units as kind:code, e.g. institution:bjfph, consortium:bijie-nrmc, region:330800 "
        "(repeat the parameter for several). Default: the units you may see at the top level.",
        max_length=MAX_ORGS,
    )
    period: GrainName = Field("year", description="The grain: month, quarter or year.")
    start: dt.date | None = Field(
        None, alias="from", description="First day; widened to the start of its period. Default: the last full year."
    )
    end: dt.date | None = Field(
        None, alias="to", description="Last day (included); widened to the end of its period. Default: 31 December."
    )
    department: str = Field("", max_length=100, description="Only this department (as the hospitals export it).")

    _iso = field_validator("start", "end", mode="before")(iso_text)
    _days = field_validator("start", "end")(plausible_day)

    @field_validator("org", mode="after")
    @classmethod
    def _org_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            kind, sep, code = key.partition(":")
            if not sep or kind not in ("institution", "consortium", "region") or not code.strip():
                raise ValueError(
                    _("%(key)s is not an organisation unit: write institution:CODE, consortium:CODE or region:CODE.")
                    % {"key": key[:60]}
                )
        return keys

    def range(self, today: dt.date) -> tuple[dt.date, dt.date]:
        """(start, end exclusive) in whole periods; ValueError with a message when impossible."""
        default_start, default_last = last_full_year(today)
        start = self.start or (dt.date(self.end.year, 1, 1) if self.end else default_start)
        last = self.end or (dt.date(start.year, 12, 31) if self.start else default_last)
        return whole_periods(start, last, self.period)


# ----------------------------------------------------------------------------------------
# Responses


class IndicatorOut(Schema):
    code: str
    name: str = Field(description="In the language of the request.")
    name_zh: str
    name_en: str
    definition: str = Field(description="What is counted, in the language of the request.")
    definition_zh: str
    definition_en: str
    programme: str
    programme_label: str
    unit: str
    unit_label: str = Field(description="The unit in the language of the request.")
    factor: float
    direction: Literal["higher_better", "lower_better"]
    target: float | None
    numerator: dict[str, Any] = Field(description="The numerator's expression, as stored.")
    denominator: dict[str, Any] | None = Field(description="The denominator's expression, as stored; null for counts.")


class OrgUnitOut(Schema):
    key: str = Field(description="kind:code, as the org parameter takes it.")
    kind: Literal["institution", "consortium", "region"]
    code: str
    name: str


class PeriodOut(Schema):
    grain: GrainName
    label: str = Field(description="2025, 2025-Q1 or 2025-03.")
    start: dt.date
    end: dt.date = Field(description="The last day of the period (included).")


class CoverageOut(Schema):
    share: float | None = Field(description="Institutions of the unit with data for the period ÷ all (0..1).")
    note: str


class ValueOut(Schema):
    org: OrgUnitOut
    period: PeriodOut
    numerator: float | None
    denominator: float | None
    value: float | None = Field(description="numerator ÷ denominator × factor; the count itself without denominator.")
    target: float | None
    met: bool | None = Field(description="Whether the value reaches the target in the indicator's direction.")
    coverage: CoverageOut
    previous: float | None = Field(description="The value of the same period one year earlier.")
    yoy: float | None = Field(description="Relative change against previous: 0.31 is +31 %.")
    basis: list[str] = Field(
        description="What the value rests on, in the language of the request, one sentence per catalogue-derived "
        "operation column the indicator uses: which operation classification, level-4 or minimally invasive "
        "catalogue decided it over the period (and from when), or that the hospitals' reports did. Empty for "
        "indicators that use none."
    )


class ValuesOut(Schema):
    indicator: IndicatorOut
    grain: GrainName
    start: dt.date = Field(description="First day of the first period.")
    end: dt.date = Field(description="Last day of the last period (included).")
    department: str
    values: list[ValueOut]
