"""Hospitals' inpatient front-page exports (住院病案首页) as the national interfaces write them.

One row per stay, several hundred columns, the operations in numbered column groups. Four header
dialects are recognised, per file, by which of their headers the file has:

- ``hqms2019``: the 2019 western-medicine interface codes (A01, A48 病案号, A49 住院次数, B12/B15,
  A26 现住址, C03C, the main operation C14x01C… and the others C35xNNC…, NN = 01..40);
- ``tcm``: the TCM interface's pinyin codes (ZZJGDM, BAH, RYSJ, CYSJ, SJZY, ZYZD_JBBM, XZZ,
  SSJCZBM1..41, SHJB1..41, QKDJn + QKYLBn);
- ``provincial``: older provincial extracts (SJZYTS, JBDM, SSJCZBM1..n, SSJB1..n, QKDJn + QKYHLBn,
  residence region codes such as XZZ_XZQH);
- ``chinese``: the Chinese field names in place of the codes (病案号, 出院时间, 主要手术操作编码,
  其他手术操作编码 numbered or repeated in order…).

``prepare`` turns the file into two tables of strings under Yilian's column names, one row per stay
(checked and landed as discharges) and one row per operation (the numbered groups unpivoted, up
to 41 a stay, the first being the main operation), with the Excel damage repaired and counted:
values ``-``, codes with ``.0``, numbers in scientific notation, the date formats ``yyyyMMdd``,
``yyyy/MM/dd``, ``yyyy年MM月dd日`` and ``yyyyMMddHHmmss``, department codes and postcodes that lost
a leading zero. All of it is vectorised (Arrow compute, DuckDB): there is no loop over rows.

A stay is identified by institution + 病案号 + 住院次数 (``record_id`` = ``<病案号>#<住院次数>``).
The patient is the resident ID number when there is a usable one, else the medical-record number
within the institution (a hospital gives each patient one 病案号). Residence is placed by
``yilian.activity.residence``. Coded values are checked against the value sets of the 2019
standard (``reference/frontpage-2019-value-sets.tsv``).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yilian.activity import residence
from yilian.activity.columns import (
    DISCHARGE_COLUMNS,
    LEVEL_VALUES,
    OPERATION_COLUMNS,
    SEX_VALUES,
    Column,
    ColumnType,
    Kind,
    fact_schema,
    normalise_header,
)
from yilian.activity.readers import RawTable
from yilian.activity.validation import (
    MAX_ERRORS,
    HeaderMap,
    InstitutionInfo,
    Outcome,
    RowError,
    validate,
)

REFERENCE = Path(__file__).resolve().parent / "reference"
MAX_OPERATIONS = 41


class Dialect(models.TextChoices):
    HQMS2019 = "hqms2019", gettext_lazy("2019 national interface codes (A48, B15, C14x01C…)")
    TCM = "tcm", gettext_lazy("TCM interface pinyin codes (BAH, RYSJ, SSJCZBM1…)")
    PROVINCIAL = "provincial", gettext_lazy("older provincial pinyin codes (SJZYTS, JBDM, SSJB1…)")
    CHINESE = "chinese", gettext_lazy("Chinese field names (病案号, 出院时间…)")


W, T, P, C = Dialect.HQMS2019, Dialect.TCM, Dialect.PROVINCIAL, Dialect.CHINESE

# Stay fields: Yilian's name -> the headers of each dialect.
STAY_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "institution_id": {W: ("A01",), T: ("ZZJGDM",), P: ("ZZJGDM", "JGDM"), C: ("组织机构代码", "医疗机构代码")},
    "institution_name": {W: ("A02",), T: ("JGMC",), P: ("JGMC", "YYMC"), C: ("医疗机构名称", "机构名称")},
    "record_no": {W: ("A48",), T: ("BAH",), P: ("BAH",), C: ("病案号",)},
    "admission_count": {W: ("A49",), T: ("ZYCS",), P: ("ZYCS",), C: ("住院次数",)},
    "admission_time": {W: ("B12",), T: ("RYSJ",), P: ("RYSJ", "RYRQ"), C: ("入院时间", "入院日期")},
    "discharge_time": {W: ("B15",), T: ("CYSJ",), P: ("CYSJ", "CYRQ"), C: ("出院时间", "出院日期")},
    "id_number": {W: ("A20",), T: ("SFZH",), P: ("SFZH",), C: ("身份证号",)},
    "sex": {W: ("A12C",), T: ("XB",), P: ("XB",), C: ("性别",)},
    "age": {W: ("A14",), T: ("NL",), P: ("NL",), C: ("年龄（岁）", "年龄")},
    "address": {W: ("A26",), T: ("XZZ",), P: ("XZZ",), C: ("现住址",)},
    "region_code": {
        W: ("A26_XZQH", "XZZ_XZQH"),
        T: ("XZZ_XZQH", "XZZXZQH"),
        P: ("XZZ_XZQH", "XZZ_XIAN_DM", "XZZ_QX_DM", "XZZ_DM", "XZZQXDM"),
        C: ("现住址行政区划代码", "现住址区划代码", "现住址县区代码"),
    },
    "postcode": {W: ("A28C",), T: ("YB1", "XZZYB"), P: ("XZZYB", "YB1"), C: ("现住址邮政编码", "现住址邮编")},
    "department": {W: ("B16C",), T: ("CYKB",), P: ("CYKB",), C: ("出院科别",)},
    "diagnosis": {
        W: ("C03C",),
        T: ("ZYZD_JBBM", "JBBM"),
        P: ("JBDM", "ZYZD_JBDM"),
        C: ("出院主要诊断编码", "主要诊断编码", "主要诊断疾病编码"),
    },
    "discharge_mode": {W: ("B34C",), T: ("LYFS",), P: ("LYFS",), C: ("离院方式",)},
    "length_of_stay": {W: ("B20",), T: ("SJZY",), P: ("SJZYTS",), C: ("实际住院（天）", "实际住院天数")},
    "total_cost": {W: ("D01",), T: ("ZFY",), P: ("ZFY",), C: ("住院总费用", "总费用")},
}
REQUIRED_STAY = ("institution_id", "record_no", "admission_count", "admission_time", "discharge_time")


def _w2019(main: str, other: str) -> Callable[[int], tuple[str, ...]]:
    """2019 operation headers: the main one (``C14x01C``) is slot 1, ``C35x<NN>C`` slot NN + 1."""
    return lambda n: (main,) if n == 1 else (other.replace("NN", f"{n - 1:02d}"),)


def _numbered(*stems: str) -> Callable[[int], tuple[str, ...]]:
    return lambda n: tuple(f"{stem}{n}" for stem in stems)


def _chinese(main: str, *others: str) -> Callable[[int], tuple[str, ...]]:
    """Chinese names: ``主要手术操作编码`` is slot 1, ``其他手术操作编码<k>`` (k = 1..40, or 01..40)
    slot k + 1, and the TCM style ``手术及操作编码<n>`` slot n."""

    def headers(n: int) -> tuple[str, ...]:
        found = [main] if n == 1 else []
        if n > 1:
            k = n - 1
            found += [f"{o}{k}" for o in others[:1]] + [f"{o}{k:02d}" for o in others[:1]]
        found += [f"{o}{n}" for o in others[1:]]
        return tuple(found)

    return headers


# Operation fields of one numbered group: Yilian's name -> per dialect, the headers of group n.
SLOT_FIELDS: dict[str, dict[str, Callable[[int], tuple[str, ...]]]] = {
    "code": {
        W: _w2019("C14x01C", "C35xNNC"),
        T: _numbered("SSJCZBM"),
        P: _numbered("SSJCZBM"),
        C: _chinese("主要手术操作编码", "其他手术操作编码", "手术及操作编码"),
    },
    "name": {
        W: _w2019("C15x01N", "C36xNNN"),
        T: _numbered("SSJCZMC"),
        P: _numbered("SSJCZMC"),
        C: _chinese("主要手术操作名称", "其他手术操作名称", "手术及操作名称"),
    },
    "date": {
        W: _w2019("C16x01", "C37xNN"),
        T: _numbered("SSJCZRQ"),
        P: _numbered("SSJCZRQ", "SSRQ"),
        C: _chinese("主要手术操作日期", "其他手术操作日期", "手术及操作日期"),
    },
    "level": {
        W: _w2019("C17x01", "C38xNN"),
        T: _numbered("SHJB"),
        P: _numbered("SSJB"),
        C: _chinese("主要手术操作级别", "其他手术操作级别", "手术级别"),
    },
    "operator": {
        W: _w2019("C18x01", "C39xNN"),
        T: _numbered("SZ"),
        P: _numbered("SZ", "SSYS"),
        C: _chinese("主要手术操作术者", "其他手术操作术者", "术者"),
    },
    "incision": {
        W: _w2019("C21x01C", "C42xNNC"),
        C: _chinese("主要手术操作切口愈合等级", "其他手术操作切口愈合等级", "切口愈合等级"),
    },
    "incision_class": {T: _numbered("QKDJ"), P: _numbered("QKDJ"), C: _numbered("切口等级")},
    "healing_grade": {T: _numbered("QKYLB"), P: _numbered("QKYHLB", "QKYLB"), C: _numbered("愈合等级", "切口愈合类别")},
}
# Chinese exports that repeat one name for every other operation: the k-th repetition is group k + 1.
REPEATED_CHINESE = {
    "其他手术操作编码": "code",
    "其他手术操作名称": "name",
    "其他手术操作日期": "date",
    "其他手术操作级别": "level",
    "其他手术操作术者": "operator",
    "其他手术操作切口愈合等级": "incision",
}


# --- value sets of the 2019 standard -------------------------------------------------------------


@cache
def value_sets() -> dict[str, list[tuple[str, str]]]:
    """Value set id (``RC001``…) -> (code, name) pairs, from the reference file."""
    sets: dict[str, list[tuple[str, str]]] = {}
    with (REFERENCE / "frontpage-2019-value-sets.tsv").open(encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if len(row) < 3 or row[0].startswith("#") or row[0] == "value_set":
                continue
            sets.setdefault(row[0].split()[0], []).append((row[1].strip(), row[2].strip()))
    return sets


@cache
def known_2019_headers() -> frozenset[str]:
    """Every header of the 2019 interface (normalised), the NN groups expanded: columns Yilian does
    not use but knows, so that they are not listed as unknown."""
    known: set[str] = set()
    with (REFERENCE / "frontpage-2019-fields.tsv").open(encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if not row or row[0].startswith("#") or row[0] == "field_code":
                continue
            code = row[0].strip()
            if "NN" in code:
                known.update(normalise_header(code.replace("NN", f"{n:02d}")) for n in range(1, 41))
            else:
                known.add(normalise_header(code))
    return frozenset(known)


def _department_name(code: str, name: str, parents: dict[str, str]) -> str:
    short = name.removesuffix("专业")
    if short == "其他" and code[:-2] in parents:
        return parents[code[:-2]].removesuffix("专业") + "其他"
    return short


@cache
def department_values() -> dict[str, str]:
    """诊疗科目 (RC023) code or name -> the department name stored (``0402`` -> 神经外科)."""
    pairs = value_sets()["RC023"]
    names = dict(pairs)
    values: dict[str, str] = {}
    for code, name in pairs:
        stored = _department_name(code, name, names)
        values[code] = stored
        values.setdefault(name, stored)
        values.setdefault(stored, stored)
    return values


def _coded(set_id: str, canonical: Callable[[str], str] = str) -> dict[str, str]:
    values: dict[str, str] = {}
    for code, name in value_sets()[set_id]:
        values[code] = canonical(code)
        values.setdefault(name, canonical(code))
    return values


@cache
def frontpage_columns() -> tuple[tuple[Column, ...], tuple[Column, ...]]:
    """The columns checked for the stays and for the operations of a front-page file: the
    discharge and operation columns with the 2019 value sets."""
    sex = {**SEX_VALUES, **{k: SEX_VALUES.get(v, "unknown") for k, v in _coded("RC001").items()}}
    outcome = _coded("RC019")
    level = {**LEVEL_VALUES, **_coded("RC029")}
    incision = _coded("RC014")
    stay: list[Column] = []
    for column in DISCHARGE_COLUMNS:
        if column.name == "sex":
            column = Column("sex", (), ColumnType.CHOICE, values=sex, default="unknown")
        elif column.name == "discharge_outcome":
            column = Column("discharge_outcome", (), ColumnType.CHOICE, values=outcome)
        elif column.name == "department":
            column = Column("department", (), ColumnType.CHOICE, values=department_values())
        elif column.name == "patient_id":
            column = Column("patient_id", (), ColumnType.PATIENT, required=True)
        stay.append(column)
    stay.append(Column("admission_count", (), ColumnType.INTEGER, required=True))
    stay.append(Column("residence_basis", (), ColumnType.TEXT))
    operations: list[Column] = []
    for column in OPERATION_COLUMNS:
        if column.name == "operation_level":
            column = Column("operation_level", (), ColumnType.CHOICE, values=level)
        elif column.name == "department":
            column = Column("department", (), ColumnType.CHOICE, values=department_values())
        operations.append(column)
    operations += [
        Column("category_basis", (), ColumnType.TEXT),
        Column("incision", (), ColumnType.CHOICE, values=incision),
        Column("incision_class", (), ColumnType.CHOICE, values=INCISION_CLASS_VALUES),
        Column("healing_grade", (), ColumnType.CHOICE, values=HEALING_GRADE_VALUES),
    ]
    return tuple(stay), tuple(operations)


# Split incision class and healing grade (TCM and provincial exports): 0 no incision on the body
# surface, Ⅰ-Ⅲ the class; 甲乙丙 and 其他 the healing (the classes and grades of RC014).
INCISION_CLASS_VALUES = {
    "0": "0",
    "1": "1",
    "2": "2",
    "3": "3",
    "Ⅰ": "1",
    "Ⅱ": "2",
    "Ⅲ": "3",
    "i": "1",
    "ii": "2",
    "iii": "3",
    "0类": "0",
    "Ⅰ类": "1",
    "Ⅱ类": "2",
    "Ⅲ类": "3",
}
HEALING_GRADE_VALUES = {"1": "1", "2": "2", "3": "3", "9": "9", "甲": "1", "乙": "2", "丙": "3", "其他": "9"}


# --- dialects ------------------------------------------------------------------------------------


@dataclass
class Layout:
    dialect: Dialect
    stay: dict[str, int]  # field -> column position
    slots: dict[tuple[int, str], int]  # (group 1..41, field) -> column position
    ignored: list[str]  # unknown headers (listed in the report)
    known_unused: int  # headers of the interface that Yilian does not use
    missing: list[str]  # required stay fields without a column


@cache
def _lookup(dialect: Dialect) -> dict[str, tuple[str, int]]:
    """Normalised header -> (field, group; 0 for a stay field) in one dialect."""
    table: dict[str, tuple[str, int]] = {}
    for name, by_dialect in STAY_FIELDS.items():
        for header in by_dialect.get(dialect, ()):
            table.setdefault(normalise_header(header), (name, 0))
    for name, slot_headers in SLOT_FIELDS.items():
        headers_of = slot_headers.get(dialect)
        if headers_of is None:
            continue
        for n in range(1, MAX_OPERATIONS + 1):
            for header in headers_of(n):
                table.setdefault(normalise_header(header), (name, n))
    return table


def detect(headers: list[str]) -> Dialect:
    """The dialect whose headers the file has most of (ties: the order of ``Dialect``)."""
    normalised = [normalise_header(h) for h in headers]
    scores = {dialect: sum(1 for h in normalised if h in _lookup(dialect)) for dialect in Dialect}
    if Dialect.CHINESE in scores:
        scores[Dialect.CHINESE] += sum(1 for h in normalised if h in REPEATED_CHINESE)
    return max(Dialect, key=lambda d: scores[d])


def layout_of(headers: list[str]) -> Layout:
    dialect = detect(headers)
    lookup = _lookup(dialect)
    known = known_2019_headers() if dialect == Dialect.HQMS2019 else frozenset()
    stay: dict[str, int] = {}
    slots: dict[tuple[int, str], int] = {}
    repeated: dict[str, int] = {}
    ignored: list[str] = []
    known_unused = 0
    for position, header in enumerate(headers):
        key = normalise_header(header)
        found = lookup.get(key)
        if found is None and dialect == Dialect.CHINESE and key in REPEATED_CHINESE:
            name = REPEATED_CHINESE[key]
            repeated[name] = repeated.get(name, 1) + 1
            found = (name, repeated[name])
        if found is None:
            if key in known:
                known_unused += 1
            elif header.strip():
                ignored.append(header)
            continue
        name, n = found
        if n == 0:
            stay.setdefault(name, position)
        elif n <= MAX_OPERATIONS:
            slots.setdefault((n, name), position)
    missing = [name for name in REQUIRED_STAY if name not in stay]
    return Layout(dialect, stay, slots, ignored, known_unused, missing)


def header_names(field_name: str, dialect: Dialect) -> str:
    """The headers a dialect accepts for a stay field (for a message)."""
    return " / ".join(STAY_FIELDS[field_name].get(dialect, ()))


# --- repairs -------------------------------------------------------------------------------------

EMPTY_MARKS = ["-", "--", "—", "－", "——"]
POINT_ZERO = r"^([0-9]+)\.0+$"
SCIENTIFIC = r"^[0-9](\.[0-9]+)?[eE]\+?[0-9]{1,2}$"
ID_NUMBER = r"^([0-9]{17}[0-9Xx]|[0-9]{15})$"
CHINESE_DATE = r"^([0-9]{4})年([0-9]{1,2})月([0-9]{1,2})日?"
COMPACT_DATETIME = r"^([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})$"
COMPACT_DATE = r"^([0-9]{4})([0-9]{2})([0-9]{2})$"
SLASH_DATE = r"^([0-9]{4})/([0-9]{1,2})/([0-9]{1,2})"

# Kinds of repair, as reported.
REPAIRS = {
    "empty_mark": gettext_lazy("“-” read as empty"),
    "point_zero": gettext_lazy("“.0” removed from a code or count"),
    "scientific": gettext_lazy("number in scientific notation written out"),
    "id_scientific": gettext_lazy(
        "ID number in scientific notation (digits lost): the patient is identified by the medical-record number"
    ),
    "id_unusable": gettext_lazy(
        "not an ID number (e.g. 无, 不详, masked): the patient is identified by the medical-record number"
    ),
    "date_format": gettext_lazy("date rewritten as YYYY-MM-DD"),
    "leading_zero": gettext_lazy("lost leading zero restored"),
}


@dataclass
class Repairs:
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (header, repair) -> values

    def add(self, header: str, repair: str, count: int) -> None:
        if count:
            self.counts[(header, repair)] = self.counts.get((header, repair), 0) + count

    def as_list(self) -> list[dict[str, Any]]:
        return [
            {"column": header, "repair": repair, "count": count}
            for (header, repair), count in sorted(self.counts.items())
        ]


def _count(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(pc.sum(mask.cast(pa.int64())).as_py() or 0)


def _clean(values: pa.ChunkedArray | pa.Array, header: str, repairs: Repairs) -> pa.ChunkedArray | pa.Array:
    """Trimmed, empty as null, ``-`` as null (counted)."""
    text = pc.utf8_trim_whitespace(values)
    dash = pc.is_in(text, value_set=pa.array(EMPTY_MARKS))
    repairs.add(header, "empty_mark", _count(dash))
    empty = pc.or_(pc.equal(text, ""), dash)
    return pc.if_else(empty, pa.scalar(None, pa.string()), text)


def _regex_repair(
    values: pa.ChunkedArray | pa.Array, pattern: str, replacement: str, header: str, repair: str, repairs: Repairs
) -> pa.ChunkedArray | pa.Array:
    mask = pc.fill_null(pc.match_substring_regex(values, pattern), False)
    count = _count(mask)
    if not count:
        return values
    repairs.add(header, repair, count)
    return pc.replace_substring_regex(values, pattern, replacement)


def _decimal_text(text: str) -> str:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return format(number.quantize(Decimal(1)) if number == number.to_integral_value() else number, "f")


def _scientific(values: pa.ChunkedArray | pa.Array, header: str, repairs: Repairs) -> pa.ChunkedArray | pa.Array:
    """Numbers in scientific notation written out (``3.30824E+5`` -> ``330824``); only the damaged
    values are converted, one by one (Decimal keeps every digit the file still has)."""
    mask = pc.fill_null(pc.match_substring_regex(values, SCIENTIFIC), False)
    count = _count(mask)
    if not count:
        return values
    repairs.add(header, "scientific", count)
    damaged = pc.filter(values, mask)
    distinct = pc.unique(damaged).to_pylist()
    fixed = [_decimal_text(str(v)) for v in distinct]
    index = pc.index_in(values, value_set=pa.array(distinct, pa.string()))
    replacement = pc.take(pa.array(fixed, pa.string()), index)
    return pc.if_else(mask, replacement, values)


def _dates(values: pa.ChunkedArray | pa.Array, header: str, repairs: Repairs) -> pa.ChunkedArray | pa.Array:
    values = _regex_repair(values, CHINESE_DATE, r"\1-\2-\3", header, "date_format", repairs)
    values = _regex_repair(values, COMPACT_DATETIME, r"\1-\2-\3 \4:\5:\6", header, "date_format", repairs)
    values = _regex_repair(values, COMPACT_DATE, r"\1-\2-\3", header, "date_format", repairs)
    return _regex_repair(values, SLASH_DATE, r"\1-\2-\3", header, "date_format", repairs)


def _leading_zero(
    values: pa.ChunkedArray | pa.Array, allowed: list[str], width: int | None, header: str, repairs: Repairs
) -> pa.ChunkedArray | pa.Array:
    """A code that Excel read as a number lost its leading zero (``402`` for 诊疗科目 ``0402``,
    ``10000`` for postcode ``010000``): restored when the padded code is the one allowed."""
    padded = pc.binary_join_element_wise("0", values, "")
    if width is not None:
        candidate = pc.equal(pc.utf8_length(values), width - 1)
        candidate = pc.and_(candidate, pc.match_substring_regex(values, r"^[0-9]+$"))
    else:
        known = pa.array(allowed, pa.string())
        candidate = pc.and_(pc.invert(pc.is_in(values, value_set=known)), pc.is_in(padded, value_set=known))
    mask = pc.fill_null(candidate, False)
    repairs.add(header, "leading_zero", _count(mask))
    return pc.if_else(mask, padded, values)


# --- preparation ---------------------------------------------------------------------------------


@dataclass
class Prepared:
    layout: Layout
    stays: RawTable
    stay_map: HeaderMap
    stay_labels: dict[str, str]
    operations: RawTable
    operation_map: HeaderMap
    operation_labels: dict[str, str]
    slot_headers: dict[tuple[int, str], str]
    repairs: Repairs


STAY_SILENT_IN_OPERATIONS = frozenset({"institution_code", "record_id", "department", "discharge_date"})
CODE_FIELDS: tuple[str, ...] = ("institution_id", "record_no", "admission_count", "sex", "age", "region_code")
CODE_FIELDS += ("department", "discharge_mode", "length_of_stay", "postcode")
SLOT_CODE_FIELDS = ("level", "incision", "incision_class", "healing_grade")


def _chapter_category(codes: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """The category a code's ICD-9-CM-3 chapter gives (the front page carries none): 00-86
    operations (surgery), 87-91 diagnostic, 92-99 therapeutic procedures."""
    # Only codes starting with two digits are cast (a code such as 心脏支架 is reported by the
    # checks; it must not stop the file here).
    valid = pc.fill_null(pc.match_substring_regex(codes, r"^[0-9]{2}"), False)
    digits = pc.if_else(valid, pc.utf8_slice_codeunits(codes, 0, 2), pa.scalar("0"))
    chapter = pc.cast(digits, pa.int32(), safe=False)
    return pc.if_else(
        pc.less_equal(chapter, 86),
        pa.scalar("surgery"),
        pc.if_else(pc.less_equal(chapter, 91), pa.scalar("diagnostic"), pa.scalar("therapeutic")),
    )


def _institution_keys(
    values: pa.ChunkedArray | pa.Array, institutions: dict[str, InstitutionInfo] | None
) -> pa.ChunkedArray | pa.Array:
    """The institution a row names, as one spelling (its registry code when known, else the
    identifier as looked up): ``47000001-X``, ``47000001X`` and ``qzph`` are one institution."""
    key = pc.replace_substring_regex(pc.utf8_lower(values), r"[\s\x{3000}-]", "")
    if not institutions:
        return key
    known = pa.array(list(institutions), pa.string())
    codes = pa.array([info.code for info in institutions.values()], pa.string())
    return pc.coalesce(pc.take(codes, pc.index_in(key, value_set=known)), key)


def prepare(
    raw: RawTable,
    *,
    postcode_regions: dict[str, str] | None = None,
    institutions: dict[str, InstitutionInfo] | None = None,
) -> Prepared:
    """The stays and the operations of a front-page file, under Yilian's column names."""
    layout = layout_of(raw.headers)
    repairs = Repairs()
    n = raw.num_rows

    def column(position: int, name: str) -> pa.ChunkedArray | pa.Array:
        header = raw.headers[position]
        values = _clean(raw.table.column(position), header, repairs)
        if name in ("admission_time", "discharge_time", "date"):
            return _dates(values, header, repairs)
        if name in CODE_FIELDS or name in SLOT_CODE_FIELDS:
            values = _regex_repair(values, POINT_ZERO, r"\1", header, "point_zero", repairs)
            if name != "record_no":
                # A 病案号 in scientific notation has lost digits: it is refused when checked.
                values = _scientific(values, header, repairs)
        elif name == "total_cost":
            values = _scientific(values, header, repairs)
        if name == "department":
            values = _leading_zero(values, [code for code, _ in value_sets()["RC023"]], None, header, repairs)
        elif name == "postcode":
            values = _leading_zero(values, [], 6, header, repairs)
        return values

    stay_values = {name: column(position, name) for name, position in layout.stay.items()}
    label = {name: raw.headers[position] for name, position in layout.stay.items()}
    nulls = pa.nulls(n, pa.string())

    def get(name: str) -> pa.ChunkedArray | pa.Array:
        return stay_values.get(name, nulls)

    record_no = get("record_no")
    # 住院次数 "01" and "1" are the same stay.
    admission_count = pc.replace_substring_regex(get("admission_count"), r"^0+([0-9])", r"\1")
    stay_values["admission_count"] = admission_count
    record_id = pc.coalesce(pc.binary_join_element_wise(record_no, admission_count, "#"), record_no)
    institution = get("institution_id")
    id_number = get("id_number")
    if "id_number" in layout.stay:
        damaged = pc.fill_null(pc.match_substring_regex(id_number, SCIENTIFIC), False)
        repairs.add(label["id_number"], "id_scientific", _count(damaged))
        # Placeholders (无, 不详, 000000000000000000, a masked number) would make one patient of many:
        # only a value shaped like a resident ID number (18 characters, or the old 15 digits) is used.
        shaped = pc.fill_null(pc.match_substring_regex(id_number, ID_NUMBER), False)
        zeros = pc.fill_null(pc.match_substring_regex(id_number, r"^0+$"), False)
        unusable = pc.and_(pc.invert(pc.or_(damaged, pc.and_(shaped, pc.invert(zeros)))), pc.is_valid(id_number))
        repairs.add(label["id_number"], "id_unusable", _count(unusable))
        id_number = pc.if_else(pc.and_(shaped, pc.invert(zeros)), id_number, pa.scalar(None, pa.string()))
    # Without a usable ID number the patient is the 病案号 within the institution, however the
    # file spells the institution.
    mrn = pc.binary_join_element_wise("MRN", _institution_keys(institution, institutions), record_no, ":")
    patient = pc.coalesce(id_number, mrn)
    region_values = stay_values.get("region_code")
    if region_values is not None:
        region_values = _scientific(region_values, label["region_code"], repairs)
    placed = residence.place(
        region_codes=region_values,
        addresses=stay_values.get("address"),
        postcodes=stay_values.get("postcode"),
        num_rows=n,
        postcode_regions=postcode_regions,
    )
    stays = {
        "institution_code": institution,
        "record_id": record_id,
        "patient_id": patient,
        "department": get("department"),
        "admission_date": get("admission_time"),
        "discharge_date": get("discharge_time"),
        "sex": get("sex"),
        "age": get("age"),
        "residence_region": placed.column("residence_region"),
        "residence_basis": placed.column("residence_basis"),
        "principal_diagnosis": get("diagnosis"),
        "discharge_outcome": get("discharge_mode"),
        "length_of_stay": get("length_of_stay"),
        "total_cost": get("total_cost"),
        "admission_count": get("admission_count"),
    }
    sources = {
        "institution_code": "institution_id",
        "record_id": "record_no",
        "patient_id": "id_number",
        "department": "department",
        "admission_date": "admission_time",
        "discharge_date": "discharge_time",
        "sex": "sex",
        "age": "age",
        "principal_diagnosis": "diagnosis",
        "discharge_outcome": "discharge_mode",
        "length_of_stay": "length_of_stay",
        "total_cost": "total_cost",
        "admission_count": "admission_count",
    }
    # Only the columns the file has are checked (a missing optional column is no error).
    present = [
        name
        for name in stays
        if sources.get(name, "") in layout.stay or name in ("residence_region", "residence_basis")
    ]
    if "record_id" in present and "patient_id" not in present:
        present.append("patient_id")
    stay_labels = {name: label[sources[name]] for name in present if sources.get(name) in label}
    stay_labels.setdefault("patient_id", label.get("record_no", "patient_id"))
    for name in ("residence_region", "residence_basis"):
        stay_labels[name] = next(
            (label[f] for f in ("region_code", "address", "postcode") if f in label), _("residence")
        )
    stays_table = pa.table({name: _as_chunked(stays[name]) for name in present})
    stay_raw = RawTable(
        table=stays_table,
        headers=present,
        row_numbers=_rows(raw),
        format=raw.format,
        encoding=raw.encoding,
    )
    stay_map = HeaderMap(index={name: i for i, name in enumerate(present)}, ignored=[], missing=[])

    operations, slot_headers = _operations(raw, layout, stays, column, present)
    operation_names = operations.column_names[:-2]
    operation_raw = RawTable(
        table=operations.select(operation_names),
        headers=list(operation_names),
        row_numbers=operations.column("__row").combine_chunks(),
        slots=operations.column("__slot").combine_chunks(),
        format=raw.format,
        encoding=raw.encoding,
    )
    operation_map = HeaderMap(index={name: i for i, name in enumerate(operation_names)}, ignored=[], missing=[])
    operation_labels = {name: stay_labels[name] for name in STAY_SILENT_IN_OPERATIONS if name in stay_labels}
    return Prepared(
        layout=layout,
        stays=stay_raw,
        stay_map=stay_map,
        stay_labels=stay_labels,
        operations=operation_raw,
        operation_map=operation_map,
        operation_labels=operation_labels,
        slot_headers=slot_headers,
        repairs=repairs,
    )


