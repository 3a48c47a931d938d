"""The three activity datasets: the columns a hospital export may carry (with the Chinese and
English headers accepted for each) and the fact tables that land in the Parquet store.

A column spec says how the importer reads one input column: its canonical name, the headers that
map to it (compared after trimming, removing inner whitespace, underscores and hyphens, and
lower-casing), its type, whether the column and a value are required, and for coded columns the
accepted values and what each means. The fact schemas are the exact Arrow schemas that the
indicator engine reads through ``yilian.activity.facts.current_facts``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from django.db import models
from django.utils.translation import gettext_lazy as _


class Kind(models.TextChoices):
    DISCHARGES = "discharges", _("Discharges (medical-record front pages)")
    OPERATIONS = "operations", _("Operations")
    VISITS = "visits", _("Outpatient and emergency visits")


class BatchKind(models.TextChoices):
    """What an import batch holds: one fact dataset, or national front pages (住院病案首页), one row
    per stay with its operations in numbered columns, which land as discharges and operations."""

    DISCHARGES = "discharges", _("Discharges (medical-record front pages)")
    OPERATIONS = "operations", _("Operations")
    VISITS = "visits", _("Outpatient and emergency visits")
    FRONTPAGES = "frontpages", _("Front pages, national interface (病案首页: discharges with their operations)")


# The fact datasets each kind of batch lands.
BATCH_DATASETS: dict[str, tuple[Kind, ...]] = {
    "discharges": (Kind.DISCHARGES,),
    "operations": (Kind.OPERATIONS,),
    "visits": (Kind.VISITS,),
    "frontpages": (Kind.DISCHARGES, Kind.OPERATIONS),
}


def batch_kinds_of(kind: Kind | str) -> list[str]:
    """The kinds of batch whose files hold facts of the dataset ``kind``."""
    return [batch for batch, datasets in BATCH_DATASETS.items() if Kind(kind) in datasets]


class ColumnType(models.TextChoices):
    TEXT = "text", _("text")
    CODE = "code", _("code")
    PATIENT = "patient", _("patient identifier (pseudonymised)")
    DATE = "date", _("date")
    INTEGER = "integer", _("whole number")
    DECIMAL = "decimal", _("number")
    BOOLEAN = "boolean", _("yes/no")
    CHOICE = "choice", _("one of a set of values")
    REGION = "region", _("6-digit region code (GB/T 2260)")
    ICD10 = "icd10", _("ICD-10 code")
    OPERATION_CODE = "operation_code", _("operation code (ICD-9-CM-3, national clinical version)")


@dataclass(frozen=True)
class Column:
    """One input column. ``values`` maps each accepted spelling (compared case-insensitively,
    trimmed) to the canonical value that lands in the fact table; ``default`` fills an empty
    optional value."""

    name: str
    headers: tuple[str, ...]
    type: ColumnType
    required: bool = False
    values: dict[str, str] = field(default_factory=dict)
    default: str | None = None
    help: str = ""


def normalise_header(header: str) -> str:
    """Headers are matched after removing whitespace (including full-width space), underscores,
    hyphens and a trailing unit in brackets, and lower-casing: ``"Admission Date"``,
    ``"admission_date"`` and ``" 入院日期 "`` all match."""
    text = header.replace("\ufeff", "").strip().lower()
    text = re.sub(r"[\s\u3000_\-]+", "", text)
    text = re.sub(r"[(\uff08][^)\uff09]*[)\uff09]$", "", text)
    return text


SEX_VALUES = {
    "1": "male",
    "男": "male",
    "m": "male",
    "male": "male",
    "2": "female",
    "女": "female",
    "f": "female",
    "female": "female",
    "0": "unknown",
    "9": "unknown",
    "未知": "unknown",
    "未说明": "unknown",
    "unknown": "unknown",
}
# 离院方式 of the national front page: 1 医嘱离院, 2 医嘱转院, 3 医嘱转社区卫生服务机构/乡镇卫生院,
# 4 非医嘱离院, 5 死亡, 9 其他.
OUTCOME_VALUES = {code: code for code in ("1", "2", "3", "4", "5", "9")}
BOOLEAN_VALUES = {
    "是": "true",
    "1": "true",
    "y": "true",
    "yes": "true",
    "true": "true",
    "否": "false",
    "0": "false",
    "n": "false",
    "no": "false",
    "false": "false",
}
VISIT_TYPE_VALUES = {
    "初诊": "first",
    "first": "first",
    "复诊": "follow_up",
    "follow-up": "follow_up",
    "follow_up": "follow_up",
    "followup": "follow_up",
    "远程": "tele",
    "远程医疗": "tele",
    "tele": "tele",
    "telemedicine": "tele",
}
SETTING_VALUES = {
    "门诊": "outpatient",
    "outpatient": "outpatient",
    "急诊": "emergency",
    "emergency": "emergency",
}
CATEGORY_VALUES = {
    "手术": "surgery",
    "surgery": "surgery",
    "介入治疗": "interventional",
    "介入": "interventional",
    "interventional": "interventional",
    "诊断性操作": "diagnostic",
    "diagnostic": "diagnostic",
    "治疗性操作": "therapeutic",
    "therapeutic": "therapeutic",
}
OPERATOR_ROLE_VALUES = {
    "主刀": "chief",
    "术者": "chief",
    "chief": "chief",
    "surgeon": "chief",
    "助手": "assistant",
    "assistant": "assistant",
}
LEVEL_VALUES = {
    "1": "1",
    "一级": "1",
    "2": "2",
    "二级": "2",
    "3": "3",
    "三级": "3",
    "4": "4",
    "四级": "4",
}

_INSTITUTION = Column(
    "institution_code",
    ("机构代码", "医疗机构代码", "医院代码", "institution code", "institution", "hospital code"),
    ColumnType.CODE,
    required=True,
    help="The institution's code in the registry (e.g. bjfph).",
)
_DEPARTMENT = Column("department", ("科室", "科室名称", "department", "dept"), ColumnType.TEXT)
_PATIENT = Column(
    "patient_id",
    ("患者标识", "患者ID", "病人ID", "患者编号", "身份证号", "patient id", "patient identifier", "patient"),
    ColumnType.PATIENT,
    required=True,
    help="Replaced by a keyed pseudonym before anything is stored.",
)
_SEX = Column("sex", ("性别", "sex", "gender"), ColumnType.CHOICE, values=SEX_VALUES, default="unknown")
_AGE = Column("age", ("年龄", "年龄(岁)", "age"), ColumnType.INTEGER, help="0-130 years.")
_REGION = Column(
    "residence_region",
    (
        "现住址行政区划代码",
        "现住址区划代码",
        "居住地区划代码",
        "居住地代码",
        "residence region",
        "residence region code",
    ),
    ColumnType.REGION,
)

DISCHARGE_COLUMNS: tuple[Column, ...] = (
    _INSTITUTION,
    Column(
        "record_id",
        ("住院流水号", "病案流水号", "记录号", "病案号", "住院号", "record id", "record", "stay id"),
        ColumnType.CODE,
        required=True,
        help="Identifies the stay; a re-imported stay replaces its earlier version.",
    ),
    _PATIENT,
    Column("department", ("出院科室", "科室", "科室名称", "department", "discharge department"), ColumnType.TEXT),
    Column("admission_date", ("入院日期", "入院时间", "admission date", "admitted"), ColumnType.DATE, required=True),
    Column("discharge_date", ("出院日期", "出院时间", "discharge date", "discharged"), ColumnType.DATE, required=True),
    _SEX,
    _AGE,
    _REGION,
    Column(
        "principal_diagnosis",
        (
            "主要诊断编码",
            "主要诊断代码",
            "出院主要诊断编码",
            "主要诊断",
            "principal diagnosis",
            "principal diagnosis code",
        ),
        ColumnType.ICD10,
    ),
    Column(
        "discharge_outcome",
        ("离院方式", "discharge outcome", "discharge disposition"),
        ColumnType.CHOICE,
        values=OUTCOME_VALUES,
    ),
    Column(
        "length_of_stay",
        ("实际住院天数", "住院天数", "length of stay", "los"),
        ColumnType.INTEGER,
        help="Whole days >= 0, within one day of discharge date minus admission date.",
    ),
    Column("total_cost", ("总费用", "住院总费用", "total cost", "cost"), ColumnType.DECIMAL, help=">= 0 (yuan)."),
)

OPERATION_COLUMNS: tuple[Column, ...] = (
    _INSTITUTION,
    Column(
        "record_id",
        ("住院流水号", "病案流水号", "记录号", "病案号", "住院号", "record id", "record", "stay id"),
        ColumnType.CODE,
        required=True,
        help="The stay the operation belongs to; a re-imported stay replaces all its earlier operations.",
    ),
    _DEPARTMENT,
    Column(
        "discharge_date",
        ("出院日期", "出院时间", "discharge date"),
        ColumnType.DATE,
        required=True,
        help="The stay's discharge date: operations count in the month of discharge.",
    ),
    Column("operation_date", ("手术日期", "手术及操作日期", "操作日期", "operation date"), ColumnType.DATE),
    Column(
        "operation_seq",
        ("手术序号", "序号", "operation seq", "operation sequence", "sequence"),
        ColumnType.INTEGER,
        help="1-based position within the stay; when empty, the order of the stay's rows in the file.",
    ),
    Column(
        "is_main",
        ("是否主手术", "主手术", "main operation", "is main"),
        ColumnType.BOOLEAN,
        values=BOOLEAN_VALUES,
        help="When empty: the operation with sequence 1.",
    ),
    Column(
        "operation_code",
        ("手术及操作编码", "手术操作编码", "手术编码", "operation code", "procedure code"),
        ColumnType.OPERATION_CODE,
        required=True,
    ),
    Column(
        "operation_name",
        ("手术及操作名称", "手术操作名称", "手术名称", "operation name", "procedure name"),
        ColumnType.TEXT,
    ),
    Column(
        "operation_level",
        ("手术级别", "operation level", "level"),
        ColumnType.CHOICE,
        values=LEVEL_VALUES,
        help="1-4 (一级…四级).",
    ),
    Column(
        "category",
        ("手术操作类别", "操作类别", "类别", "category", "operation category"),
        ColumnType.CHOICE,
        required=True,
        values=CATEGORY_VALUES,
    ),
    Column(
        "minimally_invasive",
        ("是否微创", "微创", "微创手术", "minimally invasive"),
        ColumnType.BOOLEAN,
        values=BOOLEAN_VALUES,
        default="false",
    ),
    Column(
        "robot_assisted",
        ("是否机器人辅助", "机器人辅助", "robot assisted", "robotic"),
        ColumnType.BOOLEAN,
        values=BOOLEAN_VALUES,
        default="false",
    ),
    Column("operator", ("术者", "手术者", "主刀医师", "operator", "surgeon"), ColumnType.TEXT),
    Column(
        "operator_role",
        ("术者角色", "operator role", "role"),
        ColumnType.CHOICE,
        values=OPERATOR_ROLE_VALUES,
    ),
)

VISIT_COLUMNS: tuple[Column, ...] = (
    _INSTITUTION,
    Column(
        "visit_id",
        ("就诊流水号", "挂号流水号", "门诊流水号", "就诊号", "visit id", "visit", "encounter id"),
        ColumnType.CODE,
        required=True,
        help="Identifies the visit; a re-imported visit replaces its earlier version.",
    ),
    _PATIENT,
    _DEPARTMENT,
    Column("visit_date", ("就诊日期", "就诊时间", "挂号日期", "visit date", "date"), ColumnType.DATE, required=True),
    Column(
        "setting",
        ("门急诊", "门急诊类别", "就诊类别", "setting"),
        ColumnType.CHOICE,
        values=SETTING_VALUES,
        default="outpatient",
    ),
    Column(
        "visit_type",
        ("初复诊", "就诊类型", "visit type", "type"),
        ColumnType.CHOICE,
        values=VISIT_TYPE_VALUES,
        default="first",
    ),
    _SEX,
    _AGE,
    _REGION,
    Column("doctor", ("接诊医生", "医生", "医师", "doctor", "physician"), ColumnType.TEXT),
)

COLUMNS: dict[Kind, tuple[Column, ...]] = {
    Kind.DISCHARGES: DISCHARGE_COLUMNS,
    Kind.OPERATIONS: OPERATION_COLUMNS,
    Kind.VISITS: VISIT_COLUMNS,
}

ORIGINS = ("same_county", "same_city", "same_province", "other_province", "unknown")

_DISCHARGE_FACTS = pa.schema(
    [
        pa.field("institution_code", pa.string(), nullable=False),
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("department", pa.string()),
        pa.field("admission_date", pa.date32(), nullable=False),
        pa.field("discharge_date", pa.date32(), nullable=False),
        pa.field("sex", pa.string(), nullable=False),
        pa.field("age", pa.int16()),
        pa.field("residence_region", pa.string()),
        pa.field("residence_basis", pa.string()),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("principal_diagnosis", pa.string()),
        pa.field("discharge_outcome", pa.string()),
        pa.field("length_of_stay", pa.int32()),
        pa.field("total_cost", pa.float64()),
    ]
)
_OPERATION_FACTS = pa.schema(
    [
        pa.field("institution_code", pa.string(), nullable=False),
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("department", pa.string()),
        pa.field("discharge_date", pa.date32(), nullable=False),
        pa.field("operation_date", pa.date32()),
        pa.field("operation_seq", pa.int16(), nullable=False),
        pa.field("is_main", pa.bool_(), nullable=False),
        pa.field("operation_code", pa.string(), nullable=False),
        pa.field("operation_name", pa.string()),
        pa.field("operation_level", pa.int8()),
        pa.field("category", pa.string(), nullable=False),
        pa.field("category_basis", pa.string()),
        pa.field("minimally_invasive", pa.bool_(), nullable=False),
        pa.field("robot_assisted", pa.bool_(), nullable=False),
        pa.field("operator", pa.string()),
        pa.field("operator_role", pa.string()),
    ]
)
_VISIT_FACTS = pa.schema(
    [
        pa.field("institution_code", pa.string(), nullable=False),
        pa.field("visit_id", pa.string(), nullable=False),
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("department", pa.string()),
        pa.field("visit_date", pa.date32(), nullable=False),
        pa.field("setting", pa.string(), nullable=False),
        pa.field("visit_type", pa.string(), nullable=False),
        pa.field("sex", pa.string(), nullable=False),
        pa.field("age", pa.int16()),
        pa.field("residence_region", pa.string()),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("doctor", pa.string()),
    ]
)
_FACTS: dict[Kind, pa.Schema] = {
    Kind.DISCHARGES: _DISCHARGE_FACTS,
    Kind.OPERATIONS: _OPERATION_FACTS,
    Kind.VISITS: _VISIT_FACTS,
}

# A re-imported record replaces every earlier version with the same key (for operations: the
# whole set of operations of the stay).
KEY_COLUMNS: dict[Kind, tuple[str, ...]] = {
    Kind.DISCHARGES: ("institution_code", "record_id"),
    Kind.OPERATIONS: ("institution_code", "record_id"),
    Kind.VISITS: ("institution_code", "visit_id"),
}
# Within one file a row is a duplicate when this key repeats.
FILE_KEY_COLUMNS: dict[Kind, tuple[str, ...]] = {
    Kind.DISCHARGES: ("institution_code", "record_id"),
    Kind.OPERATIONS: ("institution_code", "record_id", "operation_seq"),
    Kind.VISITS: ("institution_code", "visit_id"),
}
# The date a record counts in (store sort order, coverage months, period attribution).
DATE_COLUMN: dict[Kind, str] = {
    Kind.DISCHARGES: "discharge_date",
    Kind.OPERATIONS: "discharge_date",
    Kind.VISITS: "visit_date",
}


def fact_schema(kind: Kind | str, *, with_batch_seq: bool = True) -> pa.Schema:
    """The exact Arrow schema of one dataset's facts (``batch_seq`` last)."""
    schema = _FACTS[Kind(kind)]
    if with_batch_seq:
        schema = schema.append(pa.field("batch_seq", pa.int64(), nullable=False))
    return schema


def complete(kind: Kind | str, table: pa.Table) -> pa.Table:
    """A fact table in the exact schema, the columns added after the first release filled in when
    the table lacks them: ``residence_basis`` (``region_code`` when there is a residence region,
    else ``unknown``) and ``category_basis`` (``file``)."""
    names = table.column_names
    if Kind(kind) == Kind.DISCHARGES and "residence_basis" not in names and "residence_region" in names:
        region = table.column("residence_region")
        known = pc.fill_null(pc.match_substring_regex(region, r"^[0-9]{6}$"), False)
        table = table.append_column("residence_basis", pc.if_else(known, "region_code", "unknown"))
    if Kind(kind) == Kind.OPERATIONS and "category_basis" not in names:
        table = table.append_column("category_basis", pa.array(["file"] * table.num_rows, pa.string()))
    schema = fact_schema(kind, with_batch_seq=False)
    return table.select(schema.names).cast(schema)


def column_map(kind: Kind | str) -> dict[str, Column]:
    """Normalised header -> column, for every accepted header of the dataset."""
    mapping: dict[str, Column] = {}
    for column in COLUMNS[Kind(kind)]:
        for header in (column.name, *column.headers):
            mapping.setdefault(normalise_header(header), column)
    return mapping
