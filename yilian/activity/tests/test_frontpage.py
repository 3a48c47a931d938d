"""Front-page exports in the national interface dialects (yilian.activity.frontpage), imported
through ``services.batch_import`` with the files built by the tests: what lands (the current facts)
and what the user is told (the batch's status, errors, ignored columns and report)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import shutil
from pathlib import Path
from typing import Any

import ibis
import pytest
from django.utils import translation

from yilian.activity import facts, services
from yilian.activity.columns import BatchKind, Kind, fact_schema
from yilian.activity.models import BatchStatus, ImportBatch
from yilian.activity.tests.factories import user
from yilian.activity.tests.frontpage_files import Op, Stay, build, drop, write

pytestmark = pytest.mark.django_db

ORG_CODE = "47000001X"  # Quzhou People's Hospital's organisation code in these tests
USCC = "12330800470000012X"
DIALECTS = ("hqms2019", "tcm", "provincial", "chinese")
KEY = b"test-pseudonym-key"
ID_A = "330824199001011234"
ID_B = "330802198805125678"


@pytest.fixture(autouse=True)
def activity_dir(settings: Any, tmp_path: Path) -> Path:
    from yilian.registry.models import Institution

    ImportBatch.objects.all().delete()
    settings.ACTIVITY_DIR = tmp_path / "activity"
    settings.PSEUDONYM_KEY = KEY.decode()
    Institution.objects.filter(code="qzph").update(org_code=ORG_CODE, uscc=USCC)
    return Path(settings.ACTIVITY_DIR)


# --- helpers -------------------------------------------------------------------------------------


def pseudonym(value: str) -> str:
    return hmac.new(KEY, value.encode(), hashlib.sha256).hexdigest()


def current(kind: Kind) -> list[dict[str, Any]]:
    """The current facts of the dataset (``batch_seq`` left out), in key order."""
    table = facts.current_facts(ibis.duckdb.connect(), kind)
    if table is None:
        return []
    order = ["record_id", "operation_seq"] if kind == Kind.OPERATIONS else ["record_id"]
    names = [name for name in fact_schema(kind).names if name != "batch_seq"]
    rows: list[dict[str, Any]] = table.order_by(order).to_pyarrow().select(names).to_pylist()
    return rows


def do_import(path: Path, *, filename: str = "", language: str = "en", **kw: Any) -> services.ImportResult:
    """Import as the office user, in the language given (the site's default is Chinese)."""
    with translation.override(language):
        return services.batch_import(
            user=user("office"), kind=BatchKind.FRONTPAGES, path=path, filename=filename or path.name, **kw
        )


def land(path: Path, **kw: Any) -> ImportBatch:
    result = do_import(path, **kw)
    assert result.batch.status == BatchStatus.LANDED, result.errors
    return result.batch


def reject(path: Path, **kw: Any) -> ImportBatch:
    result = do_import(path, **kw)
    assert result.batch.status == BatchStatus.REJECTED, result.batch.status
    return result.batch


def errors_of(batch: ImportBatch) -> list[tuple[int, str]]:
    return [(e["row"], e["column"]) for e in batch.errors]


def message(batch: ImportBatch, row: int, column: str) -> str:
    found = [str(e["message"]) for e in batch.errors if (e["row"], e["column"]) == (row, column)]
    assert len(found) == 1, batch.errors
    return found[0]


def allowed_values(text: str) -> set[str]:
    """The accepted values listed by “… is not one of the accepted values: a, b, c.”"""
    return set(text.split(": ", 1)[1].removesuffix(".").split(", "))


def repairs(batch: ImportBatch) -> set[tuple[str, str, int]]:
    return {(r["column"], r["repair"], r["count"]) for r in batch.report["repairs"]}


def by_record(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["record_id"]: row for row in rows}


# --- the files -----------------------------------------------------------------------------------


def two_stays() -> list[Stay]:
    """A neurosurgery stay from Kaihua county with an operation and an examination, and a stay
    without operations of a patient from Kecheng district who died."""
    return [
        Stay(
            ops=[
                Op("01.2401", "开颅术", "2025-03-02", "4", "王医生", "1"),
                Op("88.9101", "头颅磁共振", "2025-03-03", "1", "", "0"),
            ]
        ),
        Stay(
            record_no="BA0002",
            admitted="2025-03-10 09:30:00",
            discharged="2025-03-20 15:00:00",
            id_number=ID_B,
            sex="2",
            age="52",
            address="浙江省衢州市柯城区府山街道县学街8号",
            postcode="324000",
            department="0302",
            diagnosis="K80.100",
            discharge_mode="5",
            length_of_stay="10",
            cost="8000",
        ),
    ]


EXPECTED_STAYS = [
    {
        "institution_code": "qzph",
        "record_id": "BA0001#1",
        "patient_key": pseudonym(ID_A),
        "department": "神经外科",
        "admission_date": dt.date(2025, 3, 1),
        "discharge_date": dt.date(2025, 3, 5),
        "sex": "male",
        "age": 35,
        "residence_region": "330824",
        "residence_basis": "address",
        "origin": "same_city",
        "principal_diagnosis": "I63.900",
        "discharge_outcome": "1",
        "length_of_stay": 4,
        "total_cost": 12345.6,
    },
    {
        "institution_code": "qzph",
        "record_id": "BA0002#1",
        "patient_key": pseudonym(ID_B),
        "department": "消化内科",
        "admission_date": dt.date(2025, 3, 10),
        "discharge_date": dt.date(2025, 3, 20),
        "sex": "female",
        "age": 52,
        "residence_region": "330802",
        "residence_basis": "address",
        "origin": "same_county",
        "principal_diagnosis": "K80.100",
        "discharge_outcome": "5",
        "length_of_stay": 10,
        "total_cost": 8000.0,
    },
]
_OPERATION = {
    "institution_code": "qzph",
    "record_id": "BA0001#1",
    "department": "神经外科",
    "discharge_date": dt.date(2025, 3, 5),
    "category_basis": "code_chapter",
    "minimally_invasive": False,
    "robot_assisted": False,
    "operator_role": None,
}
EXPECTED_OPERATIONS = [
    {
        **_OPERATION,
        "operation_date": dt.date(2025, 3, 2),
        "operation_seq": 1,
        "is_main": True,
        "operation_code": "01.2401",
        "operation_name": "开颅术",
        "operation_level": 4,
        "category": "surgery",
        "operator": "王医生",
    },
    {
        **_OPERATION,
        "operation_date": dt.date(2025, 3, 3),
        "operation_seq": 2,
        "is_main": False,
        "operation_code": "88.9101",
        "operation_name": "头颅磁共振",
        "operation_level": 1,
        "category": "diagnostic",
        "operator": None,
    },
]


# --- dialects and encodings ----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_each_dialect_is_detected_and_lands_the_same_facts(tmp_path: Path, dialect: str) -> None:
    batch = land(write(tmp_path / "2025-03.csv", build(dialect, two_stays())))

    assert batch.report["dialect"] == dialect
    assert batch.kind == BatchKind.FRONTPAGES
    assert (batch.rows_total, batch.rows_landed, batch.rows_rejected) == (2, 2, 0)
    assert batch.institution_codes == ["qzph"]
    assert batch.coverage == {"qzph": ["2025-03"]}
    assert batch.ignored_columns == []
    assert current(Kind.DISCHARGES) == EXPECTED_STAYS
    assert current(Kind.OPERATIONS) == EXPECTED_OPERATIONS
    assert batch.report["stays"] == 2
    assert batch.report["operations"] == 2
    assert batch.report["max_operations_per_stay"] == 2
    assert batch.report["repairs"] == []
    assert batch.report["residence"] == {"region_code": 0, "address": 2, "postcode": 0, "unknown": 0}
    assert batch.report["unknown_origin"] == 0


@pytest.mark.parametrize(
    ("filename", "encoding", "file_format"),
    [
        ("m.csv", "utf-8", "csv"),
        ("m.csv", "utf-8-sig", "csv"),
        ("m.csv", "gb18030", "csv"),
        ("m.txt", "utf-16", "csv"),
        ("m.xlsx", "", "xlsx"),
    ],
)
def test_each_encoding_lands_the_same_facts(tmp_path: Path, filename: str, encoding: str, file_format: str) -> None:
    # Chinese headers: the header line itself must be decoded right for the file to be read.
    path = write(tmp_path / filename, build("chinese", two_stays()), encoding=encoding or "utf-8")
    if encoding == "utf-16":
        assert path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff") and b"\t\x00" in path.read_bytes()

    batch = land(path)

    assert batch.report["dialect"] == "chinese"
    assert batch.report["format"] == file_format
    assert batch.report["encoding"] == encoding
    assert current(Kind.DISCHARGES) == EXPECTED_STAYS
    assert current(Kind.OPERATIONS) == EXPECTED_OPERATIONS


def test_xlsx_with_number_and_date_cells_as_excel_stores_them(tmp_path: Path) -> None:
    """A workbook whose cells Excel typed: dates and times as dates, counts and costs as numbers,
    the department code as the number 402 (its leading zero lost)."""
    rows: list[list[object]] = [list(r) for r in build("hqms2019", two_stays())]
    header = rows[0]
    typed: dict[str, list[object]] = {
        "A49": [1, 1],
        "B12": [dt.datetime(2025, 3, 1, 8, 0), dt.datetime(2025, 3, 10, 9, 30)],
        "B15": [dt.datetime(2025, 3, 5, 10, 0), dt.datetime(2025, 3, 20, 15, 0)],
        "C16x01": [dt.datetime(2025, 3, 2), None],
        "C37x01": [dt.datetime(2025, 3, 3), None],
        "A12C": [1, 2],
        "A14": [35, 52],
        "B16C": [402, 302],
        "B34C": [1, 5],
        "B20": [4, 10],
        "D01": [12345.6, 8000.0],
        "C17x01": [4, None],
        "C38x01": [1, None],
        "A28C": [324300, 324000],
    }
    for name, values in typed.items():
        position = header.index(name)
        for row, value in zip(rows[1:], values, strict=True):
            row[position] = value
    batch = land(write(tmp_path / "m.xlsx", rows))

    assert batch.report["format"] == "xlsx"
    assert current(Kind.DISCHARGES) == EXPECTED_STAYS
    assert current(Kind.OPERATIONS) == EXPECTED_OPERATIONS
    assert repairs(batch) == {("B16C", "leading_zero", 2)}


# --- columns -------------------------------------------------------------------------------------


def test_unknown_columns_are_listed_but_unused_2019_fields_are_not(tmp_path: Path) -> None:
    rows = build(
        "hqms2019",
        two_stays(),
        # 姓名, 出生日期, 医疗付费方式, the main operation's anaesthesia, the 2nd other operation's
        # first assistant, a cost item: fields of the 2019 interface Yilian does not use.
        extra=("A11", "A13", "A46C", "C22x01C", "C40x02", "D09", "内部备注", "HIS_ID"),
    )
    batch = land(write(tmp_path / "m.csv", rows))

    assert batch.ignored_columns == ["内部备注", "HIS_ID"]
    assert batch.report["known_unused_columns"] == 6
    assert current(Kind.DISCHARGES) == EXPECTED_STAYS


@pytest.mark.parametrize(
    ("dialect", "header"),
    [
        ("hqms2019", "A49"),
        ("hqms2019", "A01"),
        ("hqms2019", "A48"),
        ("hqms2019", "B15"),
        ("tcm", "ZYCS"),
        ("provincial", "RYSJ"),
        ("chinese", "住院次数"),
    ],
)
def test_a_missing_required_column_rejects_the_file_naming_it(tmp_path: Path, dialect: str, header: str) -> None:
    batch = reject(write(tmp_path / "m.csv", drop(build(dialect, two_stays()), header)))

    assert len(batch.errors) == 1, batch.errors
    error = batch.errors[0]
    # The column is named by the headers the dialect accepts for it (the provincial 入院时间 is
    # RYSJ or RYRQ).
    assert error["row"] == 1 and header in error["column"].split(" / ")
    assert f"“{error['column']}”" in error["message"]
    assert "missing" in error["message"]
    assert batch.rows_total == 2 and batch.rows_rejected == 2
    assert current(Kind.DISCHARGES) == [] and current(Kind.OPERATIONS) == []


# --- institutions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "identifier",
    [ORG_CODE, "47000001-X", "47000001x", " 47000001-X ", USCC, USCC.lower(), "qzph", "QZPH"],
)
def test_the_institution_is_found_by_any_of_its_identifiers(tmp_path: Path, identifier: str) -> None:
    stays = two_stays()
    for stay in stays:
        stay.institution = identifier
    batch = land(write(tmp_path / "m.csv", build("hqms2019", stays)))

    assert batch.institution_codes == ["qzph"]
    assert [row["institution_code"] for row in current(Kind.DISCHARGES)] == ["qzph", "qzph"]
    assert [row["institution_code"] for row in current(Kind.OPERATIONS)] == ["qzph", "qzph"]
    assert [row["origin"] for row in current(Kind.DISCHARGES)] == ["same_city", "same_county"]


