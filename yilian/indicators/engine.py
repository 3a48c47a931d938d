"""The indicator engine: definitions (data) evaluated over the activity facts and the operational records.

Rules it enforces (docs/indicators.md, "Indicators"):
- One query per fact source computes every measure of the requested indicators for every org unit
  and period at once: the org units are a small in-memory table (org unit -> institution code, or
  -> residence-region prefix) joined to the facts, the period is a key computed from the fact's date.
- The facts are read only through ``yilian.activity.facts.current_facts`` (active batches, latest
  version of each record). On DuckDB one in-process connection stays open and warm; the tables
  are fetched again when ``facts.store_version()`` changes. The same expressions run on PySpark.
- The operations are read with the columns the operation catalogues decide (category, level 4,
  minimally invasive, each with its basis: ``yilian.catalogues.selectors.operations_with_basis``);
  they are fetched again when a catalogue is loaded or withdrawn. Each value lists, in ``basis``,
  which catalogue or report decided the derived columns its conditions use.
- Operational sources (referrals, green channel, stationing, consultations) are read through those
  apps' figure selectors as the acting user (``yilian.indicators.sources``): the green channel once
  per run of months, the others once per period, whatever the number of indicators and org units;
  what the user may not see counts as no data.
- A manifest row whose Parquet files are missing (a store moved or restored without them) is no
  data for the engine, not an error: the facts are fetched again once, then the source is skipped
  (and logged).
- "No data" is None, never 0: a fact indicator is None for an org unit and period when none of its
  institutions has imported data covering the period; an operational one when the selector has no
  row for any of the unit's institutions.
- Periods are whole months, quarters or years: ``start`` is rounded down and ``end`` up to the grain.
- Year-on-year: ``previous`` is the value of the same period one year earlier, ``yoy`` the relative
  change (0.31 means +31 %), None when either is missing or the previous value is 0.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.activity.columns import Kind
from yilian.catalogues.selectors import (
    BASIS_COLUMNS,
    CatalogueState,
    basis_sentences,
    catalogue_stamp,
    catalogue_state,
    operations_with_basis,
)
from yilian.indicators import dsl
from yilian.indicators.dsl import Measure
from yilian.indicators.models import Direction, Indicator
from yilian.indicators.selectors import (
    OrgKind,
    OrgUnit,
    access_indicator,
    indicators_by_code,
    institutions_in_detail,
    org_units_visible_to,
    require_view,
)
from yilian.indicators.sources import OperationalSources
from yilian.registry.models import Consortium, ConsortiumMember, Institution, Region
from yilian.registry.selectors import AnyUser

__all__ = [
    "BreakdownRow",
    "Coverage",
    "Flow",
    "Grain",
    "IndicatorValue",
    "OrgKind",
    "OrgUnit",
    "Period",
    "breakdown",
    "evaluate",
    "flows",
    "periods_between",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

Grain = Literal["month", "quarter", "year"]
GRAINS: tuple[Grain, ...] = ("month", "quarter", "year")
BREAKDOWN_DIMENSIONS = ("institution", "department", "origin", "operation_level", "residence_county", "residence_city")


@dataclass(frozen=True)
class Period:
    grain: Grain
    start: dt.date
    end: dt.date  # exclusive
    label: str

    @property
    def key(self) -> int:
        return period_key(self.start, self.grain)


@dataclass(frozen=True)
class Coverage:
    share: float | None  # institutions of the org unit with data / all; None when not applicable
    note: str


@dataclass
class IndicatorValue:
    indicator: str
    org: OrgUnit
    period: Period
    numerator: float | None
    denominator: float | None
    value: float | None
    target: float | None
    met: bool | None
    coverage: Coverage
    previous: float | None = None
    yoy: float | None = None
    # What the figure rests on, in words: for each catalogue-derived column its conditions use
    # (category, level 4, minimally invasive, reported level), which catalogue decided it over the
    # period, from when, or that the hospitals' reports did (``yilian.catalogues.selectors``).
    basis: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BreakdownRow:
    key: str
    label: str
    period: Period
    numerator: float | None
    denominator: float | None
    value: float | None


@dataclass(frozen=True)
class Flow:
    region_code: str
    region_name: str
    institution_code: str
    institution_name: str
    count: int


# --- periods -----------------------------------------------------------------------------------------


def _floor(day: dt.date, grain: Grain) -> dt.date:
    if grain == "year":
        return dt.date(day.year, 1, 1)
    if grain == "quarter":
        return dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return dt.date(day.year, day.month, 1)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _next(day: dt.date, grain: Grain) -> dt.date:
    return _add_months(day, {"month": 1, "quarter": 3, "year": 12}[grain])


def period_key(day: dt.date, grain: Grain) -> int:
    """The same integer the queries compute from a fact's date (year*100 + month / quarter / 0)."""
    if grain == "year":
        return day.year * 100
    if grain == "quarter":
        return day.year * 100 + (day.month - 1) // 3 + 1
    return day.year * 100 + day.month


