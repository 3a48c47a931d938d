"""Satisfaction surveys in the API: issue a survey link for an encounter, list the questionnaires
and their versions, and (consortium office) publish a new version.

The consortium in a questionnaire's path is its code, or ``default`` for the built-in ones.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status
from pydantic import field_validator

from yilian.core.schemas import In as _In
from yilian.core.schemas import iso_text, plausible_day
from yilian.dispatch.selectors import programmes_hosted_at
from yilian.registry.api import ERRORS
from yilian.registry.models import Consortium, Department, Institution, User
from yilian.registry.selectors import consortium_queryset_visible_to, user_scope
from yilian.surveys import selectors, services
from yilian.surveys.models import Questionnaire, QuestionnaireVersion, SurveyKind

router = Router(tags=["surveys"])


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


class TokenIn(_In):
    institution: str = Field(..., min_length=1, max_length=40, description="The institution's code.")
    kind: Literal["outpatient", "inpatient"]
    department: uuid.UUID | None = None
    channel: Literal["qr", "sms", "link"] = "link"


class TokenOut(Schema):
    url: str = Field(..., description="The one-time answer link. Shown once: only its hash is stored.")
    expires_at: dt.datetime
    kind: str
    institution: str
    questionnaire_version: int


class VersionOut(Schema):
    number: int
    published_at: dt.datetime
    items: list[dict[str, Any]]


class QuestionnaireOut(Schema):
    consortium: str = Field(..., description="The consortium's code, or 'default' for a built-in questionnaire.")
    kind: str
    name_zh: str
    name_en: str
    is_active: bool
    valid_days: int | None
    current_version: int | None
    versions: list[VersionOut]


class PublishIn(_In):
    items: list[dict[str, Any]] = Field(..., max_length=100)
    name_zh: str = Field("", max_length=120)
    name_en: str = Field("", max_length=160)
    valid_days: int | None = Field(None, ge=1, le=365)


def _questionnaire_out(questionnaire: Questionnaire) -> QuestionnaireOut:
    versions = sorted(questionnaire.versions.all(), key=lambda v: -v.number)
    return QuestionnaireOut(
        consortium=questionnaire.consortium.code if questionnaire.consortium else "default",
        kind=questionnaire.kind,
        name_zh=questionnaire.name_zh,
        name_en=questionnaire.name_en,
        is_active=questionnaire.is_active,
        valid_days=questionnaire.valid_days,
        current_version=versions[0].number if versions else None,
        versions=[VersionOut(number=v.number, published_at=v.published_at, items=v.items) for v in versions],
    )


@router.post("/surveys/tokens", response={201: TokenOut, **ERRORS}, summary="Issue a one-time survey link")
def token_create(request: HttpRequest, body: TokenIn) -> Status[TokenOut]:
    user = _user(request)
    institution = Institution.objects.filter(code=body.institution).first()
    if institution is None or not services.can_issue_at(user, institution):
        # The same answer for an unknown institution and one the caller does not work at.
        raise PermissionDenied(_("You may hand out survey links only at your own institution."))
    department = None
    if body.department is not None:
        department = Department.objects.filter(public_id=body.department, institution=institution).first()
        if department is None:
            raise ValidationError({"department": [_("The department is not part of this institution.")]})
    issued = services.token_issue(
        actor=user, institution=institution, kind=body.kind, department=department, channel=body.channel
    )
    token = issued.token
    return Status(
        201,
        TokenOut(
            url=issued.url,
            expires_at=token.expires_at,
            kind=token.kind,
            institution=institution.code,
            questionnaire_version=token.version.number,
        ),
    )


@router.get("/surveys/questionnaires", response={200: list[QuestionnaireOut], **ERRORS})
def questionnaire_list(request: HttpRequest) -> list[QuestionnaireOut]:
    """The built-in questionnaires and those of the consortia the caller sees, each with its versions."""
    user = _user(request)
    if not user_scope(user).permissions:
        raise PermissionDenied(_("You may not do this."))
    consortia = consortium_queryset_visible_to(user).values("pk")
    rows = (
        Questionnaire.objects.filter(Q(consortium__isnull=True) | Q(consortium__in=consortia))
        .select_related("consortium")
        .prefetch_related("versions")
        .order_by("consortium__code", "kind")
    )
    return [_questionnaire_out(q) for q in rows]


def _target(consortium: str, kind: str) -> Consortium | None:
    if kind not in SurveyKind.values:
        raise Http404(_("No such questionnaire."))
    if consortium == "default":
        return None
    target = Consortium.objects.filter(code=consortium).first()
    if target is None:
        raise Http404(_("No such consortium."))
    return target


@router.post(
    "/surveys/questionnaires/{consortium}/{kind}/versions",
    response={201: VersionOut, **ERRORS},
    summary="Publish a new version of a consortium's questionnaire (consortium office)",
)
def version_publish(request: HttpRequest, consortium: str, kind: str, body: PublishIn) -> Status[VersionOut]:
    user = _user(request)
    target = _target(consortium, kind)
    version: QuestionnaireVersion = services.questionnaire_publish(
        actor=user,
        consortium=target,
        kind=kind,
        items=body.items,
        name_zh=body.name_zh,
        name_en=body.name_en,
        valid_days=body.valid_days,
    )
    return Status(201, VersionOut(number=version.number, published_at=version.published_at, items=version.items))


# ----------------------------------------------------------------------------------------
# Results (figures only: comment text is never in the API)


class ResultsQuery(Schema):
    institution: str = Field(..., min_length=1, max_length=40, description="The institution's code.")
    department: uuid.UUID | None = None
    kind: SurveyKind | None = None
    start: dt.date | None = Field(None, description="First day of the period (on the response's day).")
    end: dt.date | None = Field(None, description="Day after the period.")
    pivot: dt.date | None = Field(None, description="Compare before and from this day on.")
    programme: str | None = Field(
        None, max_length=40, description="Compare before and after this stationing programme (its code) started here."
    )

    _iso = field_validator("start", "end", "pivot", mode="before")(iso_text)
    _dates = field_validator("start", "end", "pivot")(plausible_day)


class ShareOut(Schema):
    satisfied: int = Field(..., description="Ratings of 4 or 5.")
    ratings: int
    percent: float | None


class DimensionOut(ShareOut):
    dimension: str


class MonthOut(Schema):
    month: dt.date
    responses: int
    overall: ShareOut


class BeforeAfterRowOut(Schema):
    dimension: str
    before: ShareOut
    after: ShareOut


class BeforeAfterOut(Schema):
    pivot: dt.date
    programme: str | None = Field(None, description="The programme whose start is the pivot.")
    responses_before: int
    responses_after: int
    dimensions: list[BeforeAfterRowOut]


class ResultsOut(Schema):
    institution: str
    department: uuid.UUID | None
    kind: str | None
    start: dt.date | None
    end: dt.date | None
    responses: int
    links_issued: int = Field(..., description="Encounter links (QR code, text message, link); posters not counted.")
    links_answered: int
    response_rate: float | None = Field(..., description="Percent of the encounter links answered.")
    overall: ShareOut
    dimensions: list[DimensionOut]
    months: list[MonthOut]
    comments: int = Field(..., description="How many free-text comments; their text is for the quality staff's page.")
    before_after: BeforeAfterOut | None


def _share(share: selectors.Share) -> ShareOut:
    return ShareOut(satisfied=share.part, ratings=share.whole, percent=share.percent)


@router.get("/surveys/results", response={200: ResultsOut, **ERRORS}, summary="Satisfaction figures of one institution")
def results(request: HttpRequest, query: Query[ResultsQuery]) -> ResultsOut:
    """Responses, response rate, percent satisfied per dimension and per month, and optionally
    before and after a day; scoped like the dashboard (403 outside the caller's institutions)."""
    user = _user(request)
    institution = selectors.access_results_institution(user, query.institution)
    department = None
    if query.department is not None:
        department = Department.objects.filter(public_id=query.department, institution=institution).first()
        if department is None:
            raise ValidationError({"department": [_("The department is not part of this institution.")]})
    if query.start and query.end and query.end <= query.start:
        raise ValidationError({"end": [_("The end of the period comes before its start.")]})
    pivot = query.pivot
    programme = None
    if query.programme:
        if pivot is not None:
            raise ValidationError({"pivot": [_("Compare around a programme or around a day, not both.")]})
        programme = next((p for p in programmes_hosted_at(institution) if p.code == query.programme), None)
        if programme is None:
            raise ValidationError({"programme": [_("This institution hosts no programme with this code.")]})
        pivot = programme.starts_on
    if pivot is not None and ((query.start and pivot <= query.start) or (query.end and pivot >= query.end)):
        raise ValidationError({"pivot": [_("Choose a day inside the period, after its first day.")]})
    filters = selectors.ResultFilters(
        institution=institution, department=department, kind=query.kind or "", start=query.start, end=query.end
    )
    figures = selectors.survey_results(user, filters)
    before_after = None
    if pivot is not None:
        split = selectors.survey_before_after(user, filters, pivot=pivot)
        before_after = BeforeAfterOut(
            pivot=split.pivot,
            programme=programme.code if programme else None,
            responses_before=split.responses_before,
            responses_after=split.responses_after,
            dimensions=[BeforeAfterRowOut(dimension=d, before=_share(b), after=_share(a)) for d, b, a in split.rows],
        )
    return ResultsOut(
        institution=institution.code,
        department=department.public_id if department else None,
        kind=query.kind or None,
        start=query.start,
        end=query.end,
        responses=figures.responses,
        links_issued=figures.links.whole,
        links_answered=figures.links.part,
        response_rate=figures.links.percent,
        overall=_share(figures.overall),
        dimensions=[DimensionOut(dimension=d, **_share(s).dict()) for d, s in figures.dimensions.items()],
        months=[MonthOut(month=m.month, responses=m.responses, overall=_share(m.overall)) for m in figures.months],
        comments=figures.comments,
        before_after=before_after,
    )
