"""The indicator definition language: a measure as JSON, validated with pydantic, translated to Ibis.

A measure counts or sums something of one source over an organisation unit and a period::

    {"source": "operations", "measure": "distinct:record_id",
     "where": [["category", "in", ["surgery", "interventional"]], ["operation_level", "=", 4]],
     "attribute_to": "institution"}

- ``source``: a fact dataset (``discharges``, ``operations``, ``visits``; imported activity) or an
  operational source read through its app's figure selector (``referrals``, ``stationing``,
  ``consults``, ``green``, ``capability``).
- ``measure``: ``rows`` | ``distinct:<column>`` | ``sum:<column>`` | ``median:<column>`` over facts;
  ``sum:<figure>`` over an operational source; ``median:<protocol>.<metric>`` over the green channel.
- ``where``: conditions joined by AND, each ``[column, op, value]``; ops ``=``, ``!=``, ``in``,
  ``not_in``, ``>=``, ``<=``, ``>``, ``<``, ``is_null``, ``not_null``. Facts may also be filtered on
  the treating institution's registry attributes ``institution_type`` and ``institution_grade``;
  operational sources only on those two.
- ``attribute_to``: ``institution`` (the treating institution, default) or ``residence`` (the
  patient's residence region: the org unit's region prefix is matched against ``residence_region``).
- ``side`` (green channel only): ``sender`` (door-in-door-out is the sending hospital's) or ``receiver``.
"""

from __future__ import annotations

from typing import Any, Literal

import ibis.expr.types as ir
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

FACT_SOURCES = ("discharges", "operations", "visits")
OPERATIONAL_SOURCES = ("referrals", "stationing", "consults", "green", "capability")
SOURCES = FACT_SOURCES + OPERATIONAL_SOURCES

# Registry attributes of the treating institution, joined to the facts when a condition uses them.
INSTITUTION_COLUMNS: dict[str, str] = {"institution_type": "string", "institution_grade": "string"}

# Fact columns and their kinds ("string", "int", "float", "date", "bool"), after the activity contract.
FACT_COLUMNS: dict[str, dict[str, str]] = {
    "discharges": {
        "institution_code": "string",
        "record_id": "string",
        "patient_key": "string",
        "department": "string",
        "admission_date": "date",
        "discharge_date": "date",
        "sex": "string",
        "age": "int",
        "residence_region": "string",
        "residence_basis": "string",
        "origin": "string",
        "principal_diagnosis": "string",
        "discharge_outcome": "string",
        "length_of_stay": "int",
        "total_cost": "float",
    },
    "operations": {
        "institution_code": "string",
        "record_id": "string",
        "department": "string",
        "discharge_date": "date",
        "operation_date": "date",
        "operation_seq": "int",
        "is_main": "bool",
        "operation_code": "string",
        "operation_name": "string",
        "operation_level": "int",
        # Derived by the catalogues (``yilian.catalogues.selectors.operations_with_basis``), at the
        # discharge date: the classification's category where it lists the code, else the file's
        # (``category_basis``: catalogue | file | code_chapter); level 4 by the level-4 catalogue,
        # else the reported level (``level4_basis``: catalogue | reported); minimally invasive by
        # the national catalogue, else the institution's own list or the reported flag
        # (``mi_basis``: catalogue | institution_list | reported).
        "category": "string",
        "category_basis": "string",
        "level4": "bool",
        "level4_basis": "string",
        "minimally_invasive": "bool",
        "mi_basis": "string",
        "robot_assisted": "bool",
        "operator": "string",
        "operator_role": "string",
    },
    "visits": {
        "institution_code": "string",
        "visit_id": "string",
        "patient_key": "string",
        "department": "string",
        "visit_date": "date",
        "setting": "string",
        "visit_type": "string",
        "sex": "string",
        "age": "int",
        "residence_region": "string",
        "origin": "string",
        "doctor": "string",
    },
}

# The date that places a fact in a period: a stay and its operations count in the month of discharge.
PERIOD_COLUMN = {"discharges": "discharge_date", "operations": "discharge_date", "visits": "visit_date"}

# Figures each operational selector returns per institution (summed over an org unit's institutions).
OPERATIONAL_FIGURES: dict[str, tuple[str, ...]] = {
    "referrals": (
        "up_out",
        "down_out",
        "lateral_out",
        "received_in",
        "accepted",
        "declined",
        "arrived",
        "no_show",
        "outcome_returned",
        "closed",
    ),
    "stationing": (
        "doctors_stationed",
        "days_committed",
        "days_delivered",
        "registrations",
        "operations",
        "operations_level_34",
    ),
    "consults": ("requested", "delivered", "answered_for_others", "closed", "referral_avoided"),
    "capability": (
        "techniques_introduced",
        "techniques_independent",
        "ops_34_total",
        "ops_34_local",
        "teaching_hours_delivered",
        "teaching_hours_received",
        "milestones_reached",
    ),
}

