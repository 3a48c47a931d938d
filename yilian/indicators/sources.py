"""Operational sources: the figures of the referral, green-channel, stationing and consultation apps,
read through those apps' public figure selectors as the acting user (docs/indicators.md).

One ``OperationalSources`` lives for one ``evaluate`` (or ``breakdown``) call and is told every
period the call needs, the year-earlier ones included. It reads each source as few times as the
selector allows:

- the green channel (``green_report``) answers a whole range with a row per institution, protocol
  and month: it is read once per side and protocol for each run of consecutive months the periods
  cover (a 12-month range and its year-earlier twin are one run), and the months are pooled into
  periods here;
- referrals, stationing and consultations return totals for [start, end) only (stationing counts
  distinct doctors, which do not add up over months): they are read once per source and period,
  whatever the number of indicators or org units that use them.

What the user may not see (the selector refuses) is no data, never zero.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied

from yilian.indicators import dsl
from yilian.indicators.dsl import Measure
from yilian.registry.models import Institution
from yilian.registry.selectors import AnyUser

__all__ = ["Figures", "OperationalSources", "month_runs"]

Figures = dict[int, dict[str, Any]]  # institution id -> figure -> value (green: metric code -> minutes)
Span = tuple[dt.date, dt.date]  # [start, end), whole months


def _add_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _months(start: dt.date, end: dt.date) -> list[dt.date]:
    out, day = [], start.replace(day=1)
    while day < end:
        out.append(day)
        day = _add_month(day)
    return out


def month_runs(spans: Iterable[Span]) -> list[Span]:
    """The months the spans cover, as maximal runs of consecutive months [start, end)."""
    months = sorted({m for start, end in spans for m in _months(start, end)})
    runs: list[Span] = []
    for month in months:
        if runs and runs[-1][1] == month:
            runs[-1] = (runs[-1][0], _add_month(month))
        else:
            runs.append((month, _add_month(month)))
    return runs


class OperationalSources:
    """The figure selectors of one evaluation, as the acting user, each source read once per period
    (or once per run of months where the selector answers a range)."""

    def __init__(self, user: AnyUser, spans: Iterable[Span]) -> None:
        self.user = user
        self.spans = sorted(set(spans))
        self.totals: dict[tuple[str, dt.date, dt.date], Figures | None] = {}
        self.green_months: dict[tuple[str, str], dict[dt.date, Figures]] = {}
        self.green: dict[tuple[str, str, dt.date, dt.date], Figures] = {}

    # --- reading ---------------------------------------------------------------------------------

    def figures(self, measure: Measure, start: dt.date, end: dt.date) -> Figures | None:
        """Institution id -> figures for [start, end), or None when the user may not see the source."""
        if measure.source == "green":
            return self._green(measure.green_side, measure.green_protocol, start, end)
        key = (measure.source, start, end)
        if key not in self.totals:
            try:
                self.totals[key] = self._read_totals(measure.source, start, end)
            except PermissionDenied:
                self.totals[key] = None
        return self.totals[key]

    def _read_totals(self, source: str, start: dt.date, end: dt.date) -> Figures:
        last_day = end - dt.timedelta(days=1)  # these two selectors take an inclusive end
        if source == "referrals":
            from yilian.referrals.selectors import referral_figures

            return {iid: vars(f) for iid, f in referral_figures(self.user, start=start, end=end).items()}
        if source == "stationing":
            from yilian.dispatch.selectors import stationing_figures

            return {
                f.institution.pk: {name: getattr(f, name) for name in dsl.OPERATIONAL_FIGURES["stationing"]}
                for f in stationing_figures(self.user, start=start, end=last_day)
            }
        if source == "consults":
            from yilian.consults.selectors import consult_figures

            return {
                f.institution_id: {name: getattr(f, name) for name in dsl.OPERATIONAL_FIGURES["consults"]}
                for f in consult_figures(self.user, start=start, end=last_day)
            }
        raise ValueError(source)  # pragma: no cover - dsl admits no other operational source

    def _green(self, side: str, protocol: str, start: dt.date, end: dt.date) -> Figures:
        key = (side, protocol, start, end)
        if key not in self.green:
            by_month = self._green_by_month(side, protocol, (start, end))
            pooled: Figures = {}
            for month in _months(start, end):
                for iid, metrics in by_month.get(month, {}).items():
                    target = pooled.setdefault(iid, {})
                    for code, values in metrics.items():
                        target.setdefault(code, []).extend(values)
            self.green[key] = pooled
        return self.green[key]

    def _green_by_month(self, side: str, protocol: str, wanted: Span) -> dict[dt.date, Figures]:
        """Month -> institution id -> metric -> minutes, read once per run of months of the call
        (a period asked for outside the announced spans is read on its own)."""
        from yilian.referrals.green_selectors import green_report

        months = self.green_months.setdefault((side, protocol), {})
        missing = [m for m in _months(*wanted) if m not in months]
        if not missing:
            return months
        announced = month_runs([*self.spans, wanted])
        for run_start, run_end in announced:
            run = _months(run_start, run_end)
            if not any(m in missing for m in run):
                continue
            for month in run:
                months.setdefault(month, {})
            rows = green_report(
                self.user, start=run_start, end=run_end - dt.timedelta(days=1), protocol_code=protocol, by=side
            )
            for row in rows:
                metrics = months.setdefault(row.month, {}).setdefault(row.institution.pk, {})
                for metric in row.metrics:
                    metrics.setdefault(metric.code, []).extend(metric.values)
        return months

    # --- values ----------------------------------------------------------------------------------

    def value(
        self, measure: Measure, start: dt.date, end: dt.date, institutions: Iterable[Institution]
    ) -> tuple[float | None, bool]:
        """The measure summed (or, for the green channel, pooled into a median) over the
        institutions; ``(None, allowed)`` when none of them has figures."""
        figures = self.figures(measure, start, end)
        if figures is None:
            return None, False
        rows = []
        for inst in institutions:
            if inst.pk not in figures:
                continue
            attrs = {"institution_type": inst.type, "institution_grade": inst.grade}
            if all(dsl.condition_holds(c, attrs.get(c[0])) for c in measure.where):
                rows.append(figures[inst.pk])
            elif measure.source != "green":
                rows.append({})  # the institution has figures, none of them match: zero, not "no data"
        if not rows:
            return None, True
        if measure.source == "green":
            values = [v for r in rows for v in r.get(measure.green_metric, [])]
            return (round(statistics.median(values), 1) if values else None), True
        return float(sum(r.get(measure.argument, 0) for r in rows)), True
