"""Shared fixtures for referral tests (builders in ``factories``): ``make_referral(status=...)``
drives a referral to any status through the services; ``neuro_office`` is the consortium office
of the Quzhou neurosurgery alliance, to which the default referral (csph -> qzph) belongs.

Tests of other apps can use the same builders by importing ``yilian.referrals.tests.factories``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from yilian.patients.models import Patient
from yilian.referrals.tests import factories
from yilian.referrals.tests.factories import MakeReferral
from yilian.registry.models import Consortium, Institution, User


@pytest.fixture
def inst() -> Callable[[str], Institution]:
    """An institution of the demo consortium by code (csph, qzph, khph, zju2, bjfph, ...)."""

    def get(code: str) -> Institution:
        return Institution.objects.get(code=code)

    return get


@pytest.fixture
def neuro(db: None) -> Consortium:
    """The Quzhou neurosurgery alliance: lead qzph, members csph, khph, jsph, lyph, qjph, cs-tianma."""
    return Consortium.objects.get(code="quzhou-neuro")


@pytest.fixture
def neuro_office(db: None) -> User:
    """A consortium-office user of the neurosurgery alliance (the demo ``office`` runs zju2-quzhou)."""
    return factories.neuro_office_create()


@pytest.fixture
def make_patient(db: None) -> Callable[..., Patient]:
    """Register a patient at csph through the service; a fresh valid ID number unless given."""
    return factories.patient_create


@pytest.fixture
def make_referral(neuro_office: User) -> MakeReferral:
    """Drive a referral to a status through the services (see ``factories.referral_create``)."""
    return factories.referral_create