def _period(start: dt.date, grain: Grain) -> Period:
    if grain == "year":
        label = f"{start.year}"
    elif grain == "quarter":
        label = f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    else:
        label = f"{start:%Y-%m}"
    return Period(grain, start, _next(start, grain), label)


def periods_between(grain: Grain, start: dt.date, end: dt.date) -> list[Period]:
    """Whole periods of ``grain`` covering [start, end)."""
    if grain not in GRAINS:
        raise ValidationError(_("Unknown grain %(grain)s: use month, quarter or year.") % {"grain": grain})
    if end <= start:
        raise ValidationError(_("The end of the period must be after its start."))
    out: list[Period] = []
    day = _floor(start, grain)
    while day < end:
        out.append(_period(day, grain))
        day = _next(day, grain)
        if len(out) > 600:
            raise ValidationError(_("Too many periods: choose a coarser grain or a shorter range."))
    return out


def _year_before(period: Period) -> Period:
    return _period(dt.date(period.start.year - 1, period.start.month, 1), period.grain)


def _months(period: Period) -> list[tuple[int, int]]:
    out, day = [], period.start
    while day < period.end:
        out.append((day.year, day.month))
        day = _add_months(day, 1)
    return out


def _period_key_expr(date: ir.DateValue, grain: Grain) -> ir.IntegerValue:
    year = date.year().cast("int64") * 100
    if grain == "year":
        return year
    month = date.month().cast("int64")
    if grain == "quarter":
        return year + (month - 1) // 3 + 1
    return year + month


# --- registry ----------------------------------------------------------------------------------------


@dataclass
class _Registry:
    """What the engine needs from the registry, read once per call (a few small queries)."""

    by_code: dict[str, Institution]
    by_id: dict[int, Institution]
    org_codes: dict[str, list[str]] = field(default_factory=dict)  # org key -> institution codes
    org_prefix: dict[str, str] = field(default_factory=dict)  # org key -> residence region prefix

    @classmethod
    def load(cls, orgs: Iterable[OrgUnit]) -> _Registry:
        institutions = list(Institution.objects.select_related("region"))
        reg = cls({i.code: i for i in institutions}, {i.pk: i for i in institutions})
        today = timezone.localdate()
        for org in orgs:
            if org.key in reg.org_codes:
                continue
            if org.kind == "institution":
                inst = reg.by_code.get(org.code)
                reg.org_codes[org.key] = [org.code] if inst else []
                reg.org_prefix[org.key] = inst.region.code if inst else "-"
            elif org.kind == "consortium":
                consortium = Consortium.objects.select_related("lead_institution__region", "region").get(code=org.code)
                members = ConsortiumMember.objects.filter(consortium=consortium).filter(
                    Q(left_on__isnull=True) | Q(left_on__gte=today)
                )
                codes = {consortium.lead_institution.code} | set(members.values_list("institution__code", flat=True))
                reg.org_codes[org.key] = sorted(codes)
                region = consortium.region or consortium.lead_institution.region
                reg.org_prefix[org.key] = region.code_prefix()
            else:
                region = Region.objects.get(code=org.code)
                prefix = region.code_prefix()
                reg.org_codes[org.key] = sorted(c for c, i in reg.by_code.items() if i.region.code.startswith(prefix))
                reg.org_prefix[org.key] = prefix
        return reg

    def province_codes(self, prefix: str) -> list[str]:
        return sorted(c for c, i in self.by_code.items() if i.region.code.startswith(prefix[:2]))

    def name(self, code: str) -> str:
        inst = self.by_code.get(code)
        return inst.name if inst else code


# --- backends ----------------------------------------------------------------------------------------


