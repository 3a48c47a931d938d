"""Operational sources: the figures of the referral, green-channel, stationing, consultation and
capability-building apps, read through those apps' public figure selectors as the acting user
(docs/indicators.md).

One ``OperationalSources`` lives for one ``evaluate`` (or ``breakdown``) call and is told every
period the call needs, the year-earlier ones included. It reads each source as few times as the
selector allows:

- each selector answers a whole range month by month (``green_report``, the referral,
  consultation and stationing ``*_by_month`` selectors and ``capability_figures_by_month``): each
  source is read once (the green channel once per side and protocol) for each run of consecutive
  months the periods cover (a 12-month range and its year-earlier twin are one run), whatever the
  number of periods, indicators or org units; the months are pooled into periods here: counts
  summed, green-channel times put together for the median, stationed doctors united (one doctor
  stationed in two months of a quarter is one doctor of the quarter).

Only the institutions of the evaluation's org units are asked for.

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
    """The figure selectors of one evaluation, as the acting user, each source read once per run of
    months."""

    def __init__(self, user: AnyUser, spans: Iterable[Span], institutions: Iterable[Institution] | None = None) -> None:
        self.user = user
        self.spans = sorted(set(spans))
        # Only the institutions of the evaluation's org units are read (None: every one the user sees).
        self.institutions = (
            None if institutions is None else sorted({i.pk: i for i in institutions}.values(), key=lambda i: i.pk)
        )
        self.ids = None if self.institutions is None else [i.pk for i in self.institutions]
        self.totals: dict[tuple[str, dt.date, dt.date], Figures | None] = {}
        self.monthly: dict[tuple[str, ...], dict[dt.date, Figures]] = {}

    # --- reading ---------------------------------------------------------------------------------

    def figures(self, measure: Measure, start: dt.date, end: dt.date) -> Figures | None:
        """Institution id -> figures for [start, end), or None when the user may not see the source."""
        source = measure.source
        key = (source, measure.green_side, measure.green_protocol) if source == "green" else (source,)
        total_key = (":".join(key), start, end)
        if total_key in self.totals:
            return self.totals[total_key]
        try:
            figures: Figures | None = self._pooled(key, start, end)
        except PermissionDenied:
            figures = None
        self.totals[total_key] = figures
        return figures

    def _pooled(self, key: tuple[str, ...], start: dt.date, end: dt.date) -> Figures:
        """The months of [start, end) pooled: counts summed, green-channel times put together, the
        stationed doctors of the months united (one doctor in two months is one doctor)."""
        by_month = self._by_month(key, (start, end))
        pooled: Figures = {}
        for month in _months(start, end):
            for iid, figures in by_month.get(month, {}).items():
                target = pooled.setdefault(iid, {})
                for name, value in figures.items():
                    if isinstance(value, set):
                        target[name] = target.get(name, set()) | value
                    elif isinstance(value, list):
                        target.setdefault(name, []).extend(value)
                    else:
                        target[name] = target.get(name, 0) + value
        if key[0] == "stationing":
            for figures in pooled.values():
                figures["doctors_stationed"] = len(figures.pop("practitioners"))
                figures["days_committed"] = round(figures["days_committed"])
        return pooled

    def _by_month(self, key: tuple[str, ...], wanted: Span) -> dict[dt.date, Figures]:
        """Month -> institution id -> figures of one source, read once per run of months of the
        call (a period asked for outside the announced spans is read on its own)."""
        months = self.monthly.setdefault(key, {})
        missing = [m for m in _months(*wanted) if m not in months]
        if not missing:
            return months
        for run_start, run_end in month_runs([*self.spans, wanted]):
            run = _months(run_start, run_end)
            if not any(m in missing for m in run):
                continue
            read = self._read_months(key, run_start, run_end)
            for month in run:
                months[month] = read.get(month, {})
        return months

    def _read_months(self, key: tuple[str, ...], start: dt.date, end: dt.date) -> dict[dt.date, Figures]:
        last_day = end - dt.timedelta(days=1)  # consultations and the green channel take an inclusive end
        out: dict[dt.date, Figures] = {}
        if key[0] == "referrals":
            from yilian.referrals.selectors import referral_figures_by_month

            names = dsl.OPERATIONAL_FIGURES["referrals"]
            for month, by_inst in referral_figures_by_month(
                self.user, start=start, end=end, institution_ids=self.ids
            ).items():
                out[month] = {iid: {n: getattr(f, n) for n in names} for iid, f in by_inst.items()}
        elif key[0] == "consults":
            from yilian.consults.selectors import consult_figures_by_month

            names = dsl.OPERATIONAL_FIGURES["consults"]
            for month, by_id in consult_figures_by_month(
                self.user, start=start, end=last_day, institution_ids=self.ids
            ).items():
                out[month] = {iid: {n: getattr(f, n) for n in names} for iid, f in by_id.items()}
        elif key[0] == "stationing":
            from yilian.dispatch.selectors import stationing_figures_by_month

            for month, by_host in stationing_figures_by_month(
                self.user, start=start, end=last_day, institution_ids=self.ids
            ).items():
                out[month] = {
                    iid: {
                        "practitioners": m.practitioners,
                        "days_committed": m.committed,
                        "days_delivered": m.delivered,
                        "registrations": m.registrations,
                        "operations": m.operations,
                        "operations_level_34": m.operations_level_34,
                    }
                    for iid, m in by_host.items()
                }
        elif key[0] == "capability":
            from yilian.capability.selectors import capability_figures_by_month

            names = dsl.OPERATIONAL_FIGURES["capability"]
            for month, cap_figures in capability_figures_by_month(
                self.user, start=start, end=last_day, institution_ids=self.ids
            ).items():
                out[month] = {iid: {n: f.get(n, 0) for n in names} for iid, f in cap_figures.items()}
        else:
            from yilian.referrals.green_selectors import green_report

            _source, side, protocol = key
            rows = green_report(
                self.user, start=start, end=last_day, institutions=self.institutions, protocol_code=protocol, by=side
            )
            for row in rows:
                metrics = out.setdefault(row.month, {}).setdefault(row.institution.pk, {})
                for metric in row.metrics:
                    metrics.setdefault(metric.code, []).extend(metric.values)
        return out

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
