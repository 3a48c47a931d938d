"""Reading the store: current versions across batches, withdrawal, coverage, store version,
and the same answer on the PySpark backend."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pytest

from yilian.activity import facts, services
from yilian.activity.columns import Kind, fact_schema
from yilian.activity.models import ImportBatch

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def activity_dir(settings: Any, tmp_path: Path) -> Path:
    ImportBatch.objects.all().delete()  # batches the demo seed landed elsewhere
    settings.ACTIVITY_DIR = tmp_path / "activity"
    return Path(settings.ACTIVITY_DIR)


def visits(*records: tuple[str, str, str]) -> pa.Table:
    """(institution, visit id, department) -> a visit fact table dated 2025-03-05."""
    n = len(records)
    return pa.table(
        {
            "institution_code": [r[0] for r in records],
            "visit_id": [r[1] for r in records],
            "patient_key": ["p" * 64] * n,
            "department": [r[2] for r in records],
            "visit_date": [dt.date(2025, 3, 5)] * n,
            "setting": ["outpatient"] * n,
            "visit_type": ["first"] * n,
            "sex": ["female"] * n,
            "age": [40] * n,
            "residence_region": ["330824"] * n,
            "origin": ["same_city"] * n,
            "doctor": [None] * n,
        }
    ).cast(fact_schema(Kind.VISITS, with_batch_seq=False))


def land(*records: tuple[str, str, str]) -> ImportBatch:
    return services.batch_land_table(user=None, kind=Kind.VISITS, table=visits(*records), filename="t")


def current(con: Any) -> list[tuple[str, str, str]]:
    table = facts.current_facts(con, Kind.VISITS)
    assert table is not None
    result = table.to_pyarrow().to_pylist()
    return sorted((r["institution_code"], r["visit_id"], r["department"]) for r in result)


def withdraw(batch: ImportBatch) -> None:
    from yilian.registry.models import User

    services.batch_withdraw(user=User.objects.get(username="admin"), batch=batch, reason="test")


def test_nothing_landed_gives_none() -> None:
    assert facts.current_facts(ibis.duckdb.connect(), Kind.VISITS) is None


def test_the_newest_active_version_of_each_record_is_current() -> None:
    first = land(("qzph", "1", "a"), ("qzph", "2", "a"), ("khph", "1", "a"))
    second = land(("qzph", "2", "b"), ("qzph", "3", "b"))
    third = land(("qzph", "2", "c"), ("khph", "1", "c"))
    assert (first.rows_replaced, second.rows_replaced, third.rows_replaced) == (0, 1, 2)
    con = ibis.duckdb.connect()
    assert current(con) == [("khph", "1", "c"), ("qzph", "1", "a"), ("qzph", "2", "c"), ("qzph", "3", "b")]
    # Withdrawing the newest brings back the version of the next newest active batch.
    withdraw(third)
    assert current(con) == [("khph", "1", "a"), ("qzph", "1", "a"), ("qzph", "2", "b"), ("qzph", "3", "b")]
    # ... and withdrawing that one too brings back the first.
    withdraw(second)
    assert current(con) == [("khph", "1", "a"), ("qzph", "1", "a"), ("qzph", "2", "a")]


def test_withdrawing_a_middle_batch_keeps_the_newest_version() -> None:
    land(("qzph", "1", "a"))
    second = land(("qzph", "1", "b"))
    land(("qzph", "1", "c"))
    withdraw(second)
    assert current(ibis.duckdb.connect()) == [("qzph", "1", "c")]


def test_current_facts_has_the_exact_fact_columns() -> None:
    land(("qzph", "1", "a"))
    land(("qzph", "1", "b"))
    table = facts.current_facts(ibis.duckdb.connect(), Kind.VISITS)
    assert table is not None
    assert table.columns == tuple(fact_schema(Kind.VISITS).names)


def test_store_files_are_sorted_by_institution_then_date(activity_dir: Path) -> None:
    import pyarrow.parquet as pq

    table = visits(("qzph", "1", "a"), ("khph", "2", "a"), ("bjfph", "3", "a"))
    dates = [dt.date(2025, 3, 9), dt.date(2025, 3, 2), dt.date(2025, 3, 1)]
    table = table.set_column(4, pa.field("visit_date", pa.date32(), nullable=False), pa.array(dates, pa.date32()))
    table = pa.concat_tables([table, visits(("khph", "4", "a"))])
    batch = services.batch_land_table(user=None, kind=Kind.VISITS, table=table, filename="t")
    stored = pq.read_table(activity_dir / "visits" / f"batch={batch.seq}" / "part-0.parquet")
    assert stored.schema.remove_metadata() == fact_schema(Kind.VISITS)
    assert list(
        zip(stored.column("institution_code").to_pylist(), stored.column("visit_id").to_pylist(), strict=True)
    ) == [
        ("bjfph", "3"),
        ("khph", "2"),
        ("khph", "4"),
        ("qzph", "1"),
    ]


def test_coverage_lists_the_months_of_active_batches() -> None:
    land(("qzph", "1", "a"))
    batch = land(("khph", "1", "a"))
    assert facts.coverage(Kind.VISITS) == {"qzph": {(2025, 3)}, "khph": {(2025, 3)}}
    withdraw(batch)
    assert facts.coverage(Kind.VISITS) == {"qzph": {(2025, 3)}}
    assert facts.coverage(Kind.DISCHARGES) == {}


@pytest.mark.skipif(
    shutil.which("java") is None, reason="PySpark needs Java (apt-get install -y openjdk-17-jre-headless)"
)
def test_pyspark_backend_gives_the_same_current_facts() -> None:
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    land(("qzph", "1", "a"), ("qzph", "2", "a"))
    second = land(("qzph", "2", "b"))
    session = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark = ibis.pyspark.connect(session)
    assert current(spark) == current(ibis.duckdb.connect()) == [("qzph", "1", "a"), ("qzph", "2", "b")]
    withdraw(second)
    assert current(spark) == [("qzph", "1", "a"), ("qzph", "2", "a")]
