"""The JSON API: bearer tokens or sessions, scoped reads, 4xx errors in the caller's language."""

from __future__ import annotations

import pytest
from django.test import Client

from yilian.registry import services
from yilian.registry.models import Institution

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(persona):
    def make(username: str, language: str = "en") -> Client:
        _, key = services.api_token_create(actor=None, user=persona(username))
        return Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE=language)

    return make


def test_openapi_and_docs_are_served(client: Client) -> None:
    schema = client.get("/api/v1/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/institutions" in paths and "/api/v1/consortia/{code}" in paths
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()  # hospital networks often have no internet: serve Swagger UI locally
    assert client.get("/static/ninja/swagger-ui-bundle.js").status_code == 200


def test_calls_without_a_token_get_401_with_a_message(client: Client) -> None:
    response = client.get("/api/v1/institutions", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]
    zh = client.get("/api/v1/institutions", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "令牌" in zh.json()["detail"]


def test_a_bad_token_gets_401(client: Client) -> None:
    response = client.get("/api/v1/me", HTTP_AUTHORIZATION="Bearer yl_not-a-real-token")
    assert response.status_code == 401


def test_me_lists_roles_and_permissions(api) -> None:
    body = api("commission").get("/api/v1/me").json()
    assert body["roles"] == ["commission_viewer"]
    assert "registry.view_directory" in body["permissions"]
    assert not [p for p in body["permissions"] if "manage" in p]


def test_institution_list_is_scoped_and_paginated(api) -> None:
    body = api("commission").get("/api/v1/institutions", {"limit": 5}).json()
    assert body["count"] >= 10
    assert len(body["items"]) == 5
    assert all(item["region_code"].startswith("3308") for item in body["items"])


def test_institution_outside_scope_is_403(api) -> None:
    response = api("doctor").get("/api/v1/institutions/bjfph")
    assert response.status_code == 403
    assert "bjfph" in response.json()["detail"]


def test_unknown_institution_is_404(api) -> None:
    assert api("doctor").get("/api/v1/institutions/nope").status_code == 404


def test_institution_detail_has_capabilities(api) -> None:
    body = api("coordinator").get("/api/v1/institutions/qzph").json()
    kinds = {c["kind"] for c in body["capabilities"]}
    assert {"iv_thrombolysis", "thrombectomy"} <= kinds
    assert "zju2-quzhou" in body["consortia"]


def test_consortium_detail_lists_current_members(api) -> None:
    body = api("office").get("/api/v1/consortia/zju2-quzhou").json()
    codes = {m["institution_code"] for m in body["members"]}
    assert {"zju2", "qzph", "qz2ph", "khph"} <= codes
    assert body["member_count"] == len(body["members"])


def test_agreements_visible_to_office_with_pairings(api) -> None:
    body = api("office").get("/api/v1/agreements", {"consortium": "zju2-quzhou"}).json()
    agreement = next(a for a in body["items"] if a["code"] == "zju2-qzph-2018")
    assert {p["member_discipline"] for p in agreement["pairings"]} == {
        "anesthesiology",
        "emergency",
        "radiotherapy",
        "orthopedics",
        "neurosurgery",
    }


def test_audit_api_for_admins_only(api) -> None:
    assert api("admin").get("/api/v1/audit", {"limit": 3}).json()["count"] > 0
    assert api("doctor").get("/api/v1/audit").status_code == 403


def test_office_creates_an_institution_and_it_is_audited(api) -> None:
    payload = {
        "code": "cs-new",
        "name_zh": "常山县新都社区卫生服务中心",
        "grade": "primary",
        "type": "primary_care",
        "region_code": "330822",
    }
    response = api("office").post("/api/v1/institutions", payload, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["code"] == "cs-new"
    from yilian.core.models import AuditEvent

    assert AuditEvent.objects.filter(object_repr="常山县新都社区卫生服务中心", actor_label="office").exists()


def test_create_is_forbidden_for_a_doctor(api) -> None:
    payload = {
        "code": "cs-new",
        "name_zh": "某中心",
        "grade": "primary",
        "type": "primary_care",
        "region_code": "330822",
    }
    response = api("doctor").post("/api/v1/institutions", payload, content_type="application/json")
    assert response.status_code == 403
    assert not Institution.objects.filter(code="cs-new").exists()


def test_create_with_bad_fields_is_400_or_422_with_field_messages(api) -> None:
    client = api("office", language="zh-hans")
    dup = {"code": "qzph", "name_zh": "重复", "grade": "3A", "type": "general", "region_code": "330802"}
    response = client.post("/api/v1/institutions", dup, content_type="application/json")
    assert response.status_code == 400
    assert "code" in response.json()["errors"]
    bad_grade = {**dup, "code": "fresh", "grade": "9Z"}
    response = client.post("/api/v1/institutions", bad_grade, content_type="application/json")
    assert response.status_code == 422
    assert any(location.endswith("grade") for location in response.json()["errors"])
    no_region = {**dup, "code": "fresh", "region_code": "999999"}
    response = client.post("/api/v1/institutions", no_region, content_type="application/json")
    assert response.status_code == 400 and "999999" in response.json()["detail"]
    malformed = {"code": "Bad Code!", "name_zh": "x"}
    response = client.post("/api/v1/institutions", malformed, content_type="application/json")
    assert response.status_code == 422
    assert response.json()["detail"] == "请求格式不正确。"


def test_session_authenticated_browser_can_call_the_api(login) -> None:
    assert login("doctor").get("/api/v1/me").json()["roles"] == ["doctor"]


def test_practitioner_list_and_detail(api, persona) -> None:
    client = api("office")
    body = client.get("/api/v1/practitioners", {"institution": "qzph", "limit": 3}).json()
    assert body["count"] > 3 and len(body["items"]) == 3
    assert {item["institution_code"] for item in body["items"]} == {"qzph"}
    assert all("licence_number" not in item for item in body["items"])
    first = body["items"][0]
    assert client.get(f"/api/v1/practitioners/{first['public_id']}").json()["name_zh"] == first["name_zh"]
    assert client.get("/api/v1/practitioners/not-a-uuid").status_code == 422
    assert client.get("/api/v1/practitioners", {"institution": "bjfph"}).status_code == 403


def test_pagination_bounds_are_enforced(api) -> None:
    client = api("office")
    assert client.get("/api/v1/institutions", {"limit": 501}).status_code == 422
    assert client.get("/api/v1/institutions", {"offset": 10**12}).status_code == 422
    assert client.get("/api/v1/institutions", {"offset": 10_000}).json()["items"] == []


def test_field_messages_of_malformed_requests_are_in_the_callers_language(api) -> None:
    payload = {"code": "x", "grade": "9Z", "type": "general", "region_code": "12"}
    zh = api("office", language="zh-hans").post("/api/v1/institutions", payload, content_type="application/json")
    messages = " ".join(m for ms in zh.json()["errors"].values() for m in ms)
    assert zh.status_code == 422
    assert "该字段为必填项" in messages and "不是允许的取值" in messages and "格式不正确" in messages
    en = api("office", language="en").post("/api/v1/institutions", payload, content_type="application/json")
    assert "This field is required." in " ".join(m for ms in en.json()["errors"].values() for m in ms)


def test_audit_api_times_are_bounded_and_zone_aware(api) -> None:
    client = api("admin")
    assert client.get("/api/v1/audit", {"since": "0001-01-01T00:00:00"}).status_code == 422
    assert client.get("/api/v1/audit", {"since": "2020-01-01T00:00:00"}).status_code == 200  # China time
    assert client.get("/api/v1/audit", {"since": "2020-01-01T00:00:00+08:00"}).status_code == 200
