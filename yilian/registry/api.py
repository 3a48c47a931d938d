import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, File, Query, Router, Schema, Status, UploadedFile
from ninja.pagination import LimitOffsetPagination, paginate
from pydantic import field_validator

from yilian.registry import schemas, selectors, services
from yilian.registry.models import Agreement, Consortium, Institution, Practitioner, Region, User

router = Router(tags=["registry"])


class Pagination(LimitOffsetPagination):
    """limit/offset with bounds (an unbounded offset overflows the database's integers)."""

    class Input(Schema):
        limit: int = Field(100, ge=1, le=500)
        offset: int = Field(0, ge=0, le=10_000_000)


ERRORS: dict[int, type[Schema]] = {
    400: schemas.ErrorOut,
    401: schemas.ErrorOut,
    403: schemas.ErrorOut,
    404: schemas.ErrorOut,
    409: schemas.ErrorOut,
    422: schemas.ErrorOut,
}


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


class InstitutionFilters(Schema):
    q: str = ""
    region: str = ""
    grade: str = ""
    type: str = ""


class NameFilter(Schema):
    q: str = ""


@router.get("/me", response={200: schemas.MeOut, **ERRORS})
def me(request: HttpRequest) -> dict[str, Any]:
    user = _user(request)
    scope = selectors.user_scope(user)
    return {
        "username": user.username,
        "display_name": user.display_name,
        "language": user.language,
        "roles": sorted(r.value for r in scope.roles),
        "permissions": sorted(p.value for p in scope.permissions),
    }


@router.get("/regions", response={200: list[schemas.RegionOut], **ERRORS})
def region_list(request: HttpRequest, root: str = "") -> list[Region]:
    return selectors.region_tree(root_code=root or None)


@router.get("/institutions", response={200: list[schemas.InstitutionOut], **ERRORS})
@paginate(Pagination)
def institution_list(request: HttpRequest, filters: Query[InstitutionFilters]) -> Any:
    return selectors.institution_list_visible_to(
        _user(request), search=filters.q, region_code=filters.region, grade=filters.grade, type=filters.type
    )


@router.get("/institutions/{code}", response={200: schemas.InstitutionDetailOut, **ERRORS})
def institution_detail(request: HttpRequest, code: str) -> Institution:
    return selectors.institution_detail(selectors.access_institution(_user(request), code))


@router.post("/institutions", response={201: schemas.InstitutionDetailOut, **ERRORS})
def institution_create(request: HttpRequest, payload: schemas.InstitutionIn) -> Status[Institution]:
    region = Region.objects.filter(code=payload.region_code).first()
    if region is None:
        raise ValidationError({"region_code": [_("No region with code %(code)s.") % {"code": payload.region_code}]})
    institution = services.institution_create(
        actor=_user(request),
        code=payload.code,
        name_zh=payload.name_zh,
        name_en=payload.name_en,
        short_name=payload.short_name,
        grade=payload.grade,
        type=payload.type,
        region=region,
        address=payload.address,
        latitude=_coordinate(payload.latitude),
        longitude=_coordinate(payload.longitude),
        org_code=payload.org_code,
        uscc=payload.uscc,
        licence_no=payload.licence_no,
    )
    return Status(201, selectors.institution_detail(institution))


@router.patch("/institutions/{code}", response={200: schemas.InstitutionDetailOut, **ERRORS}, tags=["registry: writes"])
def institution_update(request: HttpRequest, code: str, payload: schemas.InstitutionPatch) -> Institution:
    user = _user(request)
    institution = selectors.access_institution(user, code)
    changes = payload.dict(exclude_unset=True, exclude_none=True)
    services.institution_update(actor=user, institution=institution, changes=changes)
    return selectors.institution_detail(institution)


@router.post(
    "/institutions/{code}/departments", response={201: schemas.DepartmentOut, **ERRORS}, tags=["registry: writes"]
)
def department_create(request: HttpRequest, code: str, payload: schemas.DepartmentIn) -> Status[Any]:
    institution = selectors.access_institution(_user(request), code)
    department = services.department_create(
        actor=_user(request),
        institution=institution,
        discipline=payload.discipline,
        name_zh=payload.name_zh,
        name_en=payload.name_en,
    )
    return Status(201, department)


@router.post(
    "/institutions/{code}/capabilities", response={201: schemas.CapabilityOut, **ERRORS}, tags=["registry: writes"]
)
def capability_create(request: HttpRequest, code: str, payload: schemas.CapabilityIn) -> Status[Any]:
    institution = selectors.access_institution(_user(request), code)
    capability = services.capability_create(actor=_user(request), institution=institution, **payload.dict())
    return Status(201, capability)


