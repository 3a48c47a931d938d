"""Creating a referral with an ``Idempotency-Key``: a retried request returns the first result
and creates nothing; the same key for a different request is refused."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client

from yilian.core.permissions import Role
from yilian.demo.seed import seed_demo
from yilian.patients.models import Patient
from yilian.referrals.models import Referral
from yilian.referrals.tests.test_api import create, referral_body
from yilian.registry import services as registry_services
from yilian.registry.models import Institution, User


@pytest.fixture
def doctor() -> Client:
    _, key = registry_services.api_token_create(actor=None, user=User.objects.get(username="doctor"))
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE="en")


def unidentified_body() -> dict[str, Any]:
    # No ID number: registering the patient again would make a second record, so a retry must not.
    return referral_body(patient={"name": "无名氏", "sex": "male", "approximate_age": 70})


@pytest.mark.django_db
def test_a_retry_with_the_same_key_returns_the_first_referral_and_creates_nothing(doctor: Client) -> None:
    body = unidentified_body()
    referrals, patients = Referral.objects.count(), Patient.objects.count()
    first = create(doctor, body, key="csph-2026-0001")
    retry = create(doctor, body, key="csph-2026-0001")
    assert first.status_code == 201, first.content
    assert retry.status_code == 200
    assert retry.json()["id"] == first.json()["id"] and retry.json()["number"] == first.json()["number"]
    assert retry.json()["status"] == "sent"
    assert Referral.objects.count() == referrals + 1
    assert Patient.objects.count() == patients + 1


@pytest.mark.django_db
def test_without_a_key_each_request_creates_a_referral(doctor: Client) -> None:
    body = unidentified_body()
    referrals = Referral.objects.count()
    assert create(doctor, body).status_code == 201
    assert create(doctor, body).status_code == 201
    assert Referral.objects.count() == referrals + 2


@pytest.mark.django_db
def test_the_same_key_with_a_different_body_is_refused_with_422(doctor: Client) -> None:
    body = unidentified_body()
    assert create(doctor, body, key="k-42").status_code == 201
    referrals, patients = Referral.objects.count(), Patient.objects.count()
    changed = create(doctor, {**body, "urgency": "routine"}, key="k-42")
    assert changed.status_code == 422
    message = "This Idempotency-Key was already used for a different request."
    assert changed.json() == {"detail": message, "errors": {"Idempotency-Key": [message]}}
    assert (Referral.objects.count(), Patient.objects.count()) == (referrals, patients)


@pytest.mark.django_db
def test_a_refused_first_request_leaves_the_key_free(doctor: Client) -> None:
    body = unidentified_body()
    refused = create(doctor, {**body, "consent": None}, key="k-7")
    assert refused.status_code == 400
    assert create(doctor, body, key="k-7").status_code == 201


@pytest.mark.django_db
def test_keys_belong_to_one_user(doctor: Client) -> None:
    body = unidentified_body()
    first = create(doctor, body, key="shared")
    colleague = registry_services.user_create(actor=None, username="doctor-csph-2", password="Stroke-shift-2026!")
    registry_services.membership_grant(
        actor=None, user=colleague, role=Role.DOCTOR, institution=Institution.objects.get(code="csph")
    )
    _, key = registry_services.api_token_create(actor=None, user=colleague)
    other = create(Client(HTTP_AUTHORIZATION=f"Bearer {key}"), body, key="shared")
    assert other.status_code == 201, other.content
    assert other.json()["id"] != first.json()["id"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("identified", [True, False], ids=["new-identified-patient", "unidentified-patient"])
def test_concurrent_retries_with_one_key_make_one_referral(identified: bool) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite lets one writer at a time into the whole file; concurrent creates need PostgreSQL")
    seed_demo()  # transactional tests start from an emptied database
    doctor = User.objects.get(username="doctor")
    body = referral_body() if identified else unidentified_body()
    referrals, patients = Referral.objects.count(), Patient.objects.count()
    barrier = threading.Barrier(4)
    answers: list[tuple[int, str]] = []

    def post() -> None:
        try:
            _, key = registry_services.api_token_create(actor=None, user=doctor)
            client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE="en")
            barrier.wait()
            response = create(client, body, key="ambulance-retry")
            answers.append((response.status_code, response.json().get("id", response.content.decode())))
        except Exception as exc:  # pragma: no cover - the failure this test exists to catch
            answers.append((0, repr(exc)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(status for status, _ in answers) == [200, 200, 200, 201], answers
    assert len({rid for _, rid in answers}) == 1
    assert Referral.objects.count() == referrals + 1
    assert Patient.objects.count() == patients + 1
