"""Readers: CSV in UTF-8 (with and without BOM) and GB18030, .xlsx, FHIR R4B Bundles."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.utils import translation

from yilian.activity import readers
from yilian.activity.columns import Kind
from yilian.activity.tests.factories import EN, ZH, discharge, rows, write_csv, write_json, write_xlsx
from yilian.activity.validation import map_headers


def strings(raw: readers.RawTable) -> list[list[str]]:
    return [raw.headers, *[list(r.values()) for r in raw.table.to_pylist()]]


@pytest.mark.parametrize(
    ("encoding", "bom", "detected"),
    [("utf-8", False, "utf-8"), ("utf-8", True, "utf-8-sig"), ("gb18030", False, "gb18030")],
)
def test_csv_encodings_read_to_the_same_strings(tmp_path: Path, encoding: str, bom: bool, detected: str) -> None:
    table = rows([discharge(), discharge(record_id="ZY002", department="骨科", sex="女")])
    path = write_csv(tmp_path, table, encoding=encoding, bom=bom)
    raw = readers.read_csv(path)
    assert raw.encoding == detected
    assert strings(raw) == table
    assert raw.first_row == 2 and raw.row_numbers is None


def test_gbk_bytes_are_read_as_gb18030(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes("机构代码,科室\r\nqzph,神经外科\r\n".encode("gbk"))
    assert readers.scan(path)[1] == "gb18030"
    assert strings(readers.read_csv(path)) == [["机构代码", "科室"], ["qzph", "神经外科"]]


def test_scan_gives_the_file_hash(tmp_path: Path) -> None:
    import hashlib

    path = write_csv(tmp_path, rows([discharge()]))
    assert readers.scan(path) == (hashlib.sha256(path.read_bytes()).hexdigest(), "utf-8")


def test_quoted_values_keep_commas_and_empty_values_stay_empty(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('科室,医生\n"骨科,二病区",\n', encoding="utf-8")
    assert strings(readers.read_csv(path)) == [["科室", "医生"], ["骨科,二病区", ""]]


def test_a_line_with_the_wrong_number_of_values_rejects_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n1,2,3\n", encoding="utf-8")
    with pytest.raises(readers.ReadError):
        readers.read_csv(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(readers.ReadError):
        readers.read_csv(path)


def test_unsupported_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(readers.ReadError):
        readers.read_file(Kind.VISITS, tmp_path / "x.xls", "x.xls")


@pytest.mark.parametrize("headers", [ZH, EN, {k: v.upper() for k, v in EN.items()}, {k: f" {k} " for k in EN}])
def test_header_variants_map_to_the_canonical_columns(headers: dict[str, str]) -> None:
    table = rows([discharge()], headers=headers)
    mapped = map_headers(Kind.DISCHARGES, table[0])
    assert mapped.missing == [] and mapped.ignored == []
    assert list(mapped.index) == list(discharge())


def test_xlsx_cells_become_strings_and_dates_become_iso(tmp_path: Path) -> None:
    table: list[list[Any]] = [
        ["机构代码", "住院流水号", "入院日期", "出院日期", "年龄", "总费用", "是否微创"],
        ["qzph", 1001, dt.datetime(2025, 3, 1), dt.datetime(2025, 3, 8, 14, 30), 66, 23456.7, True],
        [None, None, None, None, None, None, None],  # an empty line is skipped, numbering continues
        ["khph", "ZY2", dt.date(2025, 4, 1), "2025-04-02", 45.0, 100, False],
    ]
    raw = readers.read_file(Kind.DISCHARGES, write_xlsx(tmp_path, table), "export.xlsx")
    assert raw.format == "xlsx"
    assert raw.headers == table[0]
    assert [list(r.values()) for r in raw.table.to_pylist()] == [
        ["qzph", "1001", "2025-03-01", "2025-03-08 14:30:00", "66", "23456.7", "true"],
        ["khph", "ZY2", "2025-04-01", "2025-04-02", "45", "100", "false"],
    ]
    assert raw.row_numbers is not None and raw.row_numbers.to_pylist() == [2, 4]


def _bundle() -> dict[str, Any]:
    """Two outpatient-side encounters, one inpatient stay with two procedures, two patients."""
    patient_1 = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"value": "330824195003071234"}],
        "gender": "male",
        "birthDate": "1958-06-01",
        "address": [{"district": "330824"}],
    }
    patient_2 = {
        "resourceType": "Patient",
        "id": "p2",
        "identifier": [{"value": "520502199001011111"}],
        "gender": "female",
        "birthDate": "1990-01-01",
        "address": [{"extension": [{"url": "https://example.org/fhir/region-code", "valueCode": "520502"}]}],
    }
    organisation = {"resourceType": "Organization", "id": "o1", "identifier": [{"value": "qzph"}]}
    visit = {
        "resourceType": "Encounter",
        "id": "e1",
        "identifier": [{"value": "MZ001"}],
        "status": "finished",
        "class": {"code": "AMB"},
        "type": [{"coding": [{"code": "follow-up"}]}],
        "subject": {"reference": "Patient/p1"},
        "serviceProvider": {"identifier": {"value": "qzph"}},
        "serviceType": {"text": "神经内科"},
        "period": {"start": "2025-03-05T09:30:00+08:00"},
        "participant": [{"individual": {"display": "徐春华"}}],
    }
    tele = {
        "resourceType": "Encounter",
        "id": "e2",
        "status": "finished",
        "class": {"code": "VR"},
        "subject": {"reference": "urn:uuid:patient-2"},
        "serviceProvider": {"reference": "Organization/o1"},
        "period": {"start": "2025-03-06"},
    }
    stay = {
        "resourceType": "Encounter",
        "id": "e3",
        "identifier": [{"value": "ZY001"}],
        "status": "finished",
        "class": {"code": "IMP"},
        "subject": {"reference": "Patient/p1"},
        "serviceProvider": {"identifier": {"value": "qzph"}},
        "serviceType": {"text": "神经外科"},
        "period": {"start": "2025-03-01T10:00:00+08:00", "end": "2025-03-08T09:00:00+08:00"},
        "length": {"value": 7, "unit": "d"},
        "reasonCode": [{"coding": [{"code": "I63.9"}]}],
        "hospitalization": {"dischargeDisposition": {"coding": [{"code": "1"}]}},
    }
    procedure_1 = {
        "resourceType": "Procedure",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e3"},
        "code": {"coding": [{"code": "39.7400", "display": "经皮颅内动脉取栓术"}]},
        "category": {"coding": [{"code": "interventional"}]},
        "performedDateTime": "2025-03-02T08:00:00+08:00",
        "performer": [{"actor": {"display": "陈志远"}, "function": {"coding": [{"code": "chief"}]}}],
        "extension": [
            {"url": "https://example.org/fhir/operation-level", "valueInteger": 4},
            {"url": "https://example.org/fhir/minimally-invasive", "valueBoolean": True},
        ],
    }
    procedure_2 = {
        "resourceType": "Procedure",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e3"},
        "code": {"coding": [{"code": "88.4100"}], "text": "脑血管造影"},
        "category": {"coding": [{"code": "103693007"}]},
        "performer": [{"actor": {"display": "陈志远"}}],
    }
    entries = [patient_1, organisation, visit, tele, stay, procedure_1, procedure_2]
    bundle_entries: list[dict[str, Any]] = [{"resource": r} for r in entries]
    bundle_entries.append({"fullUrl": "urn:uuid:patient-2", "resource": patient_2})
    return {"resourceType": "Bundle", "type": "collection", "entry": bundle_entries}


def fhir_rows(tmp_path: Path, kind: Kind) -> list[dict[str, str]]:
    raw = readers.read_file(kind, write_json(tmp_path, _bundle()), "bundle.json")
    records = [dict(zip(raw.headers, r.values(), strict=True)) for r in raw.table.to_pylist()]
    assert raw.row_numbers is not None
    return [{"#": str(n), **r} for n, r in zip(raw.row_numbers.to_pylist(), records, strict=True)]


def test_fhir_encounters_become_visits(tmp_path: Path) -> None:
    assert fhir_rows(tmp_path, Kind.VISITS) == [
        {
            "#": "3",
            "institution_code": "qzph",
            "department": "神经内科",
            "patient_id": "330824195003071234",
            "sex": "male",
            "age": "66",
            "residence_region": "330824",
            "visit_id": "MZ001",
            "visit_date": "2025-03-05 09:30:00",
            "setting": "outpatient",
            "visit_type": "follow-up",
            "doctor": "徐春华",
        },
        {
            "#": "4",
            "institution_code": "qzph",
            "department": "",
            "patient_id": "520502199001011111",
            "sex": "female",
            "age": "35",
            "residence_region": "520502",
            "visit_id": "e2",
            "visit_date": "2025-03-06",
            "setting": "outpatient",
            "visit_type": "tele",
            "doctor": "",
        },
    ]


def test_fhir_inpatient_encounter_becomes_a_discharge(tmp_path: Path) -> None:
    assert fhir_rows(tmp_path, Kind.DISCHARGES) == [
        {
            "#": "5",
            "institution_code": "qzph",
            "department": "神经外科",
            "patient_id": "330824195003071234",
            "sex": "male",
            "age": "66",
            "residence_region": "330824",
            "record_id": "ZY001",
            "admission_date": "2025-03-01 10:00:00",
            "discharge_date": "2025-03-08 09:00:00",
            "principal_diagnosis": "I63.9",
            "discharge_outcome": "1",
            "length_of_stay": "7",
        }
    ]


def test_fhir_procedures_become_operations_of_their_stay(tmp_path: Path) -> None:
    got = fhir_rows(tmp_path, Kind.OPERATIONS)
    assert [
        (
            r["#"],
            r["record_id"],
            r["operation_seq"],
            r["operation_code"],
            r["operation_name"],
            r["category"],
            r["operation_level"],
            r["minimally_invasive"],
            r["operator_role"],
        )
        for r in got
    ] == [
        ("6", "ZY001", "1", "39.7400", "经皮颅内动脉取栓术", "interventional", "4", "true", "chief"),
        ("7", "ZY001", "2", "88.4100", "脑血管造影", "diagnostic", "", "", ""),
    ]
    assert {r["discharge_date"] for r in got} == {"2025-03-08 09:00:00"}


def test_not_a_bundle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"resourceType": "Patient"}', encoding="utf-8")
    with pytest.raises(readers.ReadError):
        readers.read_file(Kind.VISITS, path, "x.json")


def test_gb18030_file_behind_a_utf8_byte_order_mark_is_read(tmp_path: Path) -> None:
    # Some export tools put a UTF-8 BOM in front of whatever encoding they write.
    table = rows([discharge()])
    path = write_csv(tmp_path, table, encoding="gb18030", bom=True)
    raw = readers.read_file(Kind.DISCHARGES, path, "x.csv")
    assert raw.encoding == "gb18030"
    assert strings(raw) == table


def test_a_file_mixing_utf8_and_gb18030_is_refused_with_a_message(tmp_path: Path) -> None:
    table = rows([discharge(), discharge(record_id="ZY002")])
    path = tmp_path / "mixed.csv"
    lines = write_csv(tmp_path, table[:1], name="h.csv").read_bytes()  # the header line in UTF-8
    path.write_bytes(lines + write_csv(tmp_path, table[1:], encoding="gb18030", name="b.csv").read_bytes())
    with translation.override("en"), pytest.raises(readers.ReadError, match="neither UTF-8 nor GB18030"):
        readers.read_file(Kind.DISCHARGES, path, "mixed.csv")


def test_an_invalid_bundle_is_described_without_quoting_patient_data(tmp_path: Path) -> None:
    resident_id = "330824195003071234"
    path = write_json(
        tmp_path,
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": {"resourceType": "Patient", "id": "p1", "birthDate": resident_id}}],
        },
    )
    with translation.override("en"), pytest.raises(readers.ReadError) as raised:
        readers.read_file(Kind.VISITS, path, "bundle.json")
    message = str(raised.value)
    assert message.startswith("The file is not a valid FHIR R4B Bundle: ")
    assert "birthDate" in message
    assert resident_id not in message