class _Backends:
    """One warm connection per backend, and the fact tables of the current store version. The
    operations carry the columns the catalogues derive, so they are fetched again also when a
    catalogue is loaded or withdrawn (``catalogue_stamp``)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.connections: dict[str, ibis.BaseBackend] = {}
        self.version: str | None = None
        self.catalogues: str | None = None
        self.tables: dict[tuple[str, str], ir.Table | None] = {}

    def reset(self) -> None:
        """Forget the fact tables (they are fetched again on the next call)."""
        with self.lock:
            self.version = None
            self.catalogues = None
            self.tables.clear()

    def connection(self, backend: str) -> ibis.BaseBackend:
        con = self.connections.get(backend)
        if con is None:
            if backend == "duckdb":
                con = ibis.duckdb.connect()
            elif backend == "pyspark":
                con = _spark_connection()
            else:
                raise ValidationError(_("Unknown indicator backend %(name)s.") % {"name": backend})
            self.connections[backend] = con
        return con

    def facts(self, backend: str, kind: str) -> ir.Table | None:
        from yilian.activity import facts

        version = facts.store_version()
        if version != self.version:
            self.version = version
            self.tables.clear()
        if kind == Kind.OPERATIONS:
            stamp = catalogue_stamp()
            if stamp != self.catalogues:
                self.catalogues = stamp
                for key in [k for k in self.tables if k[1] == kind]:
                    del self.tables[key]
        if (backend, kind) not in self.tables:
            try:
                table = facts.current_facts(self.connection(backend), Kind(kind))
            except Exception as exc:
                if not _missing_files(exc):
                    raise
                logger.warning("Activity facts of %s are listed but their files are missing: %s", kind, exc)
                table = None
            if table is not None and kind == Kind.OPERATIONS:
                table = operations_with_basis(table)
            self.tables[(backend, kind)] = table
        return self.tables[(backend, kind)]


def _missing_files(exc: BaseException) -> bool:
    """Whether a backend error says that Parquet files the manifest lists are not there (DuckDB:
    "No files found"/"No such file"; Spark: PATH_NOT_FOUND)."""
    if isinstance(exc, FileNotFoundError):
        return True
    text = str(exc)
    return any(s in text for s in ("No files found", "No such file", "PATH_NOT_FOUND", "Path does not exist"))


def _reading(kind: str, read: Callable[[], T], missing: T) -> T:
    """``read()`` over the fact tables; when their files vanished since the tables were fetched, the
    tables are fetched again and read once more, and the source counts as ``missing`` if that fails too."""
    try:
        return read()
    except Exception as exc:
        if not _missing_files(exc):
            raise
    BACKENDS.reset()
    try:
        return read()
    except Exception as exc:
        if not _missing_files(exc):
            raise
        logger.warning("Activity facts of %s could not be read, files are missing: %s", kind, exc)
        return missing


def _spark_connection() -> ibis.BaseBackend:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master(settings.SPARK_MASTER)
        .appName("yilian-indicators")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    return ibis.pyspark.connect(session)


BACKENDS = _Backends()


def _backend_name(backend: str | None) -> str:
    name = backend or settings.INDICATOR_BACKEND
    if name not in ("duckdb", "pyspark"):
        raise ValidationError(_("Unknown indicator backend %(name)s.") % {"name": name})
    return name


# --- fact queries ------------------------------------------------------------------------------------


def _institution_table(reg: _Registry) -> ir.Table:
    codes = sorted(reg.by_code)
    return ibis.memtable(
        pa.table(
            {
                "inst_code_": pa.array(codes, pa.string()),
                "institution_type": pa.array([reg.by_code[c].type for c in codes], pa.string()),
                "institution_grade": pa.array([reg.by_code[c].grade for c in codes], pa.string()),
            }
        )
    )


def _dimension_expr(t: ir.Table, by: str) -> ir.StringValue:
    if by == "institution":
        return t.institution_code
    if by == "department":
        return t.department.fill_null("")
    if by == "origin":
        return t.origin
    if by == "operation_level":
        return t.operation_level.cast("string").fill_null("")
    if by == "residence_county":
        return t.residence_region.fill_null("")
    return (t.residence_region.substr(0, 4) + "00").fill_null("")


def _dimension_available(source: str, by: str) -> bool:
    if by == "institution":
        return True
    if source not in dsl.FACT_SOURCES:
        return False
    column = {"residence_county": "residence_region", "residence_city": "residence_region"}.get(by, by)
    return column in dsl.FACT_COLUMNS[source]


Results = dict[tuple[str, int, str], float | None]  # (org key, period key, dimension) -> value


def _fact_query(*, source: str, **kwargs: Any) -> dict[str, Results] | None:
    """Every measure of one source and attribution, for every org unit and period: one query.
    Returns measure key -> results, or None when no data has landed for the source (or its files
    are missing)."""
    return _reading(source, lambda: _fact_query_once(source=source, **kwargs), None)


def _fact_query_once(
    *,
    backend: str,
    source: str,
    attribute_to: str,
    measures: list[Measure],
    orgs: list[OrgUnit],
    reg: _Registry,
    grain: Grain,
    lo: dt.date,
    hi: dt.date,
    department: str,
    by: str = "",
) -> dict[str, Results] | None:
    with BACKENDS.lock:
        base = BACKENDS.facts(backend, source)
        if base is None:
            return None
        con = BACKENDS.connection(backend)
        date_col = dsl.PERIOD_COLUMN[source]
        t = base.filter((base[date_col] >= lo) & (base[date_col] < hi))
        if attribute_to == "institution":
            # A plain filter on the institutions besides the join below: the store is sorted by
            # institution, so the Parquet reader skips the row groups of every other hospital.
            codes = sorted({code for org in orgs for code in reg.org_codes[org.key]})
            t = t.filter(t.institution_code.isin(codes or ["-"]))
        if department:
            t = t.filter(t.department == department)
        if any(m.uses_institution_columns for m in measures):
            inst = _institution_table(reg)
            t = t.left_join(inst, t.institution_code == inst.inst_code_).drop("inst_code_")
        t = t.mutate(pkey_=_period_key_expr(t[date_col], grain))
        if by:
            t = t.mutate(dim_=_dimension_expr(t, by))
        parts = _attributed(t, attribute_to, orgs, reg)
        if not parts:
            return {m.key(): {} for m in measures}
        joined = parts[0]
        for part in parts[1:]:
            joined = joined.union(part)
        # One org unit is a constant, not a column to group by; nor is the dimension when there is none.
        only = orgs[0].key if len(orgs) == 1 else None
        keys = ([] if only else ["org_key_"]) + ["pkey_"] + (["dim_"] if by else [])
        rows = [
            row for expr, _names in _aggregations(joined, measures, keys) for row in con.to_pyarrow(expr).to_pylist()
        ]
    out: dict[str, Results] = {m.key(): {} for m in measures}
    names = {f"m{i}_": m for i, m in enumerate(measures)}
    for row in rows:
        for name, m in names.items():
            if name not in row:
                continue
            value = row[name]
            out[m.key()][(row.get("org_key_", only), int(row["pkey_"]), row.get("dim_") or "")] = (
                float(value) if value is not None else None
            )
    return out


def _attributed(t: ir.Table, attribute_to: str, orgs: list[OrgUnit], reg: _Registry) -> list[ir.Table]:
    """The facts of the org units: for several, with the unit each row counts for (``org_key_``),
    one table per way of matching (a row may count for several units), joined through a small
    in-memory table; for one unit, just its rows (a filter)."""
    parts: list[ir.Table] = []
    if attribute_to == "institution":
        pairs = [(org.key, code) for org in orgs for code in reg.org_codes[org.key]]
        if len(orgs) == 1 and pairs:
            return [t]  # already filtered on the unit's institutions
        if pairs:
            orgmap = ibis.memtable(
                pa.table(
                    {
                        "org_key_": pa.array([p[0] for p in pairs], pa.string()),
                        "org_inst_": pa.array([p[1] for p in pairs], pa.string()),
                    }
                )
            )
            parts.append(t.join(orgmap, t.institution_code == orgmap.org_inst_).drop("org_inst_"))
        return parts
    by_length: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for org in orgs:
        prefix = reg.org_prefix[org.key]
        by_length[len(prefix)].append((org.key, prefix))
    for length, pairs in sorted(by_length.items()):
        if len(orgs) == 1:
            parts.append(t.filter(t.residence_region.startswith(pairs[0][1])))
            continue
        orgmap = ibis.memtable(
            pa.table(
                {
                    "org_key_": pa.array([p[0] for p in pairs], pa.string()),
                    "org_prefix_": pa.array([p[1] for p in pairs], pa.string()),
                }
            )
        )
        withp = t.mutate(res_prefix_=t.residence_region.substr(0, length))
        parts.append(withp.join(orgmap, withp.res_prefix_ == orgmap.org_prefix_).drop("org_prefix_", "res_prefix_"))
    return parts


def _aggregations(joined: ir.Table, measures: list[Measure], keys: list[str]) -> list[tuple[ir.Table, list[str]]]:
    """The queries computing the measures (columns ``m<i>_``) by ``keys`` (org unit, period,
    dimension).

    Counting distinct stays over the operations (several rows a stay) is the expensive part: when a
    measure does so, the decomposable measures are computed in two steps, first one row per
    (institution, stay) with each measure's part, then their sums, which is cheaper than one
    distinct count per measure over the rows. Medians and other distinct counts, which do not
    decompose, are one plain aggregation."""
    names = {f"m{i}_": m for i, m in enumerate(measures)}
    record = next((m.argument for m in measures if dsl.per_record(m)), None)
    stepwise = {
        n: m
        for n, m in names.items()
        if record is not None and dsl.decomposable(m) and (m.kind != "distinct" or m.argument == record)
    }
    plain = {n: m for n, m in names.items() if n not in stepwise}
    out: list[tuple[ir.Table, list[str]]] = []
    if stepwise:
        assert record is not None
        parts = joined.group_by([*keys, "institution_code", record]).aggregate(
            **{n: dsl.record_part(joined, m) for n, m in stepwise.items()}
        )
        expr = parts.group_by(keys).aggregate(**{n: dsl.sum_of_parts(parts, n, m) for n, m in stepwise.items()})
        out.append((expr, list(stepwise)))
    if plain:
        expr = joined.group_by(keys).aggregate(**{n: dsl.aggregate(joined, m) for n, m in plain.items()})
        out.append((expr, list(plain)))
    return out


# --- coverage ----------------------------------------------------------------------------------------


class _CoverageIndex:
    """The months each institution has imported, per source (from the batch manifest). A source
    whose facts cannot be read (nothing landed, or the listed files are missing) covers nothing."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.by_kind: dict[str, dict[str, set[tuple[int, int]]]] = {}

    def get(self, kind: str) -> dict[str, set[tuple[int, int]]]:
        if kind not in self.by_kind:
            from yilian.activity import facts

            with BACKENDS.lock:
                readable = BACKENDS.facts(self.backend, kind) is not None
            self.by_kind[kind] = facts.coverage(Kind(kind)) if readable else {}
        return self.by_kind[kind]

    def months(self, code: str, kinds: Iterable[str], period: Period) -> tuple[bool, bool]:
        """(complete, any): whether the institution has data for every elapsed month of the period
        in every source, and whether it has data for any month in any source."""
        today = timezone.localdate()
        months = {m for m in _months(period) if dt.date(m[0], m[1], 1) <= today}
        if not months:
            return False, False
        held = [months & self.get(kind).get(code, set()) for kind in kinds]
        return all(h == months for h in held), any(held)

    def covered(self, code: str, kinds: Iterable[str], period: Period) -> bool:
        return self.months(code, kinds, period)[1]


