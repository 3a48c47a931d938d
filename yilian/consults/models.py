"""Teleconsultation: eConsults, scheduled teleconsultations, MDT cases and meetings, urgent readings.

A ``Consult`` is one patient's request from a requesting institution to a lead institution under
an agreement in force between the two (2018 national rules): it states the reason, purpose, a
structured case summary, the question and the specialty and title wanted (or a named expert),
and carries the patient's written consent obtained by the requesting side. Diagnostic
responsibility stays with the requesting doctor; experts give opinions.

The status field is changed only by ``yilian.consults.workflow.apply`` (see its table); every
change leaves a ``ConsultEvent`` row and an audit row. MDT cases sit on the agenda of a
``Meeting`` (several experts from several departments, a chair, a time, an external link).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from yilian.core.files import FileKind
from yilian.core.models import BaseModel
from yilian.patients.models import Patient
from yilian.registry.models import (
    Agreement,
    Consortium,
    Department,
    Discipline,
    Institution,
    Practitioner,
    ProfessionalTitle,
)


class Kind(models.TextChoices):
    ECONSULT = "econsult", _("eConsult (written advice)")
    TELECONSULTATION = "teleconsultation", _("Scheduled teleconsultation")
    MDT = "mdt", _("MDT discussion")
    READING = "reading", _("Urgent reading")


class ReadingType(models.TextChoices):
    IMAGING = "imaging", _("Imaging (CT, MRI, X-ray)")
    ECG = "ecg", _("ECG")
    PATHOLOGY = "pathology", _("Pathology slides")
    FROZEN_SECTION = "frozen_section", _("Intra-operative frozen section")


class Urgency(models.TextChoices):
    ROUTINE = "routine", _("Routine")
    URGENT = "urgent", _("Urgent")


class Status(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    ACCEPTED = "accepted", _("Accepted")
    DECLINED = "declined", _("Declined")
    SCHEDULED = "scheduled", pgettext_lazy("consult status", "Scheduled")
    IN_DISCUSSION = "in_discussion", _("In discussion")
    ANSWERED = "answered", _("Answered")
    CONCLUDED = "concluded", _("Concluded")
    CLOSED = "closed", pgettext_lazy("consult status", "Closed")
    CANCELLED = "cancelled", _("Cancelled")
    EXPIRED = "expired", pgettext_lazy("consult status", "Expired")


class ConsentMethod(models.TextChoices):
    # The national rules ask for the patient's written consent: no verbal option here.
    WRITTEN = "written", _("Signed consent form")
    ELECTRONIC = "electronic", _("Electronic signature")
    GUARDIAN = "guardian", _("Signed by guardian or next of kin")


class OutcomeValue(models.IntegerChoices):
    NONE = 1, _("1 · no value")
    LITTLE = 2, _("2 · little value")
    SOME = 3, _("3 · some value")
    GOOD = 4, _("4 · good value")
    GREAT = 5, _("5 · great value")


def new_number() -> str:
    from django.utils import timezone

    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out over the phone
    return f"C{timezone.localtime():%y%m%d}" + "".join(secrets.choice(alphabet) for _ in range(6))


class Meeting(BaseModel):
    """An online MDT meeting: one chair, invited experts, an agenda of cases."""

    class MeetingStatus(models.TextChoices):
        PLANNED = "planned", _("Planned")
        HELD = "held", _("Held")
        CANCELLED = "cancelled", _("Cancelled")

    number = models.CharField(_("meeting number"), max_length=20, unique=True)
    consortium = models.ForeignKey(Consortium, on_delete=models.PROTECT, related_name="+", verbose_name=_("consortium"))
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="mdt_meetings", verbose_name=_("host institution")
    )
    title = models.CharField(_("title"), max_length=120)
    chair = models.ForeignKey(Practitioner, on_delete=models.PROTECT, related_name="+", verbose_name=_("chair"))
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    meeting_url = models.URLField(_("video-meeting link"), max_length=300, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=MeetingStatus.choices, default=MeetingStatus.PLANNED)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # iCalendar: one UID for the meeting, SEQUENCE raised on every change so calendars update it.
    sequence = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["starts_at", "id"]
        verbose_name = _("MDT meeting")
        verbose_name_plural = _("MDT meetings")
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="meeting_ends_after_start")
        ]
        indexes = [models.Index(fields=["starts_at", "ends_at"])]

    def __str__(self) -> str:
        return f"{self.number} {self.title}"


class Consult(BaseModel):
    number = models.CharField(_("consult number"), max_length=20, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    reading_type = models.CharField(_("what to read"), max_length=20, choices=ReadingType.choices, blank=True)
    urgency = models.CharField(_("urgency"), max_length=10, choices=Urgency.choices, default=Urgency.ROUTINE)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.REQUESTED)
    consortium = models.ForeignKey(Consortium, on_delete=models.PROTECT, related_name="+", verbose_name=_("consortium"))
    agreement = models.ForeignKey(Agreement, on_delete=models.PROTECT, related_name="+", verbose_name=_("agreement"))
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="consults", verbose_name=_("patient"))

    from_institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="consults_out", verbose_name=_("requesting institution")
    )
    from_department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("department")
    )
    # The requesting doctor keeps diagnostic responsibility for the patient.
    from_practitioner = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, related_name="+", verbose_name=_("requesting doctor")
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    to_institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="consults_in", verbose_name=_("consulted institution")
    )
    # The specialty pool: the department of the consulted institution for the discipline wanted.
    to_department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("specialty")
    )
    discipline = models.CharField(_("specialty wanted"), max_length=30, choices=Discipline.choices)
    wanted_title = models.CharField(
        _("title wanted (at least)"), max_length=30, choices=ProfessionalTitle.choices, blank=True
    )
    named_expert = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("named expert")
    )
    # Who answers: the named expert once accepted, a pool expert who took it, or one a coordinator chose.
    expert = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("expert")
    )

    reason = models.TextField(_("reason for the consultation"), max_length=2000)
    purpose = models.TextField(_("purpose"), max_length=2000)
    question = models.TextField(_("question for the expert"), max_length=2000)
    history = models.TextField(_("history of present illness"), max_length=6000, blank=True)
    examination = models.TextField(_("examination findings"), max_length=4000, blank=True)
    investigations = models.TextField(_("investigations (laboratory, imaging)"), max_length=6000, blank=True)
    diagnosis_code = models.CharField(_("ICD-10 code"), max_length=16, blank=True)
    diagnosis_name = models.CharField(_("working diagnosis"), max_length=120)
    current_treatment = models.TextField(_("current treatment"), max_length=4000, blank=True)

    consent_obtained_by = models.CharField(_("consent obtained by"), max_length=60)
    consent_method = models.CharField(_("consent method"), max_length=20, choices=ConsentMethod.choices)
    consent_at = models.DateTimeField(_("consent obtained at"))

    # Scheduled teleconsultation (MDT cases take their meeting's time).
    scheduled_start = models.DateTimeField(_("starts at"), null=True, blank=True)
    scheduled_end = models.DateTimeField(_("ends at"), null=True, blank=True)
    meeting_url = models.URLField(_("video-meeting link"), max_length=300, blank=True)
    meeting = models.ForeignKey(
        Meeting, on_delete=models.PROTECT, null=True, blank=True, related_name="cases", verbose_name=_("MDT meeting")
    )
    agenda_order = models.PositiveSmallIntegerField(default=0)

    # The answer (eConsult, reading) or the conclusion (teleconsultation, MDT).
    conclusion = models.TextField(_("answer or conclusion"), max_length=8000, blank=True)
    recommendations = models.TextField(_("recommendations"), max_length=8000, blank=True)
    concluded_by = models.ForeignKey(
        Practitioner, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("signed by")
    )

    # Close-out by the requester (after the Champlain BASE eConsult service).
    referral_avoided = models.BooleanField(_("a referral or visit was avoided"), null=True, blank=True)
    management_changed = models.BooleanField(_("the advice changed the management"), null=True, blank=True)
    value_rating = models.PositiveSmallIntegerField(
        _("value of the advice"),
        null=True,
        blank=True,
        choices=OutcomeValue.choices,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
    )
    closeout_comment = models.CharField(_("comment"), max_length=500, blank=True)

    requested_at = models.DateTimeField(_("requested at"))
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    accept_due_at = models.DateTimeField(_("accept by"), null=True, blank=True)
    answer_due_at = models.DateTimeField(_("answer by"), null=True, blank=True)
    # 0 on time, 1 the consulted side was reminded, 2 the consortium office was told.
    escalation_level = models.PositiveSmallIntegerField(default=0)
    last_reason = models.CharField(_("last reason"), max_length=500, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name = _("consult")
        verbose_name_plural = _("consults")
        indexes = [
            models.Index(fields=["to_institution", "status"]),
            models.Index(fields=["from_institution", "status"]),
            models.Index(fields=["expert", "status"]),
            models.Index(fields=["status", "escalation_level"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(value_rating__isnull=True) | Q(value_rating__gte=1, value_rating__lte=5),
                name="consult_value_1_5",
            ),
            models.CheckConstraint(
                condition=~Q(from_institution=models.F("to_institution")), name="consult_between_two_institutions"
            ),
        ]

    def __str__(self) -> str:
        return self.number


class Participant(BaseModel):
    """An expert invited to an MDT meeting (the chair included), with their answer."""

    class Response(models.TextChoices):
        PENDING = "pending", _("Not answered")
        ACCEPTED = "accepted", _("Will attend")
        DECLINED = "declined", _("Cannot attend")

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="participants")
    practitioner = models.ForeignKey(Practitioner, on_delete=models.PROTECT, related_name="+")
    response = models.CharField(_("response"), max_length=10, choices=Response.choices, default=Response.PENDING)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["meeting", "practitioner"], name="participant_once")]


class Opinion(BaseModel):
    """One expert's written opinion on one case. A correction adds a new row (history kept);
    the latest row per expert is the current opinion."""

    consult = models.ForeignKey(Consult, on_delete=models.PROTECT, related_name="opinions")
    practitioner = models.ForeignKey(Practitioner, on_delete=models.PROTECT, related_name="+")
    text = models.TextField(_("opinion"), max_length=8000)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    supersedes = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["created_at", "id"]


class MessageKind(models.TextChoices):
    MESSAGE = "message", _("Message")
    INFO_REQUEST = "info_request", _("Request for more information")
    ANSWER = "answer", _("Answer")
    FOLLOW_UP = "follow_up", _("Follow-up question")


class Message(BaseModel):
    """The eConsult thread (and notes on any consult)."""

    consult = models.ForeignKey(Consult, on_delete=models.PROTECT, related_name="messages")
    kind = models.CharField(_("kind"), max_length=20, choices=MessageKind.choices, default=MessageKind.MESSAGE)
    text = models.TextField(_("text"), max_length=8000)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    author_label = models.CharField(max_length=120)
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["created_at", "id"]


class ConsultEvent(models.Model):
    """One step of a consult's timeline, written by ``workflow.apply``."""

    consult = models.ForeignKey(Consult, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=20)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    at = models.DateTimeField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    actor_label = models.CharField(max_length=120)
    side = models.CharField(max_length=12)
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, null=True, related_name="+")
    note = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["consult", "at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.at:%Y-%m-%d %H:%M}"


def _attachment_path(instance: Attachment, filename: str) -> str:
    return f"consults/{instance.consult.public_id}/{secrets.token_hex(8)}-{filename[-80:]}"


class Attachment(BaseModel):
    consult = models.ForeignKey(Consult, on_delete=models.PROTECT, related_name="attachments")
    file = models.FileField(upload_to=_attachment_path, max_length=255)
    filename = models.CharField(_("file name"), max_length=120)
    kind = models.CharField(_("kind"), max_length=10, choices=FileKind.choices)
    content_type = models.CharField(max_length=80)
    size = models.PositiveIntegerField(_("size"))
    sha256 = models.CharField(max_length=64)
    description = models.CharField(_("description"), max_length=200, blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.filename


class ServiceLevel(BaseModel):
    """A consortium's promise per kind and urgency (defaults in ``services.DEFAULT_SERVICE_LEVELS``)."""

    consortium = models.ForeignKey(Consortium, on_delete=models.CASCADE, related_name="consult_service_levels")
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    urgency = models.CharField(_("urgency"), max_length=10, choices=Urgency.choices)
    # Frozen sections are read against their own clock (kind=reading with this type only).
    reading_type = models.CharField(_("what to read"), max_length=20, choices=ReadingType.choices, blank=True)
    accept_within_minutes = models.PositiveIntegerField(_("accept within (minutes)"))
    answer_within_minutes = models.PositiveIntegerField(_("answer within (minutes)"))
    escalate_after_minutes = models.PositiveIntegerField(_("tell the office after a further (minutes)"))

    class Meta:
        verbose_name = _("consult service level")
        verbose_name_plural = _("consult service levels")
        constraints = [
            models.UniqueConstraint(
                fields=["consortium", "kind", "urgency", "reading_type"], name="consult_service_level_once"
            )
        ]