def _any_text(values: pa.ChunkedArray | pa.Array) -> bool:
    """Whether a raw column holds any value besides blanks and the empty marks."""
    text = pc.utf8_trim_whitespace(values)
    filled = pc.and_(pc.not_equal(text, ""), pc.invert(pc.is_in(text, value_set=pa.array(EMPTY_MARKS))))
    return bool(pc.any(filled).as_py())


def _as_chunked(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    if isinstance(values, pa.ChunkedArray):
        return values.cast(pa.string())
    return pa.chunked_array([values.cast(pa.string())])


def _rows(raw: RawTable) -> pa.Array:
    if raw.row_numbers is not None:
        return raw.row_numbers
    return pa.array(range(raw.first_row, raw.first_row + raw.num_rows), pa.int64())


SLOT_TARGETS = {
    "code": "operation_code",
    "name": "operation_name",
    "date": "operation_date",
    "level": "operation_level",
    "operator": "operator",
    "incision": "incision",
    "incision_class": "incision_class",
    "healing_grade": "healing_grade",
}


def _operations(
    raw: RawTable,
    layout: Layout,
    stays: dict[str, pa.ChunkedArray | pa.Array],
    column: Callable[[int, str], pa.ChunkedArray | pa.Array],
    present: list[str],
) -> tuple[pa.Table, dict[tuple[int, str], str]]:
    """One row per operation: each numbered group with a code, the stay's key columns beside it."""
    rows = _rows(raw)
    fields = sorted({name for (_n, name) in layout.slots})
    targets = [SLOT_TARGETS[f] for f in fields if f != "code"]
    stay_columns = [
        name for name in ("institution_code", "record_id", "department", "discharge_date") if name in present
    ]
    names = [*stay_columns, "operation_seq", "is_main", *(["operation_code"] if "code" in fields else [])]
    names += [*targets, "category", "category_basis"]
    parts: list[pa.Table] = []
    slot_headers: dict[tuple[int, str], str] = {}
    for n in range(1, MAX_OPERATIONS + 1):
        position = layout.slots.get((n, "code"))
        if position is None:
            continue
        codes = column(position, "code")
        has = pc.invert(pc.is_null(codes))
        # The group's other columns (read only when they hold anything: most groups are empty). A
        # group with a name, date or level but no code is an operation without its code: an error.
        others: dict[str, pa.ChunkedArray | pa.Array] = {}
        for field_name in fields:
            where = layout.slots.get((n, field_name))
            if field_name != "code" and where is not None and _any_text(raw.table.column(where)):
                others[field_name] = column(where, field_name)
                has = pc.or_(has, pc.is_valid(others[field_name]))
        if not _count(has):
            continue
        slot_headers[(n, "operation_code")] = raw.headers[position]
        data: dict[str, Any] = {name: pc.filter(stays[name], has) for name in stay_columns}
        count = _count(has)
        data["operation_seq"] = pa.array([str(n)] * count, pa.string())
        data["is_main"] = pa.array(["true" if n == 1 else "false"] * count, pa.string())
        data["operation_code"] = pc.filter(codes, has)
        for field_name in fields:
            if field_name == "code":
                continue
            target = SLOT_TARGETS[field_name]
            where = layout.slots.get((n, field_name))
            if where is None:
                data[target] = pa.nulls(count, pa.string())
                continue
            slot_headers[(n, target)] = raw.headers[where]
            values = others.get(field_name)
            data[target] = pa.nulls(count, pa.string()) if values is None else pc.filter(values, has)
        data["category"] = _chapter_category(pc.utf8_upper(data["operation_code"]))
        data["category_basis"] = pa.array(["code_chapter"] * count, pa.string())
        data["__row"] = pc.filter(rows, has)
        data["__slot"] = pa.array([n] * count, pa.int16())
        parts.append(
            pa.table(
                {
                    name: _as_chunked(data[name]) if name not in ("__row", "__slot") else data[name]
                    for name in [*names, "__row", "__slot"]
                }
            )
        )
    if not parts:
        empty = {name: pa.array([], pa.string()) for name in names}
        return pa.table({**empty, "__row": pa.array([], pa.int64()), "__slot": pa.array([], pa.int16())}), {}
    return pa.concat_tables(parts), slot_headers


# --- checking ------------------------------------------------------------------------------------


@dataclass
class FrontpageOutcome:
    discharges: pa.Table
    operations: pa.Table
    errors: list[RowError]
    errors_total: int
    rows_total: int
    rows_rejected: int
    ignored_columns: list[str]
    report: dict[str, Any]
    rejects: pa.Table | None = None


def missing_errors(layout: Layout) -> list[RowError]:
    return [
        RowError(
            row=1,
            column=header_names(name, layout.dialect),
            message=_("The required column “%(column)s” is missing (this file uses the %(dialect)s).")
            % {"column": header_names(name, layout.dialect), "dialect": layout.dialect.label},
        )
        for name in layout.missing
    ]


def validate_frontpages(
    *,
    raw: RawTable,
    institutions: dict[str, InstitutionInfo],
    today: dt.date,
    want_rejects: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    postcode_regions: dict[str, str] | None = None,
) -> FrontpageOutcome:
    """Check a front-page file: its stays and their operations. A stay with any error is rejected
    with all its operations; with ``want_rejects`` the rejected stays are listed (row, 病案号,
    住院次数, the errors of the row)."""
    layout = layout_of(raw.headers)
    report: dict[str, Any] = {
        "dialect": layout.dialect.value,
        "encoding": raw.encoding,
        "format": raw.format,
        "known_unused_columns": layout.known_unused,
    }
    if layout.missing:
        errors = missing_errors(layout)
        return FrontpageOutcome(
            discharges=fact_schema(Kind.DISCHARGES, with_batch_seq=False).empty_table(),
            operations=fact_schema(Kind.OPERATIONS, with_batch_seq=False).empty_table(),
            errors=errors,
            errors_total=len(errors),
            rows_total=raw.num_rows,
            rows_rejected=raw.num_rows,
            ignored_columns=layout.ignored,
            report=report,
        )
    report_progress = progress or (lambda stage, done, total: None)
    report_progress("preparing", 0, 1)
    prepared = prepare(raw, postcode_regions=postcode_regions, institutions=institutions)
    report_progress("preparing", 1, 1)
    stay_spec, operation_spec = frontpage_columns()
    stays = validate(
        kind=Kind.DISCHARGES,
        raw=prepared.stays,
        institutions=institutions,
        today=today,
        spec=stay_spec,
        header_map=prepared.stay_map,
        labels=prepared.stay_labels,
        want_rows=True,
    )
    operations = validate(
        kind=Kind.OPERATIONS,
        raw=prepared.operations,
        institutions=institutions,
        today=today,
        spec=operation_spec,
        header_map=prepared.operation_map,
        labels=prepared.operation_labels,
        slot_headers=prepared.slot_headers,
        silent=STAY_SILENT_IN_OPERATIONS,
        want_rows=True,
    )
    bad = _bad_rows(stays, operations)
    discharges, operation_facts = _combine(stays, operations, bad)
    errors = sorted([*stays.errors, *operations.errors], key=lambda e: (e.row, e.column))[:MAX_ERRORS]
    report.update(
        {
            "stays": int(discharges.num_rows),
            "operations": int(operation_facts.num_rows),
            "max_operations_per_stay": _max_per_stay(operation_facts),
            "repairs": prepared.repairs.as_list(),
            "residence": _residence_counts(discharges),
        }
    )
    report["unknown_origin"] = report["residence"].get("unknown", 0)
    rejects = _rejects(prepared, bad, errors) if want_rejects and len(bad) else None
    return FrontpageOutcome(
        discharges=discharges,
        operations=operation_facts,
        errors=errors,
        errors_total=stays.errors_total + operations.errors_total,
        rows_total=raw.num_rows,
        rows_rejected=len(bad),
        ignored_columns=layout.ignored,
        report=report,
        rejects=rejects,
    )


def _bad_rows(*outcomes: Outcome) -> pa.Array:
    arrays = [o.rejected_rows for o in outcomes if o.rejected_rows is not None and len(o.rejected_rows)]
    if not arrays:
        return pa.array([], pa.int64())
    return pc.unique(pa.concat_arrays([a.cast(pa.int64()) for a in arrays]))


def _combine(stays: Outcome, operations: Outcome, bad: pa.Array) -> tuple[pa.Table, pa.Table]:
    """The facts of the stays without any error (``bad``: the rows with one), and their operations."""
    discharges, operation_facts = stays.facts, operations.facts
    if len(bad):
        assert stays.fact_rows is not None and operations.fact_rows is not None
        discharges = discharges.filter(pc.invert(pc.is_in(stays.fact_rows, value_set=bad)))
        operation_facts = operation_facts.filter(pc.invert(pc.is_in(operations.fact_rows, value_set=bad)))
    return discharges, operation_facts


def _max_per_stay(operations: pa.Table) -> int:
    if operations.num_rows == 0:
        return 0
    counts = operations.group_by(["institution_code", "record_id"]).aggregate([([], "count_all")])
    return int(pc.max(counts.column("count_all")).as_py() or 0)


def _residence_counts(discharges: pa.Table) -> dict[str, int]:
    counts = {basis: 0 for basis in residence.BASES}
    if discharges.num_rows:
        for row in pc.value_counts(discharges.column("residence_basis").combine_chunks()).to_pylist():
            counts[str(row["values"])] = int(row["counts"])
    return counts


def _rejects(prepared: Prepared, bad: pa.Array, errors: list[RowError]) -> pa.Table:
    """The rejected stays: row, 病案号 and 住院次数 as in the file, and their errors (of the first
    errors reported; a file with more than those lists the rest without their errors)."""
    stays = prepared.stays
    rows = stays.row_numbers if stays.row_numbers is not None else pa.array([], pa.int64())
    keep = pc.is_in(rows, value_set=bad)
    record = stays.table.column("record_id") if "record_id" in stays.table.column_names else None
    by_row: dict[int, list[str]] = {}
    for error in errors:
        by_row.setdefault(error.row, []).append(f"{error.column}: {error.message}")
    kept_rows = pc.filter(rows, keep).to_pylist()
    messages = ["; ".join(by_row.get(int(r), [])) for r in kept_rows]
    label = prepared.stay_labels.get("record_id", "record_id")
    columns: dict[str, Any] = {_("row"): pa.array(kept_rows, pa.int64())}
    if record is not None:
        columns[label] = pc.filter(record, keep)
    columns["错误/error"] = pa.array(messages, pa.string())
    return pa.table(columns)


ENCODING_LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": gettext_lazy("UTF-8 with byte-order mark"),
    "gb18030": "GB18030 / GBK",
    "utf-16": gettext_lazy("UTF-16 (Excel Unicode text)"),
}


