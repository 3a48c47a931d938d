"""Two coordinators acting on one referral at the same moment: exactly one wins (the row lock),
the other is told the referral's new status with a 409."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.utils import timezone

from yilian.core.permissions import Role
from yilian.demo.seed import seed_demo
from yilian.patients import services as patient_services
from yilian.referrals import services
from yilian.referrals.models import Referral, ReferralEvent
from yilian.registry import services as registry_services
from yilian.registry.models import Institution, User


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


def _received_referral() -> Referral:
    doctor = User.objects.get(username="doctor")
    csph, qzph = Institution.objects.get(code="csph"), Institution.objects.get(code="qzph")
    patient = patient_services.patient_register(actor=doctor, institution=csph, name="徐卫东", sex="male")
    referral, _ = services.referral_create(
        actor=doctor,
        patient=patient,
        direction="up",
        urgency="urgent",
        from_institution=csph,
        to_institution=qzph,
        reason="大血管闭塞，需取栓",
        requested_service="procedure",
        diagnosis_code="I63.9",
        diagnosis_name="脑梗死",
        consent=services.Consent("王建国", "written", timezone.now()),
        send=True,
    )
    return services.referral_receive(actor=User.objects.get(username="coordinator"), referral=referral)


@pytest.mark.django_db(transaction=True)
def test_two_coordinators_accepting_at_once_make_one_winner_and_one_409() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite locks the whole file, not rows; the row lock is what this test checks, on PostgreSQL")
    seed_demo()  # transactional tests start from an emptied database
    second = registry_services.user_create(
        actor=None, username="coordinator2", password="Night-shift-2026!", display_name="钱晓东"
    )
    registry_services.membership_grant(
        actor=None, user=second, role=Role.ONCALL_COORDINATOR, institution=Institution.objects.get(code="qzph")
    )
    referral = _received_referral()
    clients = []
    for username in ("coordinator", "coordinator2"):
        _, key = registry_services.api_token_create(actor=None, user=User.objects.get(username=username))
        clients.append(Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE="en"))
    answers: list[tuple[int, dict[str, str]]] = []

    def accept(client: Client) -> None:
        try:
            response = client.post(
                f"/api/v1/referrals/{referral.public_id}/actions/accept", {}, content_type="application/json"
            )
            answers.append((response.status_code, response.json()))
        except Exception as exc:  # pragma: no cover - the failure this test exists to catch
            answers.append((0, {"detail": repr(exc)}))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=accept, args=(c,)) for c in clients]
    # Hold the referral's row ourselves, so that both requests are certain to arrive while the
    # other is still undecided: each must wait on the row lock (a request that did not lock the
    # row would not wait, and this would fail), then they go one after the other.
    with transaction.atomic():
        Referral.objects.select_for_update().get(pk=referral.pk)
        for t in threads:
            t.start()
        assert _wait_for_lock_waiters(2), "both requests should wait on the referral's row lock"
    for t in threads:
        t.join()
    answers.sort(key=lambda answer: answer[0])
    assert [status for status, _ in answers] == [200, 409], answers
    assert answers[0][1]["status"] == "accepted"
    assert answers[1][1]["status"] == "accepted"
    assert "not possible" in answers[1][1]["detail"]
    assert Referral.objects.get(pk=referral.pk).status == "accepted"
    assert ReferralEvent.objects.filter(referral=referral, action="accept").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_registrations_of_one_new_id_number_make_one_patient() -> None:
    """The second hospital registers the same new patient while the first one's insert is not yet
    committed: it waits on the unique index, then finds and returns the first record."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite lets one writer at a time into the whole file; the race needs PostgreSQL")
    seed_demo()
    from yilian.patients.models import Patient
    from yilian.referrals.tests.factories import next_id_number

    number = next_id_number()
    csph, qzph = Institution.objects.get(code="csph"), Institution.objects.get(code="qzph")
    inserted, release = threading.Event(), threading.Event()
    found: list[Patient | Exception] = []

    def first_hospital() -> None:
        try:
            with transaction.atomic():
                patient_services.patient_register(
                    actor=User.objects.get(username="doctor"), institution=csph, name="徐卫东", id_number=number
                )
                inserted.set()
                release.wait(15)
        finally:
            connections.close_all()

    def second_hospital() -> None:
        try:
            found.append(
                patient_services.patient_register(
                    actor=User.objects.get(username="coordinator"),
                    institution=qzph,
                    name="徐卫东",
                    id_number=number,
                    phone="13905701234",
                )
            )
        except Exception as exc:  # pragma: no cover - the failure this test exists to catch
            found.append(exc)
        finally:
            connections.close_all()

    a = threading.Thread(target=first_hospital)
    a.start()
    assert inserted.wait(15)
    b = threading.Thread(target=second_hospital)
    b.start()
    assert _wait_for_lock_waiters(1), "the second registration should wait on the first one's insert"
    release.set()
    a.join()
    b.join()
    assert Patient.objects.filter(id_number=number).count() == 1
    (result,) = found
    assert isinstance(result, Patient), result
    stored = Patient.objects.get(id_number=number)
    assert result.pk == stored.pk and stored.registered_by_id == csph.pk
    assert stored.phone == "13905701234"  # the second hospital's phone filled the empty field
