"""Each validation rule: the row the user sees, the column header as written in the file and
the message; and what the valid rows become (canonical values, origin)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from django.utils import translation

from yilian.activity.columns import Kind
from yilian.activity.readers import RawTable
from yilian.activity.tests.factories import EN, ZH, discharge, operation, rows, visit
from yilian.activity.validation import MAX_ERRORS, InstitutionInfo, Outcome, validate

TODAY = dt.date(2026, 3, 2)
INSTITUTIONS = {
    "qzph": InstitutionInfo("qzph", "330802", True),
    "khph": InstitutionInfo("khph", "330824", True),
    "bjfph": InstitutionInfo("bjfph", "520502", False),
}


@pytest.fixture(autouse=True)
def _pseudonym_key(settings: Any) -> None:
    settings.PSEUDONYM_KEY = "k"


def raw_table(table: list[list[str]]) -> RawTable:
    header, *data = table
    columns = {f"c{i}": pa.array([line[i] for line in data], pa.string()) for i in range(len(header))}
    return RawTable(
        table=pa.table(columns) if data else pa.table({k: pa.array([], pa.string()) for k in columns}), headers=header
    )


def check(kind: Kind, records: list[dict[str, str]], *, headers: dict[str, str] | None = None, **kw: Any) -> Outcome:
    with translation.override("en"):
        return validate(
            kind=kind, raw=raw_table(rows(records, headers=headers)), institutions=INSTITUTIONS, today=TODAY, **kw
        )


def errors(kind: Kind, records: list[dict[str, str]], **kw: Any) -> list[tuple[int, str, str]]:
    return [(e.row, e.column, e.message) for e in check(kind, records, **kw).errors]


def in_file_order(outcome: Any, column: str, key: str, ids: list[str]) -> list[Any]:
    """One fact column in the order of the file's records (the facts come in no particular order:
    the store sorts them)."""
    by_id = dict(zip(outcome.facts.column(key).to_pylist(), outcome.facts.column(column).to_pylist(), strict=True))
    return [by_id[i] for i in ids]


def test_a_clean_discharge_has_no_errors_and_becomes_one_fact() -> None:
    outcome = check(Kind.DISCHARGES, [discharge()])
    assert outcome.errors == [] and outcome.errors_total == 0 and outcome.rows_rejected == 0
    assert outcome.facts.num_rows == 1


def test_required_value_missing() -> None:
    assert errors(Kind.DISCHARGES, [discharge(), discharge(record_id=" ", patient_id="")]) == [
        (3, "住院流水号", "A value is required."),
        (3, "患者标识", "A value is required."),
    ]


@pytest.mark.parametrize("value", ["2025-03-01", "2025/03/01", "20250301", "2025-03-01 08:30", "2025/3/1 08:30:15"])
def test_accepted_date_forms(value: str) -> None:
    outcome = check(Kind.DISCHARGES, [discharge(admission_date=value)])
    assert outcome.errors == []
    assert outcome.facts.column("admission_date").to_pylist() == [dt.date(2025, 3, 1)]


@pytest.mark.parametrize("value", ["2025-13-01", "2025-02-30", "01/03/2025", "2025.03.01", "yesterday", "202503011"])
def test_unparsable_date(value: str) -> None:
    assert errors(Kind.DISCHARGES, [discharge(admission_date=value, length_of_stay="")]) == [
        (2, "入院日期", f"“{value}” is not a date: write it as YYYY-MM-DD.")
    ]


def test_discharge_before_admission() -> None:
    assert errors(Kind.DISCHARGES, [discharge(admission_date="2025-03-10", length_of_stay="")]) == [
        (2, "出院日期", "The discharge date is before the admission date (2025-03-10).")
    ]


def test_date_in_the_future() -> None:
    assert errors(Kind.DISCHARGES, [discharge(discharge_date="2026-03-03", length_of_stay="")]) == [
        (2, "出院日期", "2026-03-03 is in the future.")
    ]
    assert errors(Kind.DISCHARGES, [discharge(discharge_date="2026-03-02", length_of_stay="")]) == []


def test_date_before_1900_is_a_mistyped_year() -> None:
    assert errors(Kind.DISCHARGES, [discharge(admission_date="1025-03-01", length_of_stay="")]) == [
        (2, "入院日期", "1025-03-01 is before 1900: is the year right?")
    ]
    assert errors(Kind.DISCHARGES, [discharge(admission_date="1900-01-01", length_of_stay="")]) == []


@pytest.mark.parametrize(
    ("value", "ok"),
    [("0", True), ("130", True), ("45.0", True), ("131", False), ("-1", False), ("4.5", False), ("abc", False)],
)
def test_age_from_0_to_130(value: str, ok: bool) -> None:
    expected = [] if ok else [(2, "年龄", f"Age must be a whole number of years from 0 to 130, not “{value}”.")]
    assert errors(Kind.DISCHARGES, [discharge(age=value)]) == expected


@pytest.mark.parametrize("value", ["-1", "3.5", "seven"])
def test_length_of_stay_is_a_whole_number(value: str) -> None:
    assert errors(Kind.DISCHARGES, [discharge(length_of_stay=value)]) == [
        (2, "实际住院天数", f"Length of stay must be a whole number of days (0 or more), not “{value}”.")
    ]


@pytest.mark.parametrize(("value", "ok"), [("6", True), ("7", True), ("8", True), ("5", False), ("9", False)])
def test_length_of_stay_within_one_day_of_the_dates(value: str, ok: bool) -> None:
    # 2025-03-01 -> 2025-03-08 is 7 days.
    expected = (
        []
        if ok
        else [
            (
                2,
                "实际住院天数",
                f"Length of stay {value} does not match the dates: discharge minus admission is 7 day(s).",
            )
        ]
    )
    assert errors(Kind.DISCHARGES, [discharge(length_of_stay=value)]) == expected


def test_cost_is_a_number_of_zero_or_more() -> None:
    assert errors(Kind.DISCHARGES, [discharge(total_cost="-5"), discharge(record_id="B", total_cost="很多")]) == [
        (2, "总费用", "Total cost must be a number of 0 or more, not “-5”."),
        (3, "总费用", "Total cost must be a number of 0 or more, not “很多”."),
    ]
    assert check(Kind.DISCHARGES, [discharge(total_cost="1,234.5")]).facts.column("total_cost").to_pylist() == [1234.5]


def test_sex_value_set_and_its_spellings() -> None:
    spellings = ["1", "2", "0", "9", "男", "女", "未知", "M", "f", "Male", "FEMALE", ""]
    outcome = check(Kind.DISCHARGES, [discharge(record_id=str(i), sex=s) for i, s in enumerate(spellings)])
    assert outcome.errors == []
    assert in_file_order(outcome, "sex", "record_id", [str(i) for i in range(len(spellings))]) == [
        "male",
        "female",
        "unknown",
        "unknown",
        "male",
        "female",
        "unknown",
        "male",
        "female",
        "male",
        "female",
        "unknown",
    ]
    assert errors(Kind.DISCHARGES, [discharge(sex="3")]) == [
        (
            2,
            "性别",
            "“3” is not one of the accepted values: 1, 男, m, male, 2, 女, f, female, 0, 9, 未知, 未说明, unknown.",
        )
    ]


def test_discharge_outcome_value_set() -> None:
    assert errors(Kind.DISCHARGES, [discharge(discharge_outcome="6")]) == [
        (2, "离院方式", "“6” is not one of the accepted values: 1, 2, 3, 4, 5, 9.")
    ]
    assert errors(Kind.DISCHARGES, [discharge(discharge_outcome="9")]) == []


def test_region_code_is_six_digits() -> None:
    assert errors(Kind.DISCHARGES, [discharge(residence_region="33082")]) == [
        (2, "现住址行政区划代码", "“33082” is not a region code: six digits (GB/T 2260), e.g. 330824.")
    ]


def test_icd10_shape_and_upper_case() -> None:
    assert errors(Kind.DISCHARGES, [discharge(principal_diagnosis="I6")]) == [
        (2, "主要诊断编码", "“I6” is not an ICD-10 code such as I63.9.")
    ]
    outcome = check(Kind.DISCHARGES, [discharge(principal_diagnosis="i63.900x001")])
    assert outcome.facts.column("principal_diagnosis").to_pylist() == ["I63.900X001"]


def test_institution_unknown_or_not_allowed() -> None:
    assert errors(Kind.VISITS, [visit(institution_code="nowhere"), visit(visit_id="2", institution_code="bjfph")]) == [
        (
            2,
            "机构代码",
            "Unknown institution “nowhere”: no institution in the registry has this code, organisation code, "
            "unified social credit code or licence number.",
        ),
        (3, "机构代码", "You may not import data for the institution “bjfph”."),
    ]
    # Codes are matched case-insensitively and stored as registered.
    assert check(Kind.VISITS, [visit(institution_code="QZPH")]).facts.column("institution_code").to_pylist() == ["qzph"]


def test_duplicate_key_within_the_file() -> None:
    records = [discharge(), discharge(record_id="ZY002"), discharge(), discharge(institution_code="khph")]
    assert errors(Kind.DISCHARGES, records) == [
        (4, "住院流水号", "The same record appears earlier in the file, on row 2.")
    ]


def test_operation_rules() -> None:
    bad = operation(
        operation_seq="0",
        is_main="maybe",
        operation_code="ABC",
        operation_level="5",
        category="other",
        operator_role="nurse",
        operation_date="2025-03-09",
    )
    assert errors(Kind.OPERATIONS, [bad]) == [
        (2, "手术序号", "The operation's sequence number must be a whole number from 1, not “0”."),
        (2, "是否主手术", "“maybe” is not one of the accepted values: 是, 1, y, yes, true, 否, 0, n, no, false."),
        (2, "手术及操作编码", "“ABC” is not an operation code (ICD-9-CM-3) such as 36.0601."),
        (2, "手术级别", "“5” is not one of the accepted values: 1, 一级, 2, 二级, 3, 三级, 4, 四级."),
        (
            2,
            "手术操作类别",
            "“other” is not one of the accepted values: 手术, surgery, 介入治疗, 介入, interventional, 诊断性操作, "
            "diagnostic, 治疗性操作, therapeutic.",
        ),
        (2, "术者角色", "“nurse” is not one of the accepted values: 主刀, 术者, chief, surgeon, 助手, assistant."),
        (2, "手术日期", "The operation date is after the discharge date (2025-03-08)."),
    ]


def test_operation_values_in_english_and_defaults() -> None:
    records = [
        operation(category="Surgery", operation_level="四级", minimally_invasive="Y", robot_assisted="true"),
        operation(operation_seq="", is_main="", category="治疗性操作", minimally_invasive="", robot_assisted="0"),
        operation(record_id="ZY009", operation_seq="", is_main="", operator_role="assistant"),
    ]
    records[0]["operation_seq"] = ""
    outcome = check(Kind.OPERATIONS, records)
    assert outcome.errors == []
    # The facts come in no particular order (the store sorts them): order them by stay and sequence.
    facts = sorted(outcome.facts.to_pylist(), key=lambda f: (f["record_id"], f["operation_seq"]))
    # Empty sequence numbers: the position of the stay's rows in the file.
    assert [(f["record_id"], f["operation_seq"], f["is_main"]) for f in facts] == [
        ("ZY001", 1, True),
        ("ZY001", 2, False),
        ("ZY009", 1, True),
    ]
    assert [(f["category"], f["operation_level"], f["minimally_invasive"], f["robot_assisted"]) for f in facts] == [
        ("surgery", 4, True, True),
        ("therapeutic", 4, False, False),
        ("interventional", 4, True, False),
    ]
    assert [f["operator_role"] for f in facts] == ["chief", "chief", "assistant"]


def test_visit_type_and_setting_value_sets() -> None:
    records = [
        visit(visit_type="复诊", setting="急诊"),
        visit(visit_id="2", visit_type="follow-up", setting="emergency"),
        visit(visit_id="3", visit_type="远程", setting=""),
        visit(visit_id="4", visit_type="", setting="门诊"),
    ]
    outcome = check(Kind.VISITS, records)
    assert outcome.errors == []
    ids = [r["visit_id"] for r in records]
    assert in_file_order(outcome, "visit_type", "visit_id", ids) == ["follow_up", "follow_up", "tele", "first"]
    assert in_file_order(outcome, "setting", "visit_id", ids) == ["emergency", "emergency", "outpatient", "outpatient"]
    assert errors(Kind.VISITS, [visit(visit_type="walk-in", setting="ward")]) == [
        (2, "门急诊", "“ward” is not one of the accepted values: 门诊, outpatient, 急诊, emergency."),
        (
            2,
            "初复诊",
            "“walk-in” is not one of the accepted values: 初诊, first, 复诊, follow-up, follow_up, followup, 远程, "
            "远程医疗, tele, telemedicine.",
        ),
    ]


def test_origin_relative_to_the_institution_region() -> None:
    regions = ["330802", "330824", "330106", "520502", ""]
    outcome = check(Kind.VISITS, [visit(visit_id=str(i), residence_region=r) for i, r in enumerate(regions)])
    assert in_file_order(outcome, "origin", "visit_id", [str(i) for i in range(len(regions))]) == [
        "same_county",
        "same_city",
        "same_province",
        "other_province",
        "unknown",
    ]


def test_missing_required_column_rejects_the_file_naming_it() -> None:
    record = discharge()
    del record["discharge_date"]
    outcome = check(Kind.DISCHARGES, [record])
    assert outcome.facts.num_rows == 0 and outcome.rows_rejected == 1
    assert [(e.row, e.column, e.message) for e in outcome.errors] == [
        (
            1,
            "discharge_date",
            "The required column “discharge_date” is missing (accepted headers include 出院日期 / 出院时间 / "
            "discharge date / discharged).",
        )
    ]


def test_unknown_columns_are_ignored_and_listed() -> None:
    records = [{**discharge(), "patient_name": "张三", "备注": "x"}]
    outcome = check(Kind.DISCHARGES, records)
    assert outcome.errors == [] and outcome.facts.num_rows == 1
    assert outcome.ignored_columns == ["patient_name", "备注"]
    assert "张三" not in str(outcome.facts.to_pylist())


def test_english_headers_in_any_case_and_spacing() -> None:
    headers = {**EN, "admission_date": " ADMISSION   date ", "discharge_date": "discharge_date", "total_cost": "Cost"}
    outcome = check(Kind.DISCHARGES, [discharge()], headers=headers)
    assert outcome.errors == [] and outcome.facts.num_rows == 1
    assert outcome.facts.column("total_cost").to_pylist() == [23456.7]


def test_chinese_headers() -> None:
    assert ZH["admission_date"] == "入院日期"
    outcome = check(Kind.DISCHARGES, [discharge()], headers=ZH)
    assert outcome.errors == [] and outcome.facts.num_rows == 1


def test_errors_are_capped_but_all_counted() -> None:
    records = [discharge(record_id=str(i), age="200") for i in range(MAX_ERRORS + 200)]
    outcome = check(Kind.DISCHARGES, records)
    assert outcome.errors_total == MAX_ERRORS + 200
    assert len(outcome.errors) == MAX_ERRORS
    assert outcome.errors[-1].row == MAX_ERRORS + 1
    assert outcome.rows_rejected == MAX_ERRORS + 200


def test_rejects_table_masks_the_patient_identifier_and_lists_all_errors_of_the_row() -> None:
    outcome = check(Kind.DISCHARGES, [discharge(), discharge(record_id="B", age="abc", sex="?")], want_rejects=True)
    assert outcome.rejects is not None
    assert outcome.rejects.to_pylist() == [
        {
            "机构代码": "qzph",
            "住院流水号": "B",
            "患者标识": "330***********1234",
            "科室": "神经外科",
            "入院日期": "2025-03-01",
            "出院日期": "2025-03-08",
            "性别": "?",
            "年龄": "abc",
            "现住址行政区划代码": "330824",
            "主要诊断编码": "I63.9",
            "离院方式": "1",
            "实际住院天数": "7",
            "总费用": "23456.70",
            "错误/error": "性别: “?” is not one of the accepted values: 1, 男, m, male, 2, 女, f, female, 0, 9, 未知, "
            "未说明, unknown.; 年龄: Age must be a whole number of years from 0 to 130, not “abc”.",
        }
    ]


def test_messages_follow_the_active_language() -> None:
    with translation.override("zh-hans"):
        outcome = validate(
            kind=Kind.DISCHARGES,
            raw=raw_table(rows([discharge(record_id="")])),
            institutions=INSTITUTIONS,
            today=TODAY,
        )
    with translation.override("zh-hans"):
        from django.utils.translation import gettext

        assert outcome.errors[0].message == gettext("A value is required.")
