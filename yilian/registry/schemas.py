from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from django.utils.translation import gettext
from ninja import Field, Schema
from pydantic import ConfigDict, field_validator

from yilian.registry.models import (
    Agreement,
    AgreementStatus,
    CapabilityKind,
    Discipline,
    Institution,
    InstitutionGrade,
    InstitutionType,
    MemberRelation,
    Practitioner,
)


class In(Schema):
    """Request bodies: surrounding whitespace is dropped, so "  " is as empty as ""."""

    model_config = ConfigDict(str_strip_whitespace=True)


def _plausible(day: dt.date | None) -> dt.date | None:
    if day is not None and not dt.date(1900, 1, 1) <= day <= dt.date(2100, 12, 31):
        raise ValueError(gettext("Choose a date between 1900 and 2100."))
    return day


class ErrorOut(Schema):
    detail: str
    errors: dict[str, list[str]] | None = None


class RegionOut(Schema):
    code: str
    name_zh: str
    name_en: str
    level: str
    parent_code: str | None = Field(None, alias="parent.code")


class CapabilityOut(Schema):
    kind: str
    label: str = Field(alias="get_kind_display")
    all_hours: bool
    weekdays: str
    opens_at: dt.time | None
    closes_at: dt.time | None
    valid_from: dt.date
    valid_to: dt.date | None


class DepartmentOut(Schema):
    public_id: uuid.UUID
    discipline: str
    name: str


class InstitutionOut(Schema):
    code: str
    name_zh: str
    name_en: str
    short_name: str
    grade: str
    type: str
    region_code: str = Field(alias="region.code")
    address: str
    latitude: Decimal | None
    longitude: Decimal | None
    is_active: bool
    org_code: str
    uscc: str
    licence_no: str


class InstitutionDetailOut(InstitutionOut):
    departments: list[DepartmentOut]
    capabilities: list[CapabilityOut]
    consortia: list[str]

    @staticmethod
    def resolve_consortia(obj: Institution) -> list[str]:
        return [m.consortium.code for m in obj.memberships.all()]


class InstitutionIn(In):
    code: str = Field(..., min_length=2, max_length=32, pattern=r"^[a-z0-9][a-z0-9-]*$")
    name_zh: str = Field(..., min_length=2, max_length=120)
    name_en: str = Field("", max_length=160)
    short_name: str = Field("", max_length=40)
    grade: InstitutionGrade
    type: InstitutionType
    region_code: str = Field(..., pattern=r"^\d{6}$")
    address: str = Field("", max_length=200)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    org_code: str = Field("", max_length=22)
    uscc: str = Field("", max_length=18)
    licence_no: str = Field("", max_length=40)


class MemberOut(Schema):
    institution_code: str = Field(alias="institution.code")
    institution_name: str = Field(alias="institution.name")
    role: str
    relation: str
    joined_on: dt.date
    left_on: dt.date | None


class ConsortiumOut(Schema):
    code: str
    name_zh: str
    name_en: str
    type: str
    lead_institution_code: str = Field(alias="lead_institution.code")
    established_on: dt.date | None
    member_count: int


class ConsortiumDetailOut(ConsortiumOut):
    description: str
    members: list[MemberOut] = Field(alias="members_list")


class PairingOut(Schema):
    kind: str
    label: str
    lead_institution: str = Field(alias="lead_department.institution.code")
    lead_discipline: str = Field(alias="lead_department.discipline")
    member_institution: str = Field(alias="member_department.institution.code")
    member_discipline: str = Field(alias="member_department.discipline")


class AgreementOut(Schema):
    code: str
    title_zh: str
    title_en: str
    consortium_code: str | None
    parties: list[str]
    signed_on: dt.date
    valid_from: dt.date
    valid_to: dt.date | None
    status: str
    scope: str
    goals: str
    pairings: list[PairingOut]

    @staticmethod
    def resolve_consortium_code(obj: Agreement) -> str | None:
        return obj.consortium.code if obj.consortium else None

    @staticmethod
    def resolve_parties(obj: Agreement) -> list[str]:
        return sorted(p.code for p in obj.parties.all())


class PractitionerOut(Schema):
    public_id: uuid.UUID
    name_zh: str
    name_en: str
    title: str
    institution_code: str = Field(alias="institution.code")
    department: str | None
    specialties: str

    @staticmethod
    def resolve_department(obj: Practitioner) -> str | None:
        return obj.department.discipline if obj.department else None


class MeOut(Schema):
    username: str
    display_name: str
    language: str
    roles: list[str]
    permissions: list[str]


class AuditEventOut(Schema):
    id: int
    occurred_at: dt.datetime
    actor_label: str
    ip_address: str | None
    action: str
    object_type: str
    object_id: str
    object_repr: str
    changes: dict[str, object]
    row_hash: str


class DepartmentIn(In):
    discipline: Discipline
    name_zh: str = Field("", max_length=80)
    name_en: str = Field("", max_length=120)


class CapabilityIn(In):
    kind: CapabilityKind
    all_hours: bool = True
    weekdays: str = Field("1234567", pattern=r"^[1-7]{1,7}$")
    opens_at: dt.time | None = None
    closes_at: dt.time | None = None
    valid_from: dt.date
    valid_to: dt.date | None = None
    note: str = Field("", max_length=200)

    _dates = field_validator("valid_from", "valid_to")(_plausible)


class MemberIn(In):
    institution_code: str = Field(..., min_length=1, max_length=32)
    joined_on: dt.date
    relation: MemberRelation = MemberRelation.VERTICAL

    _dates = field_validator("joined_on")(_plausible)


class MemberLeaveIn(In):
    left_on: dt.date

    _dates = field_validator("left_on")(_plausible)


class InstitutionPatch(In):
    """Only the fields sent are changed."""

    name_zh: str | None = Field(None, min_length=2, max_length=120)
    name_en: str | None = Field(None, max_length=160)
    short_name: str | None = Field(None, max_length=40)
    grade: InstitutionGrade | None = None
    type: InstitutionType | None = None
    address: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=40)
    is_active: bool | None = None
    org_code: str | None = Field(None, max_length=22)
    uscc: str | None = Field(None, max_length=18)
    licence_no: str | None = Field(None, max_length=40)


class AgreementStatusIn(In):
    status: AgreementStatus
