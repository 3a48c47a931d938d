"""Two-way referral with a closed loop: the referral, its timeline, appointments,
attachments, service levels and idempotency keys.

The status field is changed only by ``yilian.referrals.workflow.apply`` (see that module's
table); every change leaves a ``ReferralEvent`` row and an audit row.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

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
    # A green-channel (time-critical) transfer: its own table of steps (``workflow.GREEN_TRANSITIONS``),
    # its offer timeout instead of the service levels, and a ``GreenCase`` with protocol and time nodes.
    green_channel = models.BooleanField(_("green channel"), default=False)

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


# --- Green channel (绿色通道): time-critical transfers ------------------------------------------


class GreenProtocol(BaseModel):
    """A consortium's protocol for one kind of time-critical case (stroke, STEMI, ...).

    What it requires lives in its versions: editing writes a new version, and a case keeps the
    version it was activated with."""

    consortium = models.ForeignKey(
        Consortium, on_delete=models.CASCADE, related_name="green_protocols", verbose_name=_("consortium")
    )
    code = models.SlugField(_("code"), max_length=30)
    name_zh = models.CharField(_("name (Chinese)"), max_length=60)
    name_en = models.CharField(_("name (English)"), max_length=80)
    is_active = models.BooleanField(_("active"), default=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        ordering = ["consortium_id", "position", "code"]
        verbose_name = _("green-channel protocol")
        verbose_name_plural = _("green-channel protocols")
        constraints = [models.UniqueConstraint(fields=["consortium", "code"], name="green_protocol_code_once")]

    def __str__(self) -> str:
        return self.name_zh

    @property
    def name(self) -> str:
        from django.utils.translation import get_language

        return self.name_zh if (get_language() or "").startswith("zh") else self.name_en


class GreenProtocolVersion(models.Model):
    """One version of a protocol's definition (validated by ``protocols.ProtocolDefinition``)."""

    protocol = models.ForeignKey(GreenProtocol, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField(_("version"))
    definition: models.JSONField[Any, Any] = models.JSONField(_("definition"))
    note = models.CharField(_("what changed"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["protocol_id", "-version"]
        verbose_name = _("protocol version")
        verbose_name_plural = _("protocol versions")
        constraints = [models.UniqueConstraint(fields=["protocol", "version"], name="green_protocol_version_once")]

    def __str__(self) -> str:
        return f"{self.protocol.code} v{self.version}"


class GreenSettings(BaseModel):
    """Per consortium: how arrival times are estimated without a travel-time matrix, and how long
    a destination has to answer before the worker offers the case to the next one."""

    consortium = models.OneToOneField(Consortium, on_delete=models.CASCADE, related_name="green_settings")
    road_factor = models.DecimalField(
        _("road factor"),
        max_digits=3,
        decimal_places=2,
        default=Decimal("1.35"),
        validators=[MinValueValidator(Decimal("1.00")), MaxValueValidator(Decimal("3.00"))],
        help_text=_("Road distance divided by straight-line distance."),
    )
    average_speed_kmh = models.PositiveSmallIntegerField(
        _("average ambulance speed (km/h)"), default=60, validators=[MinValueValidator(10), MaxValueValidator(150)]
    )
    offer_timeout_minutes = models.PositiveSmallIntegerField(
        _("answer within (minutes)"), default=5, validators=[MinValueValidator(1), MaxValueValidator(60)]
    )

    class Meta:
        verbose_name = _("green-channel settings")
        verbose_name_plural = _("green-channel settings")

    def __str__(self) -> str:
        return str(self.consortium)


class TravelTime(models.Model):
    """An imported road travel time between two institutions (minutes, by ambulance)."""

    consortium = models.ForeignKey(Consortium, on_delete=models.CASCADE, related_name="+")
    from_institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="+")
    to_institution = models.ForeignKey(Institution, on_delete=models.CASCADE, related_name="+")
    minutes = models.PositiveIntegerField(_("minutes"), validators=[MinValueValidator(1)])
    imported_at = models.DateTimeField(_("imported at"))

    class Meta:
        verbose_name = _("travel time")
        verbose_name_plural = _("travel times")
        constraints = [
            models.UniqueConstraint(
                fields=["consortium", "from_institution", "to_institution"], name="travel_time_once_per_pair"
            ),
            models.CheckConstraint(
                condition=~Q(from_institution=models.F("to_institution")), name="travel_time_between_two"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.from_institution_id}->{self.to_institution_id} {self.minutes} min"


class GreenCase(BaseModel):
    """The time-critical part of a green-channel referral: protocol version, onset, scores,
    imaging, the destinations offered and the time nodes."""

    referral = models.OneToOneField(Referral, on_delete=models.PROTECT, related_name="green")
    protocol_version = models.ForeignKey(
        GreenProtocolVersion, on_delete=models.PROTECT, related_name="cases", verbose_name=_("protocol")
    )
    # Last known well (or witnessed onset); empty when unknown.
    onset_at = models.DateTimeField(_("last known well"), null=True, blank=True)
    scores: models.JSONField[Any, Any] = models.JSONField(_("scores"), default=dict, blank=True)
    imaging_done = models.BooleanField(_("imaging done"), default=False)
    findings: models.JSONField[Any, Any] = models.JSONField(_("findings"), default=list, blank=True)
    imaging_result = models.CharField(_("imaging result"), max_length=300, blank=True)
    note = models.TextField(_("note"), max_length=2000, blank=True)
    activated_at = models.DateTimeField(_("activated at"))
    # The estimate for the destination holding the offer now (minutes by road).
    eta_minutes = models.PositiveIntegerField(_("estimated travel (minutes)"), null=True, blank=True)

    class Meta:
        verbose_name = _("green-channel case")
        verbose_name_plural = _("green-channel cases")
        indexes = [models.Index(fields=["activated_at"], name="green_case_activated")]

    def __str__(self) -> str:
        return f"{self.referral_id} {self.protocol_version_id}"


class OfferOutcome(models.TextChoices):
    PENDING = "pending", _("Waiting for an answer")
    ACCEPTED = "accepted", _("Accepted")
    DECLINED = "declined", _("Declined")
    TIMED_OUT = "timed_out", _("No answer in time")
    WITHDRAWN = "withdrawn", pgettext_lazy("green offer", "Withdrawn")


class GreenOffer(models.Model):
    """A destination the case was offered to, in order. At most one offer is pending."""

    case = models.ForeignKey(GreenCase, on_delete=models.PROTECT, related_name="offers")
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="+")
    rank = models.PositiveSmallIntegerField(_("rank"))
    eta_minutes = models.PositiveIntegerField(_("estimated travel (minutes)"), null=True, blank=True)
    eta_basis = models.CharField(_("estimate from"), max_length=10, blank=True)
    offered_at = models.DateTimeField(_("offered at"))
    answer_due_at = models.DateTimeField(_("answer due at"))
    outcome = models.CharField(_("outcome"), max_length=10, choices=OfferOutcome.choices, default=OfferOutcome.PENDING)
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(_("reason"), max_length=500, blank=True)

    class Meta:
        ordering = ["case_id", "offered_at", "id"]
        verbose_name = _("offer")
        verbose_name_plural = _("offers")
        constraints = [
            models.UniqueConstraint(
                fields=["case"], condition=Q(outcome="pending"), name="green_offer_one_pending_per_case"
            ),
        ]
        indexes = [models.Index(fields=["outcome", "answer_due_at"], name="green_offer_due")]

    def __str__(self) -> str:
        return f"{self.case_id} -> {self.institution_id} {self.outcome}"


class GreenNode(models.Model):
    """One time node of a case (door-in, door-out, needle, ...). A correction adds a row and
    marks the earlier one superseded, so that history is kept; one current row per node."""

    case = models.ForeignKey(GreenCase, on_delete=models.PROTECT, related_name="nodes")
    node = models.CharField(_("time node"), max_length=30)
    at = models.DateTimeField(_("time"))
    recorded_at = models.DateTimeField(_("recorded at"))
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recorded_by_label = models.CharField(max_length=150, blank=True)
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    note = models.CharField(_("note"), max_length=300, blank=True)
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["case_id", "at", "id"]
        verbose_name = _("time node")
        verbose_name_plural = _("time nodes")
        constraints = [
            models.UniqueConstraint(
                fields=["case", "node"], condition=Q(superseded_at__isnull=True), name="green_node_one_current"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.case_id} {self.node} {self.at:%H:%M}"
