"""Two requests recording the same day at the same moment: exactly one row is written (the unique
constraint on assignment and day), the other request hears a 409.

The race is made certain rather than hoped for: the first request is held after inserting its
row, before committing (inside the audit write of its transaction); the second starts then, passes
the "already recorded?" check (it cannot see the uncommitted row) and waits on the first one's
insert; only then is the first released.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import translation

from yilian.core.audit import audit_record
from yilian.core.errors import Conflict
from yilian.core.models import AuditEvent
from yilian.demo.seed import seed_demo
from yilian.dispatch import services
from yilian.dispatch.models import Assignment, Attendance, AttendanceStatus
from yilian.dispatch.tests import factories
from yilian.dispatch.tests.factories import at
from yilian.registry.models import User

P_START = dt.date(2026, 9, 1)
P_END = dt.date(2027, 2, 28)
DAY = dt.date(2026, 10, 13)  # a Tuesday in the past


def _wait_for_lock_waiters(n: int, seconds: float = 15) -> bool:
    """True once ``n`` other sessions of this database wait on a lock."""
    deadline = time.monotonic() + seconds
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees one snapshot
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            row = cursor.fetchone()
            if row is not None and row[0] >= n:
                return True
            time.sleep(0.05)
    return False


def _postgresql_with_demo() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite lets one writer at a time into the whole file; the race needs PostgreSQL")
    seed_demo()  # transactional tests start from an emptied database


def _assignment() -> Assignment:
    programme = factories.programme_create(starts_on=P_START, ends_on=P_END)
    return factories.assignment_create(programme, factories.expert_create(name_zh="吕明轩"))


def _hold_first_attendance(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make the first attendance written wait, row inserted and uncommitted, until released."""
    inserted, release = threading.Event(), threading.Event()

    def audit_then_wait(**kwargs: Any) -> AuditEvent:
        if isinstance(kwargs.get("obj"), Attendance) and not inserted.is_set():
            inserted.set()
            assert release.wait(15), "the test never released the first request"
        return audit_record(**kwargs)

    monkeypatch.setattr("yilian.dispatch.services.audit_record", audit_then_wait)
    return inserted, release


def _race(first: Any, second: Any, inserted: threading.Event, release: threading.Event) -> list[object]:
    """Run ``first`` until it has inserted its row, then ``second`` until it waits on that row,
    then let both finish; the results (or errors) in the order they finished."""
    results: list[object] = []

    def run(call: Any) -> None:
        try:
            with translation.override("en"):
                results.append(call())
        except Exception as exc:  # the Conflict is one of the two expected outcomes
            results.append(exc)
        finally:
            connections.close_all()

    a = threading.Thread(target=run, args=(first,))
    b = threading.Thread(target=run, args=(second,))
    a.start()
    try:
        assert inserted.wait(15), "the first request should reach its audit row"
        b.start()
        assert _wait_for_lock_waiters(1), "the second request should wait on the first one's row"
    finally:
        release.set()
    a.join()
    if b.ident is not None:  # started
        b.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_two_check_ins_at_the_same_moment_make_one_attendance_and_one_conflict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The expert taps "check in" twice (two phones, a double tap on a slow network)."""
    _postgresql_with_demo()
    assignment = _assignment()
    account_id = factories.account_of(assignment.practitioner).pk
    inserted, release = _hold_first_attendance(monkeypatch)

    def check_in() -> Attendance:
        return services.attendance_check_in(
            actor=User.objects.get(pk=account_id),
            assignment=Assignment.objects.select_related("programme__host_institution").get(pk=assignment.pk),
            now=at(DAY, 8, 0),
        )

    results = _race(check_in, check_in, inserted, release)
    attendances = [r for r in results if isinstance(r, Attendance)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(attendances) == 1 and len(conflicts) == 1, results
    assert str(conflicts[0]) == "Already checked in today at 08:00."
    (stored,) = Attendance.objects.filter(assignment=assignment)
    assert (stored.pk, stored.date, stored.status) == (attendances[0].pk, DAY, AttendanceStatus.CHECKED_IN)
    assert AuditEvent.objects.filter(object_type="dispatch.attendance").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_host_admins_confirming_one_day_make_one_row(monkeypatch: pytest.MonkeyPatch) -> None:
    _postgresql_with_demo()
    assignment = _assignment()
    admins = [factories.hospital_admin("qzph").pk, factories.hospital_admin("qzph").pk]
    inserted, release = _hold_first_attendance(monkeypatch)

    def confirm_as(admin_id: int) -> Any:
        def confirm() -> Attendance:
            return services.attendance_confirm(
                actor=User.objects.get(pk=admin_id),
                assignment=Assignment.objects.select_related("programme").get(pk=assignment.pk),
                date=DAY,
            )

        return confirm

    results = _race(confirm_as(admins[0]), confirm_as(admins[1]), inserted, release)
    attendances = [r for r in results if isinstance(r, Attendance)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(attendances) == 1 and len(conflicts) == 1, results
    assert "at the same moment" in str(conflicts[0])
    (stored,) = Attendance.objects.filter(assignment=assignment)
    assert (stored.status, stored.recorded_by_id) == (AttendanceStatus.CONFIRMED, admins[0])
    assert AuditEvent.objects.filter(object_type="dispatch.attendance").count() == 1
