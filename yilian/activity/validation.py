"""Vectorised validation and transformation of an imported table (DuckDB over Arrow).

The whole table is checked by one SQL statement: every rule is a boolean column computed for all
rows at once; there is no Python loop over rows. Each failed rule gives an error with the row
number the user sees (2 = first data line under the header), the column header as written in the
file and a message in the active language. Rules:

- a required value is missing;
- a date is not YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD or one of those followed by HH:MM[:SS], or it is
  later than today or before 1900 (a mistyped year: no activity record is that old);
- the discharge date is before the admission date; an operation date is after the discharge date;
- age is not a whole number 0-130; length of stay is not a whole number >= 0 or differs by more
  than one day from discharge date minus admission date (hospitals count the day of admission and
  the day of discharge together as one day, some count both: both are accepted);
- total cost is not a number >= 0; an operation's sequence number is not a whole number >= 1;
- a coded value is outside its value set (sex, discharge outcome, operation level, category,
  operator role, visit type, setting, yes/no columns);
- the residence region is not 6 digits; the diagnosis is not shaped like an ICD-10 code; the
  operation code is not shaped like an ICD-9-CM-3 code;
- the institution code is unknown, or the user may not import for it;
- the record's key repeats within the file (the later rows are reported).

The valid rows are then turned into facts in the same engine: coded values mapped to their
canonical form, patient identifiers replaced by keyed pseudonyms and the patient's origin derived
from the residence region relative to the institution's region code.
"""

# The SQL here is assembled from the dataset definitions in columns.py (constants); user data only
# ever reaches DuckDB as registered Arrow tables or bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.utils.translation import gettext as _

from yilian.activity.columns import (
    COLUMNS,
    DATE_COLUMN,
    FILE_KEY_COLUMNS,
    Column,
    ColumnType,
    Kind,
    column_map,
    fact_schema,
)
from yilian.activity.pseudonyms import pad_parameters, pseudonymise_sql
from yilian.activity.readers import RawTable

MAX_ERRORS = 1000
ERROR_HEADER = "错误/error"

# No clinical activity record is older than this: an earlier date is a mistyped year.
EARLIEST_DATE = dt.date(1900, 1, 1)
# YYYY-MM-DD or YYYY/MM/DD, optionally followed by HH:MM[:SS] (DuckDB's date cast then reads it).
DASHED_DATE = r"[0-9]{4}(-[0-9]{1,2}-[0-9]{1,2}|/[0-9]{1,2}/[0-9]{1,2})( [0-9]{1,2}:[0-9]{2}(:[0-9]{2})?)?"
WHOLE_NUMBER = r"[0-9]+(\.0+)?"
ICD10_SHAPE = r"[A-Z][0-9]{2}(\.[0-9A-Z]{1,8})?"
OPERATION_CODE_SHAPE = r"[0-9]{2}(\.[0-9A-Z]{1,8})?"


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    message: str


@dataclass
class HeaderMap:
    index: dict[str, int]  # canonical column -> position in the file
    ignored: list[str]
    missing: list[Column]


@dataclass
class Outcome:
    facts: pa.Table
    errors: list[RowError]
    errors_total: int
    rows_total: int
    rows_rejected: int
    ignored_columns: list[str]
    rejects: pa.Table | None = None
    notes: list[str] = field(default_factory=list)
    fact_rows: pa.Array | None = None  # the file row of each fact (when asked for)
    rejected_rows: pa.Array | None = None  # the file rows rejected (when asked for)


@dataclass(frozen=True)
class InstitutionInfo:
    code: str
    region_code: str
    allowed: bool


def identifier_key(value: str) -> str:
    """An institution identifier as looked up: lower case, without spaces and hyphens (组织机构代码
    are written ``47000001-X`` and ``47000001X``)."""
    return "".join(ch for ch in value.strip().lower() if ch not in " -\u3000")