def _coverage(
    indicator_sources: set[str], residence: bool, org: OrgUnit, period: Period, reg: _Registry, index: _CoverageIndex
) -> tuple[Coverage, bool]:
    """The coverage of the org unit in the period, and whether any of its institutions has data.

    The share counts institutions with data for every elapsed month of the period in every fact
    source the indicator reads; for an indicator attributed to the residence region, the
    institutions of the whole province count (residents may be treated anywhere in it)."""
    kinds = sorted(s for s in indicator_sources if s in dsl.FACT_SOURCES)
    if not kinds:
        return Coverage(None, ""), True
    codes = reg.province_codes(reg.org_prefix[org.key]) if residence else reg.org_codes[org.key]
    if not codes:
        return Coverage(None, _("No institution of this unit is in the registry.")), False
    states = [index.months(code, kinds, period) for code in codes]
    complete = sum(1 for full, _any in states if full)
    if complete == len(codes):
        return Coverage(1.0, ""), True
    if not any(held for _full, held in states):
        return Coverage(0.0, _("No data imported for this period.")), False
    values = {"n": complete, "m": len(codes)}
    if residence:
        note = _("Complete data from %(n)d of %(m)d institutions of the province.") % values
    else:
        note = _("Complete data from %(n)d of %(m)d institutions.") % values
    return Coverage(complete / len(codes), note), True


