"""The audit trail: one row per write in the write's transaction, a hash chain that shows
any alteration or removal, and no way to change rows through the ORM."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from yilian.cli import main as cli_main
from yilian.core.audit import GENESIS, audit_record, audit_verify
from yilian.core.models import AuditAction, AuditEvent
from yilian.registry import services
from yilian.registry.models import Region, RegionLevel

pytestmark = pytest.mark.django_db


def _new_region(code: str = "330899") -> Region:
    return services.region_create(
        actor=None,
        code=code,
        name_zh="测试区",
        name_en="Test District",
        level=RegionLevel.COUNTY,
        parent=Region.objects.get(code="330800"),
    )


def test_a_service_write_appends_one_linked_row() -> None:
    last = AuditEvent.objects.order_by("-id").first()
    region = _new_region()
    event = AuditEvent.objects.order_by("-id").first()
    assert event is not None and event.pk != (last.pk if last else None)
    assert event.action == AuditAction.CREATE
    assert event.object_type == "registry.region"
    assert event.object_id == str(region.pk)
    assert event.prev_hash == (last.row_hash if last else GENESIS)
    assert audit_verify().ok


def test_a_failed_write_leaves_no_audit_row() -> None:
    before = AuditEvent.objects.count()
    with pytest.raises(Exception, match="code"):
        _new_region(code="330800")  # duplicate code: validation fails inside the transaction
    assert AuditEvent.objects.count() == before


def test_rolled_back_transaction_takes_its_audit_row_with_it() -> None:
    before = AuditEvent.objects.count()

    def write_then_fail() -> None:
        with transaction.atomic():
            _new_region()
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert AuditEvent.objects.count() == before
    assert not Region.objects.filter(code="330899").exists()


def test_rows_cannot_be_changed_or_deleted_through_the_orm() -> None:
    event = audit_record(actor=None, action=AuditAction.EXPORT, object_type="test", object_id="1")
    event.object_repr = "changed"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(object_repr="changed")
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).delete()


def test_verify_names_the_row_altered_with_raw_sql() -> None:
    _new_region()
    target = AuditEvent.objects.order_by("id")[3]
    assert audit_verify().ok
    with connection.cursor() as cursor:
        cursor.execute("UPDATE core_auditevent SET object_repr = %s WHERE id = %s", ["forged", target.pk])
    result = audit_verify()
    assert not result.ok
    assert result.broken_id == target.pk
    assert "altered" in result.reason


def test_verify_names_the_row_after_one_removed_with_raw_sql() -> None:
    rows = list(AuditEvent.objects.order_by("id").values_list("id", flat=True)[:6])
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM core_auditevent WHERE id = %s", [rows[2]])
    result = audit_verify()
    assert result.broken_id == rows[3]
    assert "removed" in result.reason


def test_cli_audit_verify_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["audit", "verify"]) == 0
    assert "intact" in capsys.readouterr().out
    first = AuditEvent.objects.order_by("id").first()
    assert first is not None
    with connection.cursor() as cursor:
        cursor.execute("UPDATE core_auditevent SET actor_label = %s WHERE id = %s", ["mallory", first.pk])
    assert cli_main(["audit", "verify"]) == 1
    assert f"row {first.pk}" in capsys.readouterr().err


def test_changes_are_stored_exactly_as_hashed() -> None:
    import datetime as dt
    from decimal import Decimal

    event = audit_record(
        actor=None,
        action=AuditAction.UPDATE,
        object_type="test",
        changes={"when": dt.date(2018, 5, 1), "amount": Decimal("1.50"), "名称": "衢州"},
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.changes == {"when": "2018-05-01", "amount": "1.50", "名称": "衢州"}
    assert audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_a_single_unbroken_chain() -> None:
    """Eight threads append at once; the chain must not fork (no two rows share a prev_hash)."""
    import threading

    from django.db import connections

    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(5):
                audit_record(actor=None, action=AuditAction.EXPORT, object_type="thread", object_id=f"{n}-{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert AuditEvent.objects.filter(object_type="thread").count() == 40
    prevs = list(AuditEvent.objects.values_list("prev_hash", flat=True))
    assert len(prevs) == len(set(prevs))
    assert audit_verify().ok


def test_reads_of_identifying_data_are_recorded_with_field_names_only(persona) -> None:
    from yilian.core.audit import audit_pii_read
    from yilian.registry.models import Practitioner

    practitioner = Practitioner.objects.get(user__username="expert")
    event = audit_pii_read(
        actor=persona("hospadmin"), obj=practitioner, fields=["licence_number"], purpose="credentialing"
    )
    assert event.action == AuditAction.READ_PII
    assert event.changes == {"fields": ["licence_number"], "purpose": "credentialing"}
    assert practitioner.licence_number not in str(event.changes)
    assert audit_verify().ok
    with pytest.raises(ValueError, match="fields"):
        audit_pii_read(actor=persona("hospadmin"), obj=practitioner, fields=[])
