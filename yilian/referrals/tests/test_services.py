"""Referral services: the rules a referral must meet before it leaves the sender, routing through
the consortium office, attachments, idempotent creation and the figures the indicators read."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone, translation

from yilian.core.models import AuditEvent
from yilian.notifications.models import Notification
from yilian.patients.models import Patient
from yilian.referrals import selectors, services, workflow
from yilian.referrals.models import Referral, ReferralAttachment, Status
from yilian.referrals.selectors import Box
from yilian.referrals.tests.factories import CARE_PLAN, MakeReferral, consent
from yilian.registry.models import Consortium, Department, Institution, Practitioner, User

pytestmark = pytest.mark.django_db

Persona = Callable[[str], User]
Inst = Callable[[str], Institution]
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def _create(persona: Persona, patient: Patient, **kwargs: Any) -> Referral:
    """An up-referral csph -> qzph by the county doctor, with whatever is overridden."""
    values: dict[str, Any] = {
        "actor": persona("doctor"),
        "patient": patient,
        "direction": "up",
        "from_institution": Institution.objects.get(code="csph"),
        "to_institution": Institution.objects.get(code="qzph"),
        "reason": "突发言语不清伴右侧肢体无力3小时",
        "requested_service": "admission",
        "diagnosis_code": "I63.9",
        "diagnosis_name": "急性脑梗死",
        **kwargs,
    }
    referral, created = services.referral_create(**values)
    assert created
    return referral


# ----------------------------------------------------------------------------------------
# Consent and care plan


def test_referral_without_consent_cannot_be_sent(persona: Persona, make_patient: Callable[..., Patient]) -> None:
    referral = _create(persona, make_patient())
    with pytest.raises(ValidationError) as excinfo:
        services.referral_send(actor=persona("doctor"), referral=referral)
    assert list(excinfo.value.message_dict) == ["consent"]
    stored = Referral.objects.get(pk=referral.pk)
    assert stored.status == Status.DRAFT and stored.sent_at is None
    assert not stored.events.filter(action="send").exists()


def test_consent_given_when_sending_is_recorded(persona: Persona, make_patient: Callable[..., Patient]) -> None:
    referral = _create(persona, make_patient())
    given = consent(minutes_ago=30)
    sent = services.referral_send(actor=persona("doctor"), referral=referral, consent=given)
    assert sent.status == Status.SENT
    assert (sent.consent_obtained_by, sent.consent_method, sent.consent_at) == ("王建国", "written", given.at)


def test_consent_dated_in_the_future_is_refused(persona: Persona, make_patient: Callable[..., Patient]) -> None:
    tomorrow = services.Consent(obtained_by="王建国", method="written", at=timezone.now() + dt.timedelta(hours=1))
    referral = _create(persona, make_patient(), consent=tomorrow)
    with translation.override("en"), pytest.raises(ValidationError) as excinfo:
        services.referral_send(actor=persona("doctor"), referral=referral)
    assert "future" in excinfo.value.message_dict["consent"][0]
    assert Referral.objects.get(pk=referral.pk).status == Status.DRAFT


def test_consent_with_an_unknown_method_is_refused(persona: Persona, make_patient: Callable[..., Patient]) -> None:
    referral = _create(persona, make_patient())
    with pytest.raises(ValidationError) as excinfo:
        services.referral_send(
            actor=persona("doctor"),
            referral=referral,
            consent=services.Consent(obtained_by="王建国", method="nodded", at=timezone.now()),
        )
    assert "consent" in excinfo.value.message_dict


def test_create_and_send_without_consent_leaves_no_draft_behind(
    persona: Persona, make_patient: Callable[..., Patient]
) -> None:
    """A create-and-send that fails is refused whole: retrying must not pile up drafts."""
    patient = make_patient()
    with pytest.raises(ValidationError) as excinfo:
        _create(persona, patient, send=True)
    assert "consent" in excinfo.value.message_dict
    assert not Referral.objects.filter(patient=patient).exists()


def test_down_referral_needs_a_complete_care_plan(make_referral: MakeReferral, persona: Persona) -> None:
    partial = {k: v for k, v in CARE_PLAN.items() if k != "warning_signs"}
    expert = persona("expert")  # the provincial hospital sends a recovering patient back to the city
    referral = make_referral(
        Status.DRAFT, direction="down", sender=expert, from_code="zju2", to_code="qzph", care_plan=partial
    )
    with pytest.raises(ValidationError) as excinfo:
        services.referral_send(actor=expert, referral=referral)
    assert list(excinfo.value.message_dict) == ["care_plan"]
    services.referral_update_draft(actor=expert, referral=referral, plan_warning_signs=CARE_PLAN["warning_signs"])
    sent = services.referral_send(actor=expert, referral=Referral.objects.get(pk=referral.pk))
    assert sent.status == Status.SENT and sent.consortium.code == "zju2-quzhou"


def test_up_referral_needs_no_care_plan(make_referral: MakeReferral) -> None:
    assert make_referral(Status.SENT, direction="up").status == Status.SENT


# ----------------------------------------------------------------------------------------
# Where a referral may go


def test_referral_outside_any_shared_consortium_is_refused(
    persona: Persona, make_patient: Callable[..., Patient], inst: Inst
) -> None:
    before = Referral.objects.count()
    for code in ("bjfph", "zju2"):  # Guizhou; the provincial hospital, not in the neurosurgery alliance
        with pytest.raises(ValidationError) as excinfo:
            _create(persona, make_patient(), to_institution=inst(code))
        assert "to_institution" in excinfo.value.message_dict
    with pytest.raises(ValidationError) as excinfo:
        _create(persona, make_patient(), to_institution=inst("csph"))
    assert "to_institution" in excinfo.value.message_dict
    assert Referral.objects.count() == before


def test_referral_without_destination_needs_a_consortium_the_sender_belongs_to(
    persona: Persona, make_patient: Callable[..., Patient]
) -> None:
    with pytest.raises(ValidationError) as excinfo:
        _create(persona, make_patient(), to_institution=None)
    assert "consortium" in excinfo.value.message_dict
    with pytest.raises(ValidationError) as excinfo:
        _create(persona, make_patient(), to_institution=None, consortium=Consortium.objects.get(code="bijie-nrmc"))
    assert "consortium" in excinfo.value.message_dict


@pytest.mark.parametrize("username", ["coordinator", "bijie", "commission", "office"])
def test_only_staff_allowed_to_refer_may_create_for_an_institution(
    persona: Persona, make_patient: Callable[..., Patient], username: str
) -> None:
    with pytest.raises(PermissionDenied):
        _create(persona, make_patient(), actor=persona(username))


def test_departments_and_doctor_must_belong_to_their_institutions(
    persona: Persona, make_patient: Callable[..., Patient], inst: Inst
) -> None:
    qzph_neurosurgery = Department.objects.get(institution=inst("qzph"), discipline="neurosurgery")
    csph_neurology = Department.objects.get(institution=inst("csph"), discipline="neurology")
    khph_doctor = Practitioner.objects.filter(institution=inst("khph")).first()
    assert khph_doctor is not None
    cases: list[tuple[dict[str, Any], str]] = [
        ({"from_department": qzph_neurosurgery}, "from_department"),
        ({"to_department": csph_neurology}, "to_department"),
        ({"to_department": qzph_neurosurgery, "to_institution": None, "consortium": None}, "to_department"),
        ({"from_practitioner": khph_doctor}, "from_practitioner"),
    ]
    for overrides, key in cases:
        with pytest.raises(ValidationError) as excinfo:
            _create(persona, make_patient(), **overrides)
        assert key in excinfo.value.message_dict, overrides


def test_referring_doctor_and_department_default_to_the_actor(
    persona: Persona, make_patient: Callable[..., Patient]
) -> None:
    referral = _create(persona, make_patient())
    assert referral.from_practitioner is not None and referral.from_practitioner.user == persona("doctor")
    assert referral.from_department is not None and referral.from_department.discipline == "neurology"
    assert referral.consortium.code == "quzhou-neuro"


def test_accepting_into_a_department_of_another_hospital_is_refused(
    make_referral: MakeReferral, persona: Persona, inst: Inst
) -> None:
    referral = make_referral(Status.RECEIVED)
    with pytest.raises(ValidationError) as excinfo:
        services.referral_accept(
            actor=persona("coordinator"),
            referral=referral,
            to_department=Department.objects.get(institution=inst("csph"), discipline="neurology"),
        )
    assert "to_department" in excinfo.value.message_dict
    assert Referral.objects.get(pk=referral.pk).status == Status.RECEIVED


def test_office_routes_a_referral_whose_sender_did_not_know_where(
    persona: Persona,
    make_patient: Callable[..., Patient],
    neuro_office: User,
    neuro: Consortium,
    inst: Inst,
    django_capture_on_commit_callbacks: Any,
) -> None:
    doctor, coordinator = persona("doctor"), persona("coordinator")
    with django_capture_on_commit_callbacks(execute=True):
        referral = _create(persona, make_patient(), to_institution=None, consortium=neuro, consent=consent(), send=True)
    assert referral.status == Status.SENT and referral.to_institution is None
    # The office is told and has it on its board; the city hospital does not see it yet.
    assert Notification.objects.filter(user=neuro_office, link__contains=str(referral.public_id)).exists()
    office_board = selectors.referral_board(neuro_office, box=Box.OFFICE, institution=None)
    assert referral in office_board.rows
    assert not selectors.referral_queryset_visible_to(coordinator).filter(pk=referral.pk).exists()
    # The office treats no one: it cannot accept before it has chosen a destination.
    referral = services.referral_receive(actor=neuro_office, referral=referral)
    with pytest.raises(ValidationError) as excinfo:
        services.referral_accept(actor=neuro_office, referral=referral)
    assert excinfo.value.code == "needs_destination"

    with django_capture_on_commit_callbacks(execute=True):
        referral = services.referral_forward(
            actor=neuro_office, referral=referral, to_institution=inst("qzph"), reason="市人民医院神经外科有床位"
        )
    assert (referral.status, referral.to_institution) == (Status.FORWARDED, inst("qzph"))
    # The office opened it, the city hospital has not: its receipt time is not the office's.
    assert referral.received_at is None
    assert Notification.objects.filter(user=coordinator, title_en__startswith="Referral forwarded to you").exists()
    assert Notification.objects.filter(user=doctor, title_en__startswith="Referral forwarded").exists()
    coordinator = User.objects.get(pk=coordinator.pk)
    referral = services.referral_mark_received_if_receiver(actor=coordinator, referral=referral)
    referral = services.referral_accept(actor=coordinator, referral=referral)
    assert referral.status == Status.ACCEPTED
    assert [e.side for e in referral.events.all()] == ["sender", "sender", "office", "office", "receiver", "receiver"]


def test_office_of_another_consortium_cannot_route(make_referral: MakeReferral, persona: Persona, inst: Inst) -> None:
    referral = make_referral(Status.SENT)
    with pytest.raises(PermissionDenied):
        services.referral_forward(actor=persona("office"), referral=referral, to_institution=inst("khph"), reason="x")


# ----------------------------------------------------------------------------------------
# Attachments

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40
DICOM = b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + b"\x00" * 40


@pytest.mark.parametrize(
    ("name", "content", "kind", "content_type"),
    [
        ("头颅CT报告.pdf", PDF, "pdf", "application/pdf"),
        ("心电图.png", PNG, "image", "image/png"),
        ("创面照片.jpg", JPEG, "image", "image/jpeg"),
        ("CTA.dcm", DICOM, "dicom", "application/dicom"),
        ("IM00001", DICOM, "dicom", "application/dicom"),  # PACS exports often have no extension
    ],
)
def test_attachments_are_recognised_by_their_content(
    make_referral: MakeReferral, persona: Persona, name: str, content: bytes, kind: str, content_type: str
) -> None:
    referral = make_referral(Status.DRAFT)
    upload = SimpleUploadedFile(name, content, content_type="application/octet-stream")
    attachment = services.referral_attach(actor=persona("doctor"), referral=referral, upload=upload, description="术前")
    assert (attachment.kind, attachment.content_type, attachment.size) == (kind, content_type, len(content))
    assert attachment.filename == name
    with attachment.file.open("rb") as stored:
        assert stored.read() == content
    assert AuditEvent.objects.filter(object_id=str(attachment.public_id), action="create").exists()


def test_text_file_renamed_to_pdf_is_refused(make_referral: MakeReferral, persona: Persona) -> None:
    referral = make_referral(Status.SENT)
    upload = SimpleUploadedFile("病历.pdf", "患者既往高血压10年".encode(), content_type="application/pdf")
    with pytest.raises(ValidationError) as excinfo:
        services.referral_attach(actor=persona("doctor"), referral=referral, upload=upload)
    assert "file" in excinfo.value.message_dict
    assert not ReferralAttachment.objects.filter(referral=referral).exists()


def test_empty_and_oversized_files_are_refused(
    make_referral: MakeReferral, persona: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    referral = make_referral(Status.SENT)
    monkeypatch.setattr(services, "ATTACHMENT_MAX_BYTES", 1024)
    for upload in (
        SimpleUploadedFile("empty.pdf", b""),
        SimpleUploadedFile("big.pdf", PDF + b"0" * 1024),
    ):
        with pytest.raises(ValidationError) as excinfo:
            services.referral_attach(actor=persona("doctor"), referral=referral, upload=upload)
        assert "file" in excinfo.value.message_dict
    exactly = SimpleUploadedFile("fits.pdf", PDF + b"0" * (1024 - len(PDF)))
    assert services.referral_attach(actor=persona("doctor"), referral=referral, upload=exactly).size == 1024


def test_a_referral_carries_a_limited_number_of_files(
    make_referral: MakeReferral, persona: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    referral = make_referral(Status.RECEIVED)
    monkeypatch.setattr(services, "ATTACHMENTS_PER_REFERRAL", 2)
    services.referral_attach(actor=persona("doctor"), referral=referral, upload=SimpleUploadedFile("a.pdf", PDF))
    services.referral_attach(actor=persona("coordinator"), referral=referral, upload=SimpleUploadedFile("b.png", PNG))
    with pytest.raises(ValidationError) as excinfo:
        services.referral_attach(actor=persona("doctor"), referral=referral, upload=SimpleUploadedFile("c.pdf", PDF))
    assert "file" in excinfo.value.message_dict
    assert referral.attachments.count() == 2


def test_outsiders_and_closed_referrals_take_no_files(make_referral: MakeReferral, persona: Persona) -> None:
    referral = make_referral(Status.SENT)
    with pytest.raises(PermissionDenied):
        services.referral_attach(actor=persona("bijie"), referral=referral, upload=SimpleUploadedFile("a.pdf", PDF))
    declined = make_referral(Status.DECLINED)
    with pytest.raises(workflow.TransitionNotAllowed):
        services.referral_attach(actor=persona("doctor"), referral=declined, upload=SimpleUploadedFile("a.pdf", PDF))
    assert not ReferralAttachment.objects.filter(referral__in=[referral, declined]).exists()


# ----------------------------------------------------------------------------------------
# Idempotent creation


def test_a_retried_create_returns_the_first_referral(persona: Persona, make_patient: Callable[..., Patient]) -> None:
    patient = make_patient()
    fingerprint = services.request_fingerprint({"patient": str(patient.public_id), "to": "qzph"})
    first = _create(persona, patient, idempotency_key="k-1", request_hash=fingerprint)
    again, created = services.referral_create(
        actor=persona("doctor"),
        patient=patient,
        direction="up",
        from_institution=Institution.objects.get(code="csph"),
        to_institution=Institution.objects.get(code="qzph"),
        reason="突发言语不清伴右侧肢体无力3小时",
        requested_service="admission",
        diagnosis_code="I63.9",
        diagnosis_name="急性脑梗死",
        idempotency_key="k-1",
        request_hash=fingerprint,
    )
    assert (again, created) == (first, False)
    assert Referral.objects.filter(patient=patient).count() == 1
    with pytest.raises(ValidationError):
        _create(persona, patient, idempotency_key="k-1", request_hash="another request")


# ----------------------------------------------------------------------------------------
# Service levels


def test_office_sets_service_levels_and_others_may_not(persona: Persona, neuro_office: User, neuro: Consortium) -> None:
    values = {
        "urgency": "urgent",
        "receive_within_minutes": 30,
        "decide_within_minutes": 60,
        "escalate_after_minutes": 15,
        "no_show_grace_minutes": 60,
    }
    for username in ("coordinator", "doctor", "hospadmin", "office"):  # office: another consortium's
        with pytest.raises(PermissionDenied):
            services.service_level_set(actor=persona(username), consortium=neuro, **values)  # type: ignore[arg-type]
    row = services.service_level_set(actor=neuro_office, consortium=neuro, **values)  # type: ignore[arg-type]
    assert services.service_levels_for(neuro.pk, "urgent").receive_within == dt.timedelta(minutes=30)
    assert AuditEvent.objects.filter(object_id=str(row.public_id)).exists()
    with pytest.raises(ValidationError):
        services.service_level_set(actor=neuro_office, consortium=neuro, **{**values, "decide_within_minutes": 20})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        services.service_level_set(actor=neuro_office, consortium=neuro, **{**values, "escalate_after_minutes": 0})  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------
# Figures


def test_figures_count_rates_and_median_times_on_a_known_set(
    make_referral: MakeReferral, persona: Persona, inst: Inst, time_machine: Any
) -> None:
    """Four up-referrals csph -> qzph sent on 2031-03-03 08:00, one down-referral zju2 -> qzph,
    and one up-referral sent the day after the period (not counted):

    R1 received +1 h, accepted +3 h, patient arrived, outcome +50 h, closed;
    R2 received +2 h, declined +5 h;
    R3 received +3 h, accepted +4 h, scheduled, no-show;
    R4 not received yet.
    """
    coordinator, doctor = persona("coordinator"), persona("doctor")
    t0 = dt.datetime(2031, 3, 3, 8, 0, tzinfo=SHANGHAI)
    time_machine.move_to(t0, tick=False)
    r1, r2, r3, r4 = (make_referral(Status.SENT) for _ in range(4))
    make_referral(Status.SENT, direction="down", sender=persona("expert"), from_code="zju2")

    def at(hours: float) -> None:
        time_machine.move_to(t0 + dt.timedelta(hours=hours), tick=False)

    at(1)
    services.referral_receive(actor=coordinator, referral=r1)
    at(2)
    services.referral_receive(actor=coordinator, referral=r2)
    at(3)
    services.referral_receive(actor=coordinator, referral=r3)
    services.referral_accept(actor=coordinator, referral=r1)
    at(4)
    services.referral_accept(actor=coordinator, referral=r3)
    at(5)
    services.referral_decline(actor=coordinator, referral=r2, reason="床位已满")
    at(6)
    for r in (r1, r3):
        services.referral_schedule(
            actor=coordinator, referral=r, scheduled_at=t0 + dt.timedelta(hours=24), place="门诊"
        )
    at(24)
    services.referral_check_in(actor=coordinator, referral=r1)
    at(50)
    services.referral_return_outcome(
        actor=coordinator, referral=r1, diagnosis="脑梗死", treatment="取栓", result="好转", refer_back=False
    )
    services.referral_acknowledge(actor=doctor, referral=r1)
    services.referral_mark_no_show(actor=None, referral=r3)  # 26 h after the appointment
    at(24 * 4)
    make_referral(Status.SENT)  # sent on 2031-03-07: outside the period

    figures = selectors.referral_figures(persona("admin"), start=dt.date(2031, 3, 1), end=dt.date(2031, 3, 7))
    assert Referral.objects.get(pk=r3.pk).status == Status.NO_SHOW
    assert Referral.objects.get(pk=r4.pk).status == Status.SENT
    csph, qzph, zju2 = figures[inst("csph").pk], figures[inst("qzph").pk], figures[inst("zju2").pk]
    assert (csph.up_out, csph.down_out, csph.received_in) == (4, 0, 0)
    assert (zju2.down_out, zju2.up_out) == (1, 0)
    assert (qzph.received_in, qzph.accepted, qzph.declined) == (3, 2, 1)
    assert (qzph.acceptance_rate, qzph.decline_rate) == (0.6667, 0.3333)
    assert (qzph.arrived, qzph.no_show, qzph.no_show_rate) == (1, 1, 0.5)
    assert (qzph.outcome_returned, qzph.closed, qzph.loop_closure_rate) == (1, 1, 1.0)
    assert (qzph.median_hours_to_receive, qzph.median_hours_to_decide, qzph.median_hours_to_outcome) == (
        2.0,
        4.0,
        50.0,
    )

    # The hospital administrator of qzph sees its partners; the zju2 office not the county hospital.
    assert inst("csph").pk in selectors.referral_figures(persona("hospadmin"), start=t0.date(), end=dt.date(2031, 3, 7))
    office_view = selectors.referral_figures(persona("office"), start=t0.date(), end=dt.date(2031, 3, 7))
    assert inst("csph").pk not in office_view and office_view[inst("qzph").pk].received_in == 3
    with pytest.raises(PermissionDenied):
        selectors.referral_figures(doctor, start=t0.date(), end=dt.date(2031, 3, 7))

    # By month, over March and April: the referral of 7 March is March's too; nothing in April.
    months = selectors.referral_figures_by_month(
        persona("admin"), start=dt.date(2031, 3, 1), end=dt.date(2031, 5, 1), institution_ids=[inst("csph").pk]
    )
    assert list(months) == [dt.date(2031, 3, 1)]
    assert list(months[dt.date(2031, 3, 1)]) == [inst("csph").pk]  # only the institution asked for
    assert months[dt.date(2031, 3, 1)][inst("csph").pk].up_out == 5
    with pytest.raises(PermissionDenied):
        selectors.referral_figures_by_month(doctor, start=t0.date(), end=dt.date(2031, 3, 7))
