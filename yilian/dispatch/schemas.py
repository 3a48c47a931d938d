"""Request and response bodies of the stationing API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from ninja import Field, Schema
from pydantic import field_validator

from yilian.core.schemas import In, iso_text, plausible_day
from yilian.dispatch.models import Commitment, HostRole, ObjectiveKind, OperationRole, ProgrammeStatus

# ----------------------------------------------------------------------------------------
# Programmes


class InstitutionRef(Schema):
    code: str
    name: str


class DepartmentRef(Schema):
    id: uuid.UUID
    name: str
    institution: str


class ObjectiveOut(Schema):
    id: uuid.UUID
    kind: ObjectiveKind
    name_zh: str
    name_en: str
    target: str


class ProgrammeOut(Schema):
    code: str
    title_zh: str
    title_en: str
    consortium: str
    agreement: str | None
    sending_institution: InstitutionRef
    host_institution: InstitutionRef
    batch: int
    starts_on: dt.date
    ends_on: dt.date | None
    status: ProgrammeStatus
    require_location: bool
    people: int = Field(description="Experts assigned and not withdrawn.")


class DaysOut(Schema):
    committed: float = Field(description="The commitment spread over the days the experts could be on site.")
    planned: int
    delivered: int
    absent: int
    unplanned: int = Field(description="Delivered days that were not planned on site.")


class WorkDoneOut(Schema):
    days_logged: int
    outpatient_sessions: int
    patients_seen: int
    ward_rounds: int
    teaching_sessions: int
    consultations: int
    management_meetings: int
    operations: int
    operations_level_34: int
    operations_by_role: dict[str, int]


class ProgrammeDetailOut(ProgrammeOut):
    note: str
    objectives: list[ObjectiveOut]
    days_last_12_months: DaysOut
    work_last_12_months: WorkDoneOut


class ProgrammeIn(In):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")
    consortium: str = Field(min_length=1, max_length=40)
    sending_institution: str = Field(min_length=1, max_length=40)
    host_institution: str = Field(min_length=1, max_length=40)
    agreement: str | None = Field(None, max_length=40)
    title_zh: str = Field(min_length=1, max_length=120)
    title_en: str = Field("", max_length=160)
    batch: int = Field(1, ge=1, le=99)
    starts_on: dt.date
    ends_on: dt.date | None = None
    status: Literal["planned", "active"] = "active"
    require_location: bool = False
    note: str = Field("", max_length=2000)

    _iso = field_validator("starts_on", "ends_on", mode="before")(iso_text)
    _days = field_validator("starts_on", "ends_on")(plausible_day)


class ProgrammePatch(In):
    title_zh: str | None = Field(None, min_length=1, max_length=120)
    title_en: str | None = Field(None, max_length=160)
    batch: int | None = Field(None, ge=1, le=99)
    starts_on: dt.date | None = None
    ends_on: dt.date | None = None
    status: ProgrammeStatus | None = None
    require_location: bool | None = None
    note: str | None = Field(None, max_length=2000)

    _iso = field_validator("starts_on", "ends_on", mode="before")(iso_text)
    _days = field_validator("starts_on", "ends_on")(plausible_day)


class ObjectiveIn(In):
    kind: ObjectiveKind
    name_zh: str = Field(min_length=1, max_length=120)
    name_en: str = Field("", max_length=160)
    target: str = Field("", max_length=200)


class DemandIn(In):
    days_per_week: int = Field(ge=0, le=70, description="Expert-days per week the department needs at least.")
    need_weekdays: str = Field(
        "", pattern=r"^[1-7]{0,7}$", description="ISO weekdays that need an expert on site, e.g. '4' (Thursday)."
    )
    need_label_zh: str = Field("", max_length=40)
    need_label_en: str = Field("", max_length=60)


class DemandOut(Schema):
    department: DepartmentRef
    days_per_week: int
    need_weekdays: str
    need_label_zh: str
    need_label_en: str


# ----------------------------------------------------------------------------------------
# Assignments


class PractitionerRef(Schema):
    id: uuid.UUID
    name_zh: str
    name_en: str
    title: str


class AssignmentOut(Schema):
    id: uuid.UUID
    programme: str
    practitioner: PractitionerRef
    home_department: DepartmentRef | None
    host_department: DepartmentRef
    role: HostRole
    starts_on: dt.date
    ends_on: dt.date | None
    commitment: Commitment
    days_per_week: int | None
    blocked_weekdays: str = Field(description="ISO weekdays of home duties, e.g. '2' for Tuesday.")
    blocked_note: str
    withdrawn_on: dt.date | None
    withdrawn_reason: str


class AssignmentIn(In):
    practitioner: uuid.UUID
    host_department: uuid.UUID
    home_department: uuid.UUID | None = None
    role: HostRole
    starts_on: dt.date
    ends_on: dt.date | None = None
    commitment: Commitment = Commitment.DAYS_PER_WEEK
    days_per_week: int | None = Field(None, ge=1, le=5)
    blocked_weekdays: str = Field("", pattern=r"^[1-7]{0,7}$")
    blocked_note: str = Field("", max_length=120)

    _iso = field_validator("starts_on", "ends_on", mode="before")(iso_text)
    _days = field_validator("starts_on", "ends_on")(plausible_day)


class AssignmentPatch(In):
    role: HostRole | None = None
    starts_on: dt.date | None = None
    ends_on: dt.date | None = None
    commitment: Commitment | None = None
    days_per_week: int | None = Field(None, ge=1, le=5)
    blocked_weekdays: str | None = Field(None, pattern=r"^[1-7]{0,7}$")
    blocked_note: str | None = Field(None, max_length=120)

    _iso = field_validator("starts_on", "ends_on", mode="before")(iso_text)
    _days = field_validator("starts_on", "ends_on")(plausible_day)


class WithdrawIn(In):
    on: dt.date
    reason: str = Field(min_length=1, max_length=200)

    _iso = field_validator("on", mode="before")(iso_text)
    _days = field_validator("on")(plausible_day)


class LeaveIn(In):
    starts_on: dt.date
    ends_on: dt.date
    reason: str = Field("", max_length=120)

    _iso = field_validator("starts_on", "ends_on", mode="before")(iso_text)
    _days = field_validator("starts_on", "ends_on")(plausible_day)


class LeaveOut(Schema):
    id: uuid.UUID
    starts_on: dt.date
    ends_on: dt.date
    reason: str


# ----------------------------------------------------------------------------------------
# Rosters


class RosterQuery(Schema):
    start: dt.date = Field(description="First day (inclusive).")
    end: dt.date = Field(description="Last day (inclusive); at most 93 days after the start.")
    department: uuid.UUID | None = Field(None, description="Only this host department.")

    _iso = field_validator("start", "end", mode="before")(iso_text)
    _days = field_validator("start", "end")(plausible_day)


class RosterDayOut(Schema):
    date: dt.date
    kind: Literal["on_site", "travel", "off"] | None = Field(
        description="None: not planned, yet attendance was recorded (an unplanned check-in, a day the host confirmed)."
    )
    fixed: bool
    attendance: Literal["checked_in", "confirmed", "absent"] | None


class RosterRowOut(Schema):
    assignment: uuid.UUID
    practitioner: str
    host_department: DepartmentRef
    days: list[RosterDayOut]


class CalendarDayOut(Schema):
    date: dt.date
    is_workday: bool
    name: str
    source: Literal["override", "statutory", "weekdays"]


class CalendarDayIn(In):
    is_workday: bool = Field(description="false: a public holiday; true: an adjusted working day.")
    name_zh: str = Field("", max_length=40)
    name_en: str = Field("", max_length=60)


class RosterOut(Schema):
    start: dt.date
    end: dt.date
    calendar: list[CalendarDayOut]
    unknown_years: list[int] = Field(description="Years in the range whose holiday schedule is not loaded.")
    rows: list[RosterRowOut]


class OptimiseIn(In):
    start: dt.date = Field(description="A Monday.")
    weeks: int = Field(4, ge=1, le=12)

    _iso = field_validator("start", mode="before")(iso_text)
    _days = field_validator("start")(plausible_day)


class ShortfallOut(Schema):
    kind: Literal["week", "day", "commitment"]
    department: str
    label: str
    week: dt.date
    dates: list[dt.date]
    missing: int
    text: str = Field(description="The shortfall in plain words, in the request's language.")
    reasons: list[str] = Field(description="Why, in plain words.")


class RosterRunOut(Schema):
    id: uuid.UUID
    created_at: dt.datetime
    start: dt.date
    weeks: int
    status: str = Field(description="CP-SAT's status: optimal, feasible.")
    objective: float
    bound: float = Field(description="The solver's best bound on the objective.")
    gap: float = Field(description="Relative gap between objective and bound (0 = proven optimal).")
    wall_time: float
    demand_missing: int = Field(description="Expert-days short against the host departments' demand.")
    commitment_missing: int
    travel_days: int
    fairness_spread: int
    unknown_years: list[int]
    shortfalls: list[ShortfallOut]


class FixIn(In):
    kind: Literal["on_site", "off", "clear"] = Field(description="Fix on site, fix off, or let the optimiser decide.")


class FixOut(Schema):
    date: dt.date
    kind: Literal["on_site", "travel", "off"] | None
    fixed: bool


# ----------------------------------------------------------------------------------------
# Attendance and work logs


class CheckInIn(In):
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)


class AttendanceOut(Schema):
    id: uuid.UUID
    date: dt.date
    status: Literal["checked_in", "confirmed", "absent"]
    was_planned: bool
    checked_in_at: dt.datetime | None
    distance_m: int | None
    absence_reason: str


class AttendanceIn(In):
    status: Literal["confirmed", "absent"]
    reason: str = Field("", max_length=200, description="Required for an absence.")


class OperationIn(In):
    procedure: str = Field(min_length=1, max_length=120)
    procedure_code: str = Field("", max_length=20)
    level: int = Field(ge=1, le=4)
    role: OperationRole
    minimally_invasive: bool = False
    local_surgeon: uuid.UUID | None = Field(None, description="A practitioner of the host hospital.")
    local_surgeon_name: str = Field("", max_length=40, description="When the local surgeon is not registered.")


class WorkLogIn(In):
    outpatient_sessions: int = Field(0, ge=0, le=500)
    patients_seen: int = Field(0, ge=0, le=500)
    ward_rounds: int = Field(0, ge=0, le=500)
    teaching_sessions: int = Field(0, ge=0, le=500)
    consultations: int = Field(0, ge=0, le=500)
    management_meetings: int = Field(0, ge=0, le=500)
    operations: list[OperationIn] = Field(default_factory=list, max_length=30)
    note: str = Field("", max_length=2000)


class OperationOut(Schema):
    procedure: str
    procedure_code: str
    level: int
    role: OperationRole
    minimally_invasive: bool
    local_surgeon: uuid.UUID | None
    local_surgeon_name: str


class WorkLogOut(Schema):
    id: uuid.UUID
    date: dt.date
    outpatient_sessions: int
    patients_seen: int
    ward_rounds: int
    teaching_sessions: int
    consultations: int
    management_meetings: int
    operations: list[OperationOut]
    note: str


class PeriodQuery(Schema):
    start: dt.date = Field(alias="from")
    end: dt.date = Field(alias="to")

    _iso = field_validator("start", "end", mode="before")(iso_text)
    _days = field_validator("start", "end")(plausible_day)


class ReportLineOut(Schema):
    assignment: uuid.UUID
    practitioner: str
    host_department: str
    months: dict[str, DaysOut]
    total: DaysOut


class AttendanceReportOut(Schema):
    start: dt.date
    end: dt.date
    months: list[str]
    lines: list[ReportLineOut]
    total: DaysOut


class StationingFiguresOut(Schema):
    institution: InstitutionRef
    doctors_stationed: int
    days_committed: int
    days_delivered: int
    registrations: int = Field(description="Outpatients seen by stationed experts.")
    operations: int
    operations_level_34: int