def test_an_unknown_institution_identifier_rejects_its_rows_naming_it(tmp_path: Path) -> None:
    stays = two_stays()
    stays[1].institution = "99999999-9"
    path = write(tmp_path / "m.csv", build("hqms2019", stays))

    batch = reject(path)
    assert errors_of(batch) == [(3, "A01")]
    assert "“99999999-9”" in message(batch, 3, "A01")
    assert current(Kind.DISCHARGES) == []

    accepted = do_import(path, accept_valid=True)
    assert accepted.batch.status == BatchStatus.LANDED
    assert errors_of(accepted.batch) == [(3, "A01")]
    assert [row["record_id"] for row in current(Kind.DISCHARGES)] == ["BA0001#1"]
    assert len(current(Kind.OPERATIONS)) == 2


# --- Excel damage --------------------------------------------------------------------------------


def test_excel_damage_is_repaired_counted_per_column_and_lands_right(tmp_path: Path) -> None:
    stays = [
        Stay(
            admission_count="1.0",
            sex="1.0",
            admitted="2025年3月1日",
            discharged="2025年03月05日",
            postcode="-",
            department="402",
            cost="1.23456E+4",
            ops=[Op("01.2401", "开颅术", "20250302", "4.0", "-", "1.0")],
        ),
        Stay(
            record_no="BA0002",
            admitted="20250301",
            discharged="2025/03/05",
            department="402.0",
            discharge_mode="5.0",
            cost="-",
            ops=[Op("01.2401", "开颅术", "2025/3/2", "4", "王医生", "1"), Op("88.9101", "", "", "1.0")],
        ),
        Stay(
            record_no="BA0003",
            admitted="20250301080000",
            discharged="2025-03-05 10:00:00",
            age="35.0",
            length_of_stay="4.0",
            department="0402",
        ),
    ]
    batch = land(write(tmp_path / "m.csv", build("hqms2019", stays)))

    assert repairs(batch) == {
        ("A49", "point_zero", 1),
        ("A12C", "point_zero", 1),
        ("A14", "point_zero", 1),
        ("B20", "point_zero", 1),
        ("B34C", "point_zero", 1),
        ("B16C", "point_zero", 1),
        ("B16C", "leading_zero", 2),
        ("A28C", "empty_mark", 1),
        ("D01", "scientific", 1),
        ("D01", "empty_mark", 1),
        ("B12", "date_format", 3),
        ("B15", "date_format", 2),
        ("C16x01", "date_format", 2),
        ("C17x01", "point_zero", 1),
        ("C38x01", "point_zero", 1),
        ("C18x01", "empty_mark", 1),
        ("C21x01C", "point_zero", 1),
    }
    stays_landed = by_record(current(Kind.DISCHARGES))
    assert sorted(stays_landed) == ["BA0001#1", "BA0002#1", "BA0003#1"]
    for stay in stays_landed.values():
        assert (stay["admission_date"], stay["discharge_date"]) == (dt.date(2025, 3, 1), dt.date(2025, 3, 5))
        assert stay["department"] == "神经外科"
        assert stay["sex"] == "male"
        assert stay["age"] == 35 and stay["length_of_stay"] == 4
    assert stays_landed["BA0001#1"]["total_cost"] == 12345.6
    assert stays_landed["BA0002#1"]["total_cost"] is None
    assert stays_landed["BA0002#1"]["discharge_outcome"] == "5"
    operations = current(Kind.OPERATIONS)
    assert [(o["record_id"], o["operation_seq"], o["operation_date"], o["operation_level"]) for o in operations] == [
        ("BA0001#1", 1, dt.date(2025, 3, 2), 4),
        ("BA0002#1", 1, dt.date(2025, 3, 2), 4),
        ("BA0002#1", 2, None, 1),
    ]
    assert [o["operator"] for o in operations] == [None, "王医生", None]


