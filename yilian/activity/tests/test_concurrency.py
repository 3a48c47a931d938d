"""Two imports of the same records landing at the same moment end with exactly one current
version of each record: the one of the batch that landed last (the higher seq)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pytest
from django.db import connection, connections, transaction

from yilian.activity import facts, services
from yilian.activity.columns import Kind, fact_schema
from yilian.activity.models import BatchStatus, ImportBatch, StoreLock


def _wait_for_lock_waiters(n: int, seconds: float = 30) -> bool:
    """True once ``n`` other sessions of this database wait on a lock."""
    deadline = time.monotonic() + seconds
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            row = cursor.fetchone()
            if row is not None and row[0] >= n:
                return True
            time.sleep(0.05)
    return False


def _visits(department: str, n: int = 50) -> pa.Table:
    return pa.table(
        {
            "institution_code": ["qzph"] * n,
            "visit_id": [f"MZ{i:03d}" for i in range(n)],
            "patient_key": ["p" * 64] * n,
            "department": [department] * n,
            "visit_date": [dt.date(2025, 3, 5)] * n,
            "setting": ["outpatient"] * n,
            "visit_type": ["first"] * n,
            "sex": ["male"] * n,
            "age": [50] * n,
            "residence_region": ["330802"] * n,
            "origin": ["same_county"] * n,
            "doctor": [None] * n,
        }
    ).cast(fact_schema(Kind.VISITS, with_batch_seq=False))


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_landings_of_the_same_records_leave_one_current_version(settings: Any, tmp_path: Path) -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "SQLite serialises every write transaction on the whole file, so there is no race to check; "
            "the row lock (SELECT ... FOR UPDATE) that serialises landings is checked on PostgreSQL"
        )
    settings.ACTIVITY_DIR = tmp_path / "activity"
    ImportBatch.objects.all().delete()  # the store starts empty (the database is emptied after the test)
    outcomes: dict[str, str] = {}

    def land(department: str) -> None:
        try:
            services.batch_land_table(user=None, kind=Kind.VISITS, table=_visits(department), filename=department)
            outcomes[department] = "landed"
        except Exception as exc:  # pragma: no cover - the failure this test exists to catch
            outcomes[department] = repr(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=land, args=(name,)) for name in ("A", "B")]
    # Hold the store lock so that both landings are under way and wait on it together.
    with transaction.atomic():
        lock, _ = StoreLock.objects.get_or_create(name="store")
        StoreLock.objects.select_for_update().get(pk=lock.pk)
        for thread in threads:
            thread.start()
        assert _wait_for_lock_waiters(2), "both landings should wait on the store lock"
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes == {"A": "landed", "B": "landed"}

    batches = list(ImportBatch.objects.filter(kind=Kind.VISITS).order_by("seq"))
    assert [b.status for b in batches] == [BatchStatus.LANDED, BatchStatus.LANDED]
    earlier, later = batches
    assert earlier.seq is not None and later.seq == earlier.seq + 1
    assert (earlier.rows_replaced, later.rows_replaced) == (0, 50)
    table = facts.current_facts(ibis.duckdb.connect(), Kind.VISITS)
    assert table is not None
    current = table.to_pyarrow().to_pylist()
    assert len(current) == 50
    assert {r["department"] for r in current} == {later.filename}
    assert {r["batch_seq"] for r in current} == {later.seq}
