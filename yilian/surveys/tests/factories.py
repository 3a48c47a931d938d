"""Builders for survey tests: links issued through the services, and a full valid answer."""

from __future__ import annotations

from typing import Any

from django.db.models import Max, QuerySet

from yilian.registry.models import Institution, User
from yilian.surveys import services
from yilian.surveys.models import ItemType, QuestionnaireVersion, SurveyResponse


def issue(
    kind: str = "outpatient", *, by: str = "doctor", at: str = "csph", channel: str = "qr"
) -> services.IssuedToken:
    return services.token_issue(
        actor=User.objects.get(username=by), institution=Institution.objects.get(code=at), kind=kind, channel=channel
    )


def full_answers(version: QuestionnaireVersion, *, likert: int = 4, text: str = "挂号很方便") -> dict[str, Any]:
    """An answer to every item of the version: the same rating throughout, first options, a comment."""
    answers: dict[str, Any] = {}
    for item in version.items:
        if item["type"] == ItemType.LIKERT:
            answers[item["key"]] = likert
        elif item["type"] == ItemType.SINGLE:
            answers[item["key"]] = item["options"][0]["key"]
        elif item["type"] == ItemType.MULTIPLE:
            answers[item["key"]] = [item["options"][0]["key"], item["options"][1]["key"]]
        else:
            answers[item["key"]] = text
    return answers


def response_mark() -> int:
    """The newest response so far: ``responses_since(mark)`` are those stored after it. (A
    response has no link to its token, by design, so tests find theirs by what came after.)"""
    return SurveyResponse.objects.aggregate(m=Max("id"))["m"] or 0


def responses_since(mark: int) -> QuerySet[SurveyResponse]:
    return SurveyResponse.objects.filter(id__gt=mark)
