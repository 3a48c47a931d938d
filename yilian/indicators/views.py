"""Indicator pages: the definitions, and the "two improvements" dashboard (两提升) of a consortium,
an institution or a region.

The dashboard reads only the indicator engine: one ``engine.evaluate`` for the headline cards,
one for every time-series chart together, and one ``engine.flows`` per flow chart; drill-downs
(``engine.breakdown``) are fetched as JSON when a chart is clicked. Charts get their data as JSON
in the page (``json_script``) and are drawn by the vendored ECharts; every chart also has its
table in the page (works without JavaScript) and an Excel download of that table.

Nothing is cached here: the engine answers from the current facts, so an import or a withdrawal
shows at once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from yilian.activity.columns import Kind
from yilian.indicators import engine, export, selectors
from yilian.indicators.api import require_indicators
from yilian.indicators.engine import GRAINS as GRAIN_NAMES
from yilian.indicators.engine import Grain, IndicatorValue, OrgUnit
from yilian.indicators.models import Direction, Indicator, Programme
from yilian.indicators.schemas import add_months, last_full_year, period_after, period_start, whole_periods
from yilian.registry.models import Department, Institution, User

GRAINS = [("month", gettext_lazy("Month")), ("quarter", gettext_lazy("Quarter")), ("year", gettext_lazy("Year"))]
DRILL_BY = ("institution", "department")
ORIGIN_CODES = ("visits_local", "visits_other_county", "visits_other_city", "visits_other_province")


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


# ----------------------------------------------------------------------------------------
# The definitions


@dataclass
class DefinitionCard:
    indicator: Indicator
    formula: str
    target: str


def _target_text(indicator: Indicator) -> str:
    if indicator.target is None:
        return ""
    sign = "≥" if indicator.direction == Direction.HIGHER_BETTER else "≤"
    return f"{sign} {_number(indicator.target)} {indicator.get_unit_display()}".strip()


def formula_text(indicator: Indicator, names: dict[str, str] | None = None) -> str:
    """``numerator ÷ denominator × factor`` in words, from the stored definition."""
    numerator = _measure_text(indicator.numerator)
    if indicator.denominator is None:
        return numerator if indicator.factor == 1 else f"{numerator} × {indicator.factor:g}"
    return f"{numerator} ÷ {_measure_text(indicator.denominator)} × {indicator.factor:g}"


SOURCE_LABELS = {
    "discharges": gettext_lazy("discharges"),
    "operations": gettext_lazy("operations"),
    "visits": gettext_lazy("visits"),
    "referrals": gettext_lazy("referrals"),
    "stationing": gettext_lazy("stationing"),
    "consults": gettext_lazy("teleconsultations"),
    "green": gettext_lazy("green channel"),
    "capability": gettext_lazy("capability building"),
}


def _measure_text(measure: dict[str, Any]) -> str:
    source = str(SOURCE_LABELS.get(str(measure.get("source")), measure.get("source", "")))
    kind, _sep, arg = str(measure.get("measure", "rows")).partition(":")
    what = {
        "rows": _("count of %(source)s"),
        "distinct": _("distinct %(arg)s of %(source)s"),
        "sum": _("sum of %(arg)s of %(source)s"),
        "median": _("median of %(arg)s of %(source)s"),
    }.get(kind, _("%(source)s"))
    text = what % {"source": source, "arg": arg}
    where = measure.get("where") or []
    if where:
        conditions = []
        for cond in where:
            column, op, *rest = [*cond, None][:3] if len(cond) == 2 else cond
            value = rest[0] if rest else None
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            conditions.append(f"{column} {op} {value}" if value is not None else f"{column} {op}")
        text += " [" + "; ".join(conditions) + "]"
    if measure.get("attribute_to") == "residence":
        text += " " + _("(by residence)")
    return text


@login_required
@require_GET
def indicator_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_indicators(user)
    groups: dict[str, list[DefinitionCard]] = {}
    for indicator in selectors.indicator_list(user):
        card = DefinitionCard(indicator=indicator, formula=formula_text(indicator), target=_target_text(indicator))
        groups.setdefault(indicator.programme, []).append(card)
    labels = dict(Programme.choices)
    ordered = [(code, str(labels.get(code, code)), groups[code]) for code in labels if code in groups]
    ordered += [(code, code, cards) for code, cards in groups.items() if code not in labels]
    return render(request, "indicators/list.html", {"groups": ordered})


# ----------------------------------------------------------------------------------------
# The dashboard's query


@dataclass
class DashboardQuery:
    """What the filters asked for, resolved: the org unit, the grain and the range (start, end
    exclusive) in whole periods; ``errors`` says what could not be read (defaults are used)."""

    org: OrgUnit
    grain: Grain
    start: dt.date
    end: dt.date
    department: str
    units: list[OrgUnit]
    errors: list[str] = field(default_factory=list)

    @property
    def last(self) -> dt.date:
        return self.end - dt.timedelta(days=1)

    def params(self, **changes: str) -> dict[str, str]:
        out = {
            self.org.kind: self.org.code,
            "grain": self.grain,
            "from": f"{self.start:%Y-%m}",
            "to": f"{self.last:%Y-%m}",
        }
        if self.department:
            out["department"] = self.department
        out.update(changes)
        return {k: v for k, v in out.items() if v}

    def query_string(self, **changes: str) -> str:
        return urlencode(self.params(**changes))


_MONTH = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


def _parse_month(text: str, *, end: bool) -> dt.date | None:
    match = _MONTH.match(text.strip())
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not (1900 <= year <= 2100 and 1 <= month <= 12):
        return None
    first = dt.date(year, month, 1)
    return add_months(first, 1) - dt.timedelta(days=1) if end else first


def _grain(text: str) -> Grain | None:
    for grain in GRAIN_NAMES:
        if text == grain:
            return grain
    return None


def dashboard_query(user: User, params: Any) -> DashboardQuery:
    """The dashboard's org unit, grain and range from the GET parameters. A unit the user may not
    see is refused (PermissionDenied); everything else that cannot be read falls back to the
    default with a message: the user's first consortium (else institution, else region), months of
    the last full year."""
    units = selectors.org_units_visible_to(user)
    errors: list[str] = []
    org: OrgUnit | None = None
    for kind in ("institution", "consortium", "region"):
        code = str(params.get(kind, "")).strip()
        if code:
            try:
                org = selectors.access_org_unit(user, f"{kind}:{code}")
            except Http404:
                errors.append(_("No organisation unit %(key)s.") % {"key": f"{kind}:{code}"[:60]})
                continue
            break
    if org is None:
        org = next((u for kind in ("consortium", "institution", "region") for u in units if u.kind == kind), None)
    if org is None:
        raise PermissionDenied(_("You may not see the indicators of any organisation unit."))
    grain = _grain(str(params.get("grain", "month")))
    if grain is None:
        errors.append(_("Choose month, quarter or year."))
        grain = "month"
    default_start, default_last = last_full_year(timezone.localdate())
    start = _parse_month(str(params.get("from", "")), end=False) if params.get("from") else default_start
    last = _parse_month(str(params.get("to", "")), end=True) if params.get("to") else default_last
    if start is None or last is None:
        errors.append(_("Write months as YYYY-MM."))
        start, last = default_start, default_last
    try:
        begin, end = whole_periods(start, last, grain)
    except ValueError as exc:
        errors.append(str(exc))
        begin, end = whole_periods(default_start, default_last, grain)
    department = str(params.get("department", "")).strip()[:100]
    return DashboardQuery(org=org, grain=grain, start=begin, end=end, department=department, units=units, errors=errors)


# ----------------------------------------------------------------------------------------
# Charts


@dataclass
class Chart:
    """One chart: its title, the definitions behind the (i), what ECharts draws (``kind`` and
    ``data``, read by indicators.js), its table, and how a click drills down."""

    id: str
    section: str
    title: str
    info: list[tuple[str, str]]
    kind: str
    data: dict[str, Any]
    table: export.Table
    empty: bool = False
    empty_text: str = ""
    note: str = ""
    subtitle: str = ""
    drill: dict[str, Any] | None = None
    cells: list[list[str]] = field(default_factory=list)
    basis: list[str] = field(default_factory=list)  # which catalogue or report decided the figures

    def payload(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "title": self.title, "data": self.data, "drill": self.drill}


@dataclass(frozen=True)
class ChartSpec:
    id: str
    section: str
    title: Any
    codes: tuple[str, ...]
    build: Callable[[DashboardQuery, ChartSpec, ChartInputs], Chart]
    drill_department: bool = True


@dataclass
class ChartInputs:
    indicators: dict[str, Indicator]
    values: dict[str, list[IndicatorValue]]
    user: User


SECTIONS = [
    ("capability", gettext_lazy("Service capability")),
    ("flow", gettext_lazy("Patient flow")),
    ("collaboration", gettext_lazy("Collaboration")),
]


def _label(indicator: Indicator | None, code: str) -> str:
    return indicator.name if indicator is not None else code


def _info(spec: ChartSpec, inputs: ChartInputs) -> list[tuple[str, str]]:
    return [(i.name, i.definition) for c in spec.codes if (i := inputs.indicators.get(c)) is not None]


def _periods(query: DashboardQuery) -> list[str]:
    labels: list[str] = []
    day = query.start
    while day < query.end:
        if query.grain == "year":
            labels.append(f"{day.year}")
        elif query.grain == "quarter":
            labels.append(f"{day.year}-Q{(day.month - 1) // 3 + 1}")
        else:
            labels.append(f"{day:%Y-%m}")
        day = period_after(day, query.grain)
    return labels


def _by_period(values: Sequence[IndicatorValue]) -> dict[str, IndicatorValue]:
    return {v.period.label: v for v in values}


def _total(values: Sequence[IndicatorValue], indicator: Indicator | None) -> tuple[float | None, float | None]:
    """(the range's total, the same range a year earlier) of a count or ratio; None for medians."""
    if indicator is None or not values:
        return None, None
    if str(indicator.numerator.get("measure", "")).startswith("median"):
        return None, None
    num = sum(v.numerator or 0 for v in values)
    if indicator.denominator is None:
        previous = [v.previous for v in values]
        return num * indicator.factor, (sum(p or 0 for p in previous) if any(p is not None for p in previous) else None)
    den = sum(v.denominator or 0 for v in values)
    return (num / den * indicator.factor if den else None), None


def _yoy_text(yoy: float | None) -> str:
    if yoy is None:
        return ""
    return f"{'+' if yoy >= 0 else '−'}{abs(yoy) * 100:.1f} %"


def _add_new(target: list[str], items: Sequence[str]) -> None:
    """Append the items not in ``target`` yet (the basis sentences of many values, each once)."""
    for item in items:
        if item not in target:
            target.append(item)


def _has_data(values: Sequence[IndicatorValue]) -> bool:
    return any(v.value is not None and v.value != 0 for v in values)


def _drill(query: DashboardQuery, spec: ChartSpec) -> dict[str, Any]:
    by = "department" if query.org.kind == "institution" else "institution"
    if by == "department" and not spec.drill_department:
        by = ""
    return {
        "by": by,
        "org": f"{query.org.kind}:{query.org.code}",
        "year_to_months": query.grain == "year",
    }


def _series_chart(
    query: DashboardQuery,
    spec: ChartSpec,
    inputs: ChartInputs,
    *,
    kind: str,
    previous: bool = False,
    targets: bool = False,
    stack: bool = False,
    empty_text: str = "",
) -> Chart:
    """A time series per indicator (optionally the same periods a year earlier, dashed, and the
    targets as lines); the table has a row per period and a column per indicator."""
    periods = _periods(query)
    series: list[dict[str, Any]] = []
    columns = [export.Column(_("Period"), width=10)]
    rows: list[list[Any]] = [[p] for p in periods]
    notes: list[str] = []
    yoys: list[str] = []
    basis: list[str] = []
    any_data = False
    for code in spec.codes:
        indicator = inputs.indicators.get(code)
        values = inputs.values.get(code, [])
        by = _by_period(values)
        any_data = any_data or _has_data(values)
        name = _label(indicator, code)
        data = [by[p].value if p in by else None for p in periods]
        entry: dict[str, Any] = {"code": code, "name": name, "data": data}
        if previous:
            entry["previous"] = [by[p].previous if p in by else None for p in periods]
            entry["yoy"] = [by[p].yoy if p in by else None for p in periods]
        if targets and indicator is not None and indicator.target is not None:
            entry["target"] = indicator.target
        if indicator is not None:
            entry["unit"] = str(indicator.get_unit_display())
            entry["lower_better"] = indicator.direction == Direction.LOWER_BETTER
        series.append(entry)
        unit = f" ({indicator.get_unit_display()})" if indicator is not None else ""
        value_kind: export.ColumnKind = "count" if indicator is not None and indicator.denominator is None else "number"
        if indicator is not None and str(indicator.numerator.get("measure", "")).startswith("median"):
            value_kind = "number"
        columns.append(export.Column(name + unit, value_kind, width=16))
        if previous:
            columns.append(export.Column(_("%(name)s a year earlier") % {"name": name}, value_kind, width=16))
            columns.append(export.Column(_("Change on a year earlier"), "fraction", width=12))
        for row, p in zip(rows, periods, strict=True):
            v = by.get(p)
            row.append(v.value if v else None)
            if previous:
                row += [v.previous if v else None, v.yoy if v else None]
        total, before = _total(values, indicator)
        if previous and total is not None and before:
            yoys.append(f"{name} {_yoy_text(total / before - 1)}")
        for v in values:
            if v.coverage.note and (v.coverage.share is None or v.coverage.share < 1) and v.coverage.note not in notes:
                notes.append(v.coverage.note)
        for v in values:
            _add_new(basis, v.basis)
    definitions = [_("%(name)s: %(definition)s") % {"name": n, "definition": d} for n, d in _info(spec, inputs)]
    basis_notes = [_("Basis: %(text)s") % {"text": sentence} for sentence in basis]
    table = export.Table(title=str(spec.title), columns=columns, rows=rows, notes=definitions + basis_notes + notes)
    return Chart(
        id=spec.id,
        section=spec.section,
        title=str(spec.title),
        info=_info(spec, inputs),
        kind=kind,
        data={"periods": periods, "series": series, "stack": stack, "previous": previous},
        table=table,
        empty=not any_data,
        empty_text=empty_text or _("No data yet for this unit and period."),
        note=" ".join(notes[:2]),
        subtitle=(_("Whole period on a year earlier: %(changes)s") % {"changes": "; ".join(yoys)}) if yoys else "",
        drill=_drill(query, spec),
        basis=basis,
    )


def _line(query: DashboardQuery, spec: ChartSpec, inputs: ChartInputs) -> Chart:
    return _series_chart(query, spec, inputs, kind="line", previous=True)


def _bars(query: DashboardQuery, spec: ChartSpec, inputs: ChartInputs) -> Chart:
    return _series_chart(query, spec, inputs, kind="bar", previous=True)


def _shares(query: DashboardQuery, spec: ChartSpec, inputs: ChartInputs) -> Chart:
    return _series_chart(query, spec, inputs, kind="line", targets=True)


def _stacked(query: DashboardQuery, spec: ChartSpec, inputs: ChartInputs) -> Chart:
    return _series_chart(query, spec, inputs, kind="bar", stack=True)


def _operational(query: DashboardQuery, spec: ChartSpec, inputs: ChartInputs) -> Chart:
    return _series_chart(
        query,
        spec,
        inputs,
        kind="bar",
        previous=True,
        empty_text=_("No data yet: nothing recorded on the platform for this unit and period."),
    )


def _medians(query: DashboardQuery, spec: ChartSpec, inputs: ChartInputs) -> Chart:
    return _series_chart(
        query,
        spec,
        inputs,
        kind="line",
        targets=True,
        empty_text=_("No data yet: no green-channel case with these times for this unit and period."),
    )


def _stationing(query: DashboardQuery, spec: ChartSpec, inputs: ChartInputs) -> Chart:
    """Days delivered and committed as bars (the rate's numerator and denominator) and the rate."""
    chart = _series_chart(
        query,
        spec,
        inputs,
        kind="stationing",
        targets=True,
        empty_text=_("No data yet: no stationing roster for this unit and period."),
    )
    code = spec.codes[0]
    by = _by_period(inputs.values.get(code, []))
    periods = chart.data["periods"]
    chart.data["delivered"] = [by[p].numerator if p in by else None for p in periods]
    chart.data["committed"] = [by[p].denominator if p in by else None for p in periods]
    chart.data["labels"] = {"delivered": _("Days delivered"), "committed": _("Days committed")}
    chart.table.columns[1:1] = [
        export.Column(_("Days delivered"), "number"),
        export.Column(_("Days committed"), "number"),
    ]
    for row, p in zip(chart.table.rows, periods, strict=True):
        row[1:1] = [by[p].numerator if p in by else None, by[p].denominator if p in by else None]
    chart.empty = not any(chart.data["committed"]) and not any(chart.data["delivered"])
    return chart


def _operations_by_level(query: DashboardQuery, spec: ChartSpec, inputs: ChartInputs) -> Chart:
    """Operations stacked by level per period: one breakdown by operation level."""
    code = next((c for c in spec.codes if c in inputs.indicators), spec.codes[-1])
    periods = _periods(query)
    rows = engine.breakdown(
        inputs.user,
        code=code,
        org=query.org,
        grain=query.grain,
        start=query.start,
        end=query.end,
        by="operation_level",
        department=query.department,
    )
    levels: dict[str, str] = {}
    counts: dict[tuple[str, str], float] = {}
    for row in rows:
        levels.setdefault(row.key, row.label)
        counts[(row.key, row.period.label)] = row.numerator or 0
    order = sorted(levels, key=lambda k: (not k.isdigit(), k))
    series = [
        {
            "code": key,
            "name": _("Level %(n)s") % {"n": key} if key.isdigit() else (levels[key] or _("Level unknown")),
            "data": [counts.get((key, p)) for p in periods],
        }
        for key in order
    ]
    table = export.Table(
        title=str(spec.title),
        columns=[export.Column(_("Period"), width=10)]
        + [export.Column(str(s["name"]), "count", width=12) for s in series]
        + [export.Column(_("Total"), "count", width=12)],
        rows=[[p, *[counts.get((k, p)) for k in order], sum(counts.get((k, p), 0) for k in order)] for p in periods],
        notes=[_("%(name)s: %(definition)s") % {"name": n, "definition": d} for n, d in _info(spec, inputs)]
        + [_("Level as reported by the hospital (1–4); operations of a stay count in the month of discharge.")],
    )
    return Chart(
        id=spec.id,
        section=spec.section,
        title=str(spec.title),
        info=[(i.name, i.definition) for c in (code,) if (i := inputs.indicators.get(c)) is not None],
        kind="bar",
        data={"periods": periods, "series": series, "stack": True, "previous": False},
        table=table,
        empty=not counts,
        empty_text=_("No operations imported yet for this unit and period."),
        drill=_drill(query, spec) | {"code": code},
    )


def _flows(query: DashboardQuery, level: Literal["city", "county"], user: User) -> list[Any]:
    return engine.flows(user, org=query.org, start=query.start, end=query.end, level=level, kind=Kind.VISITS)


MAX_SANKEY_REGIONS = 12


def _sankey(query: DashboardQuery, spec: ChartSpec, inputs: ChartInputs) -> Chart:
    """Residence city -> treating institution; the largest cities by name, the rest together."""
    flows = _flows(query, "city", inputs.user)
    by_region: dict[str, float] = defaultdict(float)
    names: dict[str, str] = {}
    for f in flows:
        by_region[f.region_code] += f.count
        names[f.region_code] = f.region_name or f.region_code or _("Unknown")
    top = sorted(by_region, key=lambda r: -by_region[r])[:MAX_SANKEY_REGIONS]
    other = _("Other regions")
    links: dict[tuple[str, str], float] = defaultdict(float)
    institutions: dict[str, str] = {}
    for f in flows:
        source = names[f.region_code] if f.region_code in top else other
        institutions[f.institution_code] = f.institution_name
        links[(source, f.institution_code)] += f.count
    region_nodes = list(dict.fromkeys([names[r] for r in top] + ([other] if len(by_region) > len(top) else [])))
    # ECharts names Sankey nodes by their label: a region and an institution may not share one.
    inst_label = {c: (n if n not in region_nodes else f"{n} ({c})") for c, n in institutions.items()}
    data = {
        "nodes": [{"name": n, "side": "region"} for n in region_nodes]
        + [{"name": inst_label[c], "side": "institution", "code": c} for c in institutions],
        "links": [{"source": s, "target": inst_label[c], "value": v} for (s, c), v in links.items() if v],
    }
    table = export.Table(
        title=str(spec.title),
        columns=[
            export.Column(_("Residence (city)"), width=20),
            export.Column(_("Treating institution"), width=30),
            export.Column(_("Visits"), "count"),
        ],
        rows=[
            [names.get(f.region_code, f.region_code), f.institution_name, f.count]
            for f in sorted(flows, key=lambda f: -f.count)
        ],
        notes=[_("Outpatient and emergency visits by the patient's residence city and the treating institution.")],
    )
    return Chart(
        id=spec.id,
        section=spec.section,
        title=str(spec.title),
        info=[(str(spec.title), table.notes[0])],
        kind="sankey",
        data=data,
        table=table,
        empty=not data["links"],
        empty_text=_("No visits imported yet for this unit and period."),
    )


def _outflow(query: DashboardQuery, spec: ChartSpec, inputs: ChartInputs) -> Chart:
    """For each county of residence: visits at an institution of the county and elsewhere."""
    flows = _flows(query, "county", inputs.user)
    regions = dict(
        Institution.objects.filter(code__in={f.institution_code for f in flows}).values_list("code", "region__code")
    )
    inside: dict[str, float] = defaultdict(float)
    outside: dict[str, float] = defaultdict(float)
    names: dict[str, str] = {}
    for f in flows:
        names[f.region_code] = f.region_name or f.region_code or _("Unknown")
        if regions.get(f.institution_code) == f.region_code:
            inside[f.region_code] += f.count
        else:
            outside[f.region_code] += f.count
    # A hospital treats patients from far away; the outflow that matters is that of the counties of
    # its own city (of a region: its own counties), where "elsewhere" means leaving home for care.
    cities = {code[:4] for code in regions.values() if code}
    if query.org.kind == "region":
        cities = {query.org.code.rstrip("0")[:4] or query.org.code[:2]}
    local = [r for r in names if any(r.startswith(c) for c in cities)]
    counties = sorted(local, key=lambda r: -(inside[r] + outside[r]))[:20]
    rows = []
    for r in counties:
        total = inside[r] + outside[r]
        rows.append([names[r], inside[r], outside[r], (outside[r] / total) if total else None])
    data = {
        "categories": [names[r] for r in counties],
        "series": [
            {"name": _("In the home county"), "data": [inside[r] for r in counties]},
            {"name": _("Outside the home county"), "data": [outside[r] for r in counties]},
        ],
        "share": [row[3] for row in rows],
        "share_label": _("Outflow share"),
    }
    note = _(
        "Visits by the patients of the counties of this unit's cities, by county of residence: at an "
        "institution of their own county, or elsewhere (outflow from that county)."
    )
    table = export.Table(
        title=str(spec.title),
        columns=[
            export.Column(_("County of residence"), width=20),
            export.Column(_("In the home county"), "count", width=16),
            export.Column(_("Outside the home county"), "count", width=18),
            export.Column(_("Outflow share"), "fraction", width=12),
        ],
        rows=rows,
        notes=[note],
    )
    return Chart(
        id=spec.id,
        section=spec.section,
        title=str(spec.title),
        info=[(str(spec.title), note)],
        kind="outflow",
        data=data,
        table=table,
        empty=not rows,
        empty_text=_("No visits imported yet for this unit and period."),
    )


def _coming_later(query: DashboardQuery, spec: ChartSpec, inputs: ChartInputs) -> Chart:
    return Chart(
        id=spec.id,
        section=spec.section,
        title=str(spec.title),
        info=[],
        kind="none",
        data={},
        table=export.Table(title=str(spec.title), columns=[], rows=[]),
        empty=True,
        empty_text=_("No data yet: the techniques catalogue and regional firsts come with a later release."),
    )


CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec(
        "operations-by-level",
        "capability",
        gettext_lazy("Operations by level"),
        ("operations", "level34_operations"),
        _operations_by_level,
    ),
    ChartSpec(
        "level34-mi",
        "capability",
        gettext_lazy("Level-3/4 and minimally invasive operations"),
        ("level34_operations", "minimally_invasive_operations"),
        _line,
    ),
    ChartSpec("robot", "capability", gettext_lazy("Robot-assisted operations"), ("robot_operations",), _bars),
    ChartSpec(
        "shares",
        "capability",
        gettext_lazy("Surgery, minimally invasive and level-4 shares"),
        ("level4_share", "minimally_invasive_share", "surgery_share"),
        _shares,
    ),
    ChartSpec("techniques", "capability", gettext_lazy("New techniques and regional firsts"), (), _coming_later),
    ChartSpec("origin-mix", "flow", gettext_lazy("Where the patients come from"), ORIGIN_CODES, _stacked),
    ChartSpec("sankey", "flow", gettext_lazy("From residence to the treating institution"), (), _sankey),
    ChartSpec("outflow", "flow", gettext_lazy("Outflow from each county"), (), _outflow),
    ChartSpec(
        "in-county", "flow", gettext_lazy("In-county visit rate"), ("in_county_visit_rate", "outflow_rate"), _shares
    ),
    ChartSpec(
        "referrals",
        "collaboration",
        gettext_lazy("Referrals up and down"),
        ("up_referrals", "down_referrals"),
        _operational,
        drill_department=False,
    ),
    ChartSpec(
        "green",
        "collaboration",
        gettext_lazy("Green-channel medians"),
        ("stroke_dido_median", "stroke_door_to_puncture_median", "stemi_door_to_balloon_median"),
        _medians,
        drill_department=False,
    ),
    ChartSpec(
        "stationing",
        "collaboration",
        gettext_lazy("Stationed-expert days: delivered vs committed"),
        ("onsite_days_delivered",),
        _stationing,
        drill_department=False,
    ),
    ChartSpec(
        "teleconsultations",
        "collaboration",
        gettext_lazy("Teleconsultations delivered"),
        ("teleconsultations",),
        _operational,
        drill_department=False,
    ),
)
CHART_BY_ID = {spec.id: spec for spec in CHARTS}
SERIES_BUILDERS = (_line, _bars, _shares, _stacked, _operational, _medians, _stationing)