def map_headers(kind: Kind, headers: list[str]) -> HeaderMap:
    """Match the file's headers to the dataset's columns. The first header matching a column
    wins; later ones and unknown headers are ignored (and listed)."""
    mapping = column_map(kind)
    index: dict[str, int] = {}
    ignored: list[str] = []
    for position, header in enumerate(headers):
        column = mapping.get(_norm(header))
        if column is None or column.name in index:
            if header.strip():
                ignored.append(header)
            continue
        index[column.name] = position
    missing = [c for c in COLUMNS[kind] if c.required and c.name not in index]
    return HeaderMap(index=index, ignored=ignored, missing=missing)


def _norm(header: str) -> str:
    from yilian.activity.columns import normalise_header

    return normalise_header(header)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _case_map(expression: str, values: dict[str, str]) -> str:
    whens = " ".join(f"WHEN {_lit(k.lower())} THEN {_lit(v)}" for k, v in values.items())
    return f"(CASE lower({expression}) {whens} END)"


def _allowed_text(values: dict[str, str]) -> str:
    return ", ".join(values)


@dataclass
class _Rule:
    column: str  # canonical column the error is reported on
    condition: str  # SQL, true when the row breaks the rule
    message: str  # may contain %(value)s and %(expected)s
    value: str = "NULL"  # SQL expression shown as %(value)s
    expected: str = "NULL"  # SQL expression shown as %(expected)s