def test_an_id_number_in_scientific_notation_falls_back_to_the_medical_record_number(tmp_path: Path) -> None:
    stays = [
        # Two stays of one patient (one 病案号), their ID number damaged by Excel.
        Stay(record_no="BA0007", admission_count="1", id_number="3.30824E+17"),
        Stay(
            record_no="BA0007",
            admission_count="2",
            id_number="3.30824199001011E+17",
            admitted="2025-03-20 08:00:00",
            discharged="2025-03-24 10:00:00",
        ),
        # Another patient whose damaged ID number reads the same: a different patient all the same.
        Stay(record_no="BA0008", id_number="3.30824E+17"),
        # No ID number at all: the medical-record number too.
        Stay(record_no="BA0009", id_number="-"),
        Stay(record_no="BA0010", id_number=ID_A),
    ]
    batch = land(write(tmp_path / "m.csv", build("hqms2019", stays)))

    assert ("A20", "id_scientific", 3) in repairs(batch)
    assert ("A20", "empty_mark", 1) in repairs(batch)
    assert not any(r["column"] == "A20" and r["repair"] == "scientific" for r in batch.report["repairs"])
    keys = {row["record_id"]: row["patient_key"] for row in current(Kind.DISCHARGES)}
    assert keys["BA0007#1"] == keys["BA0007#2"]
    assert len({keys["BA0007#1"], keys["BA0008#1"], keys["BA0009#1"], keys["BA0010#1"]}) == 4
    assert keys["BA0010#1"] == pseudonym(ID_A)
    # The damaged number itself never identifies anyone.
    damaged = {pseudonym(v) for v in ("3.30824E+17", "330824000000000000", "330824199001011000", "-", "")}
    assert not damaged & set(keys.values())


