"""Two-way referral with a closed loop: the referral, its timeline, appointments,
attachments, service levels and idempotency keys.

The status field is changed only by ``yilian.referrals.workflow.apply`` (see that module's
table); every change leaves a ``ReferralEvent`` row and an audit row.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from yilian.core.files import FileKind
from yilian.core.models import BaseModel
from yilian.patients.models import Patient
from yilian.registry.models import Consortium, Department, Institution, Practitioner


class Status(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SENT = "sent", _("Sent")
    RECEIVED = "received", _("Received")
    ACCEPTED = "accepted", _("Accepted")
    DECLINED = "declined", _("Declined")
    FORWARDED = "forwarded", _("Forwarded")
    SCHEDULED = "scheduled", _("Scheduled")
    ARRIVED = "arrived", _("Arrived")
    IN_TREATMENT = "in_treatment", _("In treatment")
    OUTCOME_RETURNED = "outcome_returned", _("Outcome returned")
    CLOSED = "closed", _("Closed")
    CANCELLED = "cancelled", _("Cancelled")
    NO_SHOW = "no_show", _("No-show")


class Direction(models.TextChoices):
    UP = "up", _("Up-referral")
    DOWN = "down", _("Down-referral")
    LATERAL = "lateral", _("Lateral referral")


class Urgency(models.TextChoices):
    ROUTINE = "routine", _("Routine")
    URGENT = "urgent", _("Urgent")


class RequestedService(models.TextChoices):
    OUTPATIENT = "outpatient", _("Outpatient visit")
    ADMISSION = "admission", _("Admission")
    PROCEDURE = "procedure", _("Procedure")
    EXAMINATION = "examination", _("Examination")
    REHABILITATION = "rehabilitation", _("Rehabilitation")
    CHRONIC_FOLLOW_UP = "chronic_follow_up", _("Chronic-disease follow-up")


class ConsentMethod(models.TextChoices):
    WRITTEN = "written", _("Written (signed form)")
    ELECTRONIC = "electronic", _("Electronic signature")
    VERBAL = "verbal", _("Verbal, witnessed")
    GUARDIAN = "guardian", _("By guardian or next of kin")


icd10_validator = RegexValidator(
    r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?(x[0-9]{3})?$",
    _("Enter an ICD-10 code such as I63.9 or I63.900x001."),
    code="icd10",
)


def new_status_token() -> str:
    return secrets.token_urlsafe(24)


class Referral(BaseModel):
    number = models.CharField(_("referral number"), max_length=20, unique=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.DRAFT)
    direction = models.CharField(_("direction"), max_length=10, choices=Direction.choices)
    urgency = models.CharField(_("urgency"), max_length=10, choices=Urgency.choices, default=Urgency.ROUTINE)
    consortium = models.ForeignKey(
        Consortium, on_delete=models.PROTECT, related_name="referrals", verbose_name=_("consortium")
    )
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="referrals", verbose_name=_("patient"))

    from_institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="referrals_out", verbose_name=_("from institution")
    )
    from_department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("from department")
    )
    from_practitioner = models.ForeignKey(
        Practitioner,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("referring doctor"),
    )
    # Empty while the consortium office routes a referral whose sender did not know where to send it.
    to_institution = models.ForeignKey(
        Institution,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="referrals_in",
        verbose_name=_("to institution"),
    )
    to_department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("to department")
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    reason = models.TextField(_("reason for referral"), max_length=2000)
    requested_service = models.CharField(_("requested service"), max_length=20, choices=RequestedService.choices)
    diagnosis_code = models.CharField(_("ICD-10 code"), max_length=16, validators=[icd10_validator])
    diagnosis_name = models.CharField(_("working diagnosis"), max_length=120)
    key_findings = models.TextField(_("key findings"), max_length=4000, blank=True)
    current_treatment = models.TextField(_("current treatment"), max_length=4000, blank=True)
    allergies = models.CharField(_("allergies"), max_length=400, blank=True)

    consent_obtained_by = models.CharField(_("consent obtained by"), max_length=60, blank=True)
    consent_method = models.CharField(_("consent method"), max_length=20, choices=ConsentMethod.choices, blank=True)
    consent_at = models.DateTimeField(_("consent obtained at"), null=True, blank=True)

    # Care plan: required on a down-referral so the primary-care team can take over.
    plan_diagnosis = models.CharField(_("discharge diagnosis"), max_length=200, blank=True)
    plan_treatment_done = models.TextField(_("treatment done"), max_length=4000, blank=True)
    plan_medication = models.TextField(_("medication"), max_length=4000, blank=True)
    plan_follow_up = models.TextField(_("follow-up schedule"), max_length=2000, blank=True)
    plan_warning_signs = models.TextField(_("warning signs"), max_length=2000, blank=True)

    # Current appointment (history in ReferralAppointment).
    scheduled_at = models.DateTimeField(_("appointment"), null=True, blank=True)
    scheduled_place = models.CharField(_("place"), max_length=200, blank=True)
    patient_instructions = models.TextField(_("instructions for the patient"), max_length=2000, blank=True)

    outcome_diagnosis = models.CharField(_("final diagnosis"), max_length=200, blank=True)
    outcome_treatment = models.TextField(_("treatment given"), max_length=4000, blank=True)
    outcome_result = models.TextField(_("result"), max_length=2000, blank=True)
    outcome_recommendations = models.TextField(_("recommendations"), max_length=4000, blank=True)
    refer_back = models.BooleanField(_("refer back down"), null=True, blank=True)
    refer_back_on = models.DateField(_("refer back on"), null=True, blank=True)

    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    received_at = models.DateTimeField(_("received at"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    arrived_at = models.DateTimeField(_("arrived at"), null=True, blank=True)
    outcome_at = models.DateTimeField(_("outcome returned at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    # Service-level deadlines, set when the referral is sent or forwarded.
    receive_due_at = models.DateTimeField(_("to be received by"), null=True, blank=True)
    decide_due_at = models.DateTimeField(_("to be decided by"), null=True, blank=True)
    # 0 on time, 1 receiving coordinators notified, 2 escalated to the consortium office.
    escalation_level = models.PositiveSmallIntegerField(_("escalation level"), default=0)
    last_reason = models.CharField(_("reason"), max_length=500, blank=True)

    status_token = models.CharField(max_length=64, unique=True, default=new_status_token, editable=False)

    class Meta:
        verbose_name = _("referral")
        verbose_name_plural = _("referrals")
        indexes = [
            models.Index(fields=["to_institution", "-created_at"], name="referral_in_recent"),
            models.Index(fields=["from_institution", "-created_at"], name="referral_out_recent"),
            models.Index(fields=["to_institution", "status"], name="referral_in_status"),
            models.Index(fields=["from_institution", "status"], name="referral_out_status"),
            models.Index(fields=["consortium", "status"], name="referral_office_status"),
            models.Index(fields=["status", "decide_due_at"], name="referral_due"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(from_institution=models.F("to_institution")),
                name="referral_to_another_institution",
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_routed_by_office(self) -> bool:
        return self.to_institution_id is None

    def has_care_plan(self) -> bool:
        return all(
            [self.plan_diagnosis, self.plan_treatment_done, self.plan_medication, self.plan_follow_up,
             self.plan_warning_signs]
        )  # fmt: skip


class ReferralEvent(models.Model):
    """One step on the referral's timeline: who took it, when, from which status to which."""

    referral = models.ForeignKey(Referral, on_delete=models.PROTECT, related_name="events")
    action = models.CharField(_("action"), max_length=20)
    from_status = models.CharField(max_length=20, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=Status.choices)
    at = models.DateTimeField(_("at"), db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True)
    side = models.CharField(max_length=10, blank=True)
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    note = models.TextField(blank=True)
    data: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("referral event")
        verbose_name_plural = _("referral events")

    def __str__(self) -> str:
        return f"{self.referral_id} {self.action} {self.at:%Y-%m-%d %H:%M}"


