"""Registry writes through the API: same services, same rules, same audit trail as the admin."""

from __future__ import annotations

import pytest
from django.test import Client

from yilian.core.models import AuditEvent
from yilian.registry import services
from yilian.registry.models import ConsortiumMember, Institution

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def api(persona):
    def make(username: str) -> Client:
        _, key = services.api_token_create(actor=None, user=persona(username))
        return Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE="zh-hans")

    return make


def test_office_adds_a_department_and_a_capability_to_a_member(api) -> None:
    client = api("office")
    response = client.post(
        "/api/v1/institutions/khph/departments",
        {"discipline": "ophthalmology", "name_zh": "眼科"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["discipline"] == "ophthalmology"
    response = client.post(
        "/api/v1/institutions/khph/capabilities",
        {
            "kind": "mri",
            "all_hours": False,
            "weekdays": "12345",
            "opens_at": "08:00",
            "closes_at": "17:30",
            "valid_from": "2026-01-01",
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["label"] == "磁共振（MRI）"
    assert AuditEvent.objects.filter(actor_label="office", object_type="registry.capability").exists()


def test_capability_without_hours_is_400_with_a_chinese_message(api) -> None:
    response = api("office").post(
        "/api/v1/institutions/khph/capabilities",
        {"kind": "mri", "all_hours": False, "valid_from": "2026-01-01"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "必须填写开始时间和结束时间" in response.json()["detail"]


def test_a_doctor_cannot_change_the_registry(api) -> None:
    response = api("doctor").post(
        "/api/v1/institutions/csph/departments", {"discipline": "urology"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert not Institution.objects.get(code="csph").departments.filter(discipline="urology").exists()


def test_office_admits_a_member_and_records_its_leaving(api) -> None:
    client = api("office")
    response = client.post(
        "/api/v1/consortia/zju2-quzhou/members",
        {"institution_code": "lyph", "joined_on": "2025-03-01"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    again = client.post(
        "/api/v1/consortia/zju2-quzhou/members",
        {"institution_code": "lyph", "joined_on": "2025-04-01"},
        content_type="application/json",
    )
    assert again.status_code == 400 and "已是" in again.json()["detail"]
    response = client.post(
        "/api/v1/consortia/zju2-quzhou/members/lyph/leave", {"left_on": "2026-01-31"}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["left_on"] == "2026-01-31"
    assert ConsortiumMember.objects.get(consortium__code="zju2-quzhou", institution__code="lyph").left_on


def test_leaving_rules_answer_4xx(api) -> None:
    client = api("office")
    lead = client.post(
        "/api/v1/consortia/zju2-quzhou/members/zju2/leave", {"left_on": "2026-01-31"}, content_type="application/json"
    )
    assert lead.status_code == 400 and "牵头" in lead.json()["detail"]
    stranger = client.post(
        "/api/v1/consortia/zju2-quzhou/members/csph/leave", {"left_on": "2026-01-31"}, content_type="application/json"
    )
    assert stranger.status_code == 404
    unknown = client.post(
        "/api/v1/consortia/zju2-quzhou/members",
        {"institution_code": "nope", "joined_on": "2025-03-01"},
        content_type="application/json",
    )
    assert unknown.status_code == 400 and "institution_code" in unknown.json()["errors"]


def test_agreement_pdf_upload(api, settings, tmp_path) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MEDIA_ROOT = tmp_path
    client = api("office")
    fake = SimpleUploadedFile("x.pdf", b"not a pdf", content_type="application/pdf")
    response = client.post("/api/v1/agreements/zju2-qzph-2018/document", {"document": fake})
    assert response.status_code == 400 and "PDF" in response.json()["detail"]
    pdf = SimpleUploadedFile("signed.pdf", PDF, content_type="application/pdf")
    response = client.post("/api/v1/agreements/zju2-qzph-2018/document", {"document": pdf})
    assert response.status_code == 200, response.content
    assert (
        api("hospadmin")
        .post("/api/v1/agreements/zju2-qzph-2018/document", {"document": SimpleUploadedFile("s.pdf", PDF)})
        .status_code
        == 403
    )


def test_a_duplicate_department_is_400_with_a_message(api) -> None:
    response = api("office").post(
        "/api/v1/institutions/khph/departments",
        {"discipline": "neurosurgery", "name_zh": "神经外科"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "已经存在" in response.json()["detail"]


def test_office_updates_a_member_institution_field_by_field(api) -> None:
    client = api("office")
    response = client.patch(
        "/api/v1/institutions/khph", {"phone": "0570-6012345", "grade": "3B"}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    khph = Institution.objects.get(code="khph")
    assert (khph.phone, khph.grade, khph.name_zh) == ("0570-6012345", "3B", "开化县人民医院")
    event = AuditEvent.objects.filter(object_repr="开化县人民医院").latest("id")
    assert event.changes["grade"] == ["2A", "3B"]
    assert (
        client.patch("/api/v1/institutions/bjfph", {"phone": "1"}, content_type="application/json").status_code == 403
    )


def test_office_ends_an_agreement_and_the_status_change_is_audited(api) -> None:
    client = api("office")
    response = client.post(
        "/api/v1/agreements/zju2-khph-2018/status", {"status": "terminated"}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["status"] == "terminated"
    event = AuditEvent.objects.latest("id")
    assert (event.actor_label, event.changes["status"]) == ("office", ["active", "terminated"])
    bad = client.post("/api/v1/agreements/zju2-khph-2018/status", {"status": "void"}, content_type="application/json")
    assert bad.status_code == 422
    assert (
        api("hospadmin")
        .post("/api/v1/agreements/zju2-qzph-2018/status", {"status": "terminated"}, content_type="application/json")
        .status_code
        == 403
    )


def test_a_write_that_loses_a_race_at_the_database_is_409(api, monkeypatch) -> None:
    """When a constraint catches a concurrent duplicate that the checks could not see."""
    from django.db import IntegrityError

    def lose_the_race(**kwargs):
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(services, "department_create", lose_the_race)
    response = api("office").post(
        "/api/v1/institutions/khph/departments", {"discipline": "urology"}, content_type="application/json"
    )
    assert response.status_code == 409
    assert "同时" in response.json()["detail"]
