"""Request and response bodies of the capability-building API. Practitioners appear by public id
and name only: licence numbers are never part of an answer."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from ninja import Field, Schema
from pydantic import StrictBool, field_validator

from yilian.capability.models import (
    AssessmentResult,
    CaseSource,
    FirstStatus,
    LocalRole,
    MacroRegion,
    SignInMethod,
    Stage,
    TeachingKind,
    TrainingKind,
)
from yilian.core.schemas import In, iso_text, plausible_day
from yilian.referrals.schemas import aware_moment
from yilian.registry.models import Discipline


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    moment = aware_moment(value)
    # A year outside 1900-2100 is a typing slip (and 9999 would overflow the sign-in window).
    plausible_day(moment.date() if moment is not None else None)
    return moment


# ----------------------------------------------------------------------------------------
# References


class PlaceRef(Schema):
    code: str
    name: str


class HostDepartmentRef(Schema):
    id: uuid.UUID
    name: str
    institution: str


class PersonRef(Schema):
    id: uuid.UUID
    name: str
    name_zh: str
    name_en: str
    title: str
    institution: str = Field(description="The practitioner's institution code.")


class TechniqueRef(Schema):
    code: str
    name: str
    level: int
    restricted: bool


class RegionRef(Schema):
    code: str
    name: str


# ----------------------------------------------------------------------------------------
# Techniques


class TechniqueOut(Schema):
    code: str
    name: str
    name_zh: str
    name_en: str
    operation_code: str = Field(description="National operation code or its stem (every code starting with it).")
    level: int = Field(description="Operation level 1-4.")
    restricted: bool = Field(description="A restricted technique (限制类技术) is always level 4.")
    discipline: str
    is_active: bool


class TechniqueIn(In):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,59}$")
    name_zh: str = Field(min_length=1, max_length=120)
    name_en: str = Field("", max_length=160)
    operation_code: str = Field("", max_length=20)
    level: int = Field(ge=1, le=4)
    restricted: StrictBool = False
    discipline: Discipline


class TechniquePatch(In):
    name_zh: str | None = Field(None, min_length=1, max_length=120)
    name_en: str | None = Field(None, max_length=160)
    operation_code: str | None = Field(None, max_length=20)
    level: int | None = Field(None, ge=1, le=4)
    restricted: StrictBool | None = None
    discipline: Discipline | None = None
    is_active: StrictBool | None = None


# ----------------------------------------------------------------------------------------
# The transfer ledger


class TransferOut(Schema):
    id: uuid.UUID
    department: HostDepartmentRef
    technique: TechniqueRef
    expert: PersonRef
    programme: str | None = Field(description="Stationing programme code.")
    stage: Stage | None = Field(description="The furthest stage any surgeon of the department reached.")
    introduced_on: dt.date | None
    independent_on: dt.date | None
    days_to_independence: int | None
    note: str


class TransferIn(In):
    department: uuid.UUID = Field(description="The host department's id.")
    technique: str = Field(min_length=1, max_length=60, description="Technique code.")
    expert: uuid.UUID = Field(description="The practitioner id of the expert who brings the technique.")
    programme: str | None = Field(None, max_length=40, description="Stationing programme code.")
    note: str = Field("", max_length=2000)


class TransferQuery(Schema):
    institution: str = Field("", max_length=40, description="Host institution code.")
    technique: str = Field("", max_length=60, description="Technique code.")
    stage: Stage | None = None


class LedgerCaseOut(Schema):
    id: uuid.UUID
    performed_on: dt.date
    local_role: LocalRole
    evidence_for: Stage = Field(description="The stage this case is evidence for.")
    local_surgeon: PersonRef | None
    operator_name: str
    source: CaseSource
    source_ref: str
    operation_code: str
    note: str


class CaseIn(In):
    performed_on: dt.date
    local_role: LocalRole
    local_surgeon: uuid.UUID | None = Field(None, description="Practitioner id; required unless local_role is none.")
    operation_code: str = Field("", max_length=20)
    note: str = Field("", max_length=200)

    _iso = field_validator("performed_on", mode="before")(iso_text)
    _days = field_validator("performed_on")(plausible_day)


class StepOut(Schema):
    id: uuid.UUID
    stage: Stage
    surgeon: PersonRef | None
    reached_on: dt.date
    evidence: uuid.UUID = Field(description="The case that proves the stage.")
    privilege: uuid.UUID | None = Field(description="The surgical privilege held (independence only).")


class StepIn(In):
    evidence: uuid.UUID = Field(description="The id of a case of this ledger.")


class AdvanceOut(Schema):
    steps: list[StepOut] = Field(description="The steps written (a skipped stage with its own evidence first).")
    ledger: TransferOut


class CollectOut(Schema):
    from_work_logs: int
    from_activity: int
    total: int
    unmatched_surgeons: list[str] = Field(description="Operators of imported records that match no practitioner.")


class StageReachedOut(Schema):
    stage: Stage
    label: str
    reached_on: dt.date | None
    surgeon: PersonRef | None


class OperatorOut(Schema):
    operator: str
    local: bool = Field(description="A local surgeon operated (supervised or alone).")
    cases: int


class PrivilegeRef(Schema):
    id: uuid.UUID
    granted_on: dt.date


class SurgeonProgressOut(Schema):
    surgeon: PersonRef
    stage: Stage | None
    cases: int
    steps: list[StepOut]
    privilege: PrivilegeRef | None


class TransferDetailOut(TransferOut):
    stages: list[StageReachedOut] = Field(description="Each stage in order, with the department's first step.")
    steps: list[StepOut]
    cases: list[LedgerCaseOut]
    by_operator: list[OperatorOut]
    surgeons: list[SurgeonProgressOut]


# ----------------------------------------------------------------------------------------
# Privileges


class PrivilegeOut(Schema):
    id: uuid.UUID
    practitioner: PersonRef
    technique: TechniqueRef
    granted_on: dt.date
    revoked_on: dt.date | None
    current: bool
    note: str


class PrivilegeIn(In):
    practitioner: uuid.UUID
    technique: str = Field(min_length=1, max_length=60, description="Technique code.")
    granted_on: dt.date
    note: str = Field("", max_length=200)

    _iso = field_validator("granted_on", mode="before")(iso_text)
    _days = field_validator("granted_on")(plausible_day)


class PrivilegeQuery(Schema):
    institution: str = Field("", max_length=40)
    technique: str = Field("", max_length=60)


class RevokeIn(In):
    on: dt.date
    reason: str = Field(min_length=1, max_length=200)

    _iso = field_validator("on", mode="before")(iso_text)
    _days = field_validator("on")(plausible_day)


# ----------------------------------------------------------------------------------------
# Regional firsts


class FirstOut(Schema):
    id: uuid.UUID
    technique: TechniqueRef
    institution: PlaceRef
    performed_on: dt.date
    region: RegionRef | None
    macro_region: MacroRegion | None
    region_name: str
    programme: str | None
    case: uuid.UUID | None
    description: str
    status: FirstStatus | None = Field(description="verified, contradicted or unverifiable.")
    status_label: str
    checked_at: dt.datetime | None
    evidence: dict[str, Any] = Field(
        description="window (from, to, institutions); earlier (the earliest earlier case) when contradicted; "
        "reason and missing (institutions and months the records miss) when unverifiable."
    )


class FirstIn(In):
    technique: str = Field(min_length=1, max_length=60)
    institution: str = Field(min_length=1, max_length=40)
    performed_on: dt.date
    region: str | None = Field(None, max_length=12, description="A city or province code.")
    macro_region: MacroRegion | None = None
    programme: str | None = Field(None, max_length=40)
    case: uuid.UUID | None = Field(None, description="A case of the institution's ledger of the technique.")
    description: str = Field("", max_length=4000)

    _iso = field_validator("performed_on", mode="before")(iso_text)
    _days = field_validator("performed_on")(plausible_day)


class FirstQuery(Schema):
    programme: str = Field("", max_length=40)
    consortium: str = Field("", max_length=40)
    status: FirstStatus | None = None
    institution: str = Field("", max_length=40)


# ----------------------------------------------------------------------------------------
# Teaching


class TeachingOut(Schema):
    id: uuid.UUID
    kind: TeachingKind
    topic: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    hours: float = Field(description="Credited hours: the duration to the nearest half hour.")
    leader: PersonRef
    institutions: list[PlaceRef]
    place: str
    materials: str
    other_attendees: int
    programme: str | None
    training: uuid.UUID | None
    cancelled: bool


class TeachingAttendanceOut(Schema):
    id: uuid.UUID
    activity: uuid.UUID
    practitioner: PersonRef
    signed_in_at: dt.datetime
    method: SignInMethod
    hours: float


class TeachingDetailOut(TeachingOut):
    attendances: list[TeachingAttendanceOut]
    hours_credited: float


class TeachingIn(In):
    kind: TeachingKind
    topic: str = Field(min_length=1, max_length=200)
    starts_at: dt.datetime
    ends_at: dt.datetime
    leader: uuid.UUID | None = Field(None, description="Practitioner id; the caller's own record by default.")
    institutions: list[str] = Field(min_length=1, max_length=20, description="Institution codes of the places.")
    place: str = Field("", max_length=200)
    materials: str = Field("", max_length=4000)
    other_attendees: int = Field(0, ge=0)
    programme: str | None = Field(None, max_length=40, description="Stationing programme code.")
    training: uuid.UUID | None = Field(None, description="Training programme id.")

    _iso = field_validator("starts_at", "ends_at", mode="before")(iso_text)
    _moments = field_validator("starts_at", "ends_at")(_aware)


class TeachingPatch(In):
    kind: TeachingKind | None = None
    topic: str | None = Field(None, min_length=1, max_length=200)
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    place: str | None = Field(None, max_length=200)
    materials: str | None = Field(None, max_length=4000)
    other_attendees: int | None = Field(None, ge=0)

    _iso = field_validator("starts_at", "ends_at", mode="before")(iso_text)
    _moments = field_validator("starts_at", "ends_at")(_aware)


class TeachingQuery(Schema):
    institution: str = Field("", max_length=40, description="A place's institution code.")
    kind: TeachingKind | None = None
    start: dt.date | None = Field(None, alias="from", description="Activities starting on or after this day.")
    end: dt.date | None = Field(None, alias="to", description="Activities starting before this day.")

    _iso = field_validator("start", "end", mode="before")(iso_text)
    _days = field_validator("start", "end")(plausible_day)


class CodeOut(Schema):
    code: str = Field(description="Shown once; valid for one attendee until expires_at.")
    url: str = Field(description="The sign-in page the QR code opens.")
    expires_at: dt.datetime


class SignInIn(In):
    code: str = Field(min_length=1, max_length=100)


class TeachingAttendanceIn(In):
    practitioner: uuid.UUID


# ----------------------------------------------------------------------------------------
# Training programmes


class TrainingOut(Schema):
    id: uuid.UUID
    kind: TrainingKind
    name: str
    name_zh: str
    name_en: str
    institution: PlaceRef
    mentor: PersonRef
    stationing: str | None = Field(description="Stationing programme code.")
    goals: str
    starts_on: dt.date
    ends_on: dt.date | None


class TrainingIn(In):
    kind: TrainingKind
    name_zh: str = Field(min_length=1, max_length=120)
    name_en: str = Field("", max_length=160)
    institution: str = Field(min_length=1, max_length=40, description="Host institution code.")
    mentor: uuid.UUID = Field(description="Practitioner id.")
    starts_on: dt.date
    ends_on: dt.date | None = None
    goals: str = Field("", max_length=4000)
    stationing: str | None = Field(None, max_length=40, description="Stationing programme code.")

    _iso = field_validator("starts_on", "ends_on", mode="before")(iso_text)
    _days = field_validator("starts_on", "ends_on")(plausible_day)


class TrainingQuery(Schema):
    institution: str = Field("", max_length=40)
    kind: TrainingKind | None = None


class MilestoneOut(Schema):
    id: uuid.UUID
    order: int
    title: str
    title_zh: str
    title_en: str
    due_months: int
    technique: str | None
    stage: Stage | None


class MilestoneIn(In):
    title_zh: str = Field(min_length=1, max_length=120)
    title_en: str = Field("", max_length=160)
    due_months: int = Field(6, ge=1, le=120)
    technique: str | None = Field(None, max_length=60, description="Technique code (with stage).")
    stage: Stage | None = None


class MenteeIn(In):
    practitioner: uuid.UUID
    joined_on: dt.date

    _iso = field_validator("joined_on", mode="before")(iso_text)
    _days = field_validator("joined_on")(plausible_day)


class MenteeOut(Schema):
    id: uuid.UUID
    programme: uuid.UUID
    practitioner: PersonRef
    joined_on: dt.date
    left_on: dt.date | None


class AssessmentOut(Schema):
    id: uuid.UUID
    mentee: uuid.UUID
    milestone: uuid.UUID
    assessed_on: dt.date
    result: AssessmentResult
    score: int | None
    comment: str
    assessor: str | None = Field(description="The assessor's display name.")
    signed_off_by: str | None
    signed_off_at: dt.datetime | None
    counts: bool = Field(description="Passed and signed off: the milestone is reached.")


class AssessmentIn(In):
    milestone: uuid.UUID
    assessed_on: dt.date
    result: AssessmentResult
    score: int | None = Field(None, ge=0, le=100)
    comment: str = Field("", max_length=4000)

    _iso = field_validator("assessed_on", mode="before")(iso_text)
    _days = field_validator("assessed_on")(plausible_day)


class MilestoneProgressOut(Schema):
    milestone: MilestoneOut
    due_on: dt.date
    reached_on: dt.date | None
    overdue: bool
    technique_stage: Stage | None
    assessments: list[AssessmentOut]


class StepOfMenteeOut(Schema):
    technique: str
    institution: str
    stage: Stage
    reached_on: dt.date


class ActivityAttendedOut(Schema):
    activity: uuid.UUID
    topic: str
    starts_at: dt.datetime
    hours: float


class MenteeProgressOut(MenteeOut):
    reached: int = Field(description="Milestones reached.")
    milestones_total: int
    teaching_hours: float
    milestones: list[MilestoneProgressOut]
    steps: list[StepOfMenteeOut]
    activities: list[ActivityAttendedOut]


class TrainingDetailOut(TrainingOut):
    milestones: list[MilestoneOut]
    mentees: list[MenteeProgressOut]


# ----------------------------------------------------------------------------------------
# Figures


class FiguresQuery(Schema):
    start: dt.date
    end: dt.date = Field(description="The last day (included).")

    _iso = field_validator("start", "end", mode="before")(iso_text)
    _days = field_validator("start", "end")(plausible_day)


class FiguresOut(Schema):
    month: str = Field(description="YYYY-MM")
    institution: str = Field(description="Institution code.")
    techniques_introduced: int
    techniques_independent: int
    ops_34_total: int
    ops_34_local: int
    teaching_hours_delivered: float
    teaching_hours_received: float
    milestones_reached: int
