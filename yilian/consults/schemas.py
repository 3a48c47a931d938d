"""Request and response bodies of the teleconsultation API.

The patient comes in two shapes, as in the referral API: masked in lists and in the answers of
create and actions (family name, masked ID number), and ``ConsultPatientOut`` in the detail,
handed out only after the audited read in ``selectors.consult_patient`` (name and contact
unmasked, the resident ID number still masked: the consulted side needs to know whom it
advises, not their ID).
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from django.urls import reverse
from django.utils.translation import gettext as _
from ninja import Field, Schema
from pydantic import WithJsonSchema, field_validator, model_validator

from yilian.consults import selectors, workflow
from yilian.consults.models import (
    Attachment,
    ConsentMethod,
    Consult,
    ConsultEvent,
    Kind,
    Meeting,
    Message,
    Participant,
    ReadingType,
    Status,
    Urgency,
)
from yilian.core.schemas import In, iso_text, plausible_day
from yilian.patients.models import Patient, mask_id_number
from yilian.referrals.schemas import PatientIn, PatientMaskedOut, aware_moment
from yilian.registry.models import Discipline, Institution, Practitioner, ProfessionalTitle


class ActionName(StrEnum):
    """The steps of ``workflow.TRANSITIONS`` as they appear in the path (the worker's expire is not one)."""

    ACCEPT = "accept"
    DECLINE = "decline"
    ASSIGN = "assign"
    SCHEDULE = "schedule"
    START = "start"
    ASK_INFO = "ask-info"
    PROVIDE_INFO = "provide-info"
    ANSWER = "answer"
    FOLLOW_UP = "follow-up"
    CONCLUDE = "conclude"
    CLOSE = "close"
    CANCEL = "cancel"

    @property
    def step(self) -> workflow.Action:
        return workflow.Action(self.value.replace("-", "_"))

    @classmethod
    def of(cls, action: workflow.Action) -> ActionName:
        return cls(action.value.replace("_", "-"))


def _named(choices: type[Any], title: str) -> WithJsonSchema:
    """The value set inline under its own title: the referral API has enums of the same class names
    (``Status``, ``Urgency``, ``ConsentMethod``) and OpenAPI components are keyed by name."""
    return WithJsonSchema({"title": title, "type": "string", "enum": [c.value for c in choices]})


KindField = Annotated[Kind, _named(Kind, "ConsultKind")]
ReadingTypeField = Annotated[ReadingType, _named(ReadingType, "ConsultReadingType")]
UrgencyField = Annotated[Urgency, _named(Urgency, "ConsultUrgency")]
StatusField = Annotated[Status, _named(Status, "ConsultStatus")]
ConsentMethodField = Annotated[ConsentMethod, _named(ConsentMethod, "ConsultConsentMethod")]
MeetingStatusField = Annotated[Meeting.MeetingStatus, _named(Meeting.MeetingStatus, "MeetingStatus")]
ResponseField = Annotated[Participant.Response, _named(Participant.Response, "MeetingResponse")]

MeetingActionName = Literal["reschedule", "invite", "respond", "cancel", "held"]
BoxName = Literal["asked", "for_me", "incoming", "outgoing", "office"]


# ----------------------------------------------------------------------------------------
# Requests


class ConsultConsentIn(In):
    obtained_by: str = Field(..., min_length=1, max_length=60, description="Who obtained the written consent.")
    method: ConsentMethodField
    at: dt.datetime

    _iso = field_validator("at", mode="before")(iso_text)
    _moments = field_validator("at")(aware_moment)


class ConsultIn(In):
    patient: PatientIn | None = None
    patient_id: uuid.UUID | None = Field(None, description="A patient already visible to you, instead of `patient`.")
    kind: KindField
    reading_type: ReadingTypeField | None = Field(None, description="What is to be read (kind `reading` only).")
    urgency: UrgencyField = Urgency.ROUTINE
    from_institution: str = Field(
        "", max_length=32, description="Code; defaults to your institution when you ask for only one."
    )
    to_institution: str = Field(..., min_length=1, max_length=32, description="Code of the consulted institution.")
    discipline: Discipline = Field(..., description="The specialty wanted.")
    wanted_title: ProfessionalTitle | None = Field(None, description="At least this professional title.")
    named_expert: uuid.UUID | None = Field(None, description="A practitioner of the consulted institution.")
    reason: str = Field(..., max_length=2000)
    purpose: str = Field(..., max_length=2000)
    question: str = Field(..., max_length=2000)
    history: str = Field("", max_length=6000)
    examination: str = Field("", max_length=4000)
    investigations: str = Field("", max_length=6000)
    diagnosis_code: str = Field("", max_length=16, description="ICD-10, e.g. I61.0.")
    diagnosis_name: str = Field(..., max_length=120, description="The working diagnosis.")
    current_treatment: str = Field("", max_length=4000)
    consent: ConsultConsentIn | None = Field(None, description="The patient's written consent (required).")

    @model_validator(mode="after")
    def _one_patient(self) -> ConsultIn:
        if (self.patient is None) == (self.patient_id is None):
            raise ValueError(_("Give either the patient or the id of a patient you can see, not both."))
        return self


class ConsultActionIn(In):
    """Only the part the action needs is read; see the action list in the API documentation."""

    reason: str = Field("", max_length=500, description="decline, cancel (required)")
    expert: uuid.UUID | None = Field(None, description="assign: a practitioner of the consulted institution")
    starts_at: dt.datetime | None = Field(None, description="schedule (teleconsultation)")
    ends_at: dt.datetime | None = Field(None, description="schedule (teleconsultation)")
    meeting_url: str = Field("", max_length=300, description="schedule (teleconsultation): the video-meeting link")
    meeting: uuid.UUID | None = Field(None, description="schedule (MDT case): the meeting to put it on")
    text: str = Field("", max_length=8000, description="ask-info, provide-info, follow-up")
    answer: str = Field("", max_length=8000, description="answer")
    conclusion: str = Field("", max_length=8000, description="conclude")
    recommendations: str = Field("", max_length=8000, description="answer, conclude")
    referral_avoided: bool | None = Field(None, description="close")
    management_changed: bool | None = Field(None, description="close")
    value_rating: int | None = Field(None, ge=1, le=5, description="close: 1 (no value) to 5 (great value)")
    comment: str = Field("", max_length=500, description="close")

    _iso = field_validator("starts_at", "ends_at", mode="before")(iso_text)
    _moments = field_validator("starts_at", "ends_at")(aware_moment)


class TextIn(In):
    text: str = Field(..., max_length=8000)


class MeetingIn(In):
    institution: str = Field(
        "", max_length=32, description="Code of the host; defaults to your institution when you coordinate for one."
    )
    title: str = Field(..., max_length=120)
    chair: uuid.UUID = Field(..., description="The chairing practitioner.")
    experts: list[uuid.UUID] = Field(default_factory=list, max_length=30, description="Invited practitioners.")
    starts_at: dt.datetime
    ends_at: dt.datetime
    meeting_url: str = Field("", max_length=300)

    _iso = field_validator("starts_at", "ends_at", mode="before")(iso_text)
    _moments = field_validator("starts_at", "ends_at")(aware_moment)


class MeetingActionIn(In):
    starts_at: dt.datetime | None = Field(None, description="reschedule")
    ends_at: dt.datetime | None = Field(None, description="reschedule")
    expert: uuid.UUID | None = Field(None, description="invite")
    attend: bool | None = Field(None, description="respond: whether you will attend")
    reason: str = Field("", max_length=500, description="cancel (required)")

    _iso = field_validator("starts_at", "ends_at", mode="before")(iso_text)
    _moments = field_validator("starts_at", "ends_at")(aware_moment)


class ServiceLevelIn(In):
    consortium: str = Field(..., min_length=1, max_length=40, description="Code.")
    kind: KindField
    urgency: UrgencyField
    reading_type: Literal["", "frozen_section"] = Field("", description="frozen_section: the frozen sections' own.")
    accept_within_minutes: int = Field(..., ge=0, le=10_000_000)
    answer_within_minutes: int = Field(..., ge=0, le=10_000_000)
    escalate_after_minutes: int = Field(..., ge=0, le=10_000_000)


class ConsultPeriodQuery(Schema):
    start: dt.date = Field(alias="from")
    end: dt.date = Field(alias="to", description="The last day (included).")

    _iso = field_validator("start", "end", mode="before")(iso_text)
    _days = field_validator("start", "end")(plausible_day)


# ----------------------------------------------------------------------------------------
# Responses


class ConsultConflictOut(Schema):
    detail: str
    status: str | None = Field(None, description="The consult's current status, when a step came too late.")
    errors: dict[str, list[str]] | None = None


class ConsultInstitutionRef(Schema):
    code: str
    name: str


class ConsultPractitionerRef(Schema):
    id: uuid.UUID = Field(alias="public_id")
    name: str
    title: str
    department: str | None

    @staticmethod
    def resolve_department(obj: Practitioner) -> str | None:
        return obj.department.name if obj.department_id and obj.department else None


class ConsultPatientOut(Schema):
    """Only ever returned after ``selectors.consult_patient`` wrote its audit row."""

    id: uuid.UUID = Field(alias="public_id")
    name: str
    sex: str
    birth_date: dt.date | None
    approximate_age: int | None
    id_number: str = Field(description="Masked.")
    phone: str
    address: str
    identified: bool = Field(alias="is_identified")

    @staticmethod
    def resolve_id_number(obj: Patient) -> str:
        return mask_id_number(obj.id_number)


def _institution(obj: Institution) -> dict[str, str]:
    return {"code": obj.code, "name": obj.name}


class _ConsultBase(Schema):
    id: uuid.UUID = Field(alias="public_id")
    number: str
    kind: KindField
    reading_type: str
    urgency: UrgencyField
    status: StatusField
    from_institution: ConsultInstitutionRef
    to_institution: ConsultInstitutionRef
    discipline: str
    to_department: str | None
    expert: ConsultPractitionerRef | None = Field(description="The expert, or the named expert before acceptance.")
    requested_at: dt.datetime
    accept_due_at: dt.datetime | None
    answer_due_at: dt.datetime | None
    scheduled_start: dt.datetime | None
    overdue: bool

    @staticmethod
    def resolve_from_institution(obj: Consult) -> dict[str, str]:
        return _institution(obj.from_institution)

    @staticmethod
    def resolve_to_institution(obj: Consult) -> dict[str, str]:
        return _institution(obj.to_institution)

    @staticmethod
    def resolve_to_department(obj: Consult) -> str | None:
        return obj.to_department.name if obj.to_department else None

    @staticmethod
    def resolve_expert(obj: Consult) -> Practitioner | None:
        return obj.expert or obj.named_expert

    @staticmethod
    def resolve_overdue(obj: Consult) -> bool:
        return selectors.is_overdue(obj)


class ConsultRowOut(_ConsultBase):
    """One consult as queues show it: no clinical text, patient masked."""

    patient: PatientMaskedOut


class ConsultConsentOut(Schema):
    obtained_by: str
    method: str
    at: dt.datetime


class CaseOut(Schema):
    history: str
    examination: str
    investigations: str
    diagnosis_code: str
    diagnosis_name: str
    current_treatment: str


class MeetingRef(Schema):
    id: uuid.UUID = Field(alias="public_id")
    number: str
    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: str


class CloseOutOut(Schema):
    referral_avoided: bool | None
    management_changed: bool | None
    value_rating: int | None
    comment: str


class _ConsultFull(_ConsultBase):
    from_practitioner: ConsultPractitionerRef
    wanted_title: str
    named_expert: ConsultPractitionerRef | None
    reason: str
    purpose: str
    question: str
    case: CaseOut
    consent: ConsultConsentOut
    scheduled_end: dt.datetime | None
    meeting_url: str
    meeting: MeetingRef | None
    conclusion: str
    recommendations: str
    concluded_by: ConsultPractitionerRef | None
    closeout: CloseOutOut | None
    last_reason: str
    accepted_at: dt.datetime | None
    answered_at: dt.datetime | None
    closed_at: dt.datetime | None
    escalation_level: int
    responsibility: str = Field(description="Diagnostic responsibility stays with the requesting doctor.")
    sides: list[str] = Field(description="The caller's relation to this consult: requester, expert, chair, …")
    allowed_actions: list[ActionName] = Field(description="Steps the caller may take now, for POST …/{action}.")

    @staticmethod
    def resolve_case(obj: Consult) -> dict[str, str]:
        return {name: getattr(obj, name) for name in CaseOut.model_fields}

    @staticmethod
    def resolve_consent(obj: Consult) -> dict[str, Any]:
        return {"obtained_by": obj.consent_obtained_by, "method": obj.consent_method, "at": obj.consent_at}

    @staticmethod
    def resolve_closeout(obj: Consult) -> dict[str, Any] | None:
        if obj.status != Status.CLOSED:
            return None
        return {
            "referral_avoided": obj.referral_avoided,
            "management_changed": obj.management_changed,
            "value_rating": obj.value_rating,
            "comment": obj.closeout_comment,
        }

    @staticmethod
    def resolve_responsibility(obj: Consult) -> str:
        return _("Diagnostic responsibility stays with the requesting doctor, %(name)s.") % {
            "name": obj.from_practitioner.name
        }

    @staticmethod
    def resolve_sides(obj: Consult, context: dict[str, Any]) -> list[str]:
        return sorted(s.value for s in workflow.sides_of(context["request"].user, obj) - {workflow.Side.SYSTEM})

    @staticmethod
    def resolve_allowed_actions(obj: Consult, context: dict[str, Any]) -> list[ActionName]:
        return [ActionName.of(a) for a in workflow.allowed_actions(context["request"].user, obj)]


class ConsultOut(_ConsultFull):
    """The consult with its request and what the caller may do now; patient masked."""

    patient: PatientMaskedOut


class MessageOut(Schema):
    id: uuid.UUID = Field(alias="public_id")
    kind: str
    text: str
    author: str = Field(alias="author_label")
    institution: str = Field(alias="institution.code")
    at: dt.datetime = Field(alias="created_at")


class OpinionOut(Schema):
    id: uuid.UUID = Field(alias="public_id")
    expert: ConsultPractitionerRef = Field(alias="practitioner")
    text: str
    at: dt.datetime = Field(alias="created_at")
    corrections: int = Field(0, description="Earlier versions by the same expert.")


class ConsultEventOut(Schema):
    action: str
    from_status: str
    to_status: str
    at: dt.datetime
    actor: str = Field(alias="actor_label")
    side: str
    institution: str | None
    note: str
    data: dict[str, Any]

    @staticmethod
    def resolve_institution(obj: ConsultEvent) -> str | None:
        return obj.institution.code if obj.institution else None


class ConsultAttachmentOut(Schema):
    id: uuid.UUID = Field(alias="public_id")
    filename: str
    kind: str
    content_type: str
    size: int
    sha256: str
    description: str
    uploaded_at: dt.datetime = Field(alias="created_at")
    uploaded_by: str
    download_url: str

    @staticmethod
    def resolve_uploaded_by(obj: Attachment) -> str:
        return obj.uploaded_by.display_name or obj.uploaded_by.get_username()

    @staticmethod
    def resolve_download_url(obj: Attachment) -> str:
        return reverse(
            "api:consult_attachment_download",
            kwargs={"public_id": obj.consult.public_id, "attachment_id": obj.public_id},
        )


class ConsultDetailOut(_ConsultFull):
    """The detail: the patient's identity (the read is audited), thread, opinions, files, timeline."""

    patient: ConsultPatientOut
    messages: list[MessageOut]
    opinions: list[OpinionOut] = Field(description="The current opinion of each expert.")
    attachments: list[ConsultAttachmentOut]
    timeline: list[ConsultEventOut]

    @staticmethod
    def resolve_messages(obj: Consult) -> list[Message]:
        return selectors.consult_thread(obj)

    @staticmethod
    def resolve_opinions(obj: Consult) -> list[dict[str, Any]]:
        return [
            {
                "public_id": c.opinion.public_id,
                "practitioner": c.opinion.practitioner,
                "text": c.opinion.text,
                "created_at": c.opinion.created_at,
                "corrections": c.corrections,
            }
            for c in selectors.consult_opinions(obj)
        ]

    @staticmethod
    def resolve_attachments(obj: Consult) -> list[Attachment]:
        return list(obj.attachments.select_related("uploaded_by", "consult"))

    @staticmethod
    def resolve_timeline(obj: Consult) -> list[ConsultEvent]:
        return selectors.consult_timeline(obj)


# ----------------------------------------------------------------------------------------
# Meetings, times, service levels, figures


class MeetingOut(Schema):
    id: uuid.UUID = Field(alias="public_id")
    number: str
    title: str
    institution: ConsultInstitutionRef
    chair: ConsultPractitionerRef
    starts_at: dt.datetime
    ends_at: dt.datetime
    meeting_url: str
    status: MeetingStatusField
    sequence: int = Field(description="Raised on every change (the iCalendar SEQUENCE).")


class ParticipantOut(Schema):
    expert: ConsultPractitionerRef = Field(alias="practitioner")
    response: ResponseField


class AgendaItemOut(Schema):
    order: int = Field(alias="agenda_order")
    id: uuid.UUID | None = Field(description="Null for a case the caller may not open.")
    number: str
    status: StatusField
    from_institution: ConsultInstitutionRef | None = Field(description="Null for a case the caller may not open.")
    patient: str | None = Field(description="Masked name; null for a case the caller may not open.")
    question: str | None


class MeetingDetailOut(MeetingOut):
    participants: list[ParticipantOut]
    agenda: list[AgendaItemOut]


class ConflictItemOut(Schema):
    expert: uuid.UUID
    text: str
    blocking: bool = Field(description="True: the time is refused; false: a note (on site elsewhere, join online).")


class SlotOut(Schema):
    starts_at: dt.datetime
    ends_at: dt.datetime
    notes: list[str]


class ServiceLevelOut(Schema):
    consortium: str
    kind: KindField
    urgency: UrgencyField
    reading_type: str
    accept_within_minutes: int
    answer_within_minutes: int
    escalate_after_minutes: int
    source: Literal["consortium", "default"]


class ConsultFiguresRowOut(Schema):
    institution: ConsultInstitutionRef
    requested: int
    delivered: int
    delivered_by_kind: dict[str, int]
    delivered_for_others: int = Field(description="Delivered as the consulted institution.")
    closed: int
    referral_avoided: int
    referral_avoided_share: float | None
    median_response_hours: float | None = Field(description="eConsults: request to first answer, hours.")
    p90_response_hours: float | None
    median_reading_minutes: float | None = Field(description="Urgent readings: request to report, minutes.")
    p90_reading_minutes: float | None


class ConsultFiguresOut(Schema):
    start: dt.date
    end: dt.date
    institutions: list[ConsultFiguresRowOut]