# --- evaluation --------------------------------------------------------------------------------------


def _ratio(numerator: float | None, denominator: float | None, indicator: Indicator) -> float | None:
    if numerator is None:
        return None
    if indicator.denominator is None:
        return round(numerator * indicator.factor, 6)
    if not denominator:
        return None
    return round(numerator / denominator * indicator.factor, 6)


def _met(value: float | None, indicator: Indicator) -> bool | None:
    if value is None or indicator.target is None:
        return None
    if indicator.direction == Direction.LOWER_BETTER:
        return value <= indicator.target
    return value >= indicator.target


def _check_orgs(user: AnyUser, orgs: list[OrgUnit]) -> None:
    visible = {o.key for o in org_units_visible_to(user)}
    for org in orgs:
        if org.key not in visible:
            raise PermissionDenied(_("%(key)s is outside what you may see.") % {"key": org.key})


@dataclass
class _Parsed:
    indicator: Indicator
    numerator: Measure
    denominator: Measure | None

    @property
    def measures(self) -> list[Measure]:
        return [self.numerator] + ([self.denominator] if self.denominator else [])

    @property
    def sources(self) -> set[str]:
        return {m.source for m in self.measures}

    @property
    def residence(self) -> bool:
        return any(m.attribute_to == "residence" for m in self.measures)

    @property
    def basis_columns(self) -> set[str]:
        """The catalogue-derived operation columns its conditions use."""
        return {c[0] for m in self.measures if m.source == "operations" for c in m.where} & BASIS_COLUMNS


