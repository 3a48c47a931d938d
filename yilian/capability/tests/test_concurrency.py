"""Two phones redeeming the same sign-in code at the same moment: exactly one attendee is signed in,
the other is told the code was used (a 409)."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from yilian.capability import services
from yilian.capability.models import SignInCode, TeachingAttendance, TeachingKind
from yilian.core.errors import Conflict
from yilian.core.permissions import Role
from yilian.demo.seed import seed_demo
from yilian.dispatch.tests.factories import expert_create, hospital_admin, practitioner_create, user_with_role
from yilian.registry.models import Institution, User


def _wait_for_lock_waiters(n: int, seconds: float = 15) -> bool:
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


@pytest.mark.django_db(transaction=True)
def test_two_attendees_redeeming_one_code_at_once_make_one_sign_in_and_one_409() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite locks the whole file, not rows; the row lock is what this test checks, on PostgreSQL")
    seed_demo()  # transactional tests start from an emptied database
    organiser = hospital_admin("qzph")
    start = timezone.now() - dt.timedelta(minutes=5)
    activity = services.teaching_create(
        actor=organiser,
        kind=TeachingKind.LECTURE,
        topic="并发签到",
        starts_at=start,
        ends_at=start + dt.timedelta(hours=1),
        leader=expert_create(),
        institutions=[Institution.objects.get(code="qzph")],
    )
    names = []
    for _ in range(2):
        account = user_with_role(Role.DOCTOR, institution_code="qzph")
        practitioner_create(institution_code="qzph", account=account)
        names.append(account.username)
    code, row = services.sign_in_code_issue(actor=organiser, activity=activity)
    outcomes: dict[str, str] = {}

    def redeem(username: str) -> None:
        try:
            services.sign_in_redeem(actor=User.objects.get(username=username), activity=activity, code=code)
            outcomes[username] = "signed in"
        except Conflict:
            outcomes[username] = "409"
        except Exception as exc:  # pragma: no cover - the failure this test exists to catch
            outcomes[username] = repr(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=redeem, args=(name,)) for name in names]
    with transaction.atomic():
        SignInCode.objects.select_for_update().get(pk=row.pk)
        for t in threads:
            t.start()
        assert _wait_for_lock_waiters(2), "both redemptions should wait on the code's row lock"
    for t in threads:
        t.join()
    assert sorted(outcomes.values()) == ["409", "signed in"], outcomes
    assert TeachingAttendance.objects.filter(activity=activity).count() == 1