class _Builder:
    """Builds the checking and the fact-building SQL for one dataset and header map."""

    def __init__(
        self, kind: Kind, headers: HeaderMap, today: dt.date, spec: tuple[Column, ...], silent: frozenset[str]
    ) -> None:
        self.kind = kind
        self.present = headers.index
        self.spec = spec
        self.columns = {c.name: c for c in spec}
        self.today = today
        self.silent = silent
        self.rules: list[_Rule] = []

    def has(self, name: str) -> bool:
        return name in self.present

    def raw(self, name: str) -> str:
        return f'"{name}"' if self.has(name) else "CAST(NULL AS VARCHAR)"

    def typed(self) -> list[str]:
        """SELECT items of the typed columns (``t_<name>``), from the trimmed strings."""
        items: list[str] = []
        for column in self.spec:
            v = self.raw(column.name)
            name = column.name
            if column.type == ColumnType.DATE:
                items.append(
                    f"CASE WHEN regexp_full_match({v}, '{DASHED_DATE}') THEN TRY_CAST({v} AS DATE) "
                    f"WHEN regexp_full_match({v}, '[0-9]{{8}}') THEN CAST(try_strptime({v}, '%Y%m%d') AS DATE) "
                    f"END AS t_{name}"
                )
            elif column.type == ColumnType.INTEGER:
                items.append(
                    f"CASE WHEN regexp_full_match({v}, '{WHOLE_NUMBER}') "
                    f"THEN TRY_CAST(TRY_CAST({v} AS DOUBLE) AS BIGINT) END AS t_{name}"
                )
            elif column.type == ColumnType.DECIMAL:
                items.append(f"TRY_CAST(replace({v}, ',', '') AS DOUBLE) AS t_{name}")
            elif column.type in (ColumnType.CHOICE, ColumnType.BOOLEAN):
                items.append(f"{_case_map(v, column.values)} AS t_{name}")
            elif column.type in (ColumnType.ICD10, ColumnType.OPERATION_CODE):
                items.append(f"upper({v}) AS t_{name}")
            elif name == "institution_code":
                items.append(f"lower({v}) AS t_{name}")
                items.append(f"regexp_replace(lower({v}), '[\\s\u3000-]', '', 'g') AS t_institution_key")
            else:
                items.append(f"{v} AS t_{name}")
        return items

    def add(self, rule: _Rule) -> None:
        self.rules.append(rule)

    def build_rules(self) -> None:
        today = _lit(self.today.isoformat())
        for column in self.spec:
            name = column.name
            if not self.has(name):
                continue
            v = f'"{name}"'
            t = f"t_{name}"
            if column.required:
                self.add(_Rule(name, f"{v} IS NULL", _("A value is required.")))
            if name in ("record_id", "visit_id"):
                self.add(
                    _Rule(
                        name,
                        f"regexp_matches({v}, '^[0-9](\\.[0-9]+)?[eE]\\+?[0-9]+(#|$)')",
                        _(
                            "“%(value)s” is a number in scientific notation: Excel has dropped digits of this "
                            "identifier. Export the column as text and upload the file again."
                        ),
                        value=v,
                    )
                )
            if column.type == ColumnType.DATE:
                self.add(
                    _Rule(
                        name,
                        f"{v} IS NOT NULL AND {t} IS NULL",
                        _("“%(value)s” is not a date: write it as YYYY-MM-DD."),
                        value=v,
                    )
                )
                self.add(
                    _Rule(
                        name,
                        f"{t} > CAST({today} AS DATE)",
                        _("%(value)s is in the future."),
                        value=f"CAST({t} AS VARCHAR)",
                    )
                )
                self.add(
                    _Rule(
                        name,
                        f"{t} < DATE '{EARLIEST_DATE.isoformat()}'",
                        _("%(value)s is before 1900: is the year right?"),
                        value=f"CAST({t} AS VARCHAR)",
                    )
                )
            elif name == "age":
                self.add(
                    _Rule(
                        name,
                        f"{v} IS NOT NULL AND ({t} IS NULL OR {t} > 130)",
                        _("Age must be a whole number of years from 0 to 130, not “%(value)s”."),
                        value=v,
                    )
                )
            elif name == "length_of_stay":
                self.add(
                    _Rule(
                        name,
                        f"{v} IS NOT NULL AND {t} IS NULL",
                        _("Length of stay must be a whole number of days (0 or more), not “%(value)s”."),
                        value=v,
                    )
                )
            elif name == "operation_seq":
                self.add(
                    _Rule(
                        name,
                        f"{v} IS NOT NULL AND ({t} IS NULL OR {t} < 1 OR {t} > 32767)",
                        _("The operation's sequence number must be a whole number from 1, not “%(value)s”."),
                        value=v,
                    )
                )
            elif column.type == ColumnType.DECIMAL:
                self.add(
                    _Rule(
                        name,
                        f"{v} IS NOT NULL AND ({t} IS NULL OR NOT isfinite({t}) OR {t} < 0)",
                        _("Total cost must be a number of 0 or more, not “%(value)s”."),
                        value=v,
                    )
                )
            elif column.type in (ColumnType.CHOICE, ColumnType.BOOLEAN):
                self.add(
                    _Rule(
                        name,
                        f"{v} IS NOT NULL AND {t} IS NULL",
                        _("“%(value)s” is not one of the accepted values: %(allowed)s.")
                        % {"value": "%(value)s", "allowed": _allowed_text(column.values)},
                        value=v,
                    )
                )
            elif column.type == ColumnType.REGION:
                self.add(
                    _Rule(
                        name,
                        f"{v} IS NOT NULL AND NOT regexp_full_match({v}, '[0-9]{{6}}')",
                        _("“%(value)s” is not a region code: six digits (GB/T 2260), e.g. 330824."),
                        value=v,
                    )
                )
            elif column.type == ColumnType.ICD10:
                self.add(
                    _Rule(
                        name,
                        f"{v} IS NOT NULL AND NOT regexp_full_match({t}, '{ICD10_SHAPE}')",
                        _("“%(value)s” is not an ICD-10 code such as I63.9."),
                        value=v,
                    )
                )
            elif column.type == ColumnType.OPERATION_CODE:
                self.add(
                    _Rule(
                        name,
                        f"{v} IS NOT NULL AND NOT regexp_full_match({t}, '{OPERATION_CODE_SHAPE}')",
                        _("“%(value)s” is not an operation code (ICD-9-CM-3) such as 36.0601."),
                        value=v,
                    )
                )
            elif name == "institution_code":
                self.add(
                    _Rule(
                        name,
                        f"{v} IS NOT NULL AND i_region IS NULL",
                        _(
                            "Unknown institution “%(value)s”: no institution in the registry has this code, "
                            "organisation code, unified social credit code or licence number."
                        ),
                        value=v,
                    )
                )
                self.add(
                    _Rule(
                        name,
                        "i_region IS NOT NULL AND NOT i_allowed",
                        _("You may not import data for the institution “%(value)s”."),
                        value=v,
                    )
                )
        if self.kind == Kind.DISCHARGES:
            self.add(
                _Rule(
                    "discharge_date",
                    "t_discharge_date < t_admission_date",
                    _("The discharge date is before the admission date (%(expected)s)."),
                    expected="CAST(t_admission_date AS VARCHAR)",
                )
            )
            if self.has("length_of_stay"):
                days = "date_diff('day', t_admission_date, t_discharge_date)"
                self.add(
                    _Rule(
                        "length_of_stay",
                        f"t_length_of_stay IS NOT NULL AND t_discharge_date >= t_admission_date "
                        f"AND abs(t_length_of_stay - {days}) > 1",
                        _(
                            "Length of stay %(value)s does not match the dates: discharge minus admission "
                            "is %(expected)s day(s)."
                        ),
                        value='"length_of_stay"',
                        expected=f"CAST({days} AS VARCHAR)",
                    )
                )
        if self.kind == Kind.OPERATIONS and self.has("operation_date"):
            self.add(
                _Rule(
                    "operation_date",
                    "t_operation_date > t_discharge_date",
                    _("The operation date is after the discharge date (%(expected)s)."),
                    expected="CAST(t_discharge_date AS VARCHAR)",
                )
            )
        key_column = FILE_KEY_COLUMNS[self.kind][1]
        self.add(
            _Rule(
                key_column,
                "__first_row IS NOT NULL AND __row > __first_row",
                _("The same record appears earlier in the file, on row %(expected)s."),
                expected="CAST(__first_row AS VARCHAR)",
            )
        )

    def fact_items(self) -> list[str]:
        """SELECT items producing the fact columns (before the cast to the exact schema)."""
        origin = (
            "CASE WHEN t_residence_region IS NULL OR NOT regexp_full_match(t_residence_region, '[0-9]{6}') "
            "OR i_region IS NULL THEN 'unknown' "
            "WHEN t_residence_region = i_region THEN 'same_county' "
            "WHEN left(t_residence_region, 4) = left(i_region, 4) THEN 'same_city' "
            "WHEN left(t_residence_region, 2) = left(i_region, 2) THEN 'same_province' "
            "ELSE 'other_province' END"
        )
        items: list[str] = []
        for field_ in fact_schema(self.kind, with_batch_seq=False):
            name = field_.name
            column = self.columns.get(name)
            if name == "institution_code":
                items.append("coalesce(i_code, t_institution_code) AS institution_code")
            elif name == "residence_basis" and not self.has("residence_basis"):
                items.append(
                    "CASE WHEN regexp_full_match(t_residence_region, '[0-9]{6}') THEN 'region_code' "
                    "ELSE 'unknown' END AS residence_basis"
                )
            elif name == "category_basis" and not self.has("category_basis"):
                items.append("'file' AS category_basis")
            elif name == "patient_key":
                items.append(f"{pseudonymise_sql('t_patient_id')} AS patient_key")
            elif name == "origin":
                items.append(f"{origin} AS origin")
            elif name == "operation_seq":
                items.append("k_operation_seq AS operation_seq")
            elif name == "is_main":
                items.append("coalesce(CAST(t_is_main AS BOOLEAN), k_operation_seq = 1) AS is_main")
            elif column is not None and column.type == ColumnType.BOOLEAN:
                items.append(f"CAST(coalesce(t_{name}, {_lit(column.default or 'false')}) AS BOOLEAN) AS {name}")
            elif column is not None and column.default is not None:
                items.append(f"coalesce(t_{name}, {_lit(column.default)}) AS {name}")
            else:
                items.append(f"t_{name} AS {name}")
        return items


