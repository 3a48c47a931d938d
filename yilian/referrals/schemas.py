"""Request and response bodies of the referral, patient and notification API.

Patient data comes in two shapes: ``PatientMaskedOut`` (lists and the answers of create and
actions: family name and masked ID number only) and ``PatientOut`` (the referral detail and the
patient record, handed out only after the audited read in ``selectors.patient_identity``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Schema
from pydantic import field_validator, model_validator

from yilian.core.schemas import In, iso_text, plausible_day
from yilian.patients.models import Patient, Sex, mask_id_number, mask_name
from yilian.referrals import selectors, workflow
from yilian.referrals.models import (
    ConsentMethod,
    Direction,
    Referral,
    ReferralAttachment,
    RequestedService,
    Status,
    Urgency,
)
from yilian.referrals.workflow import Action


def aware_moment(value: dt.datetime | None) -> dt.datetime | None:
    """A time without a zone is China time; years outside 1900-2100 are refused."""
    if value is None:
        return None
    if not 1900 <= value.year <= 2100:
        raise ValueError(_("Choose a date between 1900 and 2100."))
    return value if timezone.is_aware(value) else timezone.make_aware(value)


# ----------------------------------------------------------------------------------------
# Requests


class EmergencyContactIn(In):
    name: str = Field("", max_length=60)
    relation: str = Field("", max_length=20)
    phone: str = Field("", max_length=20)


class PatientIn(In):
    """A patient given inline; a known ID number finds the existing record (never overwrites it)."""

    name: str = Field(..., min_length=1, max_length=60)
    sex: Sex = Sex.UNKNOWN
    birth_date: dt.date | None = None
    approximate_age: int | None = Field(None, ge=0, le=130)
    id_number: str = Field("", max_length=24, description="Resident ID number; empty for an unidentified patient.")
    phone: str = Field("", max_length=20)
    residence_region: str = Field("", pattern=r"^(\d{6})?$", description="Code of the county-level region.")
    address: str = Field("", max_length=200)
    emergency_contact: EmergencyContactIn | None = None

    _iso = field_validator("birth_date", mode="before")(iso_text)
    _dates = field_validator("birth_date")(plausible_day)


class DiagnosisIn(In):
    code: str = Field(..., min_length=1, max_length=16, description="ICD-10, e.g. I63.9 or I63.900x001.")
    name: str = Field(..., min_length=1, max_length=120)


class ConsentIn(In):
    obtained_by: str = Field(..., min_length=1, max_length=60)
    method: ConsentMethod
    at: dt.datetime

    _iso = field_validator("at", mode="before")(iso_text)
    _moments = field_validator("at")(aware_moment)


class CarePlanIn(In):
    diagnosis: str = Field("", max_length=200)
    treatment_done: str = Field("", max_length=4000)
    medication: str = Field("", max_length=4000)
    follow_up: str = Field("", max_length=2000)
    warning_signs: str = Field("", max_length=2000)


class ReferralIn(In):
    patient: PatientIn | None = None
    patient_id: uuid.UUID | None = Field(None, description="A patient already visible to you, instead of `patient`.")
    direction: Direction
    urgency: Urgency = Urgency.ROUTINE
    from_institution: str = Field(
        "", max_length=32, description="Code; defaults to your institution when you refer for only one."
    )
    from_department: uuid.UUID | None = None
    to_institution: str | None = Field(
        None, max_length=32, description="Code; null to let the consortium office route the referral."
    )
    consortium: str = Field("", max_length=40, description="Code; required when `to_institution` is null.")
    to_department: uuid.UUID | None = None
    reason: str = Field(..., min_length=1, max_length=2000)
    requested_service: RequestedService
    diagnosis: DiagnosisIn
    key_findings: str = Field("", max_length=4000)
    current_treatment: str = Field("", max_length=4000)
    allergies: str = Field("", max_length=400)
    consent: ConsentIn | None = None
    care_plan: CarePlanIn | None = None
    send: bool = Field(False, description="Send at once (needs `consent`, and `care_plan` on a down-referral).")

    @model_validator(mode="after")
    def _one_patient(self) -> ReferralIn:
        if (self.patient is None) == (self.patient_id is None):
            raise ValueError(_("Give either the patient or the id of a patient you can see, not both."))
        return self


class DraftPatchIn(In):
    """Fields of a draft to change; those left out (or null) stay as they are."""

    urgency: Urgency | None = None
    requested_service: RequestedService | None = None
    reason: str | None = Field(None, min_length=1, max_length=2000)
    diagnosis: DiagnosisIn | None = None
    key_findings: str | None = Field(None, max_length=4000)
    current_treatment: str | None = Field(None, max_length=4000)
    allergies: str | None = Field(None, max_length=400)
    consent: ConsentIn | None = None
    care_plan: CarePlanIn | None = Field(None, description="Only the keys given are changed.")

    def changes(self) -> dict[str, Any]:
        """The model fields to set, as the draft-editing service takes them."""
        given = {k: v for k, v in self.model_dump(exclude_unset=True).items() if v is not None}
        changes: dict[str, Any] = {}
        for key in ("urgency", "requested_service", "reason", "key_findings", "current_treatment", "allergies"):
            if key in given:
                changes[key] = given[key]
        if "diagnosis" in given:
            changes["diagnosis_code"] = given["diagnosis"]["code"]
            changes["diagnosis_name"] = given["diagnosis"]["name"]
        if "consent" in given:
            changes["consent_obtained_by"] = given["consent"]["obtained_by"]
            changes["consent_method"] = given["consent"]["method"]
            changes["consent_at"] = given["consent"]["at"]
        if self.care_plan is not None:
            for key, value in self.care_plan.model_dump(exclude_unset=True).items():
                changes[f"plan_{key}"] = value
        return changes


class ScheduleIn(In):
    scheduled_at: dt.datetime
    place: str = Field(..., min_length=1, max_length=200)
    instructions: str = Field("", max_length=2000)

    _iso = field_validator("scheduled_at", mode="before")(iso_text)
    _moments = field_validator("scheduled_at")(aware_moment)


class ForwardIn(In):
    to_institution: str = Field(..., min_length=1, max_length=32)
    to_department: uuid.UUID | None = None
    reason: str = Field("", max_length=500)


class OutcomeIn(In):
    diagnosis: str = Field(..., min_length=1, max_length=200)
    treatment: str = Field(..., min_length=1, max_length=4000)
    result: str = Field(..., min_length=1, max_length=2000)
    recommendations: str = Field("", max_length=4000)
    refer_back: bool | None = None
    refer_back_on: dt.date | None = None

    _iso = field_validator("refer_back_on", mode="before")(iso_text)
    _dates = field_validator("refer_back_on")(plausible_day)


class ActionIn(In):
    """Only the part the action needs is read; see the action list in the API documentation."""

    reason: str = Field("", max_length=500, description="decline, forward, cancel, reopen")
    consent: ConsentIn | None = Field(None, description="send (unless recorded at creation)")
    to_department: uuid.UUID | None = Field(None, description="accept: the department that takes the patient")
    schedule: ScheduleIn | None = Field(None, description="schedule")
    forward: ForwardIn | None = Field(None, description="forward")
    outcome: OutcomeIn | None = Field(None, description="return_outcome")


class MergeIn(In):
    into: uuid.UUID = Field(..., description="The identified patient the unidentified record is merged into.")


# ----------------------------------------------------------------------------------------
# Responses


class ConflictOut(Schema):
    detail: str
    status: str | None = Field(None, description="The referral's current status, when a step came too late.")
    errors: dict[str, list[str]] | None = None


class PatientMaskedOut(Schema):
    id: uuid.UUID = Field(alias="public_id")
    name: str
    id_number: str
    sex: str
    identified: bool = Field(alias="is_identified")

    @staticmethod
    def resolve_name(obj: Patient) -> str:
        return mask_name(obj.name)

    @staticmethod
    def resolve_id_number(obj: Patient) -> str:
        return mask_id_number(obj.id_number)


class EmergencyContactOut(Schema):
    name: str
    relation: str
    phone: str


class PatientOut(Schema):
    """Unmasked: only ever returned after ``selectors.patient_identity`` wrote its audit row."""

    id: uuid.UUID = Field(alias="public_id")
    name: str
    sex: str
    birth_date: dt.date | None
    approximate_age: int | None
    id_number: str | None
    phone: str
    residence_region: str | None
    address: str
    emergency_contact: EmergencyContactOut
    identified: bool = Field(alias="is_identified")
    merged_into: uuid.UUID | None

    @staticmethod
    def resolve_residence_region(obj: Patient) -> str | None:
        return obj.residence_region.code if obj.residence_region else None

    @staticmethod
    def resolve_emergency_contact(obj: Patient) -> dict[str, str]:
        return {
            "name": obj.emergency_contact_name,
            "relation": obj.emergency_contact_relation,
            "phone": obj.emergency_contact_phone,
        }

    @staticmethod
    def resolve_merged_into(obj: Patient) -> uuid.UUID | None:
        return obj.merged_into.public_id if obj.merged_into else None


class DiagnosisOut(Schema):
    code: str
    name: str


class _ReferralBase(Schema):
    id: uuid.UUID = Field(alias="public_id")
    number: str
    status: Status
    direction: Direction
    urgency: Urgency
    requested_service: RequestedService
    consortium: str = Field(alias="consortium.code")
    from_institution: str = Field(alias="from_institution.code")
    from_institution_name: str = Field(alias="from_institution.name")
    from_department: str | None
    to_institution: str | None
    to_institution_name: str | None
    to_department: str | None
    diagnosis: DiagnosisOut
    created_at: dt.datetime
    sent_at: dt.datetime | None
    scheduled_at: dt.datetime | None
    overdue: bool

    @staticmethod
    def resolve_from_department(obj: Referral) -> str | None:
        return obj.from_department.name if obj.from_department else None

    @staticmethod
    def resolve_to_institution(obj: Referral) -> str | None:
        return obj.to_institution.code if obj.to_institution else None

    @staticmethod
    def resolve_to_institution_name(obj: Referral) -> str | None:
        return obj.to_institution.name if obj.to_institution else None

    @staticmethod
    def resolve_to_department(obj: Referral) -> str | None:
        return obj.to_department.name if obj.to_department else None

    @staticmethod
    def resolve_diagnosis(obj: Referral) -> dict[str, str]:
        return {"code": obj.diagnosis_code, "name": obj.diagnosis_name}

    @staticmethod
    def resolve_overdue(obj: Referral) -> bool:
        return selectors.is_overdue(obj)


class ReferralRowOut(_ReferralBase):
    """One referral as lists show it: no clinical text, patient masked."""

    patient: PatientMaskedOut


class ConsentOut(Schema):
    obtained_by: str
    method: str
    at: dt.datetime


class CarePlanOut(Schema):
    diagnosis: str
    treatment_done: str
    medication: str
    follow_up: str
    warning_signs: str


class AppointmentOut(Schema):
    scheduled_at: dt.datetime
    place: str
    instructions: str


class OutcomeOut(Schema):
    diagnosis: str
    treatment: str
    result: str
    recommendations: str
    refer_back: bool | None
    refer_back_on: dt.date | None
    returned_at: dt.datetime | None


class _ReferralFull(_ReferralBase):
    from_practitioner: str | None
    created_by: str
    reason: str
    key_findings: str
    current_treatment: str
    allergies: str
    consent: ConsentOut | None
    care_plan: CarePlanOut | None
    appointment: AppointmentOut | None
    outcome: OutcomeOut | None
    last_reason: str
    received_at: dt.datetime | None
    decided_at: dt.datetime | None
    arrived_at: dt.datetime | None
    closed_at: dt.datetime | None
    receive_due_at: dt.datetime | None
    decide_due_at: dt.datetime | None
    escalation_level: int
    sides: list[str] = Field(description="The caller's relation to this referral: sender, receiver, office.")
    allowed_actions: list[Action] = Field(description="Steps the caller may take now, for POST .../actions/{action}.")

    @staticmethod
    def resolve_from_practitioner(obj: Referral) -> str | None:
        return obj.from_practitioner.name if obj.from_practitioner else None

    @staticmethod
    def resolve_created_by(obj: Referral) -> str:
        return obj.created_by.display_name or obj.created_by.get_username()

    @staticmethod
    def resolve_consent(obj: Referral) -> dict[str, Any] | None:
        if not obj.consent_at:
            return None
        return {"obtained_by": obj.consent_obtained_by, "method": obj.consent_method, "at": obj.consent_at}

    @staticmethod
    def resolve_care_plan(obj: Referral) -> dict[str, str] | None:
        plan = {
            "diagnosis": obj.plan_diagnosis,
            "treatment_done": obj.plan_treatment_done,
            "medication": obj.plan_medication,
            "follow_up": obj.plan_follow_up,
            "warning_signs": obj.plan_warning_signs,
        }
        return plan if any(plan.values()) else None

    @staticmethod
    def resolve_appointment(obj: Referral) -> dict[str, Any] | None:
        if obj.scheduled_at is None:
            return None
        return {
            "scheduled_at": obj.scheduled_at,
            "place": obj.scheduled_place,
            "instructions": obj.patient_instructions,
        }

    @staticmethod
    def resolve_outcome(obj: Referral) -> dict[str, Any] | None:
        if obj.outcome_at is None:
            return None
        return {
            "diagnosis": obj.outcome_diagnosis,
            "treatment": obj.outcome_treatment,
            "result": obj.outcome_result,
            "recommendations": obj.outcome_recommendations,
            "refer_back": obj.refer_back,
            "refer_back_on": obj.refer_back_on,
            "returned_at": obj.outcome_at,
        }

    @staticmethod
    def resolve_sides(obj: Referral, context: dict[str, Any]) -> list[str]:
        return sorted(s.value for s in workflow.sides_of(context["request"].user, obj) - {workflow.Side.SYSTEM})

    @staticmethod
    def resolve_allowed_actions(obj: Referral, context: dict[str, Any]) -> list[Action]:
        return workflow.allowed_actions(context["request"].user, obj)


class ReferralOut(_ReferralFull):
    """The referral with its clinical summary and what the caller may do now; patient masked."""

    patient: PatientMaskedOut


class ReferralDetailOut(_ReferralFull):
    """The detail: the patient unmasked (the read is audited)."""

    patient: PatientOut


class EventOut(Schema):
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
    def resolve_institution(obj: Any) -> str | None:
        return obj.institution.code if obj.institution else None


class AttachmentOut(Schema):
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
    def resolve_uploaded_by(obj: ReferralAttachment) -> str:
        return obj.uploaded_by.display_name or obj.uploaded_by.get_username()

    @staticmethod
    def resolve_download_url(obj: ReferralAttachment) -> str:
        return reverse(
            "api:referral_attachment_download",
            kwargs={"public_id": obj.referral.public_id, "attachment_id": obj.public_id},
        )


class PatientReferralOut(Schema):
    id: uuid.UUID = Field(alias="public_id")
    number: str
    status: Status
    direction: Direction
    from_institution: str = Field(alias="from_institution.code")
    to_institution: str | None
    created_at: dt.datetime

    @staticmethod
    def resolve_to_institution(obj: Referral) -> str | None:
        return obj.to_institution.code if obj.to_institution else None


class PatientDetailOut(PatientOut):
    referrals: list[PatientReferralOut] = Field(description="The referrals of this patient that the caller sees.")
    merged_records: list[uuid.UUID] = Field(description="Unidentified records merged into this one.")

    @staticmethod
    def resolve_referrals(obj: Patient, context: dict[str, Any]) -> list[Referral]:
        return list(selectors.patient_referrals(context["request"].user, obj)[:100])

    @staticmethod
    def resolve_merged_records(obj: Patient) -> list[uuid.UUID]:
        return list(obj.merged_records.values_list("public_id", flat=True))


class FiguresRowOut(Schema):
    institution: str
    institution_name: str
    up_out: int
    down_out: int
    lateral_out: int
    received_in: int
    accepted: int
    declined: int
    arrived: int
    no_show: int
    outcome_returned: int
    closed: int
    acceptance_rate: float | None
    decline_rate: float | None
    loop_closure_rate: float | None
    no_show_rate: float | None
    median_hours_to_receive: float | None
    median_hours_to_decide: float | None
    median_hours_to_outcome: float | None


class ReferralFiguresOut(Schema):
    start: dt.date
    end: dt.date
    institutions: list[FiguresRowOut]


BoxName = Literal["incoming", "outgoing", "office"]