def read_report(report: dict[str, Any]) -> dict[str, Any]:
    """A batch's report for its page: labels in the user's language beside the figures."""
    if not report:
        return {}
    residence_rows = [
        {"basis": basis, "label": residence.BASIS_LABELS[basis], "count": int(report["residence"].get(basis, 0))}
        for basis in residence.BASES
        if "residence" in report
    ]
    dialect = report.get("dialect")
    return {
        "format": {"csv": "CSV", "xlsx": "Excel (.xlsx)", "fhir": "FHIR R4B"}.get(report.get("format", ""), ""),
        "encoding": ENCODING_LABELS.get(report.get("encoding", ""), report.get("encoding", "")),
        "dialect": Dialect(dialect).label if dialect in Dialect.values else "",
        "stays": report.get("stays"),
        "operations": report.get("operations"),
        "max_operations_per_stay": report.get("max_operations_per_stay"),
        "known_unused_columns": report.get("known_unused_columns"),
        "repairs": [
            {"column": r["column"], "label": REPAIRS.get(r["repair"], r["repair"]), "count": r["count"]}
            for r in report.get("repairs", [])
        ],
        "residence": residence_rows,
        "unknown_origin": report.get("unknown_origin"),
    }


__all__ = [
    "MAX_OPERATIONS",
    "Dialect",
    "FrontpageOutcome",
    "Layout",
    "detect",
    "layout_of",
    "prepare",
    "validate_frontpages",
    "value_sets",
]
