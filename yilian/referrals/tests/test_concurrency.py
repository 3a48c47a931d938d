"""Two coordinators acting on one referral at the same moment: exactly one wins (the row lock),
the other is told the referral's new status with a 409."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from yilian.core.permissions import Role
from yilian.demo.seed import seed_demo
from yilian.patients import services as patient_services
from yilian.referrals import services
from yilian.referrals.models import Referral, ReferralEvent
from yilian.registry import services as registry_services
from yilian.registry.models import Institution, User


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
    barrier = threading.Barrier(len(clients))
    answers: list[tuple[int, dict[str, str]]] = []

    def accept(client: Client) -> None:
        try:
            barrier.wait()
            response = client.post(
                f"/api/v1/referrals/{referral.public_id}/actions/accept", {}, content_type="application/json"
            )
            answers.append((response.status_code, response.json()))
        except Exception as exc:  # pragma: no cover - the failure this test exists to catch
            answers.append((0, {"detail": repr(exc)}))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=accept, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answers.sort(key=lambda answer: answer[0])
    assert [status for status, _ in answers] == [200, 409], answers
    assert answers[0][1]["status"] == "accepted"
    assert answers[1][1]["status"] == "accepted"
    assert "not possible" in answers[1][1]["detail"]
    assert Referral.objects.get(pk=referral.pk).status == "accepted"
    assert ReferralEvent.objects.filter(referral=referral, action="accept").count() == 1