def _inputs(user: User, query: DashboardQuery, specs: Sequence[ChartSpec]) -> ChartInputs:
    """The indicators the charts name and, in one engine call, the values of those drawn as time series."""
    indicators = {i.code: i for i in selectors.indicator_list(user)}
    codes = list(dict.fromkeys(c for s in specs if s.build in SERIES_BUILDERS for c in s.codes if c in indicators))
    values: dict[str, list[IndicatorValue]] = defaultdict(list)
    if codes:
        for v in engine.evaluate(
            user,
            codes=codes,
            orgs=[query.org],
            grain=query.grain,
            start=query.start,
            end=query.end,
            department=query.department,
        ):
            values[v.indicator].append(v)
    return ChartInputs(indicators=indicators, values=values, user=user)


# ----------------------------------------------------------------------------------------
# Headline cards


@dataclass
class Kpi:
    code: str
    name: str
    value: str
    unit: str
    yoy: float | None
    yoy_text: str
    tone: str  # "good" | "bad" | "flat" | ""
    arrow: str
    sub: str = ""
    note: str = ""
    definition: str = ""
    basis: list[str] = field(default_factory=list)


KPI_CODES = (
    "level34_operations",
    "minimally_invasive_operations",
    "robot_operations",
    "visits_out_of_city",
    "in_county_visit_rate",
    "down_referrals",
)
KPI_OF_WHICH = {"visits_out_of_city": "visits_other_city"}


