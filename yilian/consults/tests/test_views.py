"""The consult pages through HTTP, as a browser without JavaScript would use them: the request
form and its refusals, the queues, the steps of an eConsult from request to close-out, the
audited identity read, files, the printable report, MDT meetings with their conflicts and
invitation file, the calendar and the figures."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone, translation
from django.utils.translation import gettext
from stdnum.cn import ric

from yilian.consults import services
from yilian.consults.models import Consult, Kind, Meeting, Participant, Status
from yilian.core.models import AuditAction, AuditEvent
from yilian.patients.models import Patient
from yilian.registry.models import Practitioner

pytestmark = pytest.mark.django_db

_BODY = "33082419580712301"
ID_NUMBER = _BODY + ric.calc_check_digit(_BODY + "0")  # the function skips the last character
MASKED = ID_NUMBER[:4] + "*" * 10 + ID_NUMBER[-4:]
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _chen() -> Practitioner:
    return Practitioner.objects.get(user__username="expert")


def _form(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "周建明",
        "id_number": "",
        "sex": "male",
        "approximate_age": "63",
        "from_institution": "khph",
        "kind": Kind.ECONSULT,
        "reading_type": "",
        "urgency": "routine",
        "to_institution": "zju2",
        "discipline": "neurosurgery",
        "wanted_title": "chief_physician",
        "named_expert": str(_chen().public_id),
        "reason": "头痛伴呕吐两周，CT 示右额叶占位",
        "purpose": "明确是否需要手术及手术时机",
        "question": "右额叶占位是否建议手术？能否在县医院先行脱水治疗？",
        "history": "两周前出现头痛，逐渐加重，伴恶心呕吐",
        "examination": "神志清，左侧肢体肌力4级",
        "investigations": "头颅CT：右额叶 3.5cm 类圆形占位，周围水肿明显",
        "diagnosis_code": "D43.0",
        "diagnosis_name": "右额叶占位性病变",
        "current_treatment": "甘露醇 125ml q8h",
        "consent_obtained_by": "徐春华",
        "consent_method": "written",
        "consent_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
    }
    data.update(overrides)
    return data


def _requested(login: Any, **overrides: Any) -> Consult:
    response = login("kaihua").post("/consults/new/", _form(**overrides))
    assert response.status_code == 302, response.content.decode()[:2000]
    return Consult.objects.get(public_id=response["Location"].split("/")[2])


def test_the_request_form_offers_the_agreement_partners_and_their_experts(login) -> None:
    page = login("kaihua").get("/consults/new/").content.decode()
    assert 'value="zju2"' in page  # the Second Affiliated Hospital, bound to Kaihua by an agreement
    assert "陈志远" in page  # a named expert may be chosen
    assert 'value="csph"' not in page  # another county hospital: no agreement between the two


def test_a_county_doctor_asks_and_the_expert_answers_and_the_doctor_closes_with_the_close_out(login) -> None:
    consult = _requested(login)
    assert (consult.status, consult.kind, consult.named_expert) == (Status.REQUESTED, Kind.ECONSULT, _chen())
    assert consult.patient.name == "周建明" and consult.from_practitioner.name_zh == "徐春华"

    # The expert finds it in his queue with the name masked, and opens it.
    expert = login("expert")
    queue = expert.get("/consults/?box=for_me").content.decode()
    assert consult.number in queue and "周**" in queue and "周建明" not in queue
    page = expert.get(f"/consults/{consult.public_id}/").content.decode()
    assert "周建明" in page and 'data-action="accept"' in page and 'data-action="decline"' in page
    banner = gettext(
        "Diagnostic responsibility stays with the requesting doctor (%(name)s, %(institution)s). "
        "The experts give advice."
    ) % {"name": "徐春华", "institution": "开化县人民医院"}
    assert banner in page

    assert expert.post(f"/consults/{consult.public_id}/act/accept/").status_code == 302
    consult.refresh_from_db()
    assert consult.status == Status.ACCEPTED and consult.expert == _chen()

    response = expert.post(
        f"/consults/{consult.public_id}/act/answer/",
        {"answer": "建议尽快转上级医院手术切除", "recommendations": "继续脱水，监测瞳孔"},
    )
    assert response.status_code == 302
    consult.refresh_from_db()
    assert consult.status == Status.ANSWERED and consult.concluded_by == _chen()

    # The requester reads the answer and closes with the close-out.
    kaihua = login("kaihua")
    page = kaihua.get(f"/consults/{consult.public_id}/").content.decode()
    assert "建议尽快转上级医院手术切除" in page and 'data-action="close"' in page
    response = kaihua.post(
        f"/consults/{consult.public_id}/act/close/",
        {"referral_avoided": "no", "management_changed": "yes", "value_rating": "5", "comment": "很有帮助"},
    )
    assert response.status_code == 302
    consult.refresh_from_db()
    assert (consult.status, consult.referral_avoided, consult.management_changed, consult.value_rating) == (
        Status.CLOSED,
        False,
        True,
        5,
    )
    timeline = kaihua.get(f"/consults/{consult.public_id}/").content.decode()
    assert "很有帮助" in timeline


def test_a_close_out_without_its_answers_is_refused_with_the_services_messages(login) -> None:
    consult = _requested(login)
    expert = login("expert")
    expert.post(f"/consults/{consult.public_id}/act/accept/")
    expert.post(f"/consults/{consult.public_id}/act/answer/", {"answer": "可保守治疗"})
    response = login("kaihua", "en").post(f"/consults/{consult.public_id}/act/close/", {"value_rating": "4"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Say whether a referral or visit was avoided." in page
    consult.refresh_from_db()
    assert consult.status == Status.ANSWERED


def test_declining_needs_a_reason(login) -> None:
    consult = _requested(login)
    response = login("expert", "en").post(f"/consults/{consult.public_id}/act/decline/", {"reason": ""})
    assert response.status_code == 400
    consult.refresh_from_db()
    assert consult.status == Status.REQUESTED


def test_a_step_no_longer_possible_answers_409_with_the_current_status(login) -> None:
    consult = _requested(login)
    expert = login("expert", "en")
    expert.post(f"/consults/{consult.public_id}/act/accept/")
    response = expert.post(f"/consults/{consult.public_id}/act/accept/")
    assert response.status_code == 409
    assert "“Accept” is not possible: the consult is now “Accepted”." in response.content.decode()


@pytest.mark.parametrize(("language", "code"), [("en", "en"), ("zh-hans", "zh-hans")])
def test_a_request_without_an_agreement_is_refused_on_the_institution_field(login, language, code) -> None:
    """Changshan has no agreement with the Second Affiliated Hospital; the page says so, in the user's language."""
    before = Consult.objects.count()
    response = login("doctor", language).post(
        "/consults/new/", _form(from_institution="csph", named_expert="", consent_obtained_by="王建国")
    )
    assert response.status_code == 400
    with translation.override(code):
        expected = gettext(
            "No agreement in force links %(a)s and %(b)s: a teleconsultation needs one (ask the consortium office)."
        )
    head = expected.split("%(a)s")[0]
    page = response.content.decode()
    assert head.strip() and head.strip() in page
    assert Consult.objects.count() == before


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_request_without_consent_is_refused_and_nothing_is_written(login, language) -> None:
    before = Consult.objects.count(), Patient.objects.count()
    response = login("kaihua", language).post("/consults/new/", _form(consent_method=""))
    assert response.status_code == 400
    with translation.override(language):
        expected = gettext("Record how the patient consented in writing.")
    assert expected in response.content.decode()
    assert (Consult.objects.count(), Patient.objects.count()) == before


