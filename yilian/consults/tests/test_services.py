"""Consult services: the rules of a request (agreement, consent, the expert wanted), the eConsult
thread, the close-out, opinions, files, and what each step leaves behind (timeline, audit,
notifications)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from yilian.consults import selectors, services
from yilian.consults.models import Attachment, Consult, ConsultEvent, Kind, MessageKind, Status
from yilian.consults.tests import factories
from yilian.consults.tests.factories import Cast
from yilian.consults.workflow import TransitionNotAllowed
from yilian.core.models import AuditEvent
from yilian.notifications.models import Notification
from yilian.patients.services import patient_register
from yilian.registry.models import Agreement, AgreementStatus, Consortium, Discipline, User

pytestmark = pytest.mark.django_db

Announced = Callable[[], AbstractContextManager[None]]


def notified(user: User, consult: Consult, title_en: str = "") -> int:
    return Notification.objects.filter(
        user=user, link__contains=str(consult.public_id), title_en__startswith=title_en
    ).count()


def refused_fields(call: Callable[[], object]) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as refused:
        call()
    return refused.value.message_dict


# ----------------------------------------------------------------------------------------
# Agreement


def test_a_request_without_an_agreement_in_force_is_refused_naming_both_institutions() -> None:
    doctor = factories.user("doctor")  # Changshan: its agreement is with zju1, not zju2
    csph = factories.institution("csph")
    patient = patient_register(actor=doctor, institution=csph, name="毛建军", sex="male")
    errors = refused_fields(lambda: factories.request(actor=doctor, patient=patient, from_institution=csph))
    message = errors["to_institution"][0]
    assert csph.name in message and factories.institution("zju2").name in message
    assert not Consult.objects.filter(patient=patient).exists()


@pytest.mark.parametrize(
    "change",
    [
        {"status": AgreementStatus.EXPIRED},
        {"status": AgreementStatus.TERMINATED},
        {"valid_to": dt.date(2025, 12, 31)},  # lapsed, though still marked in force
        {"valid_from": dt.date.today() + dt.timedelta(days=30), "valid_to": None},  # not yet valid
    ],
    ids=["expired", "terminated", "lapsed", "not-yet-valid"],
)
def test_a_request_under_an_agreement_not_in_force_is_refused(change: dict[str, object]) -> None:
    Agreement.objects.filter(code="zju2-khph-2018").update(**change)
    errors = refused_fields(lambda: factories.request())
    assert "No agreement in force" in errors["to_institution"][0] or "协议" in errors["to_institution"][0]


def test_a_request_records_the_agreement_consortium_and_deadlines() -> None:
    now = timezone.now()
    consult = factories.request(at=now)
    assert consult.agreement.code == "zju2-khph-2018"
    assert consult.consortium.code == "zju2-quzhou"
    assert consult.to_department == factories.department("zju2", Discipline.NEUROSURGERY)
    assert consult.from_department == factories.department("khph", Discipline.NEUROLOGY)
    assert consult.diagnosis_code == "I61.0"
    # A routine eConsult: accept within a day, answer within two.
    assert consult.accept_due_at == now + dt.timedelta(hours=24)
    assert consult.answer_due_at == now + dt.timedelta(hours=48)
    session = factories.request(Kind.TELECONSULTATION, at=now)
    assert session.answer_due_at is None  # a session's answer is due from its end


def test_only_someone_who_may_request_for_the_institution_sends_a_request(people: Cast) -> None:
    with pytest.raises(PermissionDenied):
        factories.request(actor=people.coordinator)  # zju2's coordinator, not khph's
    with pytest.raises(PermissionDenied):
        factories.request(actor=people.unrelated)


def test_a_request_states_reason_purpose_question_and_diagnosis() -> None:
    errors = refused_fields(lambda: factories.request(reason=" ", purpose="", question="", diagnosis_name=""))
    assert {"reason", "purpose", "question", "diagnosis_name"} <= set(errors)


def test_an_urgent_reading_says_what_is_to_be_read() -> None:
    errors = refused_fields(lambda: factories.request(Kind.READING, reading_type=""))
    assert "reading_type" in errors


# ----------------------------------------------------------------------------------------
# Consent


def test_a_request_without_consent_is_refused() -> None:
    assert "consent_obtained_by" in refused_fields(lambda: factories.request(consent=None))
    blank = services.Consent(obtained_by=" ", method="written", at=timezone.now())
    assert "consent_obtained_by" in refused_fields(lambda: factories.request(consent=blank))


def test_consent_dated_in_the_future_is_refused() -> None:
    later = services.Consent(obtained_by="徐春华", method="written", at=timezone.now() + dt.timedelta(hours=1))
    assert "consent_at" in refused_fields(lambda: factories.request(consent=later))


def test_verbal_consent_is_not_a_method() -> None:
    verbal = factories.consent(method="verbal")
    assert "consent_method" in refused_fields(lambda: factories.request(consent=verbal))


def test_consent_by_electronic_signature_or_a_guardian_is_accepted() -> None:
    for method in ("electronic", "guardian"):
        assert factories.request(consent=factories.consent(method=method)).consent_method == method


# ----------------------------------------------------------------------------------------
# The expert wanted


def test_a_named_expert_must_work_at_the_consulted_institution() -> None:
    elsewhere = factories.doctor(institution_code="qzph")
    assert "named_expert" in refused_fields(lambda: factories.request(named_expert=elsewhere))


def test_a_named_expert_must_hold_the_title_wanted(people: Cast) -> None:
    radiologist = factories.practitioner(people.other_expert)  # associate chief; chief wanted
    errors = refused_fields(lambda: factories.request(named_expert=radiologist, discipline=Discipline.RADIOLOGY))
    assert "named_expert" in errors


def test_a_named_expert_must_have_an_account_that_answers_consults() -> None:
    no_account = factories.doctor(with_account=False)
    assert "named_expert" in refused_fields(lambda: factories.request(named_expert=no_account))


def test_a_named_experts_department_becomes_the_specialty(people: Cast) -> None:
    pathologist = factories.practitioner(people.chair)
    consult = factories.request(named_expert=pathologist, discipline=Discipline.NEUROSURGERY)
    assert consult.to_department == pathologist.department


def test_a_coordinator_assigns_an_expert_who_then_accepts(people: Cast) -> None:
    consult = factories.request()
    peer = factories.doctor()
    assigned = services.consult_assign(actor=people.coordinator, consult=consult, expert=peer)
    assert assigned.status == Status.REQUESTED and assigned.expert == peer
    with pytest.raises(PermissionDenied):
        services.consult_accept(actor=people.expert, consult=consult)  # no longer in the running
    accepted = services.consult_accept(actor=factories.user_of(peer), consult=consult)
    assert accepted.status == Status.ACCEPTED and accepted.expert == peer
    event = ConsultEvent.objects.get(consult=consult, action="assign")
    assert event.data == {"expert": peer.name, "previous": None}


def test_assigning_refuses_an_expert_below_the_title_or_at_another_hospital(people: Cast) -> None:
    consult = factories.request()
    junior = factories.practitioner(people.junior)
    assert "expert" in refused_fields(
        lambda: services.consult_assign(actor=people.coordinator, consult=consult, expert=junior)
    )
    elsewhere = factories.doctor(institution_code="qzph")
    assert "expert" in refused_fields(
        lambda: services.consult_assign(actor=people.office, consult=consult, expert=elsewhere)
    )
    assert factories.reload(consult).expert is None


def test_a_pool_expert_who_accepts_becomes_the_expert(people: Cast) -> None:
    consult = services.consult_accept(actor=people.expert, consult=factories.request())
    assert consult.expert == factories.practitioner(people.expert)
    assert consult.accepted_at is not None


def test_a_coordinator_who_accepts_leaves_the_pool_open(people: Cast) -> None:
    consult = services.consult_accept(actor=people.coordinator, consult=factories.request())
    assert consult.expert is None
    answered = services.consult_answer(actor=people.expert, consult=consult, answer="建议保守治疗")
    assert answered.expert == factories.practitioner(people.expert)


# ----------------------------------------------------------------------------------------
# The eConsult thread and the close-out


def test_an_econsult_goes_through_questions_answers_and_a_follow_up(people: Cast) -> None:
    expert, requester = people.expert, people.requester
    answered_at = timezone.now()
    consult = factories.consult_in(Status.ACCEPTED)
    consult = services.consult_ask_info(actor=expert, consult=consult, text="请上传头颅CT原始影像")
    assert consult.status == Status.IN_DISCUSSION
    consult = services.consult_provide_info(actor=requester, consult=consult, text="已上传")
    assert consult.status == Status.IN_DISCUSSION
    consult = services.consult_answer(
        actor=expert, consult=consult, answer="建议保守治疗", recommendations=" 控制血压 ", at=answered_at
    )
    assert consult.status == Status.ANSWERED and consult.answered_at == answered_at
    assert consult.recommendations == "控制血压"
    assert consult.concluded_by == factories.practitioner(expert)
    consult = services.consult_follow_up(actor=requester, consult=consult, text="血肿扩大时怎么办？")
    assert consult.status == Status.IN_DISCUSSION
    consult = services.consult_answer(
        actor=expert, consult=consult, answer="血肿扩大时行微创清除", at=answered_at + dt.timedelta(hours=5)
    )
    assert consult.status == Status.ANSWERED
    assert consult.conclusion == "血肿扩大时行微创清除"
    assert consult.answered_at == answered_at  # the first answer's time: what the response time measures
    thread = selectors.consult_thread(consult)
    assert [(m.kind, m.institution.code) for m in thread] == [
        (MessageKind.INFO_REQUEST, "zju2"),
        (MessageKind.MESSAGE, "khph"),
        (MessageKind.ANSWER, "zju2"),
        (MessageKind.FOLLOW_UP, "khph"),
        (MessageKind.ANSWER, "zju2"),
    ]
    consult = services.consult_close(
        actor=requester, consult=consult, referral_avoided=True, management_changed=False, value_rating=4
    )
    assert consult.status == Status.CLOSED and consult.closed_at is not None


def test_writing_nothing_is_refused(people: Cast) -> None:
    consult = factories.consult_in(Status.ACCEPTED)
    assert "answer" in refused_fields(lambda: services.consult_answer(actor=people.expert, consult=consult, answer=" "))
    assert "text" in refused_fields(lambda: services.consult_ask_info(actor=people.expert, consult=consult, text=""))


@pytest.mark.parametrize(
    ("avoided", "changed", "rating", "field"),
    [
        (None, True, 4, "referral_avoided"),
        (True, None, 4, "management_changed"),
        (True, True, None, "value_rating"),
        (True, True, 0, "value_rating"),
        (True, True, 6, "value_rating"),
    ],
)
def test_the_close_out_needs_all_three_answers_and_a_rating_from_1_to_5(
    avoided: bool | None, changed: bool | None, rating: int | None, field: str, people: Cast
) -> None:
    consult = factories.consult_in(Status.ANSWERED)
    errors = refused_fields(
        lambda: services.consult_close(
            actor=people.requester,
            consult=consult,
            referral_avoided=avoided,
            management_changed=changed,
            value_rating=rating,
        )
    )
    assert list(errors) == [field]
    assert factories.reload(consult).status == Status.ANSWERED


def test_the_close_out_is_recorded(people: Cast) -> None:
    consult = factories.consult_in(Status.ANSWERED)
    closed = services.consult_close(
        actor=people.requester_coordinator,
        consult=consult,
        referral_avoided=False,
        management_changed=True,
        value_rating=1,
        comment="  答复太笼统  ",
    )
    stored = factories.reload(closed)
    assert (stored.referral_avoided, stored.management_changed, stored.value_rating) == (False, True, 1)
    assert stored.closeout_comment == "答复太笼统"
    event = ConsultEvent.objects.get(consult=consult, action="close")
    assert event.data == {"referral_avoided": False, "management_changed": True, "value": 1}
    assert event.institution is not None and event.institution.code == "khph"


# ----------------------------------------------------------------------------------------
# Opinions


def test_an_opinion_corrected_keeps_the_earlier_text(people: Cast) -> None:
    consult = factories.consult_in(Status.SCHEDULED, Kind.TELECONSULTATION)
    first = services.consult_opinion(actor=people.expert, consult=consult, text="倾向保守治疗")
    second = services.consult_opinion(actor=people.expert, consult=consult, text="倾向微创手术")
    assert second.supersedes == first
    assert list(consult.opinions.values_list("text", flat=True)) == ["倾向保守治疗", "倾向微创手术"]
    (current,) = selectors.consult_opinions(consult)
    assert current.opinion == second and current.corrections == 1


def test_each_mdt_expert_gives_an_opinion_and_only_they_do(people: Cast) -> None:
    consult = factories.consult_in(Status.IN_DISCUSSION, Kind.MDT)
    services.consult_opinion(actor=people.chair, consult=consult, text="冰冻切片提示胶质瘤")
    services.consult_opinion(actor=people.expert, consult=consult, text="建议手术切除")
    opinions = selectors.consult_opinions(consult)
    assert [o.opinion.text for o in opinions] == ["冰冻切片提示胶质瘤", "建议手术切除"]
    assert [o.corrections for o in opinions] == [0, 0]
    for outsider in (people.other_expert, people.requester, people.coordinator):
        with pytest.raises(PermissionDenied):
            services.consult_opinion(actor=outsider, consult=consult, text="意见")


def test_opinions_are_for_sessions_under_way(people: Cast) -> None:
    econsult = factories.consult_in(Status.ACCEPTED)
    assert "text" in refused_fields(
        lambda: services.consult_opinion(actor=people.expert, consult=econsult, text="意见")
    )
    concluded = factories.consult_in(Status.CONCLUDED, Kind.TELECONSULTATION)
    with pytest.raises(TransitionNotAllowed):
        services.consult_opinion(actor=people.expert, consult=concluded, text="补充意见")


# ----------------------------------------------------------------------------------------
# Files


def test_a_pdf_is_attached_and_a_text_file_refused(people: Cast) -> None:
    consult = factories.request()
    attachment = services.consult_attach(
        actor=people.requester, consult=consult, upload=factories.pdf_upload(), description=" CT报告 "
    )
    assert (attachment.kind, attachment.content_type, attachment.description) == ("pdf", "application/pdf", "CT报告")
    assert attachment.size == len(factories.PDF_BYTES) and len(attachment.sha256) == 64
    assert "file" in refused_fields(
        lambda: services.consult_attach(actor=people.requester, consult=consult, upload=factories.text_upload())
    )
    assert list(Attachment.objects.filter(consult=consult)) == [attachment]


def test_no_file_is_added_to_a_closed_consult_nor_by_an_outsider(people: Cast) -> None:
    closed = factories.consult_in(Status.CLOSED)
    with pytest.raises(TransitionNotAllowed):
        services.consult_attach(actor=people.requester, consult=closed, upload=factories.pdf_upload())
    with pytest.raises(PermissionDenied):
        services.consult_attach(actor=people.unrelated, consult=factories.request(), upload=factories.pdf_upload())
    assert not Attachment.objects.filter(consult=closed).exists()


# ----------------------------------------------------------------------------------------
# Timeline, audit, notifications


def test_each_step_leaves_a_timeline_event_and_an_audit_row(people: Cast) -> None:
    consult = factories.consult_in(Status.CLOSED)
    events = selectors.consult_timeline(consult)
    assert [(e.action, e.from_status, e.to_status, e.side) for e in events] == [
        ("request", "", "requested", "requester"),
        ("accept", "requested", "accepted", "expert"),
        ("answer", "accepted", "answered", "expert"),
        ("close", "answered", "closed", "requester"),
    ]
    assert [e.institution.code if e.institution else None for e in events] == ["khph", "zju2", "zju2", "khph"]
    assert [e.actor for e in events] == [people.requester, people.expert, people.expert, people.requester]
    audits = AuditEvent.objects.filter(object_type="consults.consult", object_id=str(consult.public_id))
    assert sorted(a.changes.get("action", "request") for a in audits) == ["accept", "answer", "close", "request"]


def test_the_expiry_is_the_systems_step(people: Cast) -> None:
    consult = factories.consult_in(Status.EXPIRED)
    event = ConsultEvent.objects.get(consult=consult, action="expire")
    assert event.actor is None and event.side == "system" and event.note


def test_a_pool_request_tells_the_pool_holding_the_title_and_the_coordinators(
    people: Cast, announced: Announced
) -> None:
    peer = factories.user_of(factories.doctor())
    with announced():
        consult = factories.request()
    for told in (people.expert, peer, people.coordinator):
        assert notified(told, consult, "New consult request") == 1
    for not_told in (people.junior, people.other_expert, people.chair, people.requester, people.office):
        assert notified(not_told, consult) == 0


def test_a_named_request_tells_the_named_expert_and_the_coordinators_only(people: Cast, announced: Announced) -> None:
    peer = factories.user_of(factories.doctor())
    with announced():
        consult = factories.request(named_expert=factories.practitioner(people.expert))
    assert notified(people.expert, consult, "New consult request") == 1
    assert notified(people.coordinator, consult, "New consult request") == 1
    assert notified(peer, consult) == 0


def test_the_answer_is_sent_to_the_requester(people: Cast, announced: Announced) -> None:
    consult = factories.consult_in(Status.ACCEPTED)
    with announced():
        services.consult_answer(actor=people.expert, consult=consult, answer="建议保守治疗")
    assert notified(people.requester, consult, "Consult answered") == 1
    assert notified(people.expert, consult, "Consult answered") == 0


def test_a_follow_up_and_the_close_out_are_sent_to_the_expert(people: Cast, announced: Announced) -> None:
    consult = factories.consult_in(Status.ANSWERED)
    with announced():
        services.consult_follow_up(actor=people.requester, consult=consult, text="何时复查？")
    assert notified(people.expert, consult, "Follow-up question") == 1
    services.consult_answer(actor=people.expert, consult=consult, answer="两周后复查")
    with announced():
        services.consult_close(
            actor=people.requester, consult=consult, referral_avoided=True, management_changed=True, value_rating=5
        )
    assert notified(people.expert, consult, "Consult closed with feedback") == 1


def test_a_message_is_sent_to_the_other_side(people: Cast, announced: Announced) -> None:
    consult = factories.consult_in(Status.ACCEPTED)
    with announced():
        services.consult_message(actor=people.expert, consult=consult, text="今晚可以视频沟通")
    assert notified(people.requester, consult, "New message") == 1
    with announced():
        services.consult_message(actor=people.requester, consult=consult, text="好的")
    assert notified(people.expert, consult, "New message") == 1
    with pytest.raises(PermissionDenied):
        services.consult_message(actor=people.unrelated, consult=consult, text="?")


def test_service_levels_are_set_by_the_office_only(people: Cast) -> None:
    zju2_quzhou = Consortium.objects.get(code="zju2-quzhou")
    minutes: dict[str, Any] = {"accept_within_minutes": 60, "answer_within_minutes": 120, "escalate_after_minutes": 30}
    with pytest.raises(PermissionDenied):
        services.service_level_set(
            actor=people.coordinator, consortium=zju2_quzhou, kind=Kind.ECONSULT, urgency="routine", **minutes
        )
    errors = refused_fields(
        lambda: services.service_level_set(
            actor=people.office,
            consortium=zju2_quzhou,
            kind=Kind.ECONSULT,
            urgency="routine",
            reading_type="imaging",
            **{**minutes, "accept_within_minutes": 0},
        )
    )
    assert set(errors) == {"reading_type", "accept_within_minutes"}


def test_a_cancellation_by_the_consulted_side_is_sent_to_the_requester_and_the_expert(
    people: Cast, announced: Announced
) -> None:
    consult = factories.consult_in(Status.ACCEPTED)
    with announced():
        services.consult_cancel(actor=people.coordinator, consult=consult, reason="专家出差，请改约")
    assert notified(people.requester, consult, "Consult cancelled") == 1
    assert notified(people.expert, consult, "Consult cancelled") == 1


def test_a_specialty_the_consulted_hospital_lacks_is_refused_unless_an_expert_is_named(people: Cast) -> None:
    errors = refused_fields(lambda: factories.request(discipline=Discipline.DERMATOLOGY))
    assert "discipline" in errors
    assert "浙江大学医学院附属第二医院" in errors["discipline"][0] or "Second" in errors["discipline"][0]
    named = factories.request(discipline=Discipline.DERMATOLOGY, named_expert=factories.practitioner(people.expert))
    assert named.to_department is not None and named.to_department.name_zh == "神经外科"
