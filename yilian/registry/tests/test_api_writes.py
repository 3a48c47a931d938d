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
    registered = client.post(
        "/api/v1/institutions",
        {
            "code": "kh-new",
            "name_zh": "开化县马金镇中心卫生院",
            "grade": "primary",
            "type": "primary_care",
            "region_code": "330824",
        },
        content_type="application/json",
    )
    assert registered.status_code == 201
    response = client.post(
        "/api/v1/consortia/zju2-quzhou/members",
        {"institution_code": "kh-new", "joined_on": "2025-03-01"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    again = client.post(
        "/api/v1/consortia/zju2-quzhou/members",
        {"institution_code": "kh-new", "joined_on": "2025-04-01"},
        content_type="application/json",
    )
    assert again.status_code == 400 and "已是" in again.json()["detail"]
    response = client.post(
        "/api/v1/consortia/zju2-quzhou/members/kh-new/leave", {"left_on": "2026-01-31"}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["left_on"] == "2026-01-31"
    assert ConsortiumMember.objects.get(consortium__code="zju2-quzhou", institution__code="kh-new").left_on


def test_an_office_cannot_take_over_another_consortiums_member_by_admitting_it(api) -> None:
    """Admission grants write rights, so hospitals of other consortia need a system administrator."""
    response = api("office").post(
        "/api/v1/consortia/zju2-quzhou/members",
        {"institution_code": "bjfph", "joined_on": "2025-03-01"},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert (
        api("office").patch("/api/v1/institutions/bjfph", {"phone": "1"}, content_type="application/json").status_code
        == 403
    )
    admitted = api("admin").post(
        "/api/v1/consortia/zju2-quzhou/members",
        {"institution_code": "bjfph", "joined_on": "2025-03-01"},
        content_type="application/json",
    )
    assert admitted.status_code == 201


def test_readmission_before_leaving_is_refused(api) -> None:
    client = api("office")
    client.post(
        "/api/v1/consortia/zju2-quzhou/members/khph/leave", {"left_on": "2099-12-31"}, content_type="application/json"
    )
    again = client.post(
        "/api/v1/consortia/zju2-quzhou/members",
        {"institution_code": "khph", "joined_on": "2030-01-01"},
        content_type="application/json",
    )
    assert again.status_code == 400


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
    assert "已有同一学科" in response.json()["detail"]


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


def test_odd_input_gets_4xx_in_the_callers_language(api) -> None:
    client = api("office")
    nul = client.post(
        "/api/v1/institutions/khph/departments",
        {"discipline": "urology", "name_zh": "泌尿\u0000外科"},
        content_type="application/json",
    )
    assert nul.status_code in (201, 400)  # SQLite stores NUL; PostgreSQL cannot, and says so
    if nul.status_code == 400:
        assert "无法保存" in nul.json()["detail"]
    bad_json = client.post("/api/v1/institutions/khph/departments", "{not json", content_type="application/json")
    assert bad_json.status_code == 400 and bad_json.json()["detail"] == "请求体不是有效的 JSON。"
    blank = client.patch("/api/v1/institutions/khph", {"name_zh": "   "}, content_type="application/json")
    assert blank.status_code == 422
    ancient = client.post(
        "/api/v1/consortia/zju2-quzhou/members/khph/leave", {"left_on": "0001-01-01"}, content_type="application/json"
    )
    assert ancient.status_code == 422 and "1900" in str(ancient.json()["errors"])
    missing = client.get("/api/v1/consortia/zju2-quzhou/members/nope/leave")
    assert missing.status_code in (404, 405)
    gone = client.post(
        "/api/v1/consortia/zju2-quzhou/members/csph/leave", {"left_on": "2026-01-31"}, content_type="application/json"
    )
    assert gone.status_code == 404 and "csph" in gone.json()["detail"] and "成员单位" in gone.json()["detail"]


def test_constraint_messages_do_not_name_database_constraints(api) -> None:
    response = api("office").post(
        "/api/v1/institutions/khph/capabilities",
        {"kind": "ct", "valid_from": "2026-01-01", "valid_to": "2025-01-01"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "capability_valid_range" not in response.content.decode()
    assert "有效期" in response.json()["detail"]


def test_overnight_service_hours_are_available_at_night() -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    from yilian.registry.models import Capability

    night = Capability(
        all_hours=False, weekdays="1234567", opens_at=dt.time(18), closes_at=dt.time(8), valid_from=dt.date(2020, 1, 1)
    )
    tz = ZoneInfo("Asia/Shanghai")
    assert night.is_available_at(dt.datetime(2026, 11, 23, 23, 0, tzinfo=tz))
    assert night.is_available_at(dt.datetime(2026, 11, 23, 7, 0, tzinfo=tz))
    assert not night.is_available_at(dt.datetime(2026, 11, 23, 12, 0, tzinfo=tz))