def _number(value: float | None, *, percent: bool = False) -> str:
    """Thousands grouped by commas in both languages, as the authority's reports print them
    (Django's Chinese format would print 68560)."""
    if value is None:
        return "—"
    if percent or value != int(value):
        return f"{value:,.1f}"
    return f"{int(value):,}"


def headline(user: User, query: DashboardQuery, indicators: dict[str, Indicator]) -> list[Kpi]:
    """The range's total of each headline indicator and its change on the same months a year
    earlier, from one engine call by month over both ranges."""
    codes = [c for c in (*KPI_CODES, *KPI_OF_WHICH.values()) if c in indicators]
    if not codes:
        return []
    before = add_months(query.start, -12)
    values = engine.evaluate(
        user, codes=codes, orgs=[query.org], grain="month", start=before, end=query.end, department=query.department
    )
    current_end_before = add_months(query.start, -12 + _months(query.start, query.end))
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"now": [0, 0], "then": [0, 0]})
    notes: dict[str, str] = {}
    basis: dict[str, list[str]] = defaultdict(list)
    for v in values:
        # With a range longer than a year, a month is both in the range and in the one before it.
        slots = [
            s
            for s, inside in (("now", v.period.start >= query.start), ("then", v.period.start < current_end_before))
            if inside
        ]
        for slot in slots:
            sums[v.indicator][slot][0] += v.numerator or 0
            sums[v.indicator][slot][1] += v.denominator or 0
        if "now" in slots and v.coverage.note and (v.coverage.share is None or v.coverage.share < 1):
            notes[v.indicator] = v.coverage.note
        if "now" in slots:
            _add_new(basis[v.indicator], v.basis)
    seen_then = {v.indicator for v in values if v.period.start < current_end_before and v.numerator is not None}

    def figure(code: str, slot: str) -> float | None:
        indicator = indicators[code]
        num, den = sums[code][slot] if code in sums else (0, 0)
        if indicator.denominator is None:
            return num * indicator.factor if code in sums else None
        return num / den * indicator.factor if den else None

    cards: list[Kpi] = []
    for code in KPI_CODES:
        indicator = indicators.get(code)
        if indicator is None:
            continue
        now = figure(code, "now")
        then = figure(code, "then") if code in seen_then else None
        yoy = (now / then - 1) if now is not None and then else None
        percent = indicator.unit == "percent"
        tone, arrow = "", ""
        if yoy is not None:
            arrow = "bi-arrow-up-right" if yoy > 0.005 else "bi-arrow-down-right" if yoy < -0.005 else "bi-arrow-right"
            good = (yoy > 0) == (indicator.direction == Direction.HIGHER_BETTER)
            tone = "flat" if abs(yoy) <= 0.005 else ("good" if good else "bad")
        sub = ""
        part = KPI_OF_WHICH.get(code)
        if part and part in indicators:
            sub = _("of which %(n)s from the province") % {"n": _number(figure(part, "now"))}
        cards.append(
            Kpi(
                code=code,
                name=indicator.name,
                value=_number(now, percent=percent),
                unit=str(indicator.get_unit_display()),
                yoy=yoy,
                yoy_text=_yoy_text(yoy),
                tone=tone,
                arrow=arrow,
                sub=sub,
                note=notes.get(code, ""),
                definition=indicator.definition,
                basis=basis.get(code, []),
            )
        )
    return cards


