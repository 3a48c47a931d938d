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
from hypothesis import HealthCheck, settings

from yilian.registry import services

# Reading the description needs no database: the app builds it from its routes.
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


@pytest.fixture
def office_token(persona: Any) -> Iterator[str]:
    # Like Django's test client: keep the test's connection (and its transaction) open
    # across requests instead of closing it when each request finishes.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        _, key = services.api_token_create(actor=None, user=persona("office"))
        yield key
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


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
