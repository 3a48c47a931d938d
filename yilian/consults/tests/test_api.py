"""The teleconsultation API as a client sees it, on the demo consortium: Kaihua County People's
Hospital (khph) asks the Second Affiliated Hospital (zju2) under their agreement."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from stdnum.cn import ric

from yilian.core.models import AuditAction, AuditEvent
from yilian.core.permissions import Role
from yilian.patients.models import Patient
from yilian.registry import services as registry_services
from yilian.registry.models import Institution, Practitioner, User

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def api(persona):
    def make(username: str, language: str = "en") -> Client:
        _, key = registry_services.api_token_create(actor=None, user=persona(username))
        return Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE=language)

    return make


def fresh_id_number(birth: str = "19610708", county: str = "330824") -> str:
    """A valid resident ID number of Kaihua county that no patient holds yet."""
    for seq in range(1, 999, 2):
        stem = f"{county}{birth}{seq:03d}"
        number = stem + ric.calc_check_digit(stem + "0")
        if not Patient.objects.filter(id_number=number).exists():
            return number
    raise AssertionError("no free ID number")


def consult_body(**overrides: Any) -> dict[str, Any]:
    """A Kaihua neurologist asks zju2's neurosurgeons about a thalamic haemorrhage."""
    body: dict[str, Any] = {
        "patient": {"name": "郑国强", "sex": "male", "id_number": fresh_id_number(), "phone": "13857001234"},
        "kind": "econsult",
        "urgency": "routine",
        "to_institution": "zju2",
        "discipline": "neurosurgery",
        "wanted_title": "associate_chief_physician",
        "reason": "右侧丘脑出血约12 ml，破入脑室，家属询问是否需要手术",
        "purpose": "明确手术指征，决定保守治疗或转诊",
        "question": "是否需要脑室外引流？保守治疗期间复查CT的间隔？",
        "history": "高血压10年，服药不规律；今晨突发左侧肢体无力",
        "examination": "GCS 14，左侧肌力3级",
        "investigations": "头颅CT：右侧丘脑出血约12 ml，少量破入侧脑室",
        "diagnosis_code": "I61.0",
        "diagnosis_name": "丘脑出血",
        "current_treatment": "降压、脱水",
        "consent": {"obtained_by": "徐春华", "method": "written", "at": timezone.now().isoformat()},
    }
    body.update(overrides)
    return body


def create(client: Client, body: dict[str, Any] | None = None) -> Any:
    return client.post("/api/v1/consults", body or consult_body(), content_type="application/json")