def test_medical_record_identity_does_not_depend_on_how_the_institution_is_written(tmp_path: Path) -> None:
    """The same patient (same 病案号, no usable ID number) in two monthly files whose A01 is
    written with and without the hyphen: one patient."""
    january = Stay(record_no="BA0007", id_number="", institution="47000001-X")
    february = Stay(
        record_no="BA0007",
        admission_count="2",
        id_number="",
        institution=ORG_CODE,
        admitted="2025-02-10 08:00:00",
        discharged="2025-02-14 10:00:00",
    )
    land(write(tmp_path / "2025-01.csv", build("hqms2019", [january])))
    land(write(tmp_path / "2025-02.csv", build("hqms2019", [february])))

    keys = {row["record_id"]: row["patient_key"] for row in current(Kind.DISCHARGES)}
    assert keys["BA0007#1"] == keys["BA0007#2"]


def test_an_id_number_stored_as_a_number_in_a_workbook_is_not_trusted(tmp_path: Path) -> None:
    """Excel keeps 15 significant digits of a number: two patients born the same day in the same
    county (the same first 15 digits) would become one. Such a cell is a damaged ID number."""
    rows: list[list[object]] = [list(r) for r in build("hqms2019", [Stay(), Stay(record_no="BA0002")])]
    position = rows[0].index("A20")
    rows[1][position] = float("3.30824199001011E+17")  # was 330824199001011234
    rows[2][position] = float("3.30824199001011E+17")  # was 330824199001011256
    batch = land(write(tmp_path / "m.xlsx", rows))

    assert ("A20", "id_scientific", 2) in repairs(batch)
    keys = [row["patient_key"] for row in current(Kind.DISCHARGES)]
    assert keys[0] != keys[1]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("20250301", dt.date(2025, 3, 1)),
        ("2025/03/01", dt.date(2025, 3, 1)),
        ("2025/3/1", dt.date(2025, 3, 1)),
        ("2025年03月01日", dt.date(2025, 3, 1)),
        ("2025年3月1日", dt.date(2025, 3, 1)),
        ("2025-03-01 08:00:00", dt.date(2025, 3, 1)),
        ("20250301080000", dt.date(2025, 3, 1)),
        ("2025/3/1 8:00", dt.date(2025, 3, 1)),
    ],
)
def test_admission_dates_in_every_export_format_land_as_the_right_date(
    tmp_path: Path, written: str, expected: dt.date
) -> None:
    stay = Stay(admitted=written, ops=[Op("01.2401", "开颅术", written, "4")])
    batch = land(write(tmp_path / "m.csv", build("hqms2019", [stay])))

    assert current(Kind.DISCHARGES)[0]["admission_date"] == expected
    assert current(Kind.OPERATIONS)[0]["operation_date"] == expected
    rewritten = {(r["column"], r["count"]) for r in batch.report["repairs"] if r["repair"] == "date_format"}
    assert rewritten == (set() if written.startswith("2025-03-01") else {("B12", 1), ("C16x01", 1)})


# --- residence -----------------------------------------------------------------------------------