def _region_table(institutions: dict[str, InstitutionInfo]) -> pa.Table:
    """One row per way of naming an institution (its code, and its external identifiers when the
    caller listed them under their ``identifier_key``)."""
    keys = list(institutions)
    infos = list(institutions.values())
    return pa.table(
        {
            "code": pa.array(keys, pa.string()),
            "canonical": pa.array([i.code for i in infos], pa.string()),
            "region": pa.array([i.region_code for i in infos], pa.string()),
            "allowed": pa.array([i.allowed for i in infos], pa.bool_()),
        }
    )


def missing_column_errors(headers: HeaderMap) -> list[RowError]:
    errors: list[RowError] = []
    for column in headers.missing:
        accepted = " / ".join(column.headers[:4])
        errors.append(
            RowError(
                row=1,
                column=column.name,
                message=_("The required column “%(column)s” is missing (accepted headers include %(headers)s).")
                % {"column": column.name, "headers": accepted},
            )
        )
    return errors


def validate(
    *,
    kind: Kind,
    raw: RawTable,
    institutions: dict[str, InstitutionInfo],
    today: dt.date,
    want_rejects: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    spec: tuple[Column, ...] | None = None,
    header_map: HeaderMap | None = None,
    labels: dict[str, str] | None = None,
    slot_headers: dict[tuple[int, str], str] | None = None,
    silent: frozenset[str] = frozenset(),
    want_rows: bool = False,
) -> Outcome:
    """Check every row and build the facts of the valid ones. ``institutions`` maps every known
    institution code (lower case) to its region code and whether the user may import for it.

    A caller that has already prepared the columns (the front-page reader) passes ``spec`` (the
    columns checked, instead of the dataset's), ``header_map``, ``labels`` (the header to name in
    an error, per column), ``slot_headers`` (per ``RawTable.slots`` value and column: for the
    operations unpivoted from numbered columns), ``silent`` (columns whose failed rules reject the
    row without an error of their own: they were reported elsewhere) and ``want_rows`` (the row
    number of each fact and of each rejected row)."""
    kind = Kind(kind)
    spec = spec or COLUMNS[kind]
    headers = header_map or map_headers(kind, raw.headers)
    total = raw.num_rows
    if headers.missing:
        missing = missing_column_errors(headers)
        return Outcome(
            facts=fact_schema(kind, with_batch_seq=False).empty_table(),
            errors=missing,
            errors_total=len(missing),
            rows_total=total,
            rows_rejected=total,
            ignored_columns=headers.ignored,
        )
    report = progress or (lambda stage, done, all_: None)
    builder = _Builder(kind, headers, today, spec, silent)
    builder.build_rules()

    rows = (
        raw.row_numbers if raw.row_numbers is not None else pa.array(np.arange(total, dtype=np.int64) + raw.first_row)
    )
    extra = {"__slot": raw.slots} if raw.slots is not None else {"__slot": pa.nulls(total, pa.int16())}
    source = pa.table(
        {**{name: raw.table.column(position) for name, position in headers.index.items()}, "__row": rows, **extra}
    )
    con = duckdb.connect()
    try:
        con.register("source", source)
        con.register("institutions", _region_table(institutions))
        trimmed = ", ".join(f'NULLIF(trim("{name}"), \'\') AS "{name}"' for name in headers.index)
        if kind != Kind.OPERATIONS:
            seq_item = "NULL AS k_operation_seq"
        elif _all_filled(source, "operation_seq"):
            seq_item = "CASE WHEN t_operation_seq BETWEEN 1 AND 32767 THEN t_operation_seq END AS k_operation_seq"
        else:
            # Empty sequence numbers: the position of the stay's rows in the file.
            seq_item = (
                "coalesce(CASE WHEN t_operation_seq BETWEEN 1 AND 32767 THEN t_operation_seq END, "
                "row_number() OVER (PARTITION BY t_institution_code, t_record_id ORDER BY __row)) AS k_operation_seq"
            )
        # Repeated keys: an aggregate over a hash of the key finds the candidates (few), whose
        # keys are then compared exactly.
        dup_keys = {
            "institution_code": "regexp_replace(lower(NULLIF(trim(institution_code), '')), '[\\s\u3000-]', '', 'g')",
            "record_id": "NULLIF(trim(record_id), '')",
            "visit_id": "NULLIF(trim(visit_id), '')",
            "operation_seq": f"CASE WHEN regexp_full_match(trim(operation_seq), '{WHOLE_NUMBER}') "
            "THEN TRY_CAST(TRY_CAST(trim(operation_seq) AS DOUBLE) AS BIGINT) END",
        }
        file_keys = FILE_KEY_COLUMNS[kind]
        key_select = ", ".join(f"{dup_keys[k]} AS d_{k}" for k in file_keys)
        key_filter = " AND ".join(f"d_{k} IS NOT NULL" for k in file_keys)
        d_names = ", ".join("d_" + k for k in file_keys)
        hashed = f"SELECT hash({', '.join(dup_keys[k] for k in file_keys)}) AS h FROM source"
        con.sql(f"CREATE TEMP TABLE repeated AS SELECT h FROM ({hashed}) GROUP BY h HAVING count(*) > 1")
        if _count(con, "SELECT count(*) FROM repeated"):
            con.sql(
                f"""
                CREATE TEMP TABLE dups AS
                SELECT {d_names}, min(__row) AS __first_row
                FROM (SELECT {key_select}, __row FROM source
                      WHERE hash({", ".join(dup_keys[k] for k in file_keys)}) IN (SELECT h FROM repeated))
                WHERE {key_filter}
                GROUP BY ALL HAVING count(*) > 1
                """
            )
        else:
            con.sql(f"CREATE TEMP TABLE dups AS SELECT {key_select}, __row AS __first_row FROM source LIMIT 0")
        key_join = " AND ".join(f"k.{_KEY_COLUMN.get(k, 't_' + k)} = dups.d_{k}" for k in file_keys)
        flags = ", ".join(f"({rule.condition}) IS TRUE AS e{i}" for i, rule in enumerate(builder.rules))
        bad = " OR ".join(f"e{i}" for i in range(len(builder.rules))) or "false"
        # One pipeline, each step read once, so DuckDB streams it without materialising.
        con.sql(
            f"""
            CREATE TEMP VIEW checked AS
            WITH s AS (SELECT {trimmed}, __row, __slot FROM source),
                 t AS (SELECT s.*, {", ".join(builder.typed())} FROM s),
                 j AS (SELECT t.*, institutions.canonical AS i_code, institutions.region AS i_region,
                              coalesce(institutions.allowed, false) AS i_allowed
                       FROM t LEFT JOIN institutions ON institutions.code = t.t_institution_key),
                 k AS (SELECT j.*, {seq_item} FROM j),
                 x AS (SELECT k.*, dups.__first_row FROM k LEFT JOIN dups ON {key_join}),
                 y AS (SELECT x.*, {flags} FROM x)
            SELECT y.*, ({bad}) AS __bad FROM y
            """
        )
        report("validating", 1, 3)
        items = ", ".join(builder.fact_items())
        result = con.sql(
            f"SELECT {items}, __bad, __row FROM checked",
            params=pad_parameters() if "$ipad" in items else None,
        ).to_arrow_table()
        flags_column = result.column("__bad")
        rows_rejected = int(pc.sum(flags_column.cast(pa.int64())).as_py() or 0)
        rejected_rows = None
        if rows_rejected:
            if want_rows:
                rejected_rows = result.column("__row").filter(flags_column).combine_chunks()
            result = result.filter(pc.invert(flags_column))
        fact_rows = result.column("__row").combine_chunks() if want_rows else None
        if want_rows and rejected_rows is None:
            rejected_rows = pa.array([], pa.int64())
        facts = result.drop_columns(["__bad", "__row"]).cast(fact_schema(kind, with_batch_seq=False))
        del result, flags_column
        report("validating", 2, 3)

        header_of = {name: raw.headers[position] for name, position in headers.index.items()}
        header_of.update(labels or {})
        messages = pa.table(
            {
                "rule": pa.array(range(len(builder.rules)), pa.int64()),
                "col": pa.array([r.column for r in builder.rules], pa.string()),
                "header": pa.array([header_of.get(r.column, r.column) for r in builder.rules], pa.string()),
                "template": pa.array([r.message for r in builder.rules], pa.string()),
            }
        )
        con.register("messages", messages)
        slot_items = list((slot_headers or {}).items())
        con.register(
            "slot_headers",
            pa.table(
                {
                    "slot": pa.array([k[0] for k, _h in slot_items], pa.int16()),
                    "col": pa.array([k[1] for k, _h in slot_items], pa.string()),
                    "header": pa.array([h for _k, h in slot_items], pa.string()),
                }
            ),
        )
        errors: list[RowError] = []
        errors_total = 0
        rejects = None
        if rows_rejected:
            con.sql("CREATE TEMP TABLE rejected AS SELECT * FROM checked WHERE __bad")
            union = "\nUNION ALL\n".join(
                f"SELECT __row, __slot, {i} AS rule, CAST({rule.value} AS VARCHAR) AS value, "
                f"CAST({rule.expected} AS VARCHAR) AS expected FROM rejected WHERE e{i}"
                for i, rule in enumerate(builder.rules)
                if rule.column not in silent
            ) or (
                "SELECT CAST(NULL AS BIGINT) AS __row, CAST(NULL AS SMALLINT) AS __slot, 0 AS rule, "
                "'' AS value, '' AS expected WHERE false"
            )
            con.sql(
                f"""
                CREATE TEMP TABLE errors AS
                SELECT e.__row, e.rule, coalesce(sh.header, m.header) AS header,
                       replace(replace(m.template, '%(value)s', coalesce(e.value, '')),
                               '%(expected)s', coalesce(e.expected, '')) AS message
                FROM ({union}) e JOIN messages m USING (rule)
                LEFT JOIN slot_headers sh ON sh.slot = e.__slot AND sh.col = m.col
                """
            )
            errors_total = _count(con, "SELECT count(*) FROM errors")
            first = con.sql(f"SELECT __row, header, message FROM errors ORDER BY __row, rule LIMIT {MAX_ERRORS}")
            errors = [RowError(row=int(r), column=str(h), message=str(m)) for r, h, m in first.fetchall()]
            if want_rejects:
                rejects = _rejects(con, kind, raw, headers, labels or {})
        report("validating", 3, 3)
    finally:
        con.close()
    return Outcome(
        facts=facts,
        errors=errors,
        errors_total=errors_total,
        rows_total=total,
        rows_rejected=rows_rejected,
        ignored_columns=headers.ignored,
        rejects=rejects,
        fact_rows=fact_rows,
        rejected_rows=rejected_rows,
    )


