"""Front-page files as hospitals export them, built by the tests (no large files are committed).

``build(dialect, stays)`` returns the header and the rows of a file in one of the four header
dialects; ``write(path, rows, encoding=...)`` writes it as CSV in an encoding (UTF-8 with or
without BOM, GB18030, UTF-16 with tabs as Excel's "Unicode text") or as .xlsx.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Op:
    code: str
    name: str = ""
    date: str = ""
    level: str = ""
    operator: str = ""
    incision: str = ""  # 2019 combined RC014 code, e.g. "1" (Ⅰ/甲)


@dataclass
class Stay:
    institution: str = "47000001X"
    record_no: str = "BA0001"
    admission_count: str = "1"
    admitted: str = "2025-03-01 08:00:00"
    discharged: str = "2025-03-05 10:00:00"
    id_number: str = "330824199001011234"
    sex: str = "1"
    age: str = "35"
    address: str = "浙江省衢州市开化县华埠镇新华路12号"
    region: str = ""
    postcode: str = "324300"
    department: str = "0402"
    diagnosis: str = "I63.900"
    discharge_mode: str = "1"
    length_of_stay: str = "4"
    cost: str = "12345.60"
    ops: list[Op] = field(default_factory=list)


STAY_HEADERS = {
    "hqms2019": (
        "A01",
        "A48",
        "A49",
        "B12",
        "B15",
        "A20",
        "A12C",
        "A14",
        "A26",
        "A28C",
        "B16C",
        "C03C",
        "B34C",
        "B20",
        "D01",
    ),
    "tcm": (
        "ZZJGDM",
        "BAH",
        "ZYCS",
        "RYSJ",
        "CYSJ",
        "SFZH",
        "XB",
        "NL",
        "XZZ",
        "XZZYB",
        "CYKB",
        "ZYZD_JBBM",
        "LYFS",
        "SJZY",
        "ZFY",
    ),
    "provincial": (
        "ZZJGDM",
        "BAH",
        "ZYCS",
        "RYSJ",
        "CYSJ",
        "SFZH",
        "XB",
        "NL",
        "XZZ",
        "XZZ_XZQH",
        "CYKB",
        "JBDM",
        "LYFS",
        "SJZYTS",
        "ZFY",
    ),
    "chinese": (
        "组织机构代码",
        "病案号",
        "住院次数",
        "入院时间",
        "出院时间",
        "身份证号",
        "性别",
        "年龄",
        "现住址",
        "现住址邮政编码",
        "出院科别",
        "出院主要诊断编码",
        "离院方式",
        "实际住院（天）",
        "住院总费用",
    ),
}


def _stay_values(dialect: str, stay: Stay) -> list[str]:
    tenth = stay.region if dialect == "provincial" else stay.postcode
    return [
        stay.institution,
        stay.record_no,
        stay.admission_count,
        stay.admitted,
        stay.discharged,
        stay.id_number,
        stay.sex,
        stay.age,
        stay.address,
        tenth,
        stay.department,
        stay.diagnosis,
        stay.discharge_mode,
        stay.length_of_stay,
        stay.cost,
    ]


def op_headers(dialect: str, n: int) -> list[str]:
    """The headers of operation group n (1 = the main operation)."""
    if dialect == "hqms2019":
        if n == 1:
            return ["C14x01C", "C15x01N", "C16x01", "C17x01", "C18x01", "C21x01C"]
        k = f"{n - 1:02d}"
        return [f"C35x{k}C", f"C36x{k}N", f"C37x{k}", f"C38x{k}", f"C39x{k}", f"C42x{k}C"]
    if dialect == "tcm":
        return [f"SSJCZBM{n}", f"SSJCZMC{n}", f"SSJCZRQ{n}", f"SHJB{n}", f"SZ{n}", f"QKDJ{n}", f"QKYLB{n}"]
    if dialect == "provincial":
        return [f"SSJCZBM{n}", f"SSJCZMC{n}", f"SSJCZRQ{n}", f"SSJB{n}", f"SZ{n}", f"QKDJ{n}", f"QKYHLB{n}"]
    if n == 1:
        return [
            "主要手术操作编码",
            "主要手术操作名称",
            "主要手术操作日期",
            "主要手术操作级别",
            "主要手术操作术者",
            "主要手术操作切口愈合等级",
        ]
    # Chinese exports repeat the same names for every other operation.
    return [
        "其他手术操作编码",
        "其他手术操作名称",
        "其他手术操作日期",
        "其他手术操作级别",
        "其他手术操作术者",
        "其他手术操作切口愈合等级",
    ]


_SPLIT = {
    "0": ("0", ""),
    "1": ("1", "1"),
    "2": ("1", "2"),
    "3": ("1", "3"),
    "4": ("2", "1"),
    "5": ("2", "2"),
    "6": ("2", "3"),
    "7": ("3", "1"),
    "8": ("3", "2"),
    "9": ("3", "3"),
    "10": ("1", "9"),
    "20": ("2", "9"),
    "30": ("3", "9"),
    "": ("", ""),
}


def _op_values(dialect: str, op: Op | None) -> list[str]:
    if op is None:
        return [""] * len(op_headers(dialect, 2))
    base = [op.code, op.name, op.date, op.level, op.operator]
    if dialect in ("tcm", "provincial"):
        return [*base, *_SPLIT[op.incision]]
    return [*base, op.incision]


def build(dialect: str, stays: list[Stay], *, groups: int = 41, extra: tuple[str, ...] = ()) -> list[list[str]]:
    header = list(STAY_HEADERS[dialect])
    for n in range(1, groups + 1):
        header += op_headers(dialect, n)
    header += list(extra)
    rows = [header]
    for stay in stays:
        row = _stay_values(dialect, stay)
        for n in range(1, groups + 1):
            row += _op_values(dialect, stay.ops[n - 1] if n <= len(stay.ops) else None)
        row += [""] * len(extra)
        rows.append(row)
    return rows


def drop(rows: list[list[str]], header: str) -> list[list[str]]:
    """The file without the (first) column of that header."""
    position = rows[0].index(header)
    return [[value for i, value in enumerate(row) if i != position] for row in rows]


def write(path: Path, rows: Sequence[Sequence[object]], *, encoding: str = "utf-8") -> Path:
    """CSV in ``utf-8``, ``utf-8-sig``, ``gb18030`` or ``utf-16`` (tab-separated, with BOM, as Excel
    writes "Unicode text"); a path ending .xlsx is written as a workbook (cells may then be numbers
    or dates, as Excel stores them)."""
    if path.suffix == ".xlsx":
        import openpyxl

        book = openpyxl.Workbook()
        sheet = book.active
        assert sheet is not None
        for row in rows:
            sheet.append(list(row))
        book.save(path)
        return path
    buffer = io.StringIO()
    delimiter = "\t" if encoding == "utf-16" else ","
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path
