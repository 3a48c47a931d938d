"""The referral API as a client sees it: the closed loop, the rules, scoping, masking, audit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from stdnum.cn import ric

from yilian.core.models import AuditAction, AuditEvent
from yilian.notifications import services as notifications
from yilian.patients.models import Patient
from yilian.referrals import services
from yilian.referrals.models import Referral
from yilian.registry import services as registry_services
from yilian.registry.models import Department, Institution

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def api(persona):
    def make(username: str, language: str = "en") -> Client:
        _, key = registry_services.api_token_create(actor=None, user=persona(username))
        return Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE=language)

    return make


def fresh_id_number(birth: str = "19580315", county: str = "330822") -> str:
    """A valid resident ID number (odd sequence: a man) that no patient holds yet."""
    for seq in range(1, 999, 2):
        stem = f"{county}{birth}{seq:03d}"
        number = stem + ric.calc_check_digit(stem + "0")  # it ignores the last character
        if not Patient.objects.filter(id_number=number).exists():
            return number
    raise AssertionError("no free ID number")


def referral_body(**overrides: Any) -> dict[str, Any]:
    """Story A's stroke patient referred up from Changshan to the city hospital, sent at once."""
    body: dict[str, Any] = {
        "patient": {
            "name": "徐卫东",
            "sex": "male",
            "birth_date": "1958-03-15",
            "id_number": fresh_id_number(),
            "phone": "13905701234",
            "residence_region": "330822",
            "emergency_contact": {"name": "徐丽", "relation": "女儿", "phone": "13905705678"},
        },
        "direction": "up",
        "urgency": "urgent",
        "to_institution": "qzph",
        "reason": "晨练时突发右侧肢体无力，考虑大血管闭塞，需动脉取栓",
        "requested_service": "procedure",
        "diagnosis": {"code": "I63.9", "name": "脑梗死"},
        "key_findings": "NIHSS 14; CT no haemorrhage; CTA left M1 occlusion",
        "current_treatment": "IV alteplase started 08:40",
        "allergies": "青霉素",
        "consent": {"obtained_by": "王建国", "method": "written", "at": timezone.now().isoformat()},
        "send": True,
    }
    body.update(overrides)
    return body


def create(client: Client, body: dict[str, Any] | None = None, *, key: str = "") -> Any:
    headers = {"Idempotency-Key": key} if key else None
    return client.post("/api/v1/referrals", body or referral_body(), content_type="application/json", headers=headers)