# The typed column each file key is compared on (the institution as looked up: its identifier key).
_KEY_COLUMN = {"operation_seq": "k_operation_seq", "institution_code": "t_institution_key"}


def _all_filled(source: pa.Table, name: str) -> bool:
    if name not in source.column_names:
        return False
    column = pc.utf8_trim_whitespace(source.column(name))
    return not bool(pc.any(pc.equal(column, "")).as_py())


def _count(con: duckdb.DuckDBPyConnection, query: str) -> int:
    rows = con.sql(query).fetchall()
    return int(rows[0][0]) if rows else 0


def mask_sql(expression: str) -> str:
    """Keep the first 3 and last 4 characters of an identifier; hide shorter ones entirely."""
    return (
        f"CASE WHEN {expression} IS NULL THEN NULL WHEN length({expression}) <= 8 THEN '****' "
        f"ELSE left({expression}, 3) || repeat('*', length({expression}) - 7) || right({expression}, 4) END"
    )


def _rejects(
    con: duckdb.DuckDBPyConnection, kind: Kind, raw: RawTable, headers: HeaderMap, labels: dict[str, str]
) -> pa.Table:
    """The rejected rows: the recognised columns under their headers as given (patient identifiers
    masked; unrecognised columns left out, as they may hold anything) plus the errors of the row."""
    items = []
    for name, position in sorted(headers.index.items(), key=lambda item: item[1]):
        header = labels.get(name, raw.headers[position]).replace('"', '""')
        value = mask_sql(f'c."{name}"') if name == "patient_id" else f'c."{name}"'
        items.append(f'{value} AS "{header}"')
    table = con.sql(
        f"""
        SELECT {", ".join(items)}, e.message AS "{ERROR_HEADER}"
        FROM rejected c JOIN (
            SELECT __row, string_agg(header || ': ' || message, '; ' ORDER BY rule) AS message
            FROM errors GROUP BY __row
        ) e USING (__row)
        ORDER BY c.__row
        """
    ).to_arrow_table()
    return table


def date_column(kind: Kind) -> str:
    return DATE_COLUMN[kind]