def test_a_request_with_files_stores_them_and_the_download_is_audited(login) -> None:
    upload = SimpleUploadedFile("ct.pdf", PDF, content_type="application/pdf")
    consult = _requested(login, attachments=upload)
    attachment = consult.attachments.get()
    response = login("expert").get(f"/consults/{consult.public_id}/files/{attachment.public_id}/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    assert AuditEvent.objects.filter(
        action=AuditAction.READ_PII, object_id=str(consult.patient.public_id), changes__fields=["attachment"]
    ).exists()


def test_opening_the_consult_page_audits_the_identity_read(login) -> None:
    consult = _requested(login, id_number=ID_NUMBER)
    login("expert").get(f"/consults/{consult.public_id}/")
    row = AuditEvent.objects.filter(action=AuditAction.READ_PII, object_id=str(consult.patient.public_id)).latest("id")
    assert row.actor is not None and row.actor.username == "expert"
    assert row.changes["purpose"] == f"{consult.number} consult page"
    page = login("expert").get(f"/consults/{consult.public_id}/").content.decode()
    assert MASKED in page and ID_NUMBER not in page


def test_someone_outside_the_consult_gets_403_and_an_unknown_one_404(login) -> None:
    consult = _requested(login)
    bijie = login("bijie")
    assert bijie.get(f"/consults/{consult.public_id}/").status_code == 403
    assert bijie.get(f"/consults/{consult.public_id}/report/").status_code == 403
    assert bijie.post(f"/consults/{consult.public_id}/act/accept/").status_code == 403
    assert login("kaihua").get("/consults/00000000-0000-0000-0000-000000000000/").status_code == 404
    before = AuditEvent.objects.filter(action=AuditAction.READ_PII).count()
    bijie.get(f"/consults/{consult.public_id}/")
    assert AuditEvent.objects.filter(action=AuditAction.READ_PII).count() == before


