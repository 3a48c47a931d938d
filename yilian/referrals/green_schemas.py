"""Request and response bodies of the green-channel API (绿色通道).

A case comes in one shape for boards and answers (``GreenCaseOut``: a patient summary of sex,
age, scores and findings, never who the patient is) and one for the case detail
(``GreenCaseDetailOut``: the patient as the referral detail shows it, handed out only after the
audited read in ``referrals.selectors.patient_identity``). Times are timezone-aware ISO 8601; a
time sent without a zone is China time.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from django.utils.translation import gettext as _
from ninja import Field, Schema
from pydantic import field_validator, model_validator

from yilian.core.schemas import In, iso_text
from yilian.patients.models import Sex
from yilian.referrals.models import OfferOutcome, Status
from yilian.referrals.protocols import ProtocolDefinition
from yilian.referrals.schemas import PatientOut, aware_moment

GreenAction = Literal["accept", "decline", "forward", "cancel"]
ReportBy = Literal["sender", "receiver"]
MONTH_PATTERN = r"^(19|20)\d{2}-(0[1-9]|1[0-2])$"


# ----------------------------------------------------------------------------------------
# Requests


class GreenPatientIn(In):
    """What is known of the patient now; an unidentified patient is sex and approximate age only."""

    name: str = Field("", max_length=60, description="Empty for an unidentified patient.")
    sex: Sex = Sex.UNKNOWN
    approximate_age: int | None = Field(None, ge=0, le=120)
    id_number: str = Field(
        "", max_length=24, description="Resident ID number; a known one finds the existing patient record."
    )


class DestinationsIn(In):
    sender: str | None = Field(
        None,
        max_length=32,
        description="Code of the sending institution; defaults to yours when you refer for one only.",
    )
    protocol: str = Field(..., min_length=1, max_length=30, description="Protocol code: stroke, stemi, trauma, ...")
    consortium: str | None = Field(
        None,
        max_length=40,
        description="Code; needed only when several of the sender's consortia have a protocol with this code.",
    )
    onset_at: dt.datetime | None = Field(None, description="Onset or last known well.")
    onset_unknown: bool = False
    findings: list[str] = Field(default_factory=list, max_length=20, description="Imaging finding codes, e.g. lvo.")

    _iso = field_validator("onset_at", mode="before")(iso_text)
    _moments = field_validator("onset_at")(aware_moment)


class ActivateIn(DestinationsIn):
    patient: GreenPatientIn | None = None
    patient_id: uuid.UUID | None = Field(None, description="A patient already visible to you, instead of `patient`.")
    scores: dict[str, int | None] = Field(
        default_factory=dict, max_length=10, description='The protocol\'s scores, e.g. {"nihss": 14}.'
    )
    imaging_done: bool = False
    imaging_result: str = Field("", max_length=300)
    note: str = Field("", max_length=2000)
    destination: str | None = Field(
        None, max_length=32, description="Code of a ranked destination; null: the first ranked."
    )
    door_in_at: dt.datetime | None = Field(None, description="Arrival at the sending hospital, when known.")

    _iso_door = field_validator("door_in_at", mode="before")(iso_text)
    _moment_door = field_validator("door_in_at")(aware_moment)

    @model_validator(mode="after")
    def _one_patient(self) -> ActivateIn:
        if (self.patient is None) == (self.patient_id is None):
            raise ValueError(_("Give either the patient or the id of a patient you can see, not both."))
        return self


class ReasonIn(In):
    reason: str = Field("", max_length=500, description="Required to decline or cancel.")


class GreenForwardIn(In):
    to_institution: str = Field(..., min_length=1, max_length=32, description="Code of a member institution.")
    reason: str = Field("", max_length=500, description="Required.")


class NodeIn(In):
    node: str = Field(..., min_length=1, max_length=30, description="A time node code of the case's protocol.")
    at: dt.datetime | None = Field(None, description="When it happened; now when left out.")
    correction_reason: str = Field("", max_length=300, description="Required to correct a node already recorded.")

    _iso = field_validator("at", mode="before")(iso_text)
    _moments = field_validator("at")(aware_moment)


class ProtocolReviseIn(In):
    definition: dict[str, Any] = Field(..., description="The whole definition (see the protocol's current one).")
    note: str = Field("", max_length=300, description="What changed; required.")
    name_zh: str | None = Field(None, max_length=60)
    name_en: str | None = Field(None, max_length=80)
    is_active: bool | None = None


class SettingsIn(In):
    road_factor: float = Field(..., ge=1, le=3, allow_inf_nan=False, description="Road distance / straight line.")
    average_speed_kmh: int = Field(..., ge=10, le=150)
    offer_timeout_minutes: int = Field(..., ge=1, le=60, description="How long a destination has to answer.")


class ReportQuery(Schema):
    from_month: str | None = Field(
        None, alias="from", pattern=MONTH_PATTERN, description="YYYY-MM; default 11 months before `to`."
    )
    to_month: str | None = Field(None, alias="to", pattern=MONTH_PATTERN, description="YYYY-MM; default this month.")
    institution: str = Field("", max_length=32, description="Code; default every institution you see figures of.")
    protocol: str = Field("", max_length=30, description="Protocol code.")
    by: ReportBy = Field("sender", description="sender: the sending hospital's cases; receiver: those it accepted.")


# ----------------------------------------------------------------------------------------
# Responses


class NamedRef(Schema):
    code: str
    name: str


class ProtocolRef(Schema):
    code: str
    name_zh: str
    name_en: str
    version: int


class WindowOut(Schema):
    code: str
    name: str
    capability: str
    closes_at: dt.datetime | None = Field(description="Null when onset is unknown.")
    extended_closes_at: dt.datetime | None = Field(description="The longer window with imaging selection, if any.")
    minutes_left: int | None = Field(description="Negative once closed; null when onset is unknown.")
    extended_minutes_left: int | None
    applies: bool = Field(description="False when the window needs an imaging finding the case does not have.")


class ReachOut(Schema):
    code: str
    name: str
    reachable: bool = Field(description="Arrival before the window closes.")
    must_leave_by: dt.datetime | None


class DestinationOut(Schema):
    institution: NamedRef
    rank: int
    eta_minutes: int | None
    basis: str = Field(description="matrix (imported travel time), distance (great circle x road factor) or empty.")
    distance_km: float | None
    arrival_at: dt.datetime | None
    inside_window: bool
    best_window: str = Field(description="Code of the most preferred window reached in time; empty: none.")
    must_leave_by: dt.datetime | None
    reach: list[ReachOut]


class DestinationsOut(Schema):
    at: dt.datetime
    consortium: NamedRef
    sender: NamedRef
    protocol: ProtocolRef
    windows: list[WindowOut]
    destinations: list[DestinationOut]


class OfferOut(Schema):
    institution: NamedRef
    rank: int
    eta_minutes: int | None
    eta_basis: str
    offered_at: dt.datetime
    answer_due_at: dt.datetime
    outcome: OfferOutcome
    answered_at: dt.datetime | None
    reason: str


class NodeOut(Schema):
    node: str
    name: str
    side: str = Field(description="Who records it: sender, receiver or either.")
    at: dt.datetime
    recorded_at: dt.datetime
    recorded_by: str
    institution: str | None
    note: str = Field(description="The reason, for a correction.")


class NodeHistoryOut(NodeOut):
    superseded_at: dt.datetime | None = Field(description="When a correction replaced it; null: current.")


class MetricOut(Schema):
    code: str
    name: str
    minutes: float | None
    target_minutes: int | None
    missed: bool | None = Field(description="Null without a target or a value.")


class GreenCaseOut(Schema):
    """A case as boards and answers show it: no patient identity."""

    id: uuid.UUID = Field(description="The referral's id.")
    number: str
    status: Status
    protocol: ProtocolRef
    consortium: NamedRef
    sender: NamedRef
    destination: NamedRef | None = Field(description="Null while the consortium office routes the case.")
    direction: str = Field(description="in or out for the caller's hospital; empty for the office.")
    activated_at: dt.datetime
    onset_at: dt.datetime | None
    onset_unknown: bool
    eta_minutes: int | None
    expected_arrival_at: dt.datetime | None = Field(description="Door-out plus travel, until arrival is recorded.")
    patient_summary: str
    scores: dict[str, int]
    findings: list[str]
    imaging_done: bool
    imaging_result: str
    note: str
    windows: list[WindowOut]
    offers: list[OfferOut]
    nodes: list[NodeOut] = Field(description="Current value of each node recorded, in the protocol's order.")
    node_history: list[NodeHistoryOut] = Field(description="Every value recorded, corrections included.")
    metrics: list[MetricOut]
    allowed_actions: list[GreenAction]
    recordable_nodes: list[str] = Field(description="Nodes the caller may record or correct now.")


class GreenCaseDetailOut(GreenCaseOut):
    """The case with its patient unmasked (the read is audited)."""

    patient: PatientOut


class GreenDeclineOut(Schema):
    """After a decline the case is no longer the decliner's to see: where it went."""

    id: uuid.UUID
    number: str
    status: Status
    destination: NamedRef | None = Field(description="The next destination offered; null: the consortium office.")