def test_residence_from_the_region_code_column_else_the_address(tmp_path: Path) -> None:
    """Provincial extracts carry the residence region code (XZZ_XZQH) beside the address."""
    stays = [
        Stay(record_no="R1", region="330824", address="北京市朝阳区建国路1号"),
        Stay(record_no="R2", region="3.30803E+5"),
        Stay(record_no="R3", region="330802.0"),
        Stay(record_no="R4", region="330881001"),
        Stay(record_no="R5", region="", address="浙江省杭州市西湖区文三路"),
        Stay(record_no="R6", region="-", address="江西省上饶市玉山县"),
        Stay(record_no="R7", region="", address=""),
        Stay(record_no="R8", region="", address="3幢2单元"),
    ]
    batch = land(write(tmp_path / "m.csv", build("provincial", stays)))

    assert batch.report["dialect"] == "provincial"
    placed = {
        row["record_id"]: (row["residence_region"], row["residence_basis"], row["origin"])
        for row in current(Kind.DISCHARGES)
    }
    assert placed == {
        # The code column wins over the address.
        "R1#1": ("330824", "region_code", "same_city"),
        "R2#1": ("330803", "region_code", "same_city"),
        "R3#1": ("330802", "region_code", "same_county"),
        # A township code: its county.
        "R4#1": ("330881", "region_code", "same_city"),
        "R5#1": ("330106", "address", "same_province"),
        "R6#1": ("361123", "address", "other_province"),
        "R7#1": (None, "unknown", "unknown"),
        "R8#1": (None, "unknown", "unknown"),
    }
    assert batch.report["residence"] == {"region_code": 4, "address": 2, "postcode": 0, "unknown": 2}
    assert batch.report["unknown_origin"] == 2
    assert {("XZZ_XZQH", "scientific", 1), ("XZZ_XZQH", "point_zero", 1), ("XZZ_XZQH", "empty_mark", 1)} <= repairs(
        batch
    )


def test_residence_from_the_address_else_the_postcode_else_unknown_never_local(tmp_path: Path) -> None:
    stays = [
        Stay(record_no="P1", address="浙江省衢州市开化县华埠镇", postcode="100000"),
        Stay(record_no="P2", address="衢州市柯城区新新街道"),
        # No address, or one that places nowhere: the postcode gives the province.
        Stay(record_no="P3", address="", postcode="324300"),
        Stay(record_no="P4", address="3幢2单元", postcode="200030"),
        # The postcode lost its leading zero (Inner Mongolia, 01xxxx).
        Stay(record_no="P5", address="-", postcode="10010"),
        # Nothing to go on.
        Stay(record_no="P6", address="", postcode=""),
        Stay(record_no="P7", address="-", postcode="-"),
        Stay(record_no="P8", address="不详", postcode="000000"),
    ]
    batch = land(write(tmp_path / "m.csv", build("hqms2019", stays)))

    placed = {
        row["record_id"]: (row["residence_region"], row["residence_basis"], row["origin"])
        for row in current(Kind.DISCHARGES)
    }
    assert placed == {
        "P1#1": ("330824", "address", "same_city"),
        "P2#1": ("330802", "address", "same_county"),
        "P3#1": ("330000", "postcode", "same_province"),
        "P4#1": ("310000", "postcode", "other_province"),
        "P5#1": ("150000", "postcode", "other_province"),
        "P6#1": (None, "unknown", "unknown"),
        "P7#1": (None, "unknown", "unknown"),
        "P8#1": (None, "unknown", "unknown"),
    }
    assert batch.report["residence"] == {"region_code": 0, "address": 2, "postcode": 3, "unknown": 3}
    assert batch.report["unknown_origin"] == 3
    assert ("A28C", "leading_zero", 1) in repairs(batch)


# --- operations ----------------------------------------------------------------------------------


def forty_one_operations() -> list[Op]:
    return [
        Op(f"{n + 10:02d}.{n:02d}01", f"手术{n}", "2025-03-02", str(1 + n % 4), f"医生{n}", "1" if n % 2 else "0")
        for n in range(1, 42)
    ]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_stay_with_41_operations_lands_them_all_in_order(tmp_path: Path, dialect: str) -> None:
    stays = [
        Stay(ops=forty_one_operations()),
        Stay(record_no="BA0002", ops=[Op("36.0601", "支架置入", "2025-03-03", "3")]),
    ]
    batch = land(write(tmp_path / "m.csv", build(dialect, stays)))

    assert batch.report["dialect"] == dialect
    assert batch.report["operations"] == 42
    assert batch.report["max_operations_per_stay"] == 41
    operations = [o for o in current(Kind.OPERATIONS) if o["record_id"] == "BA0001#1"]
    assert [o["operation_seq"] for o in operations] == list(range(1, 42))
    assert [o["operation_seq"] for o in operations if o["is_main"]] == [1]
    assert [o["operation_code"] for o in operations] == [f"{n + 10:02d}.{n:02d}01" for n in range(1, 42)]
    assert [o["operation_name"] for o in operations] == [f"手术{n}" for n in range(1, 42)]
    assert [o["operation_level"] for o in operations] == [1 + n % 4 for n in range(1, 42)]
    assert [o["operator"] for o in operations] == [f"医生{n}" for n in range(1, 42)]
    other = [o for o in current(Kind.OPERATIONS) if o["record_id"] == "BA0002#1"]
    assert [(o["operation_seq"], o["is_main"], o["operation_code"]) for o in other] == [(1, True, "36.0601")]


# --- value sets ----------------------------------------------------------------------------------