def test_the_queue_filters_by_status_and_kind_and_counts_per_status(login) -> None:
    consult = _requested(login)
    client = login("kaihua")
    page = client.get("/consults/").content.decode()
    assert consult.number in page and 'data-status="requested"' in page
    assert consult.number not in client.get("/consults/?status=closed").content.decode()
    assert consult.number not in client.get("/consults/?kind=mdt").content.decode()
    assert client.get("/consults/?box=office").status_code == 404  # not one of her lists
    assert login("commission").get("/consults/")["Location"] == "/consults/figures/"


def test_the_thread_takes_messages_from_both_sides(login) -> None:
    consult = _requested(login)
    assert (
        login("kaihua").post(f"/consults/{consult.public_id}/message/", {"text": "补充：今晨呕吐一次"}).status_code
        == 302
    )
    page = login("expert").get(f"/consults/{consult.public_id}/").content.decode()
    assert "补充：今晨呕吐一次" in page
    assert login("expert").post(f"/consults/{consult.public_id}/message/", {"text": " "}).status_code == 400


def test_the_printable_report_has_the_answer_the_signature_and_the_responsibility_statement(login) -> None:
    consult = _requested(login, id_number=ID_NUMBER)
    expert = login("expert")
    expert.post(f"/consults/{consult.public_id}/act/accept/")
    expert.post(f"/consults/{consult.public_id}/act/answer/", {"answer": "建议手术", "recommendations": "术前MRI"})
    response = login("kaihua", "en").get(f"/consults/{consult.public_id}/report/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "建议手术" in page and "术前MRI" in page and "Chen Zhiyuan" in page  # names in the reader's language
    assert MASKED in page and ID_NUMBER not in page
    assert "Diagnostic responsibility stays with the requesting doctor (Xu Chunhua" in page
    assert "@media print" in page and "d-print-none" in page
    assert AuditEvent.objects.filter(
        action=AuditAction.READ_PII, changes__purpose=f"{consult.number} printable report"
    ).exists()


def _next_working_day(hour: int) -> dt.datetime:
    day = timezone.localdate() + dt.timedelta(days=30)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


def _experts(*usernames: str) -> list[Practitioner]:
    return [Practitioner.objects.get(user__username=u) for u in usernames]


def test_a_coordinator_plans_a_meeting_and_a_conflicting_one_is_refused_on_the_form(login, persona) -> None:
    start = _next_working_day(14)
    chen, pathologist, radiologist = _experts("expert", "pathologist", "radiologist")
    client = login("telecentre", "en")
    page = client.get("/consults/meetings/new/").content.decode()
    assert "Chen Zhiyuan" in page and "Jiang Wenbo" in page
    data = {
        "institution": "zju2",
        "title": "神经肿瘤 MDT",
        "chair": str(chen.public_id),
        "experts": [str(pathologist.public_id), str(radiologist.public_id)],
        "date": start.date().isoformat(),
        "start": "14:00",
        "end": "15:00",
        "meeting_url": "https://meeting.example.cn/j/123",
    }
    response = client.post("/consults/meetings/new/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    meeting = Meeting.objects.get(public_id=response["Location"].split("/")[3])
    assert set(meeting.participants.values_list("practitioner_id", flat=True)) == {
        chen.pk,
        pathologist.pk,
        radiologist.pk,
    }

    # The same pathologist at an overlapping time: refused, with who is busy, and free times offered.
    clash = {**data, "title": "病理读片会", "chair": str(radiologist.public_id), "start": "14:30", "end": "15:30"}
    clash["experts"] = [str(pathologist.public_id)]
    response = client.post("/consults/meetings/new/", clash)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Jiang Wenbo" in page and "神经肿瘤 MDT" in page and 'id="conflicts"' in page
    assert 'id="slot-list"' in page
    assert Meeting.objects.filter(title="病理读片会").count() == 0


def test_free_times_are_suggested_for_the_chosen_experts(login) -> None:
    chen, pathologist = _experts("expert", "pathologist")
    client = login("telecentre")
    url = f"/consults/meetings/new/?chair={chen.public_id}&experts={pathologist.public_id}&suggest=1"
    page = client.get(url).content.decode()
    assert 'class="list-group-item list-group-item-action slot"' in page
    partial = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="free-slots").content.decode()
    assert partial.lstrip().startswith('<div id="free-slots">') and "<html" not in partial


def test_only_coordinators_plan_meetings(login) -> None:
    assert login("kaihua").get("/consults/meetings/new/").status_code == 403
    assert login("expert").get("/consults/meetings/new/").status_code == 403


def _meeting(persona: Any, **overrides: Any) -> Meeting:
    chen, pathologist = _experts("expert", "pathologist")
    start = overrides.pop("start", _next_working_day(16))
    return services.meeting_create(
        actor=persona("telecentre"),
        institution=chen.institution,
        title=overrides.pop("title", "脑胶质瘤 MDT"),
        chair=chen,
        experts=[pathologist],
        starts_at=start,
        ends_at=start + dt.timedelta(hours=1),
        meeting_url="https://meeting.example.cn/j/456",
    )


def test_the_invitation_file_is_a_calendar_request_that_updates_the_same_event(login, persona) -> None:
    meeting = _meeting(persona)
    client = login("pathologist")
    response = client.get(f"/consults/meetings/{meeting.public_id}/invite.ics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/calendar")
    text = response.content.decode()
    assert "METHOD:REQUEST" in text
    assert f"UID:{meeting.public_id}@" in text
    assert "SEQUENCE:0" in text
    assert "DTSTART" in text and "DTEND" in text
    assert "脑胶质瘤 MDT" in text
    assert f"/consults/meetings/{meeting.public_id}/" in text.replace("\r\n ", "")  # long lines are folded
    assert text.count("ATTENDEE") == 2 and "蒋文博" in text.replace("\r\n ", "")
    # Moving it raises the sequence: calendar apps update the event they hold.
    later = meeting.starts_at + dt.timedelta(days=1)
    moved = login("telecentre").post(
        f"/consults/meetings/{meeting.public_id}/reschedule/",
        {
            "date": timezone.localtime(later).date().isoformat(),
            "start": timezone.localtime(later).strftime("%H:%M"),
            "end": timezone.localtime(later + dt.timedelta(hours=1)).strftime("%H:%M"),
        },
    )
    assert moved.status_code == 302
    assert "SEQUENCE:1" in client.get(f"/consults/meetings/{meeting.public_id}/invite.ics").content.decode()


def test_an_invited_expert_answers_and_the_coordinator_sees_it(login, persona) -> None:
    meeting = _meeting(persona)
    client = login("pathologist")
    page = client.get(f"/consults/meetings/{meeting.public_id}/").content.decode()
    assert 'id="attend"' in page and 'id="meeting-actions"' not in page
    assert client.post(f"/consults/meetings/{meeting.public_id}/attend/").status_code == 302
    assert Participant.objects.get(meeting=meeting, practitioner__user__username="pathologist").response == "accepted"
    coordinator = login("telecentre").get(f"/consults/meetings/{meeting.public_id}/").content.decode()
    assert 'id="meeting-actions"' in coordinator
    assert login("kaihua").post(f"/consults/meetings/{meeting.public_id}/attend/").status_code == 403
    assert (
        login("pathologist").post(f"/consults/meetings/{meeting.public_id}/cancel/", {"reason": "x"}).status_code == 403
    )


def test_cancelling_a_meeting_needs_a_reason(login, persona) -> None:
    meeting = _meeting(persona)
    client = login("telecentre")
    assert client.post(f"/consults/meetings/{meeting.public_id}/cancel/", {"reason": ""}).status_code == 400
    assert client.post(f"/consults/meetings/{meeting.public_id}/cancel/", {"reason": "主持人出差"}).status_code == 302
    meeting.refresh_from_db()
    assert meeting.status == Meeting.MeetingStatus.CANCELLED


def test_an_mdt_case_goes_on_a_meeting_agenda_and_shows_there_masked(login, persona) -> None:
    meeting = _meeting(persona)
    consult = _requested(login, kind=Kind.MDT, named_expert="")
    coordinator = login("telecentre")
    assert coordinator.post(f"/consults/{consult.public_id}/act/accept/").status_code == 302
    page = coordinator.get(f"/consults/{consult.public_id}/").content.decode()
    assert str(meeting.public_id) in page  # offered in the schedule form
    assert 'data-action="assign"' not in page  # an MDT case has no single expert
    response = coordinator.post(f"/consults/{consult.public_id}/act/schedule/", {"meeting": str(meeting.public_id)})
    assert response.status_code == 302
    consult.refresh_from_db()
    assert consult.status == Status.SCHEDULED and consult.meeting == meeting
    agenda = login("pathologist").get(f"/consults/meetings/{meeting.public_id}/").content.decode()
    assert consult.number in agenda and "周**" in agenda and "周建明" not in agenda


def test_the_calendar_shows_the_week_of_a_meeting(login, persona) -> None:
    meeting = _meeting(persona)
    week = timezone.localdate(meeting.starts_at).isoformat()
    page = login("telecentre").get(f"/consults/meetings/?week={week}").content.decode()
    assert f'data-meeting="{meeting.number}"' in page and 'id="new-meeting"' in page
    other = login("pathologist").get(f"/consults/meetings/?week={week}").content.decode()
    assert f'data-meeting="{meeting.number}"' in other and 'id="new-meeting"' not in other
    assert login("telecentre").get("/consults/meetings/?week=nonsense").status_code == 200


def test_figures_are_for_figure_holders_only(login) -> None:
    consult = _requested(login)
    expert = login("expert")
    expert.post(f"/consults/{consult.public_id}/act/accept/")
    expert.post(f"/consults/{consult.public_id}/act/answer/", {"answer": "可保守治疗"})
    page = login("commission").get("/consults/figures/").content.decode()
    assert "开化县人民医院" in page and 'id="figures-table"' in page
    assert login("kaihua").get("/consults/figures/").status_code == 403
    assert login("commission").get("/consults/figures/?start=2026-05-01&end=2026-01-01").status_code == 400


def test_the_home_page_shows_what_waits_for_the_expert(login) -> None:
    _requested(login)
    page = login("expert").get("/").content.decode()
    assert 'id="consult-worklist"' in page and 'id="nav-consults"' in page


def test_a_meeting_shows_another_hospitals_case_by_number_and_status_only(login, persona) -> None:
    from yilian.consults.tests import factories
    from yilian.patients.services import patient_register

    meeting = factories.meeting()
    own = factories.consult_in(Status.SCHEDULED, Kind.MDT, on_meeting=meeting, diagnosis_name="垂体大腺瘤")
    city_doctor = factories.user_of(factories.doctor(institution_code="qzph", discipline="neurology"))
    city_patient = patient_register(
        actor=city_doctor, institution=factories.institution("qzph"), name="林国栋", sex="male"
    )
    other = factories.request(
        Kind.MDT,
        actor=city_doctor,
        patient=city_patient,
        from_institution=factories.institution("qzph"),
        diagnosis_name="肺癌脑转移",
        consent=factories.consent(),
    )
    services.consult_accept(actor=persona("expert"), consult=other)
    services.meeting_add_case(actor=persona("telecentre"), meeting=meeting, consult=other)

    page = login("kaihua").get(f"/consults/meetings/{meeting.public_id}/").content.decode()
    assert own.number in page and "垂体大腺瘤" in page
    assert other.number in page  # the agenda's length and order are no secret
    assert "肺癌脑转移" not in page and "林**" not in page
    assert factories.practitioner(city_doctor).name not in page
    assert "衢州市人民医院" not in page.split('id="agenda"')[1].split('id="participants"')[0]
    # The experts of the meeting see every case.
    assert "肺癌脑转移" in login("pathologist").get(f"/consults/meetings/{meeting.public_id}/").content.decode()
