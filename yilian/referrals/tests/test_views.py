"""The referral pages through HTTP, as a browser without JavaScript would use them: boards,
the create form, actions and their refusals, attachments, the slip, the patient's status page,
patient merging, notifications and the webhook page."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from yilian.core.models import AuditAction, AuditEvent
from yilian.notifications.models import Notification, WebhookEndpoint
from yilian.patients.models import Patient
from yilian.referrals.models import Referral, ReferralAttachment, Status
from yilian.referrals.tests.factories import next_id_number

pytestmark = pytest.mark.django_db


def _form(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "陈福生",
        "id_number": next_id_number(),
        "sex": "male",
        "phone": "13905701234",
        "direction": "up",
        "urgency": "urgent",
        "from_institution": "csph",
        "destination": "inst:qzph:quzhou-neuro",
        "requested_service": "admission",
        "reason": "突发左侧肢体无力2小时",
        "diagnosis_code": "I63.9",
        "diagnosis_name": "急性脑梗死",
        "consent_obtained_by": "王建国",
        "consent_method": "written",
        "consent_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
        "submit": "send",
    }
    data.update(overrides)
    return data


def test_doctor_sends_a_referral_from_the_form(login) -> None:
    client = login("doctor")
    page = client.get("/referrals/new/").content.decode()
    assert "衢州市人民医院" in page and "医联体办公室" in page  # partners and "let the office route it"
    response = client.post("/referrals/new/", _form())
    assert response.status_code == 302
    referral = Referral.objects.get(public_id=response["Location"].split("/")[2])
    assert referral.status == Status.SENT
    assert referral.to_institution is not None and referral.to_institution.code == "qzph"
    assert referral.from_practitioner is not None and referral.from_practitioner.name_zh == "王建国"


def test_sending_without_consent_is_refused_with_a_message_and_nothing_is_written(login) -> None:
    before = Referral.objects.count(), Patient.objects.count()
    response = login("doctor").post("/referrals/new/", _form(consent_method=""))
    assert response.status_code == 400
    assert "知情同意" in response.content.decode()
    assert (Referral.objects.count(), Patient.objects.count()) == before


def test_a_draft_can_be_saved_without_consent_and_sent_later(login) -> None:
    client = login("doctor")
    response = client.post("/referrals/new/", _form(consent_method="", submit="draft"))
    assert response.status_code == 302
    referral = Referral.objects.get(public_id=response["Location"].split("/")[2])
    assert referral.status == Status.DRAFT
    detail = client.get(response["Location"]).content.decode()
    assert 'data-action="send"' in detail
    sent = client.post(
        f"/referrals/{referral.public_id}/act/send/",
        {"consent_obtained_by": "王建国", "consent_method": "verbal", "consent_at": "2026-11-23T08:00"},
    )
    assert sent.status_code == 302
    referral.refresh_from_db()
    assert referral.status == Status.SENT and referral.consent_method == "verbal"


def _draft_form(referral: Referral, **overrides: Any) -> dict[str, Any]:
    data = {
        "urgency": referral.urgency,
        "requested_service": referral.requested_service,
        "diagnosis_code": referral.diagnosis_code,
        "diagnosis_name": referral.diagnosis_name,
        "reason": referral.reason,
        "key_findings": referral.key_findings,
        "current_treatment": referral.current_treatment,
        "allergies": referral.allergies,
        "consent_obtained_by": "",
        "consent_method": "",
        "consent_at": "",
    }
    data.update(overrides)
    return data


def test_the_sender_edits_a_draft_and_the_change_is_audited(login, make_referral) -> None:
    draft = make_referral(Status.DRAFT, consent=None)
    client = login("doctor")
    detail = client.get(f"/referrals/{draft.public_id}/").content.decode()
    assert f'href="/referrals/{draft.public_id}/edit/"' in detail
    page = client.get(f"/referrals/{draft.public_id}/edit/").content.decode()
    assert "编辑草稿" in page and draft.reason in page  # the form comes filled in
    response = client.post(
        f"/referrals/{draft.public_id}/edit/",
        _draft_form(draft, diagnosis_code="I61.0", diagnosis_name="基底节区脑出血", consent_obtained_by="王建国",
                    consent_method="written", consent_at="2026-11-23T08:00"),
    )  # fmt: skip
    assert response.status_code == 302 and response["Location"] == f"/referrals/{draft.public_id}/"
    draft.refresh_from_db()
    assert (draft.status, draft.diagnosis_code, draft.consent_method) == (Status.DRAFT, "I61.0", "written")
    audit = AuditEvent.objects.get(action=AuditAction.UPDATE, object_id=str(draft.public_id))
    assert "diagnosis_code" in audit.changes["fields"]


def test_a_bad_draft_edit_is_explained_and_changes_nothing(login, make_referral) -> None:
    draft = make_referral(Status.DRAFT)
    response = login("doctor").post(
        f"/referrals/{draft.public_id}/edit/", _draft_form(draft, diagnosis_code="脑梗", allergies="头孢")
    )
    assert response.status_code == 400
    assert "请输入 ICD-10 编码，如 I63.9 或 I63.900x001。" in response.content.decode()
    draft.refresh_from_db()
    assert (draft.diagnosis_code, draft.allergies) == ("I63.9", "青霉素")


def test_only_the_sender_edits_and_only_while_it_is_a_draft(login, make_referral) -> None:
    sent = make_referral(Status.SENT)
    doctor = login("doctor")
    assert "/edit/" not in doctor.get(f"/referrals/{sent.public_id}/").content.decode()
    late = doctor.post(f"/referrals/{sent.public_id}/edit/", _draft_form(sent, allergies="头孢"), follow=True)
    assert "已发送，不能再修改" in late.content.decode()
    assert login("coordinator").get(f"/referrals/{sent.public_id}/edit/").status_code == 403
    sent.refresh_from_db()
    assert sent.allergies == "青霉素"


def test_a_wrong_id_number_is_explained_in_the_users_language(login) -> None:
    good = next_id_number()
    bad = good[:-1] + ("1" if good[-1] != "1" else "2")  # the check digit no longer matches
    zh = login("doctor").post("/referrals/new/", _form(id_number=bad))
    assert zh.status_code == 400 and "校验位" in zh.content.decode()
    en = login("doctor")
    en.post("/language/", {"language": "en", "next": "/"})
    page = en.post("/referrals/new/", _form(id_number=bad))
    assert page.status_code == 400 and "check digit" in page.content.decode()


def test_incoming_board_lists_masked_patients_and_marks_overdue(login, make_referral) -> None:
    referral = make_referral(Status.SENT)
    Referral.objects.filter(pk=referral.pk).update(receive_due_at=timezone.now() - dt.timedelta(hours=1))
    page = login("coordinator").get("/referrals/?box=incoming&institution=qzph").content.decode()
    assert referral.number in page
    assert referral.patient.id_number not in page
    assert referral.patient.masked_id_number in page
    assert "table-overdue" in page and "超时" in page


def test_board_filters_and_htmx_partial(login, make_referral) -> None:
    urgent = make_referral(Status.SENT, urgency="urgent")
    routine = make_referral(Status.SENT, urgency="routine")
    client = login("coordinator")
    partial = client.get("/referrals/?box=incoming&urgency=urgent", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial
    assert urgent.number in partial and routine.number not in partial


def test_outsiders_do_not_see_the_referral(login, make_referral) -> None:
    referral = make_referral(Status.SENT)
    assert login("bijie").get(f"/referrals/{referral.public_id}/").status_code == 403
    assert login("commission").get("/referrals/").status_code == 403
    assert login("doctor").get("/referrals/?box=incoming&institution=qzph").status_code == 404


def test_opening_on_the_receiving_side_receives_and_audits_the_patient_read(login, make_referral) -> None:
    referral = make_referral(Status.SENT)
    page = login("coordinator").get(f"/referrals/{referral.public_id}/").content.decode()
    referral.refresh_from_db()
    assert referral.status == Status.RECEIVED
    assert referral.patient.id_number in page
    assert AuditEvent.objects.filter(
        action=AuditAction.READ_PII, object_id=str(referral.patient.public_id), actor__username="coordinator"
    ).exists()
    # The sender opening it does not "receive" it.
    other = make_referral(Status.SENT)
    login("doctor").get(f"/referrals/{other.public_id}/")
    other.refresh_from_db()
    assert other.status == Status.SENT


def test_decline_needs_a_reason(login, make_referral) -> None:
    referral = make_referral(Status.RECEIVED)
    client = login("coordinator")
    refused = client.post(f"/referrals/{referral.public_id}/act/decline/", {"reason": " "})
    assert refused.status_code == 400
    assert "请填写原因" in refused.content.decode()
    done = client.post(f"/referrals/{referral.public_id}/act/decline/", {"reason": "导管室检修"})
    assert done.status_code == 302
    referral.refresh_from_db()
    assert referral.status == Status.DECLINED and referral.last_reason == "导管室检修"


def test_an_action_from_the_wrong_status_answers_409_and_a_foreign_one_403(login, make_referral) -> None:
    referral = make_referral(Status.ACCEPTED)
    client = login("coordinator")
    stale = client.post(f"/referrals/{referral.public_id}/act/accept/")
    assert stale.status_code == 409
    assert "已接受" in stale.content.decode()
    assert login("doctor").post(f"/referrals/{referral.public_id}/act/check_in/").status_code == 403
    assert client.post(f"/referrals/{referral.public_id}/act/fly/").status_code == 404


def test_schedule_then_status_page_shows_the_appointment_and_nothing_medical(client, login, make_referral) -> None:
    referral = make_referral(Status.ACCEPTED)
    when = (timezone.localtime() + dt.timedelta(days=2)).replace(hour=9, minute=30)
    response = login("coordinator").post(
        f"/referrals/{referral.public_id}/act/schedule/",
        {"scheduled_at": when.strftime("%Y-%m-%dT%H:%M"), "place": "神经外科诊室", "instructions": "空腹"},
    )
    assert response.status_code == 302
    referral.refresh_from_db()
    page = client.get(f"/s/{referral.status_token}/")
    text = page.content.decode()
    assert page.status_code == 200 and page["X-Robots-Tag"] == "noindex, nofollow"
    assert "09:30" in text and "神经外科诊室" in text and "空腹" in text
    for secret in (referral.patient.name, referral.diagnosis_name, referral.diagnosis_code, referral.patient.id_number):
        assert secret not in text
    assert client.get("/s/not-a-token/").status_code == 404


def test_slip_carries_a_qr_code_to_the_status_page_and_is_audited(login, make_referral) -> None:
    referral = make_referral(Status.SCHEDULED)
    page = login("doctor").get(f"/referrals/{referral.public_id}/slip/").content.decode()
    assert "<svg" in page and f"/s/{referral.status_token}/" in page
    assert referral.patient.masked_id_number in page
    assert referral.patient.id_number not in page
    assert AuditEvent.objects.filter(action=AuditAction.READ_PII, changes__purpose=f"slip {referral.number}").exists()


def test_attachment_upload_checks_the_content_and_download_is_audited(login, make_referral) -> None:
    referral = make_referral(Status.SENT)
    client = login("doctor")
    fake = SimpleUploadedFile("ct.pdf", b"not a pdf at all", content_type="application/pdf")
    refused = client.post(f"/referrals/{referral.public_id}/attachments/", {"file": fake})
    assert refused.status_code == 400
    assert "PDF" in refused.content.decode()
    pdf = SimpleUploadedFile("ct-report.pdf", b"%PDF-1.4\n%%EOF\n", content_type="application/pdf")
    assert client.post(f"/referrals/{referral.public_id}/attachments/", {"file": pdf}).status_code == 302
    attachment = ReferralAttachment.objects.get(referral=referral)
    download = login("coordinator").get(f"/referrals/{referral.public_id}/attachments/{attachment.public_id}/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content).startswith(b"%PDF-")
    assert AuditEvent.objects.filter(action=AuditAction.READ_PII, changes__fields=["attachment"]).exists()


def test_office_merges_an_unidentified_patient_from_the_patient_page(
    login, make_referral, make_patient, neuro_office
) -> None:
    unknown = make_patient(name="无名氏", id_number="")
    referral = make_referral(Status.SENT, patient=unknown)
    known = make_patient(name="陈福生")
    make_referral(Status.SENT, patient=known)
    client = login("neuro_office")
    page = client.post(f"/referrals/patients/{unknown.public_id}/", {"id_number": known.id_number})
    assert page.status_code == 302
    referral.refresh_from_db()
    unknown.refresh_from_db()
    assert referral.patient_id == known.pk and unknown.merged_into_id == known.pk
    assert login("doctor").post(f"/referrals/patients/{known.public_id}/", {"id_number": "x"}).status_code == 403


def test_notifications_are_listed_and_marked_read(login, make_referral, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):  # the coordinators are told after commit
        referral = make_referral(Status.SENT)
    client = login("coordinator")
    assert 'id="unread-count"' in client.get("/").content.decode()
    page = client.get("/notifications/").content.decode()
    assert referral.number in page
    notice = Notification.objects.filter(user__username="coordinator", read_at__isnull=True).first()
    assert notice is not None
    opened = client.post("/notifications/read/", {"id": notice.pk})
    assert opened.status_code == 302 and opened["Location"] == f"/referrals/{referral.public_id}/"
    client.post("/notifications/read/")
    assert not Notification.objects.filter(user__username="coordinator", read_at__isnull=True).exists()
    assert 'id="unread-count"' not in client.get("/").content.decode()


def test_hospital_admin_adds_a_webhook_others_may_not(login) -> None:
    client = login("hospadmin")
    response = client.post(
        "/notifications/webhooks/",
        {"institution": "qzph", "name": "神经外科群", "kind": "wecom", "url": "https://qyapi.example.cn/send?key=1"},
    )
    assert response.status_code == 302
    assert WebhookEndpoint.objects.filter(institution__code="qzph", name="神经外科群").exists()
    bad = client.post("/notifications/webhooks/", {"institution": "csph", "name": "x", "kind": "wecom", "url": "x"})
    assert bad.status_code == 400
    assert login("doctor").get("/notifications/webhooks/").status_code == 403


def test_home_page_counts_what_waits_for_the_coordinator_and_the_doctor(login, make_referral) -> None:
    coordinator, doctor = login("coordinator"), login("doctor")
    before = _stats(coordinator.get("/").content.decode()), _stats(doctor.get("/").content.decode())
    make_referral(Status.SENT)
    make_referral(Status.RECEIVED)
    make_referral(Status.OUTCOME_RETURNED)
    after = _stats(coordinator.get("/").content.decode()), _stats(doctor.get("/").content.decode())
    assert [a - b for a, b in zip(after[0], before[0], strict=True)] == [2, 0, 0, 0]  # to receive, to decide
    assert [a - b for a, b in zip(after[1], before[1], strict=True)] == [0, 0, 0, 1]  # an outcome to read
    assert 'id="worklist"' not in login("commission").get("/").content.decode()


def _stats(page: str) -> list[int]:
    import re

    start = page.index('id="worklist"')
    worklist = page[start : page.index("</div></div>\n", start)]  # the referral card only
    return [int(n) for n in re.findall(r'<div class="stat[^"]*">(\d+)</div>', worklist)]


def test_a_draft_stays_with_the_referring_side(login, make_referral, neuro_office) -> None:
    """Before it is sent (and perhaps before the patient agreed), neither the receiving hospital
    nor the office sees the draft or, through it, the patient."""
    draft = make_referral(Status.DRAFT, consent=None)
    assert login("doctor").get(f"/referrals/{draft.public_id}/").status_code == 200
    coordinator = login("coordinator")
    assert coordinator.get(f"/referrals/{draft.public_id}/").status_code in (403, 404)
    assert coordinator.get(f"/referrals/patients/{draft.patient.public_id}/").status_code in (403, 404)
    pdf = SimpleUploadedFile("ct.pdf", b"%PDF-1.4\n%%EOF\n", content_type="application/pdf")
    assert coordinator.post(f"/referrals/{draft.public_id}/attachments/", {"file": pdf}).status_code in (403, 404)
    assert not ReferralAttachment.objects.filter(referral=draft).exists()
    office = Client()
    office.force_login(neuro_office)
    assert office.get(f"/referrals/{draft.public_id}/").status_code in (403, 404)


def test_a_refused_referral_leaves_no_attached_file_behind(login, settings) -> None:
    """A down-referral without its care plan is refused whole: no rows and no stored document."""
    media = Path(settings.MEDIA_ROOT)
    before = {p for p in media.rglob("*") if p.is_file()} if media.exists() else set()
    pdf = SimpleUploadedFile("discharge.pdf", b"%PDF-1.4\n%%EOF\n", content_type="application/pdf")
    form = _form(direction="down", destination="inst:cs-tianma:quzhou-neuro", requested_service="rehabilitation")
    response = login("doctor").post("/referrals/new/", {**form, "attachments": pdf})
    assert response.status_code == 400
    assert "care_plan" in str(response.context["form"].errors) or "诊疗计划" in response.content.decode()
    assert not ReferralAttachment.objects.exists()
    after = {p for p in media.rglob("*") if p.is_file()} if media.exists() else set()
    assert after == before


def test_a_malformed_webhook_id_is_not_found(login) -> None:
    response = login("hospadmin").post("/notifications/webhooks/", {"toggle": "not-a-uuid"})
    assert response.status_code == 404