class ReferralAppointment(models.Model):
    """Every appointment ever given, so that rescheduling keeps its history."""

    referral = models.ForeignKey(Referral, on_delete=models.PROTECT, related_name="appointments")
    scheduled_at = models.DateTimeField(_("appointment"))
    place = models.CharField(_("place"), max_length=200)
    instructions = models.TextField(_("instructions for the patient"), blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.scheduled_at:%Y-%m-%d %H:%M} {self.place}"


AttachmentKind = FileKind  # PDF, image, DICOM: recognised by their first bytes (``yilian.core.files``)


def _attachment_path(instance: ReferralAttachment, filename: str) -> str:
    return f"referrals/{instance.referral.public_id}/{secrets.token_hex(8)}-{filename[-80:]}"


class ReferralAttachment(BaseModel):
    referral = models.ForeignKey(Referral, on_delete=models.PROTECT, related_name="attachments")
    file = models.FileField(upload_to=_attachment_path, max_length=255)
    filename = models.CharField(_("file name"), max_length=120)
    kind = models.CharField(_("kind"), max_length=10, choices=AttachmentKind.choices)
    content_type = models.CharField(max_length=80)
    size = models.PositiveIntegerField(_("size"))
    sha256 = models.CharField(max_length=64)
    description = models.CharField(_("description"), max_length=200, blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return self.filename


class ServiceLevel(BaseModel):
    """How fast a consortium's members promise to receive and decide, per urgency."""

    consortium = models.ForeignKey(Consortium, on_delete=models.CASCADE, related_name="referral_service_levels")
    urgency = models.CharField(_("urgency"), max_length=10, choices=Urgency.choices)
    receive_within_minutes = models.PositiveIntegerField(_("receive within (minutes)"))
    decide_within_minutes = models.PositiveIntegerField(_("decide within (minutes)"))
    # After the first notice to the receiving coordinators, how long until the office is told.
    escalate_after_minutes = models.PositiveIntegerField(_("escalate to the office after (minutes)"))
    no_show_grace_minutes = models.PositiveIntegerField(_("no-show grace period (minutes)"))

    class Meta:
        verbose_name = _("referral service level")
        verbose_name_plural = _("referral service levels")
        constraints = [
            models.UniqueConstraint(fields=["consortium", "urgency"], name="service_level_once_per_urgency"),
            models.CheckConstraint(
                condition=Q(decide_within_minutes__gte=models.F("receive_within_minutes")),
                name="service_level_decide_after_receive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.consortium_id} {self.urgency}"


class IdempotencyKey(models.Model):
    """A client's ``Idempotency-Key`` for a create: a retry returns the first result."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=100)
    request_hash = models.CharField(max_length=64)
    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_once_per_user")]

    def __str__(self) -> str:
        return self.key
