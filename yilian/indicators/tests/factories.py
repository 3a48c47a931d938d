"""A small clinical-activity dataset whose indicator values are worked out by hand in the tests.

The facts land through the activity app's ``batch_land_table`` (the same path as an import), as
the demo system administrator. Institutions are those of the demo registry:

- khph (Kaihua County People's Hospital, 330824, general), kh-huabu (Huabu township health
  centre, 330824, primary care), kh-chengguan (330824, primary care, no data at all),
  qzph (Quzhou People's Hospital, 330802), zju2 (Hangzhou, 330102).
- Consortium kaihua-ccm = khph (lead) + kh-huabu + kh-chengguan.
  Consortium zju2-quzhou = zju2 (lead) + qzph + qz2ph + khph + zjus.

March 2025 at khph, stays S1-S4 (S5 is discharged in April):

    stay dept          operations (category, level, minimally invasive, robot)
    S1   neurosurgery  surgery L4 MI robot; surgery L3
    S2   neurosurgery  diagnostic (no level)
    S3   cardiology    interventional L3
    S4   neurosurgery  -
    S5   cardiology    surgery L2 (April)

March 2024 at khph: T1 (surgery L3 MI), T2 (no operation).

Visits, March 2025 (institution: origin / residence):
    khph:     V1 same_county 330824, V2 same_county 330824, V3 same_city 330802,
              V4 same_province 330102, V5 other_province 520502
    kh-huabu: V6 same_county 330824, V7 same_county 330824
    qzph:     V8 same_city 330824, V9 same_county 330802
    zju2:     V10 same_province 330824
March 2024: khph W1 same_county 330824.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from yilian.activity.columns import Kind, fact_schema
from yilian.registry.models import User

D = dt.date


def _table(kind: Kind, rows: list[dict[str, Any]]) -> pa.Table:
    schema = fact_schema(kind, with_batch_seq=False)
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.table(columns, schema=schema)


def land(kind: Kind, rows: list[dict[str, Any]], *, filename: str = "test.csv") -> Any:
    from yilian.activity.services import batch_land_table

    return batch_land_table(
        user=User.objects.get(username="admin"), kind=kind, table=_table(kind, rows), filename=filename
    )


def withdraw_all() -> None:
    """Withdraw every landed batch (the demo seed lands two years of activity), through the service."""
    from yilian.activity.models import BatchStatus, ImportBatch
    from yilian.activity.services import batch_withdraw

    admin = User.objects.get(username="admin")
    for batch in ImportBatch.objects.filter(status=BatchStatus.LANDED):
        batch_withdraw(user=admin, batch=batch, reason="test: only the hand-computed dataset counts")


def stay(
    institution: str, record: str, discharged: dt.date, *, department: str = "神经外科", **fields: Any
) -> dict[str, Any]:
    return {
        "institution_code": institution,
        "record_id": record,
        "patient_key": f"pk-{record}",
        "department": department,
        "admission_date": discharged - dt.timedelta(days=5),
        "discharge_date": discharged,
        "sex": "male",
        "age": 60,
        "residence_region": "330824",
        "origin": "same_county",
        "length_of_stay": 5,
        **fields,
    }


def operation(
    institution: str,
    record: str,
    discharged: dt.date,
    seq: int,
    *,
    category: str = "surgery",
    level: int | None = None,
    mi: bool = False,
    robot: bool = False,
    department: str = "神经外科",
) -> dict[str, Any]:
    return {
        "institution_code": institution,
        "record_id": record,
        "department": department,
        "discharge_date": discharged,
        "operation_date": discharged - dt.timedelta(days=2),
        "operation_seq": seq,
        "is_main": seq == 1,
        "operation_code": f"OP{record}{seq}",
        "operation_name": "手术",
        "operation_level": level,
        "category": category,
        "minimally_invasive": mi,
        "robot_assisted": robot,
    }


def visit(
    institution: str, visit_id: str, day: dt.date, origin: str, residence: str | None, **fields: Any
) -> dict[str, Any]:
    return {
        "institution_code": institution,
        "visit_id": visit_id,
        "patient_key": f"pk-{visit_id}",
        "department": fields.pop("department", "神经内科"),
        "visit_date": day,
        "setting": "outpatient",
        "visit_type": "first",
        "sex": "female",
        "age": 50,
        "residence_region": residence,
        "origin": origin,
        **fields,
    }


MAR25 = D(2025, 3, 15)
MAR24 = D(2024, 3, 15)


def discharges_rows() -> list[dict[str, Any]]:
    return [
        stay("khph", "S1", D(2025, 3, 5)),
        stay("khph", "S2", D(2025, 3, 10)),
        stay("khph", "S3", D(2025, 3, 20), department="心内科"),
        stay("khph", "S4", D(2025, 3, 25)),
        stay("khph", "S5", D(2025, 4, 2), department="心内科"),
        stay("khph", "T1", D(2024, 3, 8)),
        stay("khph", "T2", D(2024, 3, 18)),
    ]


def operations_rows() -> list[dict[str, Any]]:
    return [
        operation("khph", "S1", D(2025, 3, 5), 1, level=4, mi=True, robot=True),
        operation("khph", "S1", D(2025, 3, 5), 2, level=3),
        operation("khph", "S2", D(2025, 3, 10), 1, category="diagnostic"),
        operation("khph", "S3", D(2025, 3, 20), 1, category="interventional", level=3, department="心内科"),
        operation("khph", "S5", D(2025, 4, 2), 1, level=2, department="心内科"),
        operation("khph", "T1", D(2024, 3, 8), 1, level=3, mi=True),
    ]


def visits_rows() -> list[dict[str, Any]]:
    return [
        visit("khph", "V1", MAR25, "same_county", "330824"),
        visit("khph", "V2", MAR25, "same_county", "330824"),
        visit("khph", "V3", MAR25, "same_city", "330802"),
        visit("khph", "V4", MAR25, "same_province", "330102"),
        visit("khph", "V5", MAR25, "other_province", "520502"),
        visit("kh-huabu", "V6", MAR25, "same_county", "330824"),
        visit("kh-huabu", "V7", MAR25, "same_county", "330824"),
        visit("qzph", "V8", MAR25, "same_city", "330824"),
        visit("qzph", "V9", MAR25, "same_county", "330802"),
        visit("zju2", "V10", MAR25, "same_province", "330824"),
        visit("khph", "W1", MAR24, "same_county", "330824"),
    ]


def land_dataset() -> None:
    land(Kind.DISCHARGES, discharges_rows(), filename="discharges.csv")
    land(Kind.OPERATIONS, operations_rows(), filename="operations.csv")
    land(Kind.VISITS, visits_rows(), filename="visits.csv")
