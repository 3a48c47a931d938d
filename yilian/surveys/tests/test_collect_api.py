"""The survey API: issue a link, list questionnaires, publish a version; refusals as 4xx."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from yilian.registry import services as registry_services
from yilian.registry.models import User
from yilian.surveys import services
from yilian.surveys.defaults import DEFAULT_QUESTIONNAIRES
from yilian.surveys.models import SurveyToken

pytestmark = pytest.mark.django_db


def api(username: str, language: str = "en") -> Client:
    _, key = registry_services.api_token_create(actor=None, user=User.objects.get(username=username))
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE=language)


def test_a_doctor_issues_a_link_and_gets_it_once_with_its_expiry() -> None:
    answer = api("doctor").post(
        "/api/v1/surveys/tokens", {"institution": "csph", "kind": "outpatient"}, content_type="application/json"
    )
    assert answer.status_code == 201, answer.content
    body = answer.json()
    raw = body["url"].rstrip("/").rsplit("/", 1)[1]
    token = SurveyToken.objects.get(token_hash=services.token_hash(raw))
    assert token.channel == "link" and body["questionnaire_version"] == 1 and body["institution"] == "csph"


@pytest.mark.parametrize(
    ("username", "body", "status"),
    [
        ("doctor", {"institution": "qzph", "kind": "outpatient"}, 403),
        ("commission", {"institution": "csph", "kind": "outpatient"}, 403),
        ("doctor", {"institution": "nowhere", "kind": "outpatient"}, 403),
        ("doctor", {"institution": "csph", "kind": "staff"}, 422),
        (
            "doctor",
            {"institution": "csph", "kind": "outpatient", "department": "00000000-0000-0000-0000-000000000000"},
            400,
        ),
    ],
)
def test_issuing_is_refused_with_a_message(username: str, body: dict[str, Any], status: int) -> None:
    answer = api(username).post("/api/v1/surveys/tokens", body, content_type="application/json")
    assert answer.status_code == status and answer.json()["detail"]


def test_the_refusal_is_in_the_caller_s_language() -> None:
    body = {"institution": "qzph", "kind": "outpatient"}
    english = api("doctor").post("/api/v1/surveys/tokens", body, content_type="application/json").json()["detail"]
    assert english == "You may hand out survey links only at your own institution."
    assert (
        api("doctor", "zh-hans").post("/api/v1/surveys/tokens", body, content_type="application/json").status_code
        == 403
    )


def test_questionnaires_are_listed_with_their_versions() -> None:
    rows = api("doctor").get("/api/v1/surveys/questionnaires").json()
    defaults = {r["kind"]: r for r in rows if r["consortium"] == "default"}
    assert set(defaults) == {"outpatient", "inpatient", "referred", "staff"}
    assert defaults["staff"]["current_version"] == 1 and defaults["staff"]["versions"][0]["items"]


def test_the_office_publishes_a_version_and_others_are_refused() -> None:
    items = DEFAULT_QUESTIONNAIRES["referred"][2]
    path = "/api/v1/surveys/questionnaires/zju2-quzhou/referred/versions"
    answer = api("office").post(path, {"items": items}, content_type="application/json")
    assert answer.status_code == 201 and answer.json()["number"] == 1
    assert api("office").post(path, {"items": items}, content_type="application/json").json()["number"] == 2
    assert api("hospadmin").post(path, {"items": items}, content_type="application/json").status_code == 403
    other = "/api/v1/surveys/questionnaires/quzhou-neuro/referred/versions"
    assert api("office").post(other, {"items": items}, content_type="application/json").status_code == 403
    bad = api("office").post(path, {"items": items[:-1]}, content_type="application/json")
    assert bad.status_code == 400 and "exactly one free-text item" in bad.json()["detail"]
    assert (
        api("office")
        .post(path.replace("referred", "mood"), {"items": items}, content_type="application/json")
        .status_code
        == 404
    )
