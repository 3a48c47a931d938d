"""Property-based test of the whole API from its OpenAPI description: whatever a client
sends, the answer is never a 500, its status is one the description declares, and its
body matches the declared schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings

from yilian.patients import services as patient_services
from yilian.referrals import services as referral_services
from yilian.referrals.models import Referral
from yilian.registry import services
from yilian.registry.models import Institution

# Reading the description needs no database: the app builds it from its routes.
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
referral_operations = schema.include(path_regex=r"^/api/v1/(referrals|patients|notifications)")


@pytest.fixture
def keep_connection() -> Iterator[None]:
    # Like Django's test client: keep the test's connection (and its transaction) open
    # across requests instead of closing it when each request finishes.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def office_token(persona: Any, keep_connection: None) -> str:
    _, key = services.api_token_create(actor=None, user=persona("office"))
    return key


@pytest.fixture
def doctor_token(persona: Any, keep_connection: None) -> str:
    _, key = services.api_token_create(actor=None, user=persona("doctor"))
    return key


@pytest.fixture
def real_referral(persona: Any) -> Referral:
    """A sent referral of the doctor's, so that generated requests reach past the 404."""
    doctor = persona("doctor")
    csph = Institution.objects.get(code="csph")
    patient = patient_services.patient_register(actor=doctor, institution=csph, name="无名氏", approximate_age=60)
    referral, _ = referral_services.referral_create(
        actor=doctor,
        patient=patient,
        direction="up",
        from_institution=csph,
        to_institution=Institution.objects.get(code="qzph"),
        reason="卒中上转",
        requested_service="admission",
        diagnosis_code="I63.9",
        diagnosis_name="脑梗死",
        consent=referral_services.Consent("王建国", "written", timezone.now()),
        send=True,
    )
    return referral


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_answers_within_its_contract(case: Any, office_token: str) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {office_token}", "Accept-Language": "en"},
        # A schema-valid request may still break a business rule (an unknown region code, a
        # duplicate institution code): that is a 400 with a message, not a contract breach.
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )


@pytest.mark.django_db
@referral_operations.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_referral_api_on_a_real_referral_answers_within_its_contract(
    case: Any, doctor_token: str, real_referral: Referral
) -> None:
    # Generated ids would only ever meet a 404: point them at a referral (or its patient)
    # the doctor sees, so that actions, attachments and bodies are judged for real. Cases
    # made to break the schema keep their own ids (the substitute would mend the break).
    positive = case.meta is None or case.meta.generation.mode == "positive"
    if positive and "public_id" in case.path_parameters:
        real = real_referral.patient.public_id if case.path.startswith("/api/v1/patients") else real_referral.public_id
        case.path_parameters["public_id"] = str(real)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {doctor_token}", "Accept-Language": "en"},
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
