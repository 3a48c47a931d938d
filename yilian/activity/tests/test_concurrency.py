"""Two imports of the same records landing at the same moment end with exactly one current
version of each record: the one of the batch that landed last (the higher seq)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
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


def _race(action: Callable[[str], str], names: tuple[str, str]) -> dict[str, str]:
    """Run ``action(name)`` for both names in two threads that start while the store lock is held,
    so that both are under way and wait on it together; name -> what it returned (or the error)."""
    outcomes: dict[str, str] = {}

    def run(name: str) -> None:
        try:
            outcomes[name] = action(name)
        except Exception as exc:  # pragma: no cover - the failure these tests exist to catch
            outcomes[name] = repr(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(name,)) for name in names]
    with transaction.atomic():
        lock, _ = StoreLock.objects.get_or_create(name="store")
        StoreLock.objects.select_for_update().get(pk=lock.pk)
        for thread in threads:
            thread.start()
        assert _wait_for_lock_waiters(2), "both should wait on the store lock"
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


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

    def land(department: str) -> str:
        services.batch_land_table(user=None, kind=Kind.VISITS, table=_visits(department), filename=department)
        return "landed"

    outcomes = _race(land, ("A", "B"))
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


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_withdrawals_of_one_batch_have_one_winner(settings: Any, tmp_path: Path) -> None:
    """Two people withdraw the same batch at the same moment: one withdrawal is recorded (one
    audit row), the other is told the batch is withdrawn already (a conflict, 409 through the API)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises every write transaction on the whole file: no race to check")
    from yilian.core.errors import Conflict
    from yilian.core.models import AuditEvent
    from yilian.core.permissions import Role
    from yilian.registry import services as registry

    settings.ACTIVITY_DIR = tmp_path / "activity"
    ImportBatch.objects.all().delete()
    batch = services.batch_land_table(user=None, kind=Kind.VISITS, table=_visits("A"), filename="A")
    # A database emptied by an earlier transactional test has no demo data: make what is needed.
    from yilian.registry.models import Institution, Region

    region, _created = Region.objects.get_or_create(code="330802", defaults={"name_zh": "柯城区", "level": "county"})
    Institution.objects.get_or_create(
        code="qzph", defaults={"name_zh": "衢州市人民医院", "grade": "3A", "type": "general", "region": region}
    )
    admin = registry.user_create(actor=None, username="withdrawer", password="not-a-demo-password-1", display_name="W")
    registry.membership_grant(actor=None, user=admin, role=Role.SYSTEM_ADMIN)

    def withdraw(reason: str) -> str:
        try:
            services.batch_withdraw(user=admin, batch=batch, reason=reason)
        except Conflict:
            return "conflict"
        return "withdrawn"

    outcomes = _race(withdraw, ("first", "second"))
    assert sorted(outcomes.values()) == ["conflict", "withdrawn"]
    batch.refresh_from_db()
    assert batch.status == BatchStatus.WITHDRAWN
    assert batch.withdrawal_reason == next(r for r, o in outcomes.items() if o == "withdrawn")
    events = AuditEvent.objects.filter(object_id=str(batch.public_id), changes__event="activity.batch_withdraw")
    assert events.count() == 1