@router.post("/consortia/{code}/members", response={201: schemas.MemberOut, **ERRORS}, tags=["registry: writes"])
def member_add(request: HttpRequest, code: str, payload: schemas.MemberIn) -> Status[Any]:
    user = _user(request)
    consortium = selectors.access_consortium(user, code)
    institution = Institution.objects.filter(code=payload.institution_code).first()
    if institution is None:
        raise ValidationError(
            {"institution_code": [_("No institution with code %(code)s.") % {"code": payload.institution_code}]}
        )
    member = services.consortium_member_add(
        actor=user,
        consortium=consortium,
        institution=institution,
        joined_on=payload.joined_on,
        relation=payload.relation,
    )
    return Status(201, member)


@router.post(
    "/consortia/{code}/members/{institution_code}/leave",
    response={200: schemas.MemberOut, **ERRORS},
    tags=["registry: writes"],
)
def member_leave(request: HttpRequest, code: str, institution_code: str, payload: schemas.MemberLeaveIn) -> Any:
    user = _user(request)
    consortium = selectors.access_consortium(user, code)
    member = selectors.current_member(consortium, institution_code)
    return services.consortium_member_leave(actor=user, member=member, left_on=payload.left_on)


@router.post("/agreements/{code}/status", response={200: schemas.AgreementOut, **ERRORS}, tags=["registry: writes"])
def agreement_status(request: HttpRequest, code: str, payload: schemas.AgreementStatusIn) -> Agreement:
    user = _user(request)
    agreement = services.agreement_set_status(
        actor=user, agreement=selectors.access_agreement(user, code), status=payload.status
    )
    return selectors.agreement_list_visible_to(user, code=agreement.code)[0]


@router.post("/agreements/{code}/document", response={200: schemas.AgreementOut, **ERRORS}, tags=["registry: writes"])
def agreement_document_upload(request: HttpRequest, code: str, document: File[UploadedFile]) -> Agreement:
    user = _user(request)
    agreement = services.agreement_document_attach(
        actor=user, agreement=selectors.access_agreement(user, code), document=document
    )
    return selectors.agreement_list_visible_to(user, code=agreement.code)[0]


def _coordinate(value: float | None) -> Decimal | None:
    return None if value is None else round(Decimal(str(value)), 6)


@router.get("/consortia", response={200: list[schemas.ConsortiumOut], **ERRORS})
@paginate(Pagination)
def consortium_list(request: HttpRequest, filters: Query[NameFilter]) -> Any:
    return selectors.consortium_list_visible_to(_user(request), search=filters.q)


@router.get("/consortia/{code}", response={200: schemas.ConsortiumDetailOut, **ERRORS})
def consortium_detail(request: HttpRequest, code: str) -> Consortium:
    consortium = selectors.access_consortium(_user(request), code)
    members = selectors.consortium_members(consortium)
    consortium.members_list = members  # type: ignore[attr-defined]
    consortium.member_count = len(members)  # type: ignore[attr-defined]
    return consortium


@router.get("/agreements", response={200: list[schemas.AgreementOut], **ERRORS})
@paginate(Pagination)
def agreement_list(request: HttpRequest, consortium: str = "") -> list[Agreement]:
    user = _user(request)
    scoped = selectors.access_consortium(user, consortium) if consortium else None
    return selectors.agreement_list_visible_to(user, consortium=scoped)


@router.get("/practitioners", response={200: list[schemas.PractitionerOut], **ERRORS})
@paginate(Pagination)
def practitioner_list(request: HttpRequest, q: str = "", institution: str = "") -> Any:
    user = _user(request)
    scoped = selectors.access_institution(user, institution) if institution else None
    return selectors.practitioner_list_visible_to(user, search=q, institution=scoped)


@router.get("/practitioners/{public_id}", response={200: schemas.PractitionerOut, **ERRORS})
def practitioner_detail(request: HttpRequest, public_id: uuid.UUID) -> Practitioner:
    return selectors.access_practitioner(_user(request), str(public_id))


class AuditFilters(Schema):
    user: str = ""
    object: str = ""
    action: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    @field_validator("since", "until")
    @classmethod
    def _aware_and_in_range(cls, value: dt.datetime | None) -> dt.datetime | None:
        """A time without a zone is China time; years outside 1900-9998 are refused."""
        if value is None:
            return None
        if not 1900 <= value.year <= 9998:
            raise ValueError(_("Choose a date between 1900 and 9998."))
        return value if timezone.is_aware(value) else timezone.make_aware(value)


@router.get("/audit", response={200: list[schemas.AuditEventOut], **ERRORS}, tags=["audit"])
@paginate(Pagination)
def audit_list(request: HttpRequest, filters: Query[AuditFilters]) -> Any:
    events: Any = selectors.audit_list_visible_to(
        _user(request),
        username=filters.user,
        object_query=filters.object,
        action=filters.action,
        since=filters.since,
        until=filters.until,
    )
    return events
