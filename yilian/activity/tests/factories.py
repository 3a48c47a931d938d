"""Builders for activity-import tests: files written in the test (no committed binaries), the
people who import, and a per-test store directory.

Records are dicts keyed by canonical column name; ``rows`` turns them into a header line (the
Chinese or English headers below) and data lines. The default discharge is a stay at Quzhou
People's Hospital (qzph, region 330802) of a patient from Kaihua county (330824): same city.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from yilian.activity.columns import Kind
from yilian.registry.models import User

# Headers as a Chinese and an English hospital export would write them.
ZH: dict[str, str] = {
    "institution_code": "机构代码",
    "record_id": "住院流水号",
    "patient_id": "患者标识",
    "department": "科室",
    "admission_date": "入院日期",
    "discharge_date": "出院日期",
    "sex": "性别",
    "age": "年龄",
    "residence_region": "现住址行政区划代码",
    "principal_diagnosis": "主要诊断编码",
    "discharge_outcome": "离院方式",
    "length_of_stay": "实际住院天数",
    "total_cost": "总费用",
    "operation_date": "手术日期",
    "operation_seq": "手术序号",
    "is_main": "是否主手术",
    "operation_code": "手术及操作编码",
    "operation_name": "手术及操作名称",
    "operation_level": "手术级别",
    "category": "手术操作类别",
    "minimally_invasive": "是否微创",
    "robot_assisted": "是否机器人辅助",
    "operator": "术者",
    "operator_role": "术者角色",
    "visit_id": "就诊流水号",
    "visit_date": "就诊日期",
    "setting": "门急诊",
    "visit_type": "初复诊",
    "doctor": "接诊医生",
}
EN: dict[str, str] = {name: name.replace("_", " ").title() for name in ZH}

ID_1 = "330824195003071234"
ID_2 = "330802198805125678"


def discharge(**values: str) -> dict[str, str]:
    record = {
        "institution_code": "qzph",
        "record_id": "ZY001",
        "patient_id": ID_1,
        "department": "神经外科",
        "admission_date": "2025-03-01",
        "discharge_date": "2025-03-08",
        "sex": "男",
        "age": "66",
        "residence_region": "330824",
        "principal_diagnosis": "I63.9",
        "discharge_outcome": "1",
        "length_of_stay": "7",
        "total_cost": "23456.70",
    }
    record.update(values)
    return record


def operation(**values: str) -> dict[str, str]:
    record = {
        "institution_code": "qzph",
        "record_id": "ZY001",
        "department": "神经外科",
        "discharge_date": "2025-03-08",
        "operation_date": "2025-03-02",
        "operation_seq": "1",
        "is_main": "是",
        "operation_code": "39.7400",
        "operation_name": "经皮颅内动脉取栓术",
        "operation_level": "4",
        "category": "介入治疗",
        "minimally_invasive": "是",
        "robot_assisted": "否",
        "operator": "陈志远",
        "operator_role": "主刀",
    }
    record.update(values)
    return record


def visit(**values: str) -> dict[str, str]:
    record = {
        "institution_code": "qzph",
        "visit_id": "MZ001",
        "patient_id": ID_1,
        "department": "神经内科",
        "visit_date": "2025-03-05",
        "setting": "门诊",
        "visit_type": "初诊",
        "sex": "女",
        "age": "45",
        "residence_region": "330824",
        "doctor": "徐春华",
    }
    record.update(values)
    return record


BUILDERS = {Kind.DISCHARGES: discharge, Kind.OPERATIONS: operation, Kind.VISITS: visit}


def rows(records: list[dict[str, str]], *, headers: dict[str, str] | None = None) -> list[list[str]]:
    """Header line + one line per record, columns in the order of the first record."""
    names = list(records[0])
    header_of = headers if headers is not None else ZH
    return [[header_of.get(n, n) for n in names], *[[r.get(n, "") for n in names] for r in records]]


def csv_text(table: list[list[str]]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(table)
    return buffer.getvalue()


def write_csv(
    directory: Path, table: list[list[str]], *, encoding: str = "utf-8", bom: bool = False, name: str = "x.csv"
) -> Path:
    path = directory / name
    data = csv_text(table).encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def write_xlsx(directory: Path, table: list[list[Any]], *, name: str = "x.xlsx") -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for line in table:
        sheet.append(line)
    path = directory / name
    workbook.save(path)
    return path


def write_json(directory: Path, payload: dict[str, Any], *, name: str = "bundle.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return path


def user(username: str) -> User:
    """A fresh copy of a demo account (its cached scope is not carried over)."""
    return User.objects.get(username=username)


TODAY = dt.date(2026, 3, 2)
