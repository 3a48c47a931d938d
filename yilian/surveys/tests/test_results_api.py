"""Satisfaction figures through the API: counted independently here from the stored rows, scoped
like the dashboard, and never carrying the text of a comment."""

from __future__ import annotations

import datetime as dt

import pytest

from yilian.surveys.models import Dimension, SurveyAnswer, SurveyResponse, SurveyToken
from yilian.surveys.tests.test_collect_api import api

pytestmark = pytest.mark.django_db

PERIOD = {"institution": "qzph", "start": "2025-01-01", "end": "2026-01-01"}


def test_the_figures_match_the_stored_answers_and_carry_no_comment_text() -> None:
    answer = api("quality").get("/api/v1/surveys/results", {**PERIOD, "kind": "outpatient", "pivot": "2025-09-01"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    responses = SurveyResponse.objects.filter(
        institution__code="qzph", kind="outpatient", day__gte=dt.date(2025, 1, 1), day__lt=dt.date(2026, 1, 1)
    )
    assert body["responses"] == responses.count() > 0
    overall = SurveyAnswer.objects.filter(response__in=responses, dimension=Dimension.OVERALL, likert__isnull=False)
    satisfied = overall.filter(likert__gte=4).count()
    assert body["overall"]["ratings"] == overall.count()
    assert body["overall"]["satisfied"] == satisfied
    assert body["overall"]["percent"] == round(satisfied * 100 / overall.count(), 1)
    china = dt.timezone(dt.timedelta(hours=8))
    issued = SurveyToken.objects.filter(
        institution__code="qzph",
        kind="outpatient",
        channel__in=["qr", "sms", "link"],
        issued_at__gte=dt.datetime(2025, 1, 1, tzinfo=china),
        issued_at__lt=dt.datetime(2026, 1, 1, tzinfo=china),
    )
    answered = issued.filter(used_at__isnull=False).count()
    assert (body["links_issued"], body["links_answered"]) == (issued.count(), answered)
    assert sum(m["responses"] for m in body["months"]) == body["responses"]
    split = body["before_after"]
    assert split["responses_before"] == responses.filter(day__lt=dt.date(2025, 9, 1)).count()
    assert split["responses_before"] + split["responses_after"] == body["responses"]
    assert body["comments"] > 0
    comment = SurveyAnswer.objects.filter(response__in=responses, dimension=Dimension.COMMENT).exclude(text="").first()
    assert comment is not None and comment.text not in answer.content.decode()


def test_other_hospitals_and_bad_periods_are_refused() -> None:
    assert api("hospadmin").get("/api/v1/surveys/results", PERIOD).status_code == 200  # qzph's own admin
    bijie = api("bijie").get("/api/v1/surveys/results", PERIOD)
    assert bijie.status_code == 403
    unknown = api("quality").get("/api/v1/surveys/results", {**PERIOD, "institution": "nowhere"})
    assert unknown.status_code == 404
    backwards = api("quality").get("/api/v1/surveys/results", {**PERIOD, "start": "2026-01-01", "end": "2025-01-01"})
    assert backwards.status_code == 400
    assert backwards.json()["errors"]["end"] == ["The end of the period comes before its start."]
    outside = api("quality").get("/api/v1/surveys/results", {**PERIOD, "pivot": "2024-06-01"})
    assert outside.status_code == 400
    assert outside.json()["errors"]["pivot"] == ["Choose a day inside the period, after its first day."]