def act(client: Client, consult_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(f"/api/v1/consults/{consult_id}/{action}", body or {}, content_type="application/json")


def figures(client: Client) -> Any:
    today = timezone.localdate().isoformat()
    answer = client.get("/api/v1/consults/figures", {"from": today, "to": today})
    assert answer.status_code == 200, answer.content
    return {row["institution"]["code"]: row for row in answer.json()["institutions"]}


def practitioner_id(username: str) -> str:
    return str(Practitioner.objects.get(user__username=username).public_id)


@pytest.fixture
def asked(api) -> Any:
    """An eConsult Kaihua has asked of zju2's neurosurgery pool."""
    response = create(api("kaihua"))
    assert response.status_code == 201, response.content
    return response.json()


def test_an_econsult_goes_from_request_to_close_out_and_into_the_figures(api) -> None:
    kaihua, expert, office = api("kaihua"), api("expert"), api("office")
    before = figures(office)
    created = create(kaihua)
    assert created.status_code == 201, created.content
    body = created.json()
    cid = body["id"]
    assert body["status"] == "requested" and body["kind"] == "econsult"
    assert body["from_institution"]["code"] == "khph" and body["to_institution"]["code"] == "zju2"
    assert body["sides"] == ["requester"] and body["allowed_actions"] == ["cancel"]
    assert body["patient"]["name"] != "郑国强" and body["patient"]["name"].startswith("郑")
    assert body["consent"]["method"] == "written"
    assert body["accept_due_at"] is not None and body["overdue"] is False

    queue = expert.get("/api/v1/consults", {"box": "for_me", "status": "requested"}).json()
    row = next(r for r in queue["items"] if r["id"] == cid)
    assert row["patient"]["name"].startswith("郑") and "*" in row["patient"]["id_number"]
    detail = expert.get(f"/api/v1/consults/{cid}").json()
    assert set(detail["allowed_actions"]) == {"accept", "decline"}
    assert detail["patient"]["name"] == "郑国强" and "*" in detail["patient"]["id_number"]

    accepted = act(expert, cid, "accept")
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["status"] == "accepted" and accepted.json()["expert"]["name"] == "Chen Zhiyuan"
    assert act(expert, cid, "ask-info", {"text": "请上传头颅CT原始影像"}).json()["status"] == "in_discussion"
    assert act(kaihua, cid, "provide-info", {"text": "已上传CT报告"}).json()["status"] == "in_discussion"
    upload = kaihua.post(
        f"/api/v1/consults/{cid}/attachments",
        {"file": SimpleUploadedFile("ct.pdf", PDF, content_type="application/pdf"), "description": "头颅CT报告"},
    )
    assert upload.status_code == 201, upload.content
    download = expert.get(upload.json()["download_url"])
    assert download.status_code == 200 and b"".join(download.streaming_content) == PDF
    note = expert.post(f"/api/v1/consults/{cid}/messages", {"text": "收到"}, content_type="application/json")
    assert note.status_code == 201 and note.json()["institution"] == "zju2"

    answer = {"answer": "出血量小，暂无手术指征，建议保守治疗", "recommendations": "24小时内复查CT"}
    assert act(expert, cid, "answer", answer).json()["status"] == "answered"
    assert act(kaihua, cid, "follow-up", {"text": "复查CT血肿扩大至15 ml怎么办？"}).json()["status"] == "in_discussion"
    assert act(expert, cid, "answer", {"answer": "仍可保守，出现意识下降即转诊"}).json()["status"] == "answered"
    closed = act(kaihua, cid, "close", {"referral_avoided": True, "management_changed": True, "value_rating": 5})
    assert closed.status_code == 200, closed.content
    assert closed.json()["status"] == "closed"
    assert closed.json()["closeout"] == {
        "referral_avoided": True,
        "management_changed": True,
        "value_rating": 5,
        "comment": "",
    }

    detail = kaihua.get(f"/api/v1/consults/{cid}").json()
    assert [m["kind"] for m in detail["messages"]] == [
        "info_request",
        "message",
        "message",
        "answer",
        "follow_up",
        "answer",
    ]
    assert detail["conclusion"] == "仍可保守，出现意识下降即转诊"
    assert [e["action"] for e in detail["timeline"]] == [
        "request",
        "accept",
        "ask_info",
        "provide_info",
        "answer",
        "follow_up",
        "answer",
        "close",
    ]
    assert [a["filename"] for a in detail["attachments"]] == ["ct.pdf"]
    assert detail["allowed_actions"] == []
    assert "Xu Chunhua" in detail["responsibility"]

    after = figures(office)
    khph_before = before.get("khph", {"requested": 0, "delivered_by_kind": {}, "closed": 0, "referral_avoided": 0})
    assert after["khph"]["requested"] == khph_before["requested"] + 1
    assert (
        after["khph"]["delivered_by_kind"].get("econsult", 0) == khph_before["delivered_by_kind"].get("econsult", 0) + 1
    )
    assert after["khph"]["closed"] == khph_before["closed"] + 1
    assert after["khph"]["referral_avoided"] == khph_before["referral_avoided"] + 1
    assert after["khph"]["median_response_hours"] is not None
    assert (
        after["zju2"]["delivered_for_others"]
        == before.get("zju2", {"delivered_for_others": 0})["delivered_for_others"] + 1
    )
    # The health commission sees its own region's hospitals; a doctor sees no figures.
    assert "khph" in figures(api("commission")) and "zju2" not in figures(api("commission"))
    assert kaihua.get("/api/v1/consults/figures", {"from": "2026-01-01", "to": "2026-01-31"}).status_code == 403


def test_a_request_without_consent_is_refused_with_the_field_named_and_nothing_kept(api) -> None:
    patients = Patient.objects.count()
    refused = create(api("kaihua"), consult_body(consent=None))
    assert refused.status_code == 400
    assert refused.json()["errors"]["consent"] == ["Record who obtained the patient's written consent."]
    assert Patient.objects.count() == patients  # the inline patient was not kept either
    future = (timezone.now() + dt.timedelta(days=1)).isoformat()
    dated = create(api("kaihua"), consult_body(consent={"obtained_by": "徐春华", "method": "written", "at": future}))
    assert dated.status_code == 400
    assert dated.json()["errors"]["consent.at"] == ["The consent cannot be dated in the future."]
    verbal = create(api("kaihua"), consult_body(consent={"obtained_by": "徐春华", "method": "verbal", "at": future}))
    assert verbal.status_code == 422 and "body.payload.consent.method" in verbal.json()["errors"]


def test_a_request_without_consent_is_refused_in_chinese(api) -> None:
    refused = create(api("kaihua", language="zh-hans"), consult_body(consent=None))
    assert refused.status_code == 400
    assert "同意" in refused.json()["errors"]["consent"][0]


def test_a_request_without_an_agreement_in_force_is_refused_naming_both_institutions(api) -> None:
    body = consult_body(patient={"name": "无名氏", "sex": "male", "approximate_age": 60})
    refused = create(api("doctor"), body)
    assert refused.status_code == 400
    [message] = refused.json()["errors"]["to_institution"]
    assert message.startswith("No agreement in force links")
    assert Institution.objects.get(code="csph").name in message
    assert Institution.objects.get(code="zju2").name in message


def test_a_request_without_an_agreement_is_refused_in_chinese(api) -> None:
    body = consult_body(patient={"name": "无名氏", "sex": "male", "approximate_age": 60})
    refused = create(api("doctor", language="zh-hans"), body)
    assert refused.status_code == 400
    assert "协议" in refused.json()["errors"]["to_institution"][0]


def test_malformed_requests_are_located_under_the_payload(api) -> None:
    missing = api("kaihua").post("/api/v1/consults", {}, content_type="application/json")
    assert missing.status_code == 422
    assert missing.json()["errors"]["body.payload.kind"] == ["This field is required."]
    zh = api("kaihua", language="zh-hans").post("/api/v1/consults", {}, content_type="application/json")
    assert zh.status_code == 422 and "该字段为必填项" in str(zh.json()["errors"])
    both = create(api("kaihua"), consult_body(patient_id=str(Patient.objects.first().public_id)))  # type: ignore[union-attr]
    assert both.status_code == 422


def test_someone_outside_the_consult_is_refused(api, asked) -> None:
    bijie = api("bijie")
    detail = bijie.get(f"/api/v1/consults/{asked['id']}")
    assert detail.status_code == 403
    assert detail.json()["detail"] == "This consult was not sent to you or by you."
    assert act(bijie, asked["id"], "accept").status_code == 403
    assert all(r["id"] != asked["id"] for r in bijie.get("/api/v1/consults").json()["items"])
    assert api("commission").get("/api/v1/consults").status_code == 403
    # An expert of zju2 outside the specialty does not see the neurosurgery pool's request.
    assert api("pathologist").get(f"/api/v1/consults/{asked['id']}").status_code == 403
    # The requester may not take the consulted side's steps.
    refused = act(api("kaihua"), asked["id"], "accept")
    assert refused.status_code == 403 and "Accept" in refused.json()["detail"]
    unknown = api("kaihua").get("/api/v1/consults/00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 404


@pytest.fixture
def second_neurosurgeon() -> User:
    """俞海, the other neurosurgeon of zju2, given an account (the demo leaves him without one)."""
    practitioner = Practitioner.objects.get(institution__code="zju2", name_zh="俞海")
    user = registry_services.user_create(actor=None, username="yuhai", password="x-Yilian-2026!", display_name="俞海")
    registry_services.membership_grant(
        actor=None, user=user, role=Role.DOCTOR, institution=Institution.objects.get(code="zju2")
    )
    practitioner.user = user
    practitioner.save(update_fields=["user"])
    return user


def test_of_two_pool_experts_the_second_to_accept_gets_409_with_the_status(api, asked, second_neurosurgeon) -> None:
    expert, yuhai = api("expert"), api("yuhai")
    assert any(r["id"] == asked["id"] for r in yuhai.get("/api/v1/consults", {"box": "for_me"}).json()["items"])
    assert act(expert, asked["id"], "accept").status_code == 200
    late = act(yuhai, asked["id"], "accept")
    assert late.status_code == 409
    assert late.json()["status"] == "accepted"
    assert "Chen Zhiyuan has already taken this consult" in late.json()["detail"]
    # The consult is no longer his: any other step, or reading it, says who took it and shows no patient.
    answer = act(yuhai, asked["id"], "answer", {"answer": "…"})
    assert answer.status_code == 409 and "Chen Zhiyuan" in answer.json()["detail"]
    read = yuhai.get(f"/api/v1/consults/{asked['id']}")
    assert read.status_code == 409 and "patient" not in read.json()
    # The coordinator, who is still on the consult, is told the status too.
    again = act(api("telecentre"), asked["id"], "accept")
    assert again.status_code == 409 and again.json()["status"] == "accepted"


def test_declining_and_cancelling_need_a_reason(api, asked) -> None:
    refused = act(api("expert"), asked["id"], "decline")
    assert refused.status_code == 400 and refused.json()["errors"]["reason"] == ["Give a reason."]
    declined = act(api("expert"), asked["id"], "decline", {"reason": "建议神经内科会诊"})
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert declined.json()["last_reason"] == "建议神经内科会诊"
    late = act(api("kaihua"), asked["id"], "cancel", {"reason": "不再需要"})
    assert late.status_code == 409 and late.json()["status"] == "declined"
    closed = api("kaihua").post(
        f"/api/v1/consults/{asked['id']}/messages", {"text": "好的"}, content_type="application/json"
    )
    assert closed.status_code == 409 and closed.json()["status"] == "declined"


def test_a_coordinator_assigns_and_schedules_a_teleconsultation(api, asked) -> None:
    kaihua, telecentre = api("kaihua"), api("telecentre")
    tele = create(kaihua, consult_body(kind="teleconsultation")).json()
    expert_id = practitioner_id("expert")
    assert act(telecentre, tele["id"], "assign", {}).json()["errors"]["expert"] == ["Name the expert to assign."]
    assigned = act(telecentre, tele["id"], "assign", {"expert": expert_id})
    assert assigned.status_code == 200 and assigned.json()["expert"]["id"] == expert_id
    assert act(telecentre, tele["id"], "accept").json()["status"] == "accepted"
    missing = act(telecentre, tele["id"], "schedule")
    assert missing.status_code == 400 and set(missing.json()["errors"]) == {"starts_at", "ends_at"}
    slot = api("telecentre").get("/api/v1/consults/free-slots", {"experts": [expert_id]}).json()[0]
    scheduled = act(
        telecentre,
        tele["id"],
        "schedule",
        {"starts_at": slot["starts_at"], "ends_at": slot["ends_at"], "meeting_url": "https://meeting.example.cn/123"},
    )
    assert scheduled.status_code == 200, scheduled.content
    body = scheduled.json()
    assert body["status"] == "scheduled" and body["meeting_url"] == "https://meeting.example.cn/123"
    assert body["answer_due_at"] is not None
    conflicts = telecentre.get(
        "/api/v1/consults/conflicts",
        {"experts": [expert_id], "starts_at": slot["starts_at"], "ends_at": slot["ends_at"]},
    ).json()
    assert any(c["blocking"] and body["number"] in c["text"] for c in conflicts)


def _meeting_body(slot: dict[str, Any], chair: str, experts: list[str], title: str) -> dict[str, Any]:
    return {
        "title": title,
        "chair": practitioner_id(chair),
        "experts": [practitioner_id(e) for e in experts],
        "starts_at": slot["starts_at"],
        "ends_at": slot["ends_at"],
        "meeting_url": "https://meeting.example.cn/mdt",
    }


def test_an_mdt_case_is_discussed_on_a_meeting_and_concluded_by_the_chair(api, time_machine) -> None:
    kaihua, telecentre, expert = api("kaihua"), api("telecentre"), api("expert")
    radiologist, pathologist = api("radiologist"), api("pathologist")
    case = create(kaihua, consult_body(kind="mdt", question="颅内占位：手术、活检还是放疗？")).json()
    assert act(telecentre, case["id"], "accept").json()["status"] == "accepted"

    people = [practitioner_id(u) for u in ("expert", "radiologist", "pathologist")]
    slots = telecentre.get("/api/v1/consults/free-slots", {"experts": people, "days": 14, "minutes": 90})
    assert slots.status_code == 200, slots.content
    slot = slots.json()[0]
    made = telecentre.post(
        "/api/v1/consults/meetings",
        _meeting_body(slot, "expert", ["radiologist", "pathologist"], "神经肿瘤MDT"),
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    meeting = made.json()
    assert meeting["chair"]["name"] == "Chen Zhiyuan"
    assert {p["expert"]["name"] for p in meeting["participants"]} == {"Chen Zhiyuan", "He Jing", "Jiang Wenbo"}

    scheduled = act(telecentre, case["id"], "schedule", {"meeting": meeting["id"]})
    assert scheduled.status_code == 200, scheduled.content
    assert scheduled.json()["status"] == "scheduled" and scheduled.json()["meeting"]["id"] == meeting["id"]
    agenda = telecentre.get(f"/api/v1/consults/meetings/{meeting['id']}").json()["agenda"]
    assert [item["number"] for item in agenda] == [case["number"]]
    attending = radiologist.post(
        f"/api/v1/consults/meetings/{meeting['id']}/respond", {"attend": True}, content_type="application/json"
    )
    assert attending.status_code == 200
    assert {p["expert"]["name"]: p["response"] for p in attending.json()["participants"]}["He Jing"] == "accepted"

    assert act(expert, case["id"], "start").json()["status"] == "in_discussion"
    for client, text in ((radiologist, "MRI：右额叶占位，强化明显，考虑胶质瘤"), (pathologist, "建议术中冰冻")):
        opinion = client.post(
            f"/api/v1/consults/{case['id']}/opinions", {"text": text}, content_type="application/json"
        )
        assert opinion.status_code == 201, opinion.content
    corrected = radiologist.post(
        f"/api/v1/consults/{case['id']}/opinions", {"text": "考虑高级别胶质瘤"}, content_type="application/json"
    )
    assert corrected.json()["corrections"] == 1
    not_an_expert = kaihua.post(
        f"/api/v1/consults/{case['id']}/opinions", {"text": "…"}, content_type="application/json"
    )
    assert not_an_expert.status_code == 403
    assert act(radiologist, case["id"], "conclude", {"conclusion": "手术"}).status_code == 403  # the chair's step

    concluded = act(expert, case["id"], "conclude", {"conclusion": "限期手术切除", "recommendations": "术后放化疗"})
    assert concluded.status_code == 200, concluded.content
    assert concluded.json()["status"] == "concluded" and concluded.json()["concluded_by"]["name"] == "Chen Zhiyuan"
    detail = kaihua.get(f"/api/v1/consults/{case['id']}").json()
    opinions = {o["expert"]["name"]: o for o in detail["opinions"]}
    assert opinions["He Jing"]["text"] == "考虑高级别胶质瘤" and opinions["He Jing"]["corrections"] == 1
    assert opinions["Jiang Wenbo"]["text"] == "建议术中冰冻"
    closed = act(
        kaihua, case["id"], "close", {"referral_avoided": False, "management_changed": True, "value_rating": 4}
    )
    assert closed.json()["status"] == "closed"
    # Marked held once it has begun, not before.
    early = telecentre.post(f"/api/v1/consults/meetings/{meeting['id']}/held", content_type="application/json")
    assert early.status_code == 400
    time_machine.move_to(dt.datetime.fromisoformat(meeting["starts_at"]) + dt.timedelta(minutes=5))
    held = telecentre.post(f"/api/v1/consults/meetings/{meeting['id']}/held", content_type="application/json")
    assert held.status_code == 200 and held.json()["status"] == "held"


def test_a_second_meeting_overlapping_an_experts_first_is_refused(api) -> None:
    telecentre = api("telecentre")
    expert_id = practitioner_id("expert")
    slot = telecentre.get("/api/v1/consults/free-slots", {"experts": [expert_id, practitioner_id("radiologist")]})
    first_slot = slot.json()[0]
    first = telecentre.post(
        "/api/v1/consults/meetings",
        _meeting_body(first_slot, "expert", ["radiologist"], "脑血管病MDT"),
        content_type="application/json",
    )
    assert first.status_code == 201, first.content
    second = telecentre.post(
        "/api/v1/consults/meetings",
        _meeting_body(first_slot, "pathologist", ["expert"], "神经病理读片会"),
        content_type="application/json",
    )
    assert second.status_code == 400
    assert any("脑血管病MDT" in text and "Chen Zhiyuan" in text for text in second.json()["errors"]["starts_at"])
    # The free times no longer offer the taken one; the meetings list shows the first.
    again = telecentre.get("/api/v1/consults/free-slots", {"experts": [expert_id]}).json()
    assert first_slot["starts_at"] not in [s["starts_at"] for s in again]
    day = first_slot["starts_at"][:10]
    listed = telecentre.get("/api/v1/consults/meetings", {"from": day, "to": day}).json()
    assert first.json()["id"] in [m["id"] for m in listed]
    assert api("kaihua").get(f"/api/v1/consults/meetings/{first.json()['id']}").status_code == 403
    not_coordinator = api("expert").post(
        "/api/v1/consults/meetings", _meeting_body(first_slot, "expert", [], "x"), content_type="application/json"
    )
    assert not_coordinator.status_code == 403


def test_free_slots_are_future_working_hours_of_the_length_asked(api) -> None:
    answer = api("telecentre").get(
        "/api/v1/consults/free-slots",
        {"experts": [practitioner_id("expert"), practitioner_id("pathologist")], "days": 10, "minutes": 45},
    )
    assert answer.status_code == 200, answer.content
    slots = answer.json()
    assert 1 <= len(slots) <= 8
    now = timezone.now()
    for slot in slots:
        starts, ends = dt.datetime.fromisoformat(slot["starts_at"]), dt.datetime.fromisoformat(slot["ends_at"])
        assert starts >= now and ends - starts == dt.timedelta(minutes=45)
        assert timezone.localtime(starts).hour in (8, 10, 14, 16)
        assert timezone.localtime(starts).weekday() < 6
    assert [s["starts_at"] for s in slots] == sorted(s["starts_at"] for s in slots)
    # Another hospital's doctor may not read zju2's experts' diaries.
    refused = api("bijie").get("/api/v1/consults/free-slots", {"experts": [practitioner_id("expert")]})
    assert refused.status_code == 403
    unknown = api("telecentre").get(
        "/api/v1/consults/free-slots", {"experts": ["00000000-0000-4000-8000-000000000000"]}
    )
    assert unknown.status_code == 400 and "experts" in unknown.json()["errors"]


def test_service_levels_set_by_the_office_set_the_next_requests_deadlines(api) -> None:
    office = api("office")
    levels = office.get("/api/v1/consults/service-levels", {"consortium": "zju2-quzhou"}).json()
    routine = next(row for row in levels if row["kind"] == "econsult" and row["urgency"] == "routine")
    assert routine["source"] == "default" and routine["answer_within_minutes"] == 48 * 60
    assert len(levels) == 10
    level = {
        "consortium": "zju2-quzhou",
        "kind": "econsult",
        "urgency": "routine",
        "accept_within_minutes": 120,
        "answer_within_minutes": 720,
        "escalate_after_minutes": 60,
    }
    assert (
        api("kaihua").put("/api/v1/consults/service-levels", level, content_type="application/json").status_code == 403
    )
    bad = office.put(
        "/api/v1/consults/service-levels", {**level, "accept_within_minutes": 0}, content_type="application/json"
    )
    assert bad.status_code == 400 and "accept_within_minutes" in bad.json()["errors"]
    saved = office.put("/api/v1/consults/service-levels", level, content_type="application/json")
    assert saved.status_code == 200, saved.content
    assert saved.json()["source"] == "consortium" and saved.json()["answer_within_minutes"] == 720

    body = create(api("kaihua")).json()
    requested = dt.datetime.fromisoformat(body["requested_at"])
    assert dt.datetime.fromisoformat(body["accept_due_at"]) - requested == dt.timedelta(minutes=120)
    assert dt.datetime.fromisoformat(body["answer_due_at"]) - requested == dt.timedelta(minutes=720)
    # The requester reads the levels of its own consortium too.
    seen = api("kaihua").get("/api/v1/consults/service-levels", {"consortium": "zju2-quzhou"}).json()
    assert next(r for r in seen if r["kind"] == "econsult" and r["urgency"] == "routine")["source"] == "consortium"


def test_reading_the_patient_on_a_consult_leaves_an_audit_row_and_lists_do_not(api, persona, asked) -> None:
    reads = AuditEvent.objects.filter(action=AuditAction.READ_PII)
    before = reads.count()
    api("expert").get("/api/v1/consults", {"box": "for_me"})
    assert reads.count() == before
    assert api("expert").get(f"/api/v1/consults/{asked['id']}").status_code == 200
    read = reads.latest("id")
    assert read.actor == persona("expert")
    assert read.object_id == asked["patient"]["id"]
    assert asked["number"] in read.changes["purpose"]
    assert set(read.changes["fields"]) >= {"name", "id_number"}


def test_a_known_patient_is_asked_about_by_id_and_an_unseen_one_is_refused(api, asked) -> None:
    again = create(api("kaihua"), consult_body(patient=None, patient_id=asked["patient"]["id"]))
    assert again.status_code == 201, again.content
    assert again.json()["patient"]["id"] == asked["patient"]["id"]
    refused = create(api("bijie"), consult_body(patient=None, patient_id=asked["patient"]["id"]))
    assert refused.status_code == 403


def test_the_queue_reads_a_fixed_number_of_queries_however_long(api) -> None:
    kaihua = api("kaihua")
    for _ in range(3):
        assert create(kaihua).status_code == 201

    def count(limit: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            answer = kaihua.get("/api/v1/consults", {"box": "asked", "limit": limit})
        assert answer.status_code == 200 and len(answer.json()["items"]) == limit
        return len(queries)

    assert count(1) == count(3)


# ----------------------------------------------------------------------------------------
# The contract, fuzzed against a real consult


@pytest.fixture
def keep_connection() -> Any:
    # Like Django's test client: keep the test's connection (and its transaction) open across requests.
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _consult_operations() -> Any:
    import schemathesis
    from django.core.wsgi import get_wsgi_application

    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
    return schema.include(path_regex=r"^/api/v1/consults/\{public_id\}")


@pytest.fixture
def real_consult(persona: Any, keep_connection: None) -> Any:
    """An eConsult of Kaihua's that the expert has accepted, so that generated steps reach past the 404."""
    from yilian.consults import services as consult_services

    kaihua = persona("kaihua")
    khph = Institution.objects.get(code="khph")
    from yilian.patients import services as patient_services

    patient = patient_services.patient_register(actor=kaihua, institution=khph, name="无名氏", approximate_age=60)
    consult = consult_services.consult_request(
        actor=kaihua,
        patient=patient,
        kind="econsult",
        from_institution=khph,
        to_institution=Institution.objects.get(code="zju2"),
        discipline="neurosurgery",
        reason="丘脑出血",
        purpose="手术指征",
        question="是否手术？",
        diagnosis_name="丘脑出血",
        consent=consult_services.Consent("徐春华", "written", timezone.now()),
    )
    return consult_services.consult_accept(actor=persona("expert"), consult=consult)


@pytest.mark.parametrize("username", ["kaihua", "expert"])
def test_the_consult_operations_on_a_real_consult_answer_within_their_contract(
    username: str, persona: Any, real_consult: Any
) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    _, token = registry_services.api_token_create(actor=None, user=persona(username))
    operations = [result.ok() for result in _consult_operations().get_all_operations()]
    assert len(operations) == 6  # detail, a step, message, opinion, upload, download
    for operation in operations:
        strategy = operation.as_strategy()

        @given(case=strategy)
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            positive = case.meta is None or case.meta.generation.mode == "positive"
            if positive and "public_id" in case.path_parameters:
                case.path_parameters["public_id"] = str(real_consult.public_id)
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"},
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
            )

        check()
