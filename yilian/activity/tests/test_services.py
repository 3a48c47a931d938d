"""Importing files into the store: all-or-nothing batches, accept-valid with a rejects file,
replacement of re-imported records, withdrawal, audit, scoping of who imports for whom."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import translation

from yilian.activity import facts, services, store
from yilian.activity.columns import Kind, fact_schema
from yilian.activity.models import BatchStatus, ImportBatch
from yilian.activity.pseudonyms import pseudonym_key
from yilian.activity.tests.factories import (
    EN,
    ID_1,
    ID_2,
    discharge,
    operation,
    rows,
    user,
    visit,
    write_csv,
    write_json,
    write_xlsx,
)
from yilian.core.errors import Conflict
from yilian.core.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def activity_dir(settings: Any, tmp_path: Path) -> Path:
    # The store starts empty: batches the demo seed landed elsewhere are left out (the test's
    # transaction is rolled back afterwards).
    ImportBatch.objects.all().delete()
    settings.ACTIVITY_DIR = tmp_path / "activity"
    settings.PSEUDONYM_KEY = "test-pseudonym-key"
    return Path(settings.ACTIVITY_DIR)


def current(kind: Kind) -> list[dict[str, Any]]:
    con = ibis.duckdb.connect()
    table = facts.current_facts(con, kind)
    if table is None:
        return []
    names = fact_schema(kind).names
    key = "visit_id" if kind == Kind.VISITS else "record_id"
    order = [key, "operation_seq"] if kind == Kind.OPERATIONS else [key]
    result: list[dict[str, Any]] = table.order_by(order).to_pyarrow().select(names).to_pylist()
    return result


def do_import(
    tmp_path: Path, kind: Kind, records: list[dict[str, str]], *, username: str = "office", **kw: Any
) -> services.ImportResult:
    path = write_csv(tmp_path, rows(records))
    return services.batch_import(user=user(username), kind=kind, path=path, filename="export.csv", **kw)


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def test_clean_file_lands_whole_with_pseudonyms_and_origin(tmp_path: Path, activity_dir: Path) -> None:
    result = do_import(
        tmp_path,
        Kind.DISCHARGES,
        [discharge(), discharge(record_id="ZY002", patient_id=ID_2, residence_region="330802", sex="2", age="")],
    )
    batch = result.batch
    assert batch.status == BatchStatus.LANDED
    assert (batch.rows_total, batch.rows_landed, batch.rows_rejected, batch.rows_replaced) == (2, 2, 0, 0)
    assert batch.seq is not None
    assert batch.institution_codes == ["qzph"]
    assert batch.coverage == {"qzph": ["2025-03"]}
    assert (batch.date_from, batch.date_to) == (dt.date(2025, 3, 8), dt.date(2025, 3, 8))
    assert result.errors == [] and result.rejects_path is None
    assert store.batch_file(Kind.DISCHARGES, batch.seq).exists()
    got = current(Kind.DISCHARGES)
    key = b"test-pseudonym-key"
    assert got == [
        {
            "institution_code": "qzph",
            "record_id": "ZY001",
            "patient_key": hmac.new(key, ID_1.encode(), hashlib.sha256).hexdigest(),
            "department": "神经外科",
            "admission_date": dt.date(2025, 3, 1),
            "discharge_date": dt.date(2025, 3, 8),
            "sex": "male",
            "age": 66,
            "residence_region": "330824",
            "residence_basis": "region_code",
            "origin": "same_city",
            "principal_diagnosis": "I63.9",
            "discharge_outcome": "1",
            "length_of_stay": 7,
            "total_cost": 23456.7,
            "batch_seq": batch.seq,
        },
        {
            "institution_code": "qzph",
            "record_id": "ZY002",
            "patient_key": hmac.new(key, ID_2.encode(), hashlib.sha256).hexdigest(),
            "department": "神经外科",
            "admission_date": dt.date(2025, 3, 1),
            "discharge_date": dt.date(2025, 3, 8),
            "sex": "female",
            "age": None,
            "residence_region": "330802",
            "residence_basis": "region_code",
            "origin": "same_county",
            "principal_diagnosis": "I63.9",
            "discharge_outcome": "1",
            "length_of_stay": 7,
            "total_cost": 23456.7,
            "batch_seq": batch.seq,
        },
    ]
    assert pseudonym_key() == key


def test_patient_identifiers_never_reach_any_file_of_the_store(tmp_path: Path, activity_dir: Path) -> None:
    do_import(tmp_path, Kind.DISCHARGES, [discharge(), discharge(record_id="ZY002", patient_id=ID_2)])
    do_import(tmp_path, Kind.VISITS, [visit(), visit(visit_id="MZ002", patient_id=ID_2)])
    # A re-import (superseded keys) and an accept-valid import with a rejects file.
    do_import(
        tmp_path,
        Kind.DISCHARGES,
        [discharge(), discharge(record_id="ZY003", patient_id=ID_2, age="200")],
        accept_valid=True,
    )
    files = [p for p in activity_dir.rglob("*") if p.is_file()]
    assert len(parquet_files(activity_dir)) == 4  # three batches and the keys ZY001 took over
    assert any(p.suffix == ".csv" for p in files)
    for path in files:
        data = path.read_bytes()
        for raw in (ID_1, ID_2):
            assert raw.encode() not in data, path
            assert raw.encode("utf-16-le") not in data, path


def test_any_error_rejects_the_whole_batch_and_nothing_lands(tmp_path: Path, activity_dir: Path) -> None:
    with translation.override("en"):
        result = do_import(tmp_path, Kind.DISCHARGES, [discharge(), discharge(record_id="ZY002", age="131")])
    batch = result.batch
    assert batch.status == BatchStatus.REJECTED
    assert batch.seq is None
    assert (batch.rows_total, batch.rows_landed, batch.rows_rejected, batch.errors_total) == (2, 0, 2, 1)
    assert [(e.row, e.column, e.message) for e in result.errors] == [
        (3, "年龄", "Age must be a whole number of years from 0 to 130, not “131”.")
    ]
    assert batch.errors == [
        {"row": 3, "column": "年龄", "message": "Age must be a whole number of years from 0 to 130, not “131”."}
    ]
    assert parquet_files(activity_dir) == []
    assert facts.current_facts(ibis.duckdb.connect(), Kind.DISCHARGES) is None


def test_accept_valid_lands_valid_rows_and_returns_rejects_as_csv(tmp_path: Path, activity_dir: Path) -> None:
    with translation.override("en"):
        result = do_import(
            tmp_path,
            Kind.DISCHARGES,
            [
                discharge(),
                discharge(record_id="ZY002", age="131", sex="x"),
                discharge(record_id="ZY003", patient_id=ID_2),
            ],
            accept_valid=True,
        )
    batch = result.batch
    assert batch.status == BatchStatus.LANDED
    assert (batch.rows_total, batch.rows_landed, batch.rows_rejected, batch.errors_total) == (3, 2, 1, 2)
    assert [r["record_id"] for r in current(Kind.DISCHARGES)] == ["ZY001", "ZY003"]
    assert result.rejects_path is not None
    assert result.rejects_path.parent == activity_dir / "rejects"
    assert batch.rejects_file == f"rejects/{batch.public_id}.csv"
    data = result.rejects_path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data[3:].decode("utf-8").splitlines()
    assert lines[0] == (
        '"机构代码","住院流水号","患者标识","科室","入院日期","出院日期","性别","年龄","现住址行政区划代码",'
        '"主要诊断编码","离院方式","实际住院天数","总费用","错误/error"'
    )
    assert lines[1] == (
        '"qzph","ZY002","330***********1234","神经外科","2025-03-01","2025-03-08","x","131","330824",'
        '"I63.9","1","7","23456.70","性别: “x” is not one of the accepted values: 1, 男, m, male, 2, 女, f, female, '
        '0, 9, 未知, 未说明, unknown.; 年龄: Age must be a whole number of years from 0 to 130, not “131”."'
    )
    assert len(lines) == 2


def test_reimported_record_replaces_its_earlier_version_and_withdrawal_restores_it(
    tmp_path: Path, activity_dir: Path
) -> None:
    first = do_import(tmp_path, Kind.DISCHARGES, [discharge(), discharge(record_id="ZY002", total_cost="100")]).batch
    second = do_import(tmp_path, Kind.DISCHARGES, [discharge(record_id="ZY002", total_cost="150")]).batch
    assert second.seq is not None and first.seq is not None and second.seq > first.seq
    assert second.rows_replaced == 1
    assert [(r["record_id"], r["total_cost"], r["batch_seq"]) for r in current(Kind.DISCHARGES)] == [
        ("ZY001", 23456.7, first.seq),
        ("ZY002", 150.0, second.seq),
    ]
    withdrawn = services.batch_withdraw(user=user("office"), batch=second, reason="wrong month exported")
    assert withdrawn.status == BatchStatus.WITHDRAWN
    assert withdrawn.withdrawal_reason == "wrong month exported"
    assert store.batch_file(Kind.DISCHARGES, second.seq).exists()  # kept, not deleted
    assert [(r["record_id"], r["total_cost"]) for r in current(Kind.DISCHARGES)] == [
        ("ZY001", 23456.7),
        ("ZY002", 100.0),
    ]
    event = AuditEvent.objects.filter(object_id=str(second.public_id)).order_by("-id").first()
    assert event is not None and event.changes["event"] == "activity.batch_withdraw"
    assert event.actor is not None and event.actor.username == "office"


def test_operations_of_a_reimported_stay_are_replaced_as_a_set(tmp_path: Path, activity_dir: Path) -> None:
    do_import(
        tmp_path,
        Kind.OPERATIONS,
        [operation(), operation(operation_seq="2", is_main="否", operation_code="38.9100", operation_level="2")],
    )
    second = do_import(tmp_path, Kind.OPERATIONS, [operation(operation_level="3")]).batch
    assert second.rows_replaced == 1  # one stay
    got = current(Kind.OPERATIONS)
    assert [(r["record_id"], r["operation_seq"], r["operation_level"]) for r in got] == [("ZY001", 1, 3)]


def test_withdrawing_the_older_batch_keeps_the_newer_version(tmp_path: Path, activity_dir: Path) -> None:
    first = do_import(tmp_path, Kind.VISITS, [visit()]).batch
    do_import(tmp_path, Kind.VISITS, [visit(department="急诊科")])
    services.batch_withdraw(user=user("admin"), batch=first, reason="duplicate upload")
    assert [r["department"] for r in current(Kind.VISITS)] == ["急诊科"]


def test_only_a_landed_batch_can_be_withdrawn_and_a_reason_is_required(tmp_path: Path, activity_dir: Path) -> None:
    rejected = do_import(tmp_path, Kind.VISITS, [visit(age="abc")]).batch
    with pytest.raises(Conflict):
        services.batch_withdraw(user=user("office"), batch=rejected, reason="x")
    landed = do_import(tmp_path, Kind.VISITS, [visit()]).batch
    with pytest.raises(ValidationError):
        services.batch_withdraw(user=user("office"), batch=landed, reason="  ")


def test_every_import_writes_one_audit_row(tmp_path: Path, activity_dir: Path) -> None:
    landed = do_import(tmp_path, Kind.VISITS, [visit()]).batch
    rejected = do_import(tmp_path, Kind.VISITS, [visit(age="abc")]).batch
    landed_events = list(AuditEvent.objects.filter(object_id=str(landed.public_id)))
    rejected_events = list(AuditEvent.objects.filter(object_id=str(rejected.public_id)))
    assert [e.changes["event"] for e in landed_events] == ["activity.batch_land"]
    assert landed_events[0].changes["rows_landed"] == 1
    assert landed_events[0].changes["file_sha256"] == landed.file_sha256
    assert [e.changes["event"] for e in rejected_events] == ["activity.batch_import"]
    assert rejected_events[0].changes["status"] == "rejected"


def test_user_without_the_import_permission_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, rows([visit()]))
    for username in ("doctor", "commission"):
        with pytest.raises(PermissionDenied):
            services.batch_import(user=user(username), kind=Kind.VISITS, path=path, filename="v.csv")
    assert not ImportBatch.objects.exists()


@pytest.mark.parametrize(
    ("username", "institution", "allowed"),
    [
        ("hospadmin", "qzph", True),  # hospital administrator of qzph
        ("quality", "qzph", True),  # quality staff of qzph
        ("hospadmin", "khph", False),
        ("quality", "zju2", False),
        ("office", "khph", True),  # member of the office's consortium zju2-quzhou
        ("office", "zju2", True),  # its lead
        ("office", "bjfph", False),  # another consortium
        ("admin", "bjfph", True),  # system administrator: all
    ],
)
def test_who_may_import_for_which_institution(tmp_path: Path, username: str, institution: str, allowed: bool) -> None:
    with translation.override("en"):
        result = do_import(tmp_path, Kind.VISITS, [visit(institution_code=institution)], username=username)
    if allowed:
        assert result.batch.status == BatchStatus.LANDED
    else:
        assert result.batch.status == BatchStatus.REJECTED
        assert [(e.row, e.column, e.message) for e in result.errors] == [
            (2, "机构代码", f"You may not import data for the institution “{institution}”.")
        ]


def test_progress_is_reported_for_each_stage_and_saved_on_the_batch(tmp_path: Path, activity_dir: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    result = do_import(tmp_path, Kind.VISITS, [visit(), visit(visit_id="MZ002")], progress=lambda *a: seen.append(a))
    stages = [s for s, _d, _t in seen]
    assert stages[0] == "reading" and "validating" in stages and stages[-1] == "writing"
    assert seen[-1] == ("writing", 2, 2)
    batch = ImportBatch.objects.get(pk=result.batch.pk)
    assert (batch.progress_stage, batch.progress_done, batch.progress_total) == ("done", 2, 2)


def test_land_table_lands_a_ready_fact_table(activity_dir: Path) -> None:
    schema = fact_schema(Kind.VISITS, with_batch_seq=False)
    table = pa.table(
        {
            "institution_code": ["bjfph", "bjfph"],
            "visit_id": ["V1", "V2"],
            "patient_key": ["a" * 64, "b" * 64],
            "department": [None, "骨科"],
            "visit_date": [dt.date(2024, 1, 5), dt.date(2024, 2, 6)],
            "setting": ["outpatient", "emergency"],
            "visit_type": ["first", "tele"],
            "sex": ["male", "unknown"],
            "age": [30, None],
            "residence_region": ["520502", None],
            "origin": ["same_county", "unknown"],
            "doctor": [None, None],
        }
    ).cast(schema)
    batch = services.batch_land_table(user=None, kind=Kind.VISITS, table=table, filename="demo", note="demo data")
    assert batch.status == BatchStatus.LANDED and batch.rows_landed == 2
    assert batch.coverage == {"bjfph": ["2024-01", "2024-02"]}
    assert facts.coverage(Kind.VISITS) == {"bjfph": {(2024, 1), (2024, 2)}}
    assert [r["visit_id"] for r in current(Kind.VISITS)] == ["V1", "V2"]
    with pytest.raises(PermissionDenied):
        services.batch_land_table(user=user("hospadmin"), kind=Kind.VISITS, table=table, filename="demo")
    # A table naming one record twice is refused whole: the engine relies on one current row per key.
    twice = pa.concat_tables([table, table.slice(1, 1)])
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        services.batch_land_table(user=None, kind=Kind.VISITS, table=twice, filename="twice")
    assert caught.value.messages == ["1 record appears more than once in the table (same institution_code, visit_id)."]
    assert ImportBatch.objects.filter(filename="twice").count() == 0


def test_store_version_changes_when_a_batch_lands_or_is_withdrawn(tmp_path: Path, activity_dir: Path) -> None:
    before = facts.store_version()
    batch = do_import(tmp_path, Kind.VISITS, [visit()]).batch
    landed = facts.store_version()
    services.batch_withdraw(user=user("office"), batch=batch, reason="test")
    assert len({before, landed, facts.store_version()}) == 3


def test_gb18030_csv_with_chinese_headers_lands(tmp_path: Path, activity_dir: Path) -> None:
    path = write_csv(tmp_path, rows([discharge(department="心血管内科")]), encoding="gb18030")
    batch = services.batch_import(user=user("office"), kind=Kind.DISCHARGES, path=path, filename="病案首页.csv").batch
    assert batch.status == BatchStatus.LANDED
    assert [r["department"] for r in current(Kind.DISCHARGES)] == ["心血管内科"]


def test_xlsx_file_lands_with_rows_numbered_as_in_the_sheet(tmp_path: Path, activity_dir: Path) -> None:
    table: list[list[Any]] = rows([visit(), visit(visit_id="MZ002", age="abc")], headers=EN)
    table[1][4] = dt.datetime(2025, 3, 5, 9, 30)  # a date cell
    path = write_xlsx(tmp_path, table)
    with translation.override("en"):
        result = services.batch_import(user=user("office"), kind=Kind.VISITS, path=path, filename="visits.xlsx")
    assert result.batch.status == BatchStatus.REJECTED
    assert [(e.row, e.column, e.message) for e in result.errors] == [
        (3, "Age", "Age must be a whole number of years from 0 to 130, not “abc”.")
    ]
    table[2][8] = "45"
    path = write_xlsx(tmp_path, table)
    batch = services.batch_import(user=user("office"), kind=Kind.VISITS, path=path, filename="visits.xlsx").batch
    assert batch.status == BatchStatus.LANDED
    assert [r["visit_date"] for r in current(Kind.VISITS)] == [dt.date(2025, 3, 5), dt.date(2025, 3, 5)]


def test_fhir_bundle_lands_visits(tmp_path: Path, activity_dir: Path) -> None:
    from yilian.activity.tests.test_readers import _bundle

    path = write_json(tmp_path, _bundle())
    batch = services.batch_import(user=user("office"), kind=Kind.VISITS, path=path, filename="bundle.json").batch
    assert batch.status == BatchStatus.LANDED
    assert [(r["visit_id"], r["visit_type"], r["origin"]) for r in current(Kind.VISITS)] == [
        ("MZ001", "follow_up", "same_city"),
        ("e2", "tele", "other_province"),
    ]


def test_unreadable_file_is_rejected_with_a_message(tmp_path: Path, activity_dir: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2,3\n", encoding="utf-8")
    with translation.override("en"):
        result = services.batch_import(user=user("office"), kind=Kind.VISITS, path=path, filename="bad.csv")
    assert result.batch.status == BatchStatus.REJECTED
    assert [(e.row, e.column, e.message) for e in result.errors] == [
        (0, "", "1 line(s) do not have the 2 values of the header line (lines 2).")
    ]
    assert result.batch.errors == [
        {"row": 0, "column": "", "message": "1 line(s) do not have the 2 values of the header line (lines 2)."}
    ]


def test_batches_are_visible_to_those_who_may_import_for_their_institutions(tmp_path: Path) -> None:
    from django.http import Http404

    from yilian.activity.selectors import access_batch, batch_list_visible_to

    khph = do_import(tmp_path, Kind.VISITS, [visit(institution_code="khph")], username="admin").batch
    qzph = do_import(tmp_path, Kind.VISITS, [visit(visit_id="Q1")], username="hospadmin").batch
    assert set(batch_list_visible_to(user("office"))) == {khph, qzph}
    assert list(batch_list_visible_to(user("quality"))) == [qzph]  # qzph's quality staff
    assert list(batch_list_visible_to(user("doctor"))) == []
    assert access_batch(user("office"), str(khph.public_id)) == khph
    with pytest.raises(PermissionDenied):
        access_batch(user("hospadmin"), str(khph.public_id))
    with pytest.raises(Http404):
        access_batch(user("office"), "not-a-uuid")


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_file_with_headers_but_no_rows_is_rejected_not_landed_empty(
    tmp_path: Path, activity_dir: Path, fmt: str
) -> None:
    header = rows([visit()])[:1]
    path = write_csv(tmp_path, header) if fmt == "csv" else write_xlsx(tmp_path, header)
    with translation.override("en"):
        result = services.batch_import(user=user("office"), kind=Kind.VISITS, path=path, filename=path.name)
    assert result.batch.status == BatchStatus.REJECTED
    assert result.batch.seq is None
    assert [(e.row, e.message) for e in result.errors] == [
        (0, "The file has no rows of data under its column headers: nothing to import.")
    ]
    assert parquet_files(activity_dir) == []


def test_a_file_in_mixed_encodings_is_rejected_not_a_server_error(tmp_path: Path, activity_dir: Path) -> None:
    table = rows([visit()])
    path = tmp_path / "mixed.csv"
    path.write_bytes(",".join(table[0]).encode("utf-8") + b"\n" + ",".join(table[1]).encode("gb18030") + b"\n")
    with translation.override("en"):
        result = services.batch_import(user=user("office"), kind=Kind.VISITS, path=path, filename="mixed.csv")
    assert result.batch.status == BatchStatus.REJECTED
    assert result.errors[0].message.startswith("The file is neither UTF-8 nor GB18030 text throughout")
    assert parquet_files(activity_dir) == []


def test_an_unexpected_failure_lands_nothing_and_keeps_no_file_values_on_the_batch(
    tmp_path: Path, activity_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while writing (a full disk, a bug) leaves nothing in the store, and the batch
    records only the kind of error: the message might quote a value of the file."""

    def full_disk(**_kw: Any) -> Any:
        raise OSError("No space left on device while writing 330824195003071234")

    monkeypatch.setattr(store, "write_batch", full_disk)
    with pytest.raises(OSError, match="No space"):
        do_import(tmp_path, Kind.DISCHARGES, [discharge()])
    batch = ImportBatch.objects.get(filename="export.csv")
    assert batch.status == BatchStatus.FAILED
    assert batch.failure == "OSError"
    audited = AuditEvent.objects.order_by("-id").first()
    assert audited is not None
    assert audited.changes["status"] == "failed"
    assert "330824" not in str(audited.changes)
    assert parquet_files(activity_dir) == []