OPS = ("=", "!=", "in", "not_in", ">=", "<=", ">", "<", "is_null", "not_null")
Scalar = str | int | float | bool


class Condition(BaseModel):
    column: str
    op: str
    value: Scalar | list[Scalar] | None = None


class Measure(BaseModel):
    """One measure (a numerator or a denominator)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["discharges", "operations", "visits", "referrals", "stationing", "consults", "green", "capability"]
    measure: str = "rows"
    where: tuple[tuple[Any, ...], ...] = Field(default=())
    attribute_to: Literal["institution", "residence"] = "institution"
    side: Literal["sender", "receiver"] | None = None

    @field_validator("where", mode="before")
    @classmethod
    def _where_shape(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise ValueError(_("“where” must be a list of [column, operator, value] conditions."))
        out = []
        for item in value:
            if not isinstance(item, list | tuple) or len(item) not in (2, 3):
                raise ValueError(_("Each condition is [column, operator, value] (or [column, operator] for nulls)."))
            out.append(tuple(tuple(v) if isinstance(v, list) else v for v in item))
        return tuple(out)

    @model_validator(mode="after")
    def _check(self) -> Measure:
        kind, _sep, arg = self.measure.partition(":")
        if self.source in FACT_SOURCES:
            self._check_fact(kind, arg)
        elif self.source == "green":
            if kind != "median" or "." not in arg:
                raise ValueError(_("A green-channel measure is “median:<protocol>.<metric>”, e.g. median:stroke.dido."))
            if self.attribute_to != "institution":
                raise ValueError(_("Operational sources are attributed to institutions."))
        else:
            if kind != "sum" or arg not in OPERATIONAL_FIGURES[self.source]:
                raise ValueError(
                    _("A %(source)s measure is “sum:<figure>” with one of: %(figures)s.")
                    % {"source": self.source, "figures": ", ".join(OPERATIONAL_FIGURES[self.source])}
                )
            if self.attribute_to != "institution":
                raise ValueError(_("Operational sources are attributed to institutions."))
        if self.side is not None and self.source != "green":
            raise ValueError(_("“side” applies to the green channel only."))
        for cond in self.where:
            self._check_condition(cond)
        return self

    def _check_fact(self, kind: str, arg: str) -> None:
        columns = FACT_COLUMNS[self.source]
        if kind == "rows":
            if arg:
                raise ValueError(_("“rows” takes no column."))
        elif kind in ("distinct", "sum", "median"):
            if arg not in columns:
                raise ValueError(_("No column “%(column)s” in %(source)s.") % {"column": arg, "source": self.source})
            if kind in ("sum", "median") and columns[arg] not in ("int", "float"):
                raise ValueError(_("Column “%(column)s” is not a number.") % {"column": arg})
        else:
            raise ValueError(
                _("Unknown measure “%(measure)s”: use rows, distinct:<column>, sum:<column> or median:<column>.")
                % {"measure": self.measure}
            )
        if self.attribute_to == "residence" and "residence_region" not in columns:
            raise ValueError(_("%(source)s has no residence region to attribute to.") % {"source": self.source})

    def _check_condition(self, cond: tuple[Any, ...]) -> None:
        column, op = cond[0], cond[1]
        value = cond[2] if len(cond) == 3 else None
        allowed = dict(INSTITUTION_COLUMNS)
        if self.source in FACT_SOURCES:
            allowed.update(FACT_COLUMNS[self.source])
        if column not in allowed:
            raise ValueError(
                _("No column “%(column)s” to filter %(source)s on.") % {"column": column, "source": self.source}
            )
        if op not in OPS:
            raise ValueError(_("Unknown operator “%(op)s”; use one of %(ops)s.") % {"op": op, "ops": ", ".join(OPS)})
        if op in ("is_null", "not_null"):
            if value is not None:
                raise ValueError(_("“%(op)s” takes no value.") % {"op": op})
        elif op in ("in", "not_in"):
            if not isinstance(value, tuple) or not value:
                raise ValueError(_("“%(op)s” needs a non-empty list of values.") % {"op": op})
        elif value is None or isinstance(value, tuple):
            raise ValueError(_("“%(op)s” needs one value.") % {"op": op})

    # --- reading -------------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return self.measure.partition(":")[0]

    @property
    def argument(self) -> str:
        return self.measure.partition(":")[2]

    @property
    def is_fact(self) -> bool:
        return self.source in FACT_SOURCES

    @property
    def uses_institution_columns(self) -> bool:
        return any(c[0] in INSTITUTION_COLUMNS for c in self.where)

    @property
    def green_protocol(self) -> str:
        return self.argument.split(".", 1)[0]

    @property
    def green_metric(self) -> str:
        return self.argument.split(".", 1)[1]

    @property
    def green_side(self) -> str:
        return self.side or ("sender" if self.green_metric == "dido" else "receiver")

    def key(self) -> str:
        """A stable identity of the measure (two indicators sharing a measure compute it once)."""
        return self.model_dump_json()


def parse_measure(data: Any) -> Measure:
    """The measure, or a Django ValidationError with a readable message per problem."""
    if isinstance(data, Measure):
        return data
    try:
        return Measure.model_validate(data)
    except PydanticValidationError as exc:
        messages = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            messages.append(f"{where}: {msg}" if where else msg)
        raise ValidationError(messages) from exc


def condition_holds(cond: tuple[Any, ...], actual: Any) -> bool:
    """One condition on a plain value (operational sources filter institutions in Python)."""
    op = cond[1]
    value = cond[2] if len(cond) == 3 else None
    if op == "is_null":
        return actual is None or actual == ""
    if op == "not_null":
        return not (actual is None or actual == "")
    if op == "in":
        return actual in (value or ())
    if op == "not_in":
        return actual not in (value or ())
    if actual is None:
        return False
    comparisons = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
    }
    return bool(comparisons[op](actual, value))


def predicate(table: ir.Table, where: tuple[tuple[Any, ...], ...]) -> ir.BooleanValue | None:
    """The conditions as one Ibis boolean expression over ``table`` (None: no condition)."""
    result: ir.BooleanValue | None = None
    for cond in where:
        column: ir.Column = table[cond[0]]
        op = cond[1]
        value = cond[2] if len(cond) == 3 else None
        expr: ir.BooleanValue
        if op == "=":
            expr = column == value
        elif op == "!=":
            expr = column != value
        elif op == "in":
            expr = column.isin(list(value or ()))
        elif op == "not_in":
            expr = ~column.isin(list(value or ()))
        elif op == ">=":
            expr = column >= value
        elif op == "<=":
            expr = column <= value
        elif op == ">":
            expr = column > value
        elif op == "<":
            expr = column < value
        elif op == "is_null":
            expr = column.isnull()
        else:
            expr = column.notnull()
        # A missing value fails every comparison (SQL would say unknown, which filters it out too).
        if op not in ("is_null", "not_null"):
            expr = expr.fill_null(False)
        result = expr if result is None else result & expr
    return result


# Identifiers that are unique only within one institution.
INSTITUTION_SCOPED_IDS = frozenset({"record_id", "visit_id"})
# The identifier that, with the institution, is the key of a source's current facts: the store keeps
# one current version per key, so distinct (institution, id) pairs are the rows with an id.
RECORD_KEYS = {"discharges": "record_id", "visits": "visit_id"}


def _and(a: ir.BooleanValue | None, b: ir.BooleanValue) -> ir.BooleanValue:
    return b if a is None else a & b


def per_record(measure: Measure) -> bool:
    """Whether the measure counts records of which a source holds several rows (the stays of the
    operations): it is computed in two steps, one row per (institution, record) and then sums."""
    return (
        measure.kind == "distinct"
        and measure.argument in INSTITUTION_SCOPED_IDS
        and RECORD_KEYS.get(measure.source) != measure.argument
    )


def decomposable(measure: Measure) -> bool:
    """Whether the measure is a sum of per-record parts (rows, sums, distinct records)."""
    return measure.kind in ("rows", "sum") or (
        measure.kind == "distinct" and measure.argument in INSTITUTION_SCOPED_IDS
    )


def aggregate(table: ir.Table, measure: Measure) -> ir.Scalar:
    """The measure's reduction over ``table`` (conditions applied inside the aggregate)."""
    cond = predicate(table, measure.where)
    kind, arg = measure.kind, measure.argument
    if kind == "rows":
        return table.count(where=cond) if cond is not None else table.count()
    column = table[arg]
    if kind == "distinct":
        if RECORD_KEYS.get(measure.source) == arg:
            return table.count(where=_and(cond, column.notnull()))
        if arg in INSTITUTION_SCOPED_IDS:
            # A stay or visit number is the hospital's own: the same number at two hospitals is
            # two records, so count distinct (institution, number) pairs.
            column = table.institution_code.concat("\x1f", column)
        return column.nunique(where=cond)
    if kind == "sum":
        return column.sum(where=cond)
    return column.median(where=cond)


def record_part(table: ir.Table, measure: Measure) -> ir.Scalar:
    """A decomposable measure's part over the rows of one (institution, record) group: for a
    distinct record, how many of its rows meet the conditions (the record counts when any does)."""
    if measure.kind == "distinct":
        return table.count(where=_and(predicate(table, measure.where), table[measure.argument].notnull()))
    return aggregate(table, measure)


def sum_of_parts(table: ir.Table, column: str, measure: Measure) -> ir.Scalar:
    """The measure from its per-record parts in ``column`` (see ``record_part``)."""
    part = table[column]
    if measure.kind == "distinct":
        return (part > 0).ifelse(1, 0).sum()
    return part.sum()