def stays_with_bad_codes() -> list[Stay]:
    """Row 2 and row 4 are clean; row 3 has an out-of-set sex, discharge mode, department, main
    operation incision and, on its 4th operation (C35x03C…), level and incision; row 5 has an
    operation code that is no code on its 4th operation."""
    four = [Op("01.2401", "开颅术", "2025-03-02", "4", "王医生", "12")]
    four += [Op("88.9101", "", "2025-03-03", "1"), Op("88.9102", "", "2025-03-03", "1")]
    return [
        Stay(ops=[Op("01.2401", "开颅术", "2025-03-02", "4", "王医生", "1")]),
        Stay(
            record_no="BA0002",
            sex="3",
            discharge_mode="6",
            department="9999",
            ops=[*four, Op("01.2402", "", "2025-03-04", "5", "", "11")],
        ),
        Stay(record_no="BA0003", ops=[Op("36.0601", "支架置入", "2025-03-03", "3", "李医生", "0")]),
        Stay(record_no="BA0004", ops=[*four[1:], Op("36.0601"), Op("心脏支架")]),
    ]


def test_an_out_of_set_value_is_an_error_naming_row_header_and_allowed_values(tmp_path: Path) -> None:
    batch = reject(write(tmp_path / "m.csv", build("hqms2019", stays_with_bad_codes())))

    assert errors_of(batch) == [
        (3, "A12C"),
        (3, "B16C"),
        (3, "B34C"),
        (3, "C21x01C"),
        (3, "C38x03"),
        (3, "C42x03C"),
        (5, "C35x03C"),
    ]
    assert batch.errors_total == 7
    assert message(batch, 3, "A12C").startswith("“3” is not one of the accepted values")
    assert {"0", "1", "2", "9", "男", "女"} <= allowed_values(message(batch, 3, "A12C"))
    assert "3" not in allowed_values(message(batch, 3, "A12C"))
    assert message(batch, 3, "B34C").startswith("“6”")
    assert {"1", "2", "3", "4", "5", "9", "医嘱离院", "死亡"} <= allowed_values(message(batch, 3, "B34C"))
    assert message(batch, 3, "B16C").startswith("“9999”")
    assert {"0402", "神经外科", "0302", "消化内科"} <= allowed_values(message(batch, 3, "B16C"))
    assert message(batch, 3, "C21x01C").startswith("“12”")
    incision = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "20", "30"}
    assert incision <= allowed_values(message(batch, 3, "C21x01C"))
    assert message(batch, 3, "C42x03C").startswith("“11”")
    assert incision <= allowed_values(message(batch, 3, "C42x03C"))
    assert message(batch, 3, "C38x03").startswith("“5”")
    assert {"1", "2", "3", "4", "四级手术"} <= allowed_values(message(batch, 3, "C38x03"))
    assert "“心脏支架”" in message(batch, 5, "C35x03C")
    # The whole file is rejected: nothing lands.
    assert batch.rows_landed == 0 and batch.seq is None
    assert current(Kind.DISCHARGES) == [] and current(Kind.OPERATIONS) == []


@pytest.mark.parametrize("dialect", ["tcm", "provincial"])
def test_split_incision_class_and_healing_grade_are_checked_under_their_numbered_headers(
    tmp_path: Path, dialect: str
) -> None:
    stay = Stay(ops=[Op("01.2401", "开颅术", "2025-03-02", "4"), Op("01.2402", "", "2025-03-02", "9", "", "1")])
    rows = build(dialect, [stay])
    rows[1][rows[0].index("QKDJ2")] = "Ⅳ"
    batch = reject(write(tmp_path / "m.csv", rows))

    level = "SHJB2" if dialect == "tcm" else "SSJB2"
    assert errors_of(batch) == sorted([(2, level), (2, "QKDJ2")])
    assert message(batch, 2, level).startswith("“9”")
    assert {"1", "2", "3", "4"} <= allowed_values(message(batch, 2, level))
    assert {"0", "1", "2", "3", "Ⅰ", "Ⅱ", "Ⅲ"} <= allowed_values(message(batch, 2, "QKDJ2"))


def test_accept_valid_lands_the_clean_stays_and_leaves_out_the_bad_ones_with_all_their_operations(
    tmp_path: Path,
) -> None:
    result = do_import(write(tmp_path / "m.csv", build("hqms2019", stays_with_bad_codes())), accept_valid=True)
    batch = result.batch

    assert batch.status == BatchStatus.LANDED
    assert (batch.rows_total, batch.rows_landed, batch.rows_rejected) == (4, 2, 2)
    assert batch.report["stays"] == 2 and batch.report["operations"] == 2
    assert [row["record_id"] for row in current(Kind.DISCHARGES)] == ["BA0001#1", "BA0003#1"]
    assert [(o["record_id"], o["operation_seq"]) for o in current(Kind.OPERATIONS)] == [
        ("BA0001#1", 1),
        ("BA0003#1", 1),
    ]
    # The rejected stays are listed with their 病案号 and errors.
    assert result.rejects_path is not None
    rejects = result.rejects_path.read_text(encoding="utf-8-sig")
    assert "BA0002" in rejects and "BA0004" in rejects and "BA0001" not in rejects
    assert "C38x03" in rejects and "C35x03C" in rejects