def _parse(indicator: Indicator) -> _Parsed:
    den = dsl.parse_measure(indicator.denominator) if indicator.denominator is not None else None
    return _Parsed(indicator, dsl.parse_measure(indicator.numerator), den)


def _compute(
    user: AnyUser,
    parsed: list[_Parsed],
    orgs: list[OrgUnit],
    grain: Grain,
    all_periods: list[Period],
    department: str,
    backend: str,
    reg: _Registry,
    by: str = "",
) -> tuple[dict[str, Results | None], OperationalSources]:
    """Each distinct measure's results (None: no data landed) over every org and period."""
    lo = min(p.start for p in all_periods)
    hi = max(p.end for p in all_periods)
    groups: dict[tuple[str, str], list[Measure]] = defaultdict(list)
    for p in parsed:
        for m in p.measures:
            if m.is_fact and m not in groups[(m.source, m.attribute_to)]:
                groups[(m.source, m.attribute_to)].append(m)
    results: dict[str, Results | None] = {}
    for (source, attribute_to), measures in groups.items():
        out = _fact_query(
            backend=backend,
            source=source,
            attribute_to=attribute_to,
            measures=measures,
            orgs=orgs,
            reg=reg,
            grain=grain,
            lo=lo,
            hi=hi,
            department=department,
            by=by,
        )
        for m in measures:
            results[m.key()] = None if out is None else out[m.key()]
    # Only the units' institutions are read, unless a measure counts residents wherever treated: then
    # a breakdown by institution may name any institution, and each needs its operational figures.
    residence = any(p.residence for p in parsed)
    institutions = None if residence else [reg.by_code[c] for org in orgs for c in reg.org_codes[org.key]]
    return results, OperationalSources(user, [(p.start, p.end) for p in all_periods], institutions)


def _fact_value(
    results: dict[str, Results | None], m: Measure, org: OrgUnit, period: Period, dim: str, has_data: bool
) -> float | None:
    res = results.get(m.key())
    if res is None or not has_data:
        return None
    value = res.get((org.key, period.key, dim))
    if value is None and m.kind != "median":
        return 0.0
    return value