def act(client: Client, referral_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(f"/api/v1/referrals/{referral_id}/actions/{action}", body or {}, content_type="application/json")


@pytest.fixture
def sent(api) -> Any:
    """A referral the Changshan doctor has sent to Quzhou People's Hospital."""
    response = create(api("doctor"))
    assert response.status_code == 201, response.content
    return response.json()


def test_the_whole_loop_through_the_api_from_sending_to_closing(api) -> None:
    doctor, coordinator = api("doctor"), api("coordinator")
    neurosurgery = Department.objects.get(institution__code="qzph", discipline="neurosurgery")
    created = create(doctor, referral_body(to_department=str(neurosurgery.public_id)))
    assert created.status_code == 201, created.content
    body = created.json()
    rid = body["id"]
    assert body["status"] == "sent"
    assert body["from_institution"] == "csph" and body["to_institution"] == "qzph"
    assert body["consortium"] == "quzhou-neuro"
    assert body["from_department"] == "神经内科" or body["from_department"] == "Neurology"
    assert body["consent"]["method"] == "written"
    assert body["allowed_actions"] == ["cancel"] and body["sides"] == ["sender"]
    assert "status_token" not in body

    opened = coordinator.get(f"/api/v1/referrals/{rid}")
    assert opened.status_code == 200
    detail = opened.json()
    assert detail["status"] == "received"  # the receiving side opened it
    assert detail["received_at"] is not None
    assert set(detail["allowed_actions"]) == {"accept", "decline", "forward", "cancel"}
    assert detail["patient"]["name"] == "徐卫东"
    assert "status_token" not in detail

    accepted = act(coordinator, rid, "accept")
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["status"] == "accepted"
    appointment = (timezone.localtime() + dt.timedelta(hours=2)).replace(microsecond=0)
    scheduled = act(
        coordinator,
        rid,
        "schedule",
        {"schedule": {"scheduled_at": appointment.isoformat(), "place": "急诊卒中中心", "instructions": "直接到急诊"}},
    )
    assert scheduled.status_code == 200, scheduled.content
    assert scheduled.json()["status"] == "scheduled"
    assert scheduled.json()["appointment"]["place"] == "急诊卒中中心"
    assert act(coordinator, rid, "check_in").json()["status"] == "arrived"
    returned = act(
        coordinator,
        rid,
        "return_outcome",
        {
            "outcome": {
                "diagnosis": "左侧大脑中动脉M1段闭塞",
                "treatment": "机械取栓，TICI 3",
                "result": "肌力恢复至4级",
                "recommendations": "康复训练，二级预防",
                "refer_back": True,
                "refer_back_on": (timezone.localdate() + dt.timedelta(days=10)).isoformat(),
            }
        },
    )
    assert returned.status_code == 200, returned.content
    assert returned.json()["status"] == "outcome_returned"

    # The loop closes on the referring side: the doctor sees the outcome and acknowledges it.
    seen = doctor.get(f"/api/v1/referrals/{rid}").json()
    assert seen["outcome"]["result"] == "肌力恢复至4级" and seen["outcome"]["refer_back"] is True
    assert seen["allowed_actions"] == ["acknowledge"]
    closed = act(doctor, rid, "acknowledge")
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed" and closed.json()["allowed_actions"] == []

    timeline = doctor.get(f"/api/v1/referrals/{rid}/timeline").json()
    assert [e["action"] for e in timeline] == [
        "create", "send", "receive", "accept", "schedule", "check_in", "return_outcome", "acknowledge",
    ]  # fmt: skip
    assert timeline[3]["side"] == "receiver" and timeline[3]["institution"] == "qzph"
    assert timeline[-1]["to_status"] == "closed" and timeline[-1]["institution"] == "csph"


def test_sending_without_consent_is_refused_and_nothing_is_created(api) -> None:
    before = (Referral.objects.count(), Patient.objects.count())
    response = create(api("doctor"), referral_body(consent=None))
    assert response.status_code == 400
    message = "Record the patient's consent (who obtained it, how and when) before sending the referral."
    assert response.json()["errors"]["consent"] == [message]
    assert message in response.json()["detail"]
    assert (Referral.objects.count(), Patient.objects.count()) == before


def test_a_draft_without_consent_is_kept_and_sent_later_with_consent(api) -> None:
    doctor = api("doctor")
    draft = create(doctor, referral_body(consent=None, send=False))
    assert draft.status_code == 201 and draft.json()["status"] == "draft"
    rid = draft.json()["id"]
    assert set(draft.json()["allowed_actions"]) == {"send", "cancel"}
    refused = act(doctor, rid, "send")
    assert refused.status_code == 400 and "consent" in refused.json()["errors"]
    consent = {"obtained_by": "王建国", "method": "verbal", "at": "2026-01-05T09:30:00"}  # China time
    sent = act(doctor, rid, "send", {"consent": consent})
    assert sent.status_code == 200, sent.content
    assert sent.json()["status"] == "sent"
    assert sent.json()["consent"]["at"].startswith("2026-01-05T01:30:00")  # stored in UTC


def patch(client: Client, referral_id: str, body: dict[str, Any]) -> Any:
    return client.patch(f"/api/v1/referrals/{referral_id}", body, content_type="application/json")


def test_the_sender_completes_a_draft_then_sends_it(api, persona) -> None:
    doctor = api("doctor")
    rid = create(doctor, referral_body(consent=None, send=False, allergies="")).json()["id"]
    changed = patch(
        doctor,
        rid,
        {
            "diagnosis": {"code": "I61.0", "name": "基底节区脑出血"},
            "allergies": "青霉素",
            "consent": {"obtained_by": "王建国", "method": "written", "at": "2026-01-05T09:30:00"},
        },
    )
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert body["status"] == "draft"
    assert body["diagnosis"] == {"code": "I61.0", "name": "基底节区脑出血"}
    assert body["allergies"] == "青霉素"
    assert body["reason"] == referral_body()["reason"]  # left out, so unchanged
    assert body["consent"]["method"] == "written"
    edits = AuditEvent.objects.filter(action=AuditAction.UPDATE, object_id=rid, actor=persona("doctor"))
    assert edits.count() == 1
    assert act(doctor, rid, "send").status_code == 200  # the consent is now on record


def test_only_a_draft_of_ones_own_can_be_changed(api, sent) -> None:
    late = patch(api("doctor"), sent["id"], {"allergies": "头孢"})
    assert late.status_code == 409
    assert late.json() == {"detail": "Only a draft can be edited: the referral is now “Sent”.", "status": "sent"}
    receiver = patch(api("coordinator"), sent["id"], {"allergies": "头孢"})
    assert receiver.status_code == 403
    assert Referral.objects.get(public_id=sent["id"]).allergies != "头孢"


def test_a_draft_change_with_a_bad_icd_code_changes_nothing(api) -> None:
    doctor = api("doctor")
    rid = create(doctor, referral_body(send=False)).json()["id"]
    refused = patch(doctor, rid, {"diagnosis": {"code": "脑梗", "name": "脑梗死"}, "allergies": "头孢"})
    assert refused.status_code == 400
    assert "diagnosis_code" in refused.json()["errors"]
    draft = Referral.objects.get(public_id=rid)
    assert (draft.diagnosis_code, draft.allergies) == ("I63.9", referral_body()["allergies"])


def test_a_down_referral_without_a_care_plan_is_refused(api) -> None:
    body = referral_body(direction="down", to_institution="cs-tianma", requested_service="rehabilitation")
    response = create(api("doctor"), body)
    assert response.status_code == 400
    assert "care_plan" in response.json()["errors"]
    plan = {
        "diagnosis": "脑梗死恢复期",
        "treatment_done": "取栓术后",
        "medication": "阿司匹林 100 mg qd",
        "follow_up": "每月随访",
        "warning_signs": "再次出现肢体无力立即就医",
    }
    body["patient"]["id_number"] = fresh_id_number()
    with_plan = create(api("doctor"), {**body, "care_plan": plan})
    assert with_plan.status_code == 201, with_plan.content
    assert with_plan.json()["care_plan"]["medication"] == "阿司匹林 100 mg qd"


def test_office_routing_a_referral_without_destination(api) -> None:
    body = referral_body(to_institution=None, consortium="quzhou-neuro")
    response = create(api("doctor"), body)
    assert response.status_code == 201, response.content
    assert response.json()["to_institution"] is None
    missing = create(api("doctor"), referral_body(to_institution=None))
    assert missing.status_code == 400 and "consortium" in missing.json()["errors"]


def test_unrelated_institution_gets_403_on_detail_actions_and_timeline(api, sent) -> None:
    bijie = api("bijie")
    rid = sent["id"]
    for response in (
        bijie.get(f"/api/v1/referrals/{rid}"),
        bijie.get(f"/api/v1/referrals/{rid}/timeline"),
        bijie.get(f"/api/v1/referrals/{rid}/attachments"),
        act(bijie, rid, "accept"),
        act(bijie, rid, "cancel", {"reason": "x"}),
    ):
        assert response.status_code == 403
        assert response.json()["detail"] == "This referral does not involve your institution."
    assert Referral.objects.get(public_id=rid).status == "sent"
    assert rid not in {r["id"] for r in bijie.get("/api/v1/referrals").json()["items"]}


def test_a_step_the_caller_could_never_take_is_403(api, sent) -> None:
    response = act(api("doctor"), sent["id"], "accept")
    assert response.status_code == 403
    assert "Accept" in response.json()["detail"]


def test_a_step_not_possible_now_is_409_with_the_current_status(api, sent) -> None:
    coordinator = api("coordinator")
    early = act(coordinator, sent["id"], "check_in")
    assert early.status_code == 409
    assert early.json() == {
        "detail": "“Patient arrived” is not possible: the referral is now “Sent”.",
        "status": "sent",
    }
    coordinator.get(f"/api/v1/referrals/{sent['id']}")  # opening it receives it
    assert act(coordinator, sent["id"], "accept").status_code == 200
    again = act(coordinator, sent["id"], "accept")
    assert again.status_code == 409 and again.json()["status"] == "accepted"


def test_decline_needs_a_reason(api, sent) -> None:
    coordinator = api("coordinator")
    coordinator.get(f"/api/v1/referrals/{sent['id']}")
    refused = act(coordinator, sent["id"], "decline", {"reason": "   "})
    assert refused.status_code == 400 and refused.json()["errors"]["reason"] == ["Give a reason."]
    declined = act(coordinator, sent["id"], "decline", {"reason": "导管室检修，建议转浙大二院"})
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert declined.json()["last_reason"] == "导管室检修，建议转浙大二院"


def test_schedule_without_its_details_is_400(api, sent) -> None:
    coordinator = api("coordinator")
    act(coordinator, sent["id"], "receive")
    assert act(coordinator, sent["id"], "accept").status_code == 200
    response = act(coordinator, sent["id"], "schedule")
    assert response.status_code == 400 and "schedule" in response.json()["errors"]


def test_unknown_action_is_422(api, sent) -> None:
    assert act(api("coordinator"), sent["id"], "teleport").status_code == 422


def test_unknown_referral_is_404(api) -> None:
    response = api("doctor").get("/api/v1/referrals/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404 and response.json()["detail"] == "No such referral."


def test_lists_show_patients_masked_and_write_no_audit_row(api, sent) -> None:
    number = Referral.objects.get(public_id=sent["id"]).patient.id_number
    assert number is not None
    reads_before = AuditEvent.objects.filter(action=AuditAction.READ_PII).count()
    for client, params in ((api("coordinator"), {}), (api("doctor"), {"box": "outgoing"})):
        response = client.get("/api/v1/referrals", params)
        assert response.status_code == 200
        row = next(r for r in response.json()["items"] if r["id"] == sent["id"])
        assert row["patient"]["id_number"] == number[:4] + "*" * 10 + number[-4:]
        assert row["patient"]["name"] == "徐**"
        assert number not in response.content.decode()
        assert "徐卫东" not in response.content.decode()
    assert sent["patient"]["id_number"].count("*") == 10  # the create answer is masked too
    assert AuditEvent.objects.filter(action=AuditAction.READ_PII).count() == reads_before


def test_the_detail_shows_the_patient_unmasked_and_audits_the_read(api, persona, sent) -> None:
    patient = Referral.objects.get(public_id=sent["id"]).patient
    response = api("coordinator").get(f"/api/v1/referrals/{sent['id']}")
    assert response.json()["patient"]["id_number"] == patient.id_number
    assert response.json()["patient"]["emergency_contact"]["phone"] == "13905705678"
    read = AuditEvent.objects.filter(action=AuditAction.READ_PII, object_id=str(patient.public_id)).latest("id")
    assert read.actor == persona("coordinator")
    assert "id_number" in read.changes["fields"]
    assert str(patient.id_number) not in str(read.changes)


def test_list_filters_and_boxes(api, sent) -> None:
    coordinator = api("coordinator")
    incoming = coordinator.get("/api/v1/referrals", {"box": "incoming", "institution": "qzph", "urgency": "urgent"})
    assert sent["id"] in {r["id"] for r in incoming.json()["items"]}
    routine = coordinator.get("/api/v1/referrals", {"urgency": "routine", "q": sent["number"]})
    assert routine.json()["count"] == 0
    by_number = coordinator.get("/api/v1/referrals", {"q": sent["number"]}).json()
    assert by_number["count"] == 1 and by_number["items"][0]["number"] == sent["number"]
    assert coordinator.get("/api/v1/referrals", {"institution": "csph"}).status_code == 403
    assert coordinator.get("/api/v1/referrals", {"box": "office"}).status_code == 403
    assert api("commission").get("/api/v1/referrals").status_code == 403


def test_attachments_pdf_accepted_and_its_download_audited(api, persona, sent) -> None:
    doctor = api("doctor")
    upload = doctor.post(
        f"/api/v1/referrals/{sent['id']}/attachments",
        {"file": SimpleUploadedFile("ct-report.pdf", PDF, content_type="application/pdf"), "description": "CT 报告"},
    )
    assert upload.status_code == 201, upload.content
    attachment = upload.json()
    assert attachment["kind"] == "pdf" and attachment["size"] == len(PDF)
    listed = api("coordinator").get(f"/api/v1/referrals/{sent['id']}/attachments").json()
    assert [a["id"] for a in listed] == [attachment["id"]]
    download = api("coordinator").get(attachment["download_url"])
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PDF
    read = AuditEvent.objects.filter(action=AuditAction.READ_PII).latest("id")
    assert read.actor == persona("coordinator") and read.changes["fields"] == ["attachment"]
    assert api("bijie").get(attachment["download_url"]).status_code == 403


def test_attachments_of_the_wrong_type_or_too_big_are_refused(api, sent, monkeypatch) -> None:
    doctor = api("doctor")
    url = f"/api/v1/referrals/{sent['id']}/attachments"
    fake = doctor.post(url, {"file": SimpleUploadedFile("notes.pdf", b"just text, renamed", content_type="text/plain")})
    assert fake.status_code == 400
    assert fake.json()["errors"]["file"] == ["Only PDF documents, PNG or JPEG images and DICOM files can be attached."]
    monkeypatch.setattr(services, "ATTACHMENT_MAX_BYTES", 16)
    big = doctor.post(url, {"file": SimpleUploadedFile("big.pdf", PDF, content_type="application/pdf")})
    assert big.status_code == 400 and "larger than" in big.json()["errors"]["file"][0]
    assert doctor.get(url).json() == []
    monkeypatch.undo()
    assert act(doctor, sent["id"], "cancel", {"reason": "家属决定在本院保守治疗"}).status_code == 200
    late = doctor.post(url, {"file": SimpleUploadedFile("late.pdf", PDF, content_type="application/pdf")})
    assert late.status_code == 409
    assert late.json()["detail"] == "Files can no longer be added: the referral is Cancelled."
    assert late.json()["status"] == "cancelled"


def test_errors_come_in_the_callers_language(api, sent) -> None:
    en = create(api("doctor", language="en"), referral_body(consent=None))
    zh = create(api("doctor", language="zh-hans"), referral_body(consent=None))
    assert en.status_code == zh.status_code == 400
    assert en.json()["errors"]["consent"][0].startswith("Record the patient's consent")
    assert "同意" in zh.json()["errors"]["consent"][0]
    late_en = act(api("coordinator", language="en"), sent["id"], "check_in").json()["detail"]
    late_zh = act(api("coordinator", language="zh-hans"), sent["id"], "check_in").json()["detail"]
    assert "Sent" in late_en
    assert "已发送" in late_zh and "Sent" not in late_zh
    missing = api("doctor", language="zh-hans").post("/api/v1/referrals", {}, content_type="application/json")
    assert missing.status_code == 422 and "该字段为必填项" in str(missing.json()["errors"])


def test_patient_record_is_audited_and_merging_is_for_the_office(api, persona, sent) -> None:
    # An unknown man brought in by ambulance, later identified: the office merges the records.
    body = referral_body(to_institution=None, consortium="zju2-quzhou")
    body["patient"] = {"name": "无名氏", "sex": "male", "approximate_age": 65}
    body["from_institution"] = "zju2"
    expert = api("expert")
    unknown = create(expert, {**body, "direction": "down", "to_institution": "qzph", "consortium": ""})
    assert unknown.status_code == 400  # a down-referral needs its care plan
    unknown = create(expert, {**body, "direction": "lateral"})
    assert unknown.status_code == 201, unknown.content
    unidentified = unknown.json()["patient"]
    assert unidentified["identified"] is False and unidentified["id_number"] == ""

    identified = Referral.objects.get(public_id=sent["id"]).patient
    office = api("office")
    # The office sees the lateral referral's patient (its consortium) but not the Changshan one (another consortium).
    assert office.get(f"/api/v1/patients/{unidentified['id']}").status_code == 200
    assert office.get(f"/api/v1/patients/{identified.public_id}").status_code == 403
    refused = api("coordinator").post(
        f"/api/v1/patients/{unidentified['id']}/merge",
        {"into": str(identified.public_id)},
        content_type="application/json",
    )
    assert refused.status_code == 403

    record = api("doctor").get(f"/api/v1/patients/{identified.public_id}")
    assert record.status_code == 200
    assert record.json()["id_number"] == identified.id_number
    assert [r["id"] for r in record.json()["referrals"]] == [sent["id"]]
    read = AuditEvent.objects.filter(action=AuditAction.READ_PII, object_id=str(identified.public_id)).latest("id")
    assert read.actor == persona("doctor")


def test_merge_moves_the_referrals_of_an_unidentified_record(api) -> None:
    doctor = api("doctor")
    unknown = create(doctor, referral_body(patient={"name": "无名氏", "sex": "male", "approximate_age": 66}))
    known = create(doctor)
    assert unknown.status_code == known.status_code == 201
    source, target = unknown.json()["patient"]["id"], known.json()["patient"]["id"]
    admin = api("admin")
    merged = admin.post(f"/api/v1/patients/{source}/merge", {"into": target}, content_type="application/json")
    assert merged.status_code == 200, merged.content
    assert merged.json()["id"] == target and merged.json()["merged_records"] == [source]
    assert {r["id"] for r in merged.json()["referrals"]} == {unknown.json()["id"], known.json()["id"]}
    twice = admin.post(f"/api/v1/patients/{source}/merge", {"into": target}, content_type="application/json")
    assert twice.status_code == 400


def test_notifications_list_and_mark_read(api, persona, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        sent = create(api("doctor")).json()
    coordinator = api("coordinator")
    listed = coordinator.get("/api/v1/notifications").json()
    mine = [n for n in listed["items"] if sent["number"] in n["title"]]
    assert mine and mine[0]["title"].startswith("New referral to receive") and mine[0]["read_at"] is None
    assert listed["unread"] >= 1
    zh = api("coordinator", language="zh-hans").get("/api/v1/notifications").json()
    assert any(n["title"].startswith("新转诊待接收") for n in zh["items"] if sent["number"] in n["title"])
    marked = coordinator.post("/api/v1/notifications/read", {"ids": [mine[0]["id"]]}, content_type="application/json")
    assert marked.json() == {"marked": 1, "unread": listed["unread"] - 1}
    # Someone else's notification id is ignored, not read.
    notifications.notify(users=[persona("bijie")], kind="test", title_zh="测试", title_en="Test")
    theirs = api("bijie").get("/api/v1/notifications").json()["items"][0]["id"]
    foreign = coordinator.post("/api/v1/notifications/read", {"ids": [theirs]}, content_type="application/json")
    assert foreign.json()["marked"] == 0
    everything = coordinator.post("/api/v1/notifications/read", {}, content_type="application/json").json()
    assert everything["unread"] == 0
    assert coordinator.get("/api/v1/notifications", {"unread_only": True}).json()["count"] == 0


def test_figures_count_by_institution_for_the_figures_roles_only(api, sent) -> None:
    today = timezone.localdate()
    period = {"start": today.isoformat(), "end": (today + dt.timedelta(days=1)).isoformat()}
    coordinator = api("coordinator")
    coordinator.get(f"/api/v1/referrals/{sent['id']}")
    act(coordinator, sent["id"], "accept")
    response = api("commission").get("/api/v1/referrals/figures", period)  # Quzhou's health commission
    assert response.status_code == 200, response.content
    rows = {row["institution"]: row for row in response.json()["institutions"]}
    assert rows["csph"]["up_out"] >= 1
    assert rows["qzph"]["accepted"] >= 1 and rows["qzph"]["median_hours_to_decide"] is not None
    assert api("doctor").get("/api/v1/referrals/figures", period).status_code == 403
    backwards = api("commission").get("/api/v1/referrals/figures", {"start": period["end"], "end": period["start"]})
    assert backwards.status_code == 422


def test_default_referring_institution_is_the_callers_only_one(api, persona) -> None:
    assert Institution.objects.get(code="csph").pk in {m.institution_id for m in persona("doctor").memberships.all()}
    response = create(api("doctor"), referral_body(from_institution=""))
    assert response.status_code == 201 and response.json()["from_institution"] == "csph"
    elsewhere = create(api("doctor"), referral_body(from_institution="qzph"))
    assert elsewhere.status_code == 403
    coordinator = create(api("coordinator"))
    assert coordinator.status_code == 403


def test_bodies_that_are_not_objects_and_numbers_as_dates_are_422(api, sent) -> None:
    coordinator = api("coordinator")
    url = f"/api/v1/referrals/{sent['id']}/actions/receive"
    assert coordinator.post(url, "[null, null]", content_type="application/json").status_code == 422
    assert coordinator.post(url, "null", content_type="application/json").status_code == 200  # no body needed
    read = coordinator.post("/api/v1/notifications/read", "[1, 2]", content_type="application/json")
    assert read.status_code == 422 and read.json()["errors"]["body.payload"] == ["Must be an object."]
    assert coordinator.get("/api/v1/referrals", {"date_to": "0"}).status_code == 422
    assert coordinator.get("/api/v1/referrals", {"date_to": "2026-01-31"}).status_code == 200
    body = referral_body()
    body["consent"]["at"] = 0
    assert create(api("doctor"), body).status_code == 422


def test_a_list_page_costs_the_same_queries_for_one_row_or_ten(api) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    doctor = api("doctor")
    for _ in range(10):
        assert create(doctor).status_code == 201
    counts = []
    for limit in (1, 10):
        with CaptureQueriesContext(connection) as queries:
            page = doctor.get("/api/v1/referrals", {"box": "outgoing", "limit": limit})
        assert len(page.json()["items"]) == limit
        counts.append(len(queries))
    assert counts[0] == counts[1]