def test_error_messages_are_in_chinese_for_a_chinese_user(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", build("chinese", stays_with_bad_codes()))
    batch = reject(path, language="zh-hans")
    sex = message(batch, 3, "性别")
    assert sex.startswith("“3”不是允许的取值：")
    assert "男" in sex and "女" in sex
    # Other operations repeat one header: the error names it as the file has it.
    assert any(e["row"] == 3 and e["column"] == "其他手术操作级别" for e in batch.errors)
    assert "不是允许的取值" in message(batch, 3, "离院方式")


def test_a_missing_column_is_named_in_chinese(tmp_path: Path) -> None:
    batch = reject(write(tmp_path / "m.csv", drop(build("chinese", two_stays()), "住院次数")), language="zh-hans")
    text = batch.errors[0]["message"]
    assert "“住院次数”" in text and "缺少" in text


def test_an_unknown_institution_is_named_in_chinese(tmp_path: Path) -> None:
    stays = two_stays()
    stays[0].institution = "99999999-9"
    batch = reject(write(tmp_path / "m.csv", build("chinese", stays)), language="zh-hans")
    text = message(batch, 2, "组织机构代码")
    assert "“99999999-9”" in text and "未知" in text


# --- stay identity and monthly files -------------------------------------------------------------


def test_a_stay_is_institution_record_number_and_admission_count(tmp_path: Path) -> None:
    stays = [
        Stay(ops=[Op("01.2401", "开颅术", "2025-03-02", "4")]),
        Stay(
            admission_count="2",
            admitted="2025-03-20 08:00:00",
            discharged="2025-03-25 10:00:00",
            length_of_stay="5",
            ops=[Op("36.0601", "支架置入", "2025-03-21", "3")],
        ),
    ]
    land(write(tmp_path / "m.csv", build("hqms2019", stays)))

    landed = current(Kind.DISCHARGES)
    assert [row["record_id"] for row in landed] == ["BA0001#1", "BA0001#2"]
    assert landed[0]["patient_key"] == landed[1]["patient_key"] == pseudonym(ID_A)
    assert [(o["record_id"], o["operation_code"], o["is_main"]) for o in current(Kind.OPERATIONS)] == [
        ("BA0001#1", "01.2401", True),
        ("BA0001#2", "36.0601", True),
    ]


def test_the_same_stay_twice_in_one_file_is_an_error(tmp_path: Path) -> None:
    stays = [Stay(), Stay(record_no="BA0002"), Stay(admission_count="1.0", ops=[Op("01.2401")])]
    batch = reject(write(tmp_path / "m.csv", build("hqms2019", stays)))

    assert errors_of(batch) == [(4, "A48")]
    assert "2" in message(batch, 4, "A48")
    assert current(Kind.DISCHARGES) == []


def test_monthly_files_overlap_the_later_version_wins_and_withdrawal_restores_the_earlier(tmp_path: Path) -> None:
    """A stay discharged on 31 January is in the January file and again, corrected, in February's;
    another is re-sent in February without its operation."""
    january = [
        Stay(
            record_no="J1",
            admitted="2025-01-20 08:00:00",
            discharged="2025-01-31 10:00:00",
            length_of_stay="11",
            diagnosis="I63.900",
            cost="20000",
            ops=[Op("01.2401", "开颅术", "2025-01-21", "4"), Op("88.9101", "头颅磁共振", "2025-01-22", "1")],
        ),
        Stay(
            record_no="J2",
            admitted="2025-01-10 08:00:00",
            discharged="2025-01-15 10:00:00",
            length_of_stay="5",
            ops=[Op("36.0601", "支架置入", "2025-01-11", "3")],
        ),
        Stay(record_no="J3", admitted="2025-01-02 08:00:00", discharged="2025-01-05 10:00:00", length_of_stay="3"),
    ]
    february = [
        Stay(
            record_no="J1",
            admitted="2025-01-20 08:00:00",
            discharged="2025-01-31 10:00:00",
            length_of_stay="11",
            diagnosis="I61.000",
            cost="21000",
            ops=[Op("01.3901", "脑内血肿清除术", "2025-01-21", "4")],
        ),
        Stay(
            record_no="J2",
            admitted="2025-01-10 08:00:00",
            discharged="2025-01-15 10:00:00",
            length_of_stay="5",
        ),
        Stay(record_no="F1", admitted="2025-02-03 08:00:00", discharged="2025-02-07 10:00:00"),
    ]
    first = land(write(tmp_path / "2025-01.csv", build("hqms2019", january)))
    second = land(write(tmp_path / "2025-02.csv", build("chinese", february)))

    assert (first.rows_landed, first.rows_replaced) == (3, 0)
    assert (second.rows_landed, second.rows_replaced) == (3, 2)
    assert second.coverage == {"qzph": ["2025-01", "2025-02"]}
    stays = by_record(current(Kind.DISCHARGES))
    assert sorted(stays) == ["F1#1", "J1#1", "J2#1", "J3#1"]
    assert (stays["J1#1"]["principal_diagnosis"], stays["J1#1"]["total_cost"]) == ("I61.000", 21000.0)
    assert [(o["record_id"], o["operation_seq"], o["operation_code"]) for o in current(Kind.OPERATIONS)] == [
        ("J1#1", 1, "01.3901"),
    ]

    services.batch_withdraw(user=user("office"), batch=second, reason="February file sent again by mistake")

    stays = by_record(current(Kind.DISCHARGES))
    assert sorted(stays) == ["J1#1", "J2#1", "J3#1"]
    assert (stays["J1#1"]["principal_diagnosis"], stays["J1#1"]["total_cost"]) == ("I63.900", 20000.0)
    assert [(o["record_id"], o["operation_seq"], o["operation_code"]) for o in current(Kind.OPERATIONS)] == [
        ("J1#1", 1, "01.2401"),
        ("J1#1", 2, "88.9101"),
        ("J2#1", 1, "36.0601"),
    ]


# --- what a second reading found ------------------------------------------------------------------


def test_a_front_page_replaces_operations_imported_before_even_without_an_earlier_stay(tmp_path: Path) -> None:
    """An operations file had the stay's operation; the front page of the same stay (no discharge
    imported before) brings another: only the front page's counts."""
    from yilian.activity.tests.factories import operation, rows, write_csv

    ops_file = write_csv(tmp_path, rows([operation(record_id="BA0001#1", operation_code="01.2401")]), name="ops.csv")
    result = services.batch_import(user=user("office"), kind=Kind.OPERATIONS, path=ops_file, filename="ops.csv")
    assert result.batch.status == BatchStatus.LANDED, result.errors
    land(write(tmp_path / "m.csv", build("hqms2019", [Stay(ops=[Op("36.0601", "冠脉支架置入", "2025-03-02", "3")])])))
    assert [(r["record_id"], r["operation_code"]) for r in current(Kind.OPERATIONS)] == [("BA0001#1", "36.0601")]


def test_placeholder_id_numbers_do_not_make_one_patient_of_many(tmp_path: Path) -> None:
    stays = [
        Stay(record_no="A1", id_number="无"),
        Stay(record_no="A2", id_number="不详"),
        Stay(record_no="A3", id_number="000000000000000000"),
        Stay(record_no="A4", id_number="330824********1234"),
        Stay(record_no="A5", id_number=ID_A),
    ]
    batch = land(write(tmp_path / "m.csv", build("hqms2019", stays)))
    keys = {row["record_id"]: row["patient_key"] for row in current(Kind.DISCHARGES)}
    assert keys["A1#1"] == pseudonym("MRN:qzph:A1")
    assert len(set(keys.values())) == 5
    assert keys["A5#1"] == pseudonym(ID_A)
    assert ("A20", "id_unusable", 4) in repairs(batch)


def test_a_placeholder_region_code_falls_through_to_the_address(tmp_path: Path) -> None:
    stays = [Stay(region="000000", address="浙江省衢州市开化县华埠镇"), Stay(record_no="B2", region="330824")]
    batch = land(write(tmp_path / "m.csv", build("provincial", stays)))
    placed = {row["record_id"]: (row["residence_region"], row["residence_basis"]) for row in current(Kind.DISCHARGES)}
    assert placed == {"BA0001#1": ("330824", "address"), "B2#1": ("330824", "region_code")}
    assert batch.report["residence"]["address"] == 1


def test_a_medical_record_number_in_scientific_notation_is_refused(tmp_path: Path) -> None:
    batch = reject(write(tmp_path / "m.csv", build("hqms2019", [Stay(record_no="1.23457E+11")])))
    text = message(batch, 2, "A48")
    assert "1.23457E+11" in text and "scientific notation" in text


def test_one_stay_with_its_institution_written_two_ways_is_still_a_duplicate(tmp_path: Path) -> None:
    stays = [Stay(institution="47000001X"), Stay(institution="47000001-X")]
    batch = reject(write(tmp_path / "m.csv", build("hqms2019", stays)))
    assert errors_of(batch) == [(3, "A48")]


def test_an_admission_count_with_a_leading_zero_is_the_same_stay(tmp_path: Path) -> None:
    land(write(tmp_path / "jan.csv", build("hqms2019", [Stay(admission_count="01", cost="100")])))
    land(write(tmp_path / "feb.csv", build("hqms2019", [Stay(admission_count="1", cost="200")])))
    assert [(r["record_id"], r["total_cost"]) for r in current(Kind.DISCHARGES)] == [("BA0001#1", 200.0)]


def test_the_landing_audit_counts_both_datasets(tmp_path: Path) -> None:
    from yilian.core.models import AuditEvent

    batch = land(write(tmp_path / "m.csv", build("hqms2019", two_stays())))
    (event,) = AuditEvent.objects.filter(object_id=str(batch.public_id))
    assert event.changes["datasets"] == {
        "discharges": {"rows": 2, "replaced": 0},
        "operations": {"rows": 2, "replaced": 0},
    }


@pytest.mark.skipif(
    shutil.which("java") is None, reason="PySpark needs Java (apt-get install -y openjdk-17-jre-headless)"
)
def test_pyspark_reads_the_bases_of_new_files_beside_files_written_before_the_columns(tmp_path: Path) -> None:
    """A discharges batch written before ``residence_basis`` existed (its file lacks the column)
    and a front page after: both backends give each stay its own basis."""
    pytest.importorskip("pyspark")
    import pyarrow.parquet as pq
    from pyspark.sql import SparkSession

    from yilian.activity import store

    older = land(write(tmp_path / "old.csv", build("provincial", [Stay(record_no="OLD", region="330802")])))
    path = store.batch_file(Kind.DISCHARGES, int(older.seq or 0))
    pq.write_table(pq.read_table(path).drop_columns(["residence_basis"]), path)  # as written before
    land(write(tmp_path / "new.csv", build("hqms2019", [Stay(record_no="NEW")])))

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    for con in (ibis.pyspark.connect(session), ibis.duckdb.connect()):
        table = facts.current_facts(con, Kind.DISCHARGES)
        assert table is not None
        got = {r["record_id"]: r["residence_basis"] for r in table.to_pyarrow().to_pylist()}
        assert got == {"OLD#1": "region_code", "NEW#1": "address"}, con.name


def test_an_operation_named_without_its_code_is_an_error_on_the_code_column(tmp_path: Path) -> None:
    stays = [Stay(ops=[Op("01.2401", "开颅术", "2025-03-02", "4"), Op("", "腰椎穿刺术", "2025-03-03", "2")])]
    batch = reject(write(tmp_path / "m.csv", build("hqms2019", stays)))
    assert errors_of(batch) == [(2, "C35x01C")]
