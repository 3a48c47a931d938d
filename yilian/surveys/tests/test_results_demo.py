"""The demo's survey history: every kind, mostly answered links, and the hosts improving after their programme."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db.models import Count, Q

from yilian.core.models import AuditEvent
from yilian.demo.surveys import STATIONING_STARTS, seed_surveys
from yilian.registry.models import Institution, User
from yilian.surveys import selectors
from yilian.surveys.models import (
    ENCOUNTER_CHANNELS,
    Channel,
    Poster,
    PosterScan,
    SurveyAnswer,
    SurveyKind,
    SurveyResponse,
    SurveyToken,
)
from yilian.surveys.text import group_comments

pytestmark = pytest.mark.django_db

FIXED_NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def test_the_demo_has_every_kind_and_staff_answers_only_at_the_hosts() -> None:
    kinds = set(SurveyResponse.objects.values_list("kind", flat=True))
    staff_at = set(SurveyResponse.objects.filter(kind=SurveyKind.STAFF).values_list("institution__code", flat=True))

    assert kinds == set(SurveyKind.values)
    assert staff_at == set(STATIONING_STARTS)
    referred = SurveyToken.objects.filter(kind=SurveyKind.REFERRED)
    assert referred.exists()
    assert not referred.filter(referral__isnull=True).exists()  # a referred patient's link belongs to the referral


def test_most_encounter_links_are_answered_and_none_is_stored_raw() -> None:
    row = SurveyToken.objects.filter(channel__in=ENCOUNTER_CHANNELS).aggregate(
        issued=Count("pk"), answered=Count("pk", filter=Q(used_at__isnull=False))
    )

    assert 0.6 <= row["answered"] / row["issued"] <= 0.9
    assert SurveyToken.objects.filter(channel=Channel.POSTER).exists()
    assert all(len(h) == 64 for h in SurveyToken.objects.values_list("token_hash", flat=True)[:100])
    assert SurveyResponse.objects.count() == SurveyToken.objects.filter(used_at__isnull=False).count()


@pytest.mark.parametrize("code", sorted(STATIONING_STARTS))
def test_the_hosts_improve_after_their_programme_starts(code: str) -> None:
    admin = User.objects.get(username="admin")
    filters = selectors.ResultFilters(institution=Institution.objects.get(code=code))

    before, after = selectors.survey_before_after(admin, filters, pivot=STATIONING_STARTS[code]).overall

    assert before.whole > 50
    assert after.whole > 50
    assert after.percent is not None
    assert before.percent is not None
    assert after.percent - before.percent >= 8


def test_the_comments_keep_coming_back_to_the_same_things() -> None:
    quality = User.objects.get(username="quality")
    filters = selectors.ResultFilters(institution=Institution.objects.get(code="qzph"))

    words = {g.word for g in group_comments([c.text for c in selectors.survey_comments(quality, filters)], top=15)}

    assert {"挂号", "等候", "专家", "态度"} <= words


def _wipe() -> None:
    for model in (SurveyAnswer, PosterScan, SurveyResponse, SurveyToken, Poster):
        model._default_manager.all().delete()


def _snapshot() -> list[tuple[Any, ...]]:
    return sorted(
        SurveyAnswer.objects.values_list(
            "response__institution__code", "response__kind", "response__day", "item_key", "likert", "text"
        )
        .annotate(n=Count("pk"))
        .order_by(),
        key=repr,
    )


def test_seeding_is_deterministic_and_runs_once() -> None:
    _wipe()
    created = seed_surveys(seed=2018, now=FIXED_NOW)
    first = _snapshot()
    events = AuditEvent.objects.count()

    assert created > 1000
    assert seed_surveys(seed=2018, now=FIXED_NOW) == 0  # already there: nothing, and no audit row
    assert AuditEvent.objects.count() == events
    _wipe()
    assert seed_surveys(seed=2018, now=FIXED_NOW) == created
    assert _snapshot() == first
    assert not SurveyResponse.objects.filter(day__gt=FIXED_NOW.date()).exists()