def _months(start: dt.date, end: dt.date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month


# ----------------------------------------------------------------------------------------
# Pages


def _org_choices(units: list[OrgUnit], kind: str) -> list[tuple[str, str]]:
    return [(u.code, u.name) for u in units if u.kind == kind]


def _departments(org: OrgUnit) -> list[str]:
    if org.kind != "institution":
        return []
    names = Department.objects.filter(institution__code=org.code).order_by("name_zh").values_list("name_zh", flat=True)
    return list(dict.fromkeys(names))


def _table_cells(table: export.Table) -> list[list[str]]:
    out: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        for column, value in zip(table.columns, row, strict=False):
            if value is None or value == "":
                cells.append("—" if column.kind != "text" else "")
            elif column.kind == "fraction":
                cells.append(f"{value * 100:.1f} %")
            elif column.kind in ("count", "number") and isinstance(value, int | float):
                cells.append(_number(float(value), percent=column.kind == "number" and value != int(value)))
            else:
                cells.append(str(value))
        out.append(cells)
    return out


def _period_text(query: DashboardQuery) -> str:
    return f"{query.start:%Y-%m} – {query.last:%Y-%m}"


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    require_indicators(user)
    query = dashboard_query(user, request.GET)
    inputs = _inputs(user, query, CHARTS)
    charts = [spec.build(query, spec, inputs) for spec in CHARTS]
    for chart in charts:
        chart.cells = _table_cells(chart.table)
    kpis = headline(user, query, inputs.indicators)
    sections = [(key, str(label), [c for c in charts if c.section == key]) for key, label in SECTIONS]
    payload = {
        "charts": {c.id: c.payload() for c in charts if not c.empty},
        "drill_url": reverse("indicators:drill"),
        "grain": query.grain,
        "labels": {
            "previous": _("a year earlier"),
            "target": _("Target"),
            "change": _("on a year earlier"),
            "by_institution": _("by institution"),
            "by_department": _("by department"),
            "close": _("Close"),
            "table": _("Table"),
            "excel": _("Excel"),
            "loading": _("Loading…"),
            "no_rows": _("No data for this breakdown."),
            "drill_hint": _("Click a bar to see its departments."),
            "value": _("Value"),
            "numerator": _("Numerator"),
            "denominator": _("Denominator"),
        },
    }
    context = {
        "query": query,
        "sections": sections,
        "kpis": kpis,
        "charts_payload": payload,
        "consortia": _org_choices(query.units, "consortium"),
        "institutions": _org_choices(query.units, "institution"),
        "regions": _org_choices(query.units, "region"),
        "grains": GRAINS,
        "departments": _departments(query.org),
        "period_text": _period_text(query),
        "export_query": query.query_string(),
        "from_value": f"{query.start:%Y-%m}",
        "to_value": f"{query.last:%Y-%m}",
    }
    return render(request, "indicators/dashboard.html", context)


@login_required
@require_GET
def chart_export(request: HttpRequest, chart: str) -> HttpResponse:
    """One chart's table as an Excel workbook (the chart is computed again, alone)."""
    user = _user(request)
    require_indicators(user)
    spec = CHART_BY_ID.get(chart)
    if spec is None:
        raise Http404(_("No such chart."))
    query = dashboard_query(user, request.GET)
    built = spec.build(query, spec, _inputs(user, query, [spec]))
    return _xlsx(user, query, [built.table], title=built.title, what={"chart": spec.id, "codes": list(spec.codes)})


def _xlsx(
    user: User, query: DashboardQuery, tables: list[export.Table], *, title: str, what: dict[str, Any]
) -> HttpResponse:
    filters = [
        (_("Organisation unit"), query.org.name),
        (_("Period"), _period_text(query)),
        (_("Grain"), str(export.GRAIN_LABELS[query.grain])),
    ]
    if query.department:
        filters.append((_("Department"), query.department))
    content = export.workbook(
        user,
        title=title,
        filters=filters,
        tables=tables,
        what={"org": f"{query.org.kind}:{query.org.code}", "period": _period_text(query), **what},
    )
    response = HttpResponse(content, content_type=export.CONTENT_TYPE)
    stem = what.get("chart") or what.get("indicator") or "indicators"
    name = f"{stem}-{query.org.code}-{query.start:%Y%m}-{query.last:%Y%m}.xlsx"
    response["Content-Disposition"] = f'attachment; filename="{re.sub(r"[^A-Za-z0-9._-]", "_", name)}"'
    return response


@login_required
@require_GET
def drill(request: HttpRequest) -> HttpResponse:
    """A breakdown for a clicked period as JSON (or Excel with ``format=xlsx``): a consortium or
    region by institution, an institution by department. Parameters: code, org (kind:code), by,
    grain, period (its label's start as YYYY-MM), department."""
    user = _user(request)
    require_indicators(user)
    code = request.GET.get("code", "")
    by = request.GET.get("by", "")
    if by not in DRILL_BY:
        return JsonResponse({"detail": _("Break down by institution or department.")}, status=400)
    try:
        indicator = selectors.access_indicator(user, code)
        org = selectors.access_org_unit(user, request.GET.get("org", ""))
    except Http404:
        return JsonResponse({"detail": _("No such indicator or organisation unit.")}, status=404)
    grain = _grain(request.GET.get("grain", "month"))
    start = _parse_month(request.GET.get("period", ""), end=False)
    if grain is None or start is None:
        return JsonResponse({"detail": _("Name the period as YYYY-MM and the grain.")}, status=400)
    start = period_start(start, grain)
    end = period_after(start, grain)
    department = request.GET.get("department", "").strip()[:100]
    try:
        rows = engine.breakdown(
            user,
            code=indicator.code,
            org=org,
            grain=grain,
            start=start,
            end=end,
            by=by,
            department=department,
        )
    except ValidationError as exc:
        return JsonResponse({"detail": " ".join(exc.messages)}, status=400)
    rows = sorted(rows, key=lambda r: -(r.value or 0))
    label = rows[0].period.label if rows else (f"{start.year}" if grain == "year" else f"{start:%Y-%m}")
    title = _("%(indicator)s, %(org)s, %(period)s, by %(by)s") % {
        "indicator": indicator.name,
        "org": org.name,
        "period": label,
        "by": _("institution") if by == "institution" else _("department"),
    }
    if request.GET.get("format") == "xlsx":
        table = export.Table(
            title=title,
            columns=[
                export.Column(_("Institution") if by == "institution" else _("Department"), width=30),
                export.Column(_("Numerator"), "number"),
                export.Column(_("Denominator"), "number"),
                export.Column(_("Value") + f" ({indicator.get_unit_display()})", "number"),
            ],
            rows=[[r.label, r.numerator, r.denominator, r.value] for r in rows],
            notes=[_("Definition: %(text)s") % {"text": indicator.definition}],
        )
        query = DashboardQuery(org=org, grain=grain, start=start, end=end, department=department, units=[])
        return _xlsx(user, query, [table], title=title, what={"indicator": indicator.code, "by": by})
    return JsonResponse(
        {
            "title": title,
            "code": indicator.code,
            "org": f"{org.kind}:{org.code}",
            "by": by,
            "unit": str(indicator.get_unit_display()),
            "period": label,
            "rows": [
                {
                    "key": r.key,
                    "label": r.label,
                    "numerator": r.numerator,
                    "denominator": r.denominator,
                    "value": r.value,
                }
                for r in rows
            ],
            "next": "department" if by == "institution" else "",
        }
    )