class BoardOut(Schema):
    key: str
    kind: Literal["institution", "consortium"]
    code: str
    name: str


class BoardCasesOut(Schema):
    board: BoardOut
    at: dt.datetime
    cases: list[GreenCaseOut]


class ProtocolVersionOut(Schema):
    version: int
    note: str
    created_at: dt.datetime
    created_by: str | None
    definition: ProtocolDefinition


class ProtocolOut(Schema):
    id: uuid.UUID
    consortium: NamedRef
    code: str
    name_zh: str
    name_en: str
    is_active: bool
    position: int
    version: int
    note: str
    changed_at: dt.datetime
    definition: ProtocolDefinition


class ProtocolDetailOut(ProtocolOut):
    versions: list[ProtocolVersionOut] = Field(description="Newest first.")


class ReportMetricOut(Schema):
    code: str
    name: str
    target_minutes: int | None
    n: int
    median: float | None
    p90: float | None
    met: int
    compliance: float | None = Field(description="Share of cases within target; null without target or values.")


class ReportRowOut(Schema):
    institution: NamedRef
    protocol: NamedRef
    month: str | None = Field(description="YYYY-MM; null in the period's totals.")
    cases: int
    accepted_first: int = Field(description="Cases accepted by the first destination offered.")
    metrics: list[ReportMetricOut]


class ReportOut(Schema):
    from_month: str
    to_month: str
    by: ReportBy
    rows: list[ReportRowOut]
    totals: list[ReportRowOut]


class SettingsOut(Schema):
    consortium: NamedRef
    road_factor: float
    average_speed_kmh: int
    offer_timeout_minutes: int
    travel_times: int = Field(description="Travel-time pairs imported.")


class TravelImportOut(Schema):
    rows: int
    created: int
    updated: int