def evaluate(
    user: AnyUser,
    *,
    codes: list[str] | None = None,
    orgs: list[OrgUnit],
    grain: Grain,
    start: dt.date,
    end: dt.date,
    department: str = "",
    backend: str | None = None,
) -> list[IndicatorValue]:
    """The value of each indicator for each org unit and period in [start, end), with coverage and
    the same period a year earlier. Ordered by indicator (position), org unit, period."""
    require_view(user)
    backend_name = _backend_name(backend)
    indicators = (
        indicators_by_code(user, codes)
        if codes is not None
        else list(Indicator.objects.filter(is_active=True).order_by("position", "code"))
    )
    _check_orgs(user, orgs)
    periods = periods_between(grain, start, end)
    before = [_year_before(p) for p in periods]
    all_periods = sorted({*periods, *before}, key=lambda p: p.start)
    parsed = [_parse(i) for i in indicators]
    reg = _Registry.load(orgs)
    results, operational = _compute(user, parsed, orgs, grain, all_periods, department, backend_name, reg)
    index = _CoverageIndex(backend_name)
    detail = institutions_in_detail(user) if department else None
    catalogues = catalogue_state() if any(p.basis_columns for p in parsed) else None

    def one(p: _Parsed, org: OrgUnit, period: Period) -> tuple[float | None, float | None, float | None, Coverage]:
        coverage, fact_data = _coverage(p.sources, p.residence, org, period, reg, index)
        if department and _department_hidden(detail, reg, org, residence=p.residence):
            return None, None, None, Coverage(coverage.share, _department_hidden_note())
        operational_note = ""
        values: list[float | None] = []
        for m in p.measures:
            if m.is_fact:
                values.append(_fact_value(results, m, org, period, "", fact_data))
            elif department:
                values.append(None)
                operational_note = _("Not available by department.")
            else:
                institutions = [reg.by_code[c] for c in reg.org_codes[org.key]]
                value, allowed = operational.value(m, period.start, period.end, institutions)
                values.append(value)
                if not allowed:
                    operational_note = _("You may not see these figures.")
        num = values[0]
        den = values[1] if len(values) > 1 else None
        if operational_note and not coverage.note:
            coverage = Coverage(coverage.share, operational_note)
        return num, den, _ratio(num, den, p.indicator), coverage

    out: list[IndicatorValue] = []
    for p in parsed:
        for org in orgs:
            for period, earlier in zip(periods, before, strict=True):
                num, den, value, coverage = one(p, org, period)
                previous = one(p, org, earlier)[2]
                yoy = round((value - previous) / previous, 6) if value is not None and previous else None
                out.append(
                    IndicatorValue(
                        indicator=p.indicator.code,
                        org=org,
                        period=period,
                        numerator=num,
                        denominator=den,
                        value=value,
                        target=p.indicator.target,
                        met=_met(value, p.indicator),
                        coverage=coverage,
                        previous=previous,
                        yoy=yoy,
                        basis=_basis(catalogues, p, org, period, reg),
                    )
                )
    return out


def _basis(catalogues: CatalogueState | None, p: _Parsed, org: OrgUnit, period: Period, reg: _Registry) -> list[str]:
    """Which catalogue (or the hospitals' reports) decided the derived columns the indicator uses."""
    columns = p.basis_columns
    if catalogues is None or not columns:
        return []
    codes = reg.province_codes(reg.org_prefix[org.key]) if p.residence else reg.org_codes[org.key]
    return basis_sentences(catalogues, columns, start=period.start, end=period.end, institution_codes=codes)


def _department_hidden_note() -> str:
    return _(
        "Not available by department: these figures include institutions whose own figures you do "
        "not see, and a department's figure could be one of theirs alone."
    )


def _department_hidden(detail: set[str] | None, reg: _Registry, org: OrgUnit, *, residence: bool) -> bool:
    """Whether department figures of the unit could show an institution the user does not see in
    detail: a consortium's neurosurgery may be one member's alone, and the residents of a county
    are treated anywhere (their neurosurgery stays may all be one other hospital's)."""
    if detail is None:
        return False
    return residence or not set(reg.org_codes[org.key]) <= detail


def _dimension_label(by: str, key: str, reg: _Registry, regions: dict[str, str]) -> str:
    if by == "institution":
        return reg.name(key)
    if by == "origin":
        labels = {
            "same_county": _("Same county"),
            "same_city": _("Other county of the city"),
            "same_province": _("Other city of the province"),
            "other_province": _("Other province"),
            "unknown": _("Unknown"),
        }
        return str(labels.get(key, key))
    if by == "operation_level":
        return _("Level %(level)s") % {"level": key} if key else _("No level reported")
    if by in ("residence_county", "residence_city"):
        return regions.get(key, key) if key else _("Unknown")
    return key or _("No department")


def breakdown(
    user: AnyUser,
    *,
    code: str,
    org: OrgUnit,
    grain: Grain,
    start: dt.date,
    end: dt.date,
    by: str,
    department: str = "",
    backend: str | None = None,
) -> list[BreakdownRow]:
    """One indicator of one org unit split by a dimension, per period. By institution, only the
    institutions the user sees in detail are listed."""
    require_view(user)
    indicator = access_indicator(user, code)
    _check_orgs(user, [org])
    p = _parse(indicator)
    if by not in BREAKDOWN_DIMENSIONS or not all(_dimension_available(m.source, by) for m in p.measures):
        raise ValidationError(
            _("%(indicator)s cannot be broken down by %(by)s.") % {"indicator": indicator.name, "by": by}
        )
    periods = periods_between(grain, start, end)
    reg = _Registry.load([org])
    detail = institutions_in_detail(user)
    if (department or by == "department") and _department_hidden(detail, reg, org, residence=p.residence):
        raise PermissionDenied(_department_hidden_note())
    backend_name = _backend_name(backend)
    results, operational = _compute(user, [p], [org], grain, periods, department, backend_name, reg, by)
    regions = {r.code: r.name for r in Region.objects.all()} if by.startswith("residence") else {}
    index = _CoverageIndex(backend_name)
    rows: list[BreakdownRow] = []
    for period in periods:
        keys: set[str] = set()
        if by == "institution":
            keys = set(reg.org_codes[org.key])
        for m in p.measures:
            res = results.get(m.key())
            if res:
                keys |= {k[2] for k in res if k[0] == org.key and k[1] == period.key}
        if by == "institution" and detail is not None:
            keys &= detail
        org_has_data = _coverage(p.sources, p.residence, org, period, reg, index)[1]
        for key in sorted(keys):
            values: list[float | None] = []
            for m in p.measures:
                if m.is_fact:
                    has_data = org_has_data if by != "institution" else index.covered(key, [m.source], period)
                    values.append(_fact_value(results, m, org, period, key, has_data))
                else:
                    inst = reg.by_code.get(key)
                    values.append(operational.value(m, period.start, period.end, [inst])[0] if inst else None)
            num = values[0]
            den = values[1] if len(values) > 1 else None
            if not num and not den:
                continue  # a group with nothing to show (e.g. stays without an operation of the level)
            rows.append(
                BreakdownRow(
                    key=key,
                    label=_dimension_label(by, key, reg, regions),
                    period=period,
                    numerator=num,
                    denominator=den,
                    value=_ratio(num, den, indicator),
                )
            )
    return rows


def flows(
    user: AnyUser,
    *,
    org: OrgUnit,
    start: dt.date,
    end: dt.date,
    level: Literal["city", "county"] = "city",
    kind: Kind = Kind.VISITS,
    backend: str | None = None,
) -> list[Flow]:
    """Visits (or discharges) from each residence city or county to each treating institution in
    [start, end). For a region: its residents, wherever treated; for an institution or consortium:
    the patients it treated. Institutions the user does not see in detail are pooled as one row."""
    require_view(user)
    _check_orgs(user, [org])
    if kind not in (Kind.VISITS, Kind.DISCHARGES):
        raise ValidationError(_("Flows are counted over visits or discharges."))
    if level not in ("city", "county"):
        raise ValidationError(_("Flows are by city or by county."))
    backend_name = _backend_name(backend)
    reg = _Registry.load([org])
    no_rows: list[dict[str, Any]] = []
    rows = _reading(str(kind), lambda: _flow_rows(backend_name, kind, org, reg, start, end, level), no_rows)
    detail = institutions_in_detail(user)
    regions = {r.code: r.name for r in Region.objects.all()}
    pooled: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        code = row["institution_code"]
        if detail is not None and code not in detail:
            code = ""
        pooled[(row["region_"], code)] += int(row["count_"])
    return [
        Flow(
            region_code=region_code,
            region_name=regions.get(region_code, region_code),
            institution_code=code,
            institution_name=reg.name(code) if code else _("Other institutions"),
            count=count,
        )
        for (region_code, code), count in sorted(pooled.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _flow_rows(
    backend: str, kind: Kind, org: OrgUnit, reg: _Registry, start: dt.date, end: dt.date, level: str
) -> list[dict[str, Any]]:
    """(region_, institution_code, count_) rows of the facts of ``kind`` in [start, end)."""
    with BACKENDS.lock:
        base = BACKENDS.facts(backend, str(kind))
        if base is None:
            return []
        date_col = dsl.PERIOD_COLUMN[str(kind)]
        t = base.filter((base[date_col] >= start) & (base[date_col] < end) & base.residence_region.notnull())
        if org.kind == "region":
            prefix = reg.org_prefix[org.key]
            t = t.filter(t.residence_region.substr(0, len(prefix)) == prefix)
        else:
            t = t.filter(t.institution_code.isin(reg.org_codes[org.key] or ["-"]))
        region = t.residence_region.substr(0, 4) + "00" if level == "city" else t.residence_region
        grouped = t.mutate(region_=region)
        expr = grouped.group_by(["region_", "institution_code"]).aggregate(count_=grouped.count())
        rows: list[dict[str, Any]] = BACKENDS.connection(backend).to_pyarrow(expr).to_pylist()
    return rows
