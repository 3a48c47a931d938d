"""Reads of satisfaction-survey results, always scoped to what the acting user may see.

Visibility (``surveys.view_results``):
- a hospital administrator and the quality staff see their own institution;
- a consortium office sees the lead and current members of its consortia;
- a health-commission viewer sees the institutions of its region;
- a system administrator sees all.
Free-text comments (``surveys.view_comments``) are read only by the quality staff, and only those of
their own institution; everyone else gets the number of comments, never their text.

Figures (docs/surveys.md, "Results"):
- satisfied = a Likert answer of 4 or 5; the percent satisfied of a dimension is satisfied Likert
  answers of that dimension over all its Likert answers (unanswered optional items do not count);
  overall satisfaction is the dimension "overall";
- the period filters on ``SurveyResponse.day`` (the local date of submission), ``start`` included and
  ``end`` excluded; links are counted by the local day they were issued;
- response rate = of the links issued in the period through an encounter channel (QR code, text
  message, link), the share answered; poster links count in neither part, a scan is not an encounter.
Every figure is aggregated in SQL: a dashboard is a fixed number of queries whatever the data size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncMonth
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from yilian.core.permissions import ROLE_PERMISSIONS, Permission, Role
from yilian.registry.models import Consortium, ConsortiumMember, Department, Institution, localized
from yilian.registry.selectors import AnyUser, Scope, user_scope
from yilian.surveys.models import ENCOUNTER_CHANNELS, Dimension, SurveyAnswer, SurveyKind, SurveyResponse, SurveyToken

SATISFIED_FROM = 4  # Likert 4 (satisfied) and 5 (very satisfied)
# Roles that see the results of the institution their membership names (the office and the
# commission see by consortium and by region instead).
_WIDE_ROLES = frozenset({Role.CONSORTIUM_OFFICE, Role.COMMISSION_VIEWER})
COMMENTS_READ_LIMIT = 2000  # the most recent comments grouped into words; the count covers them all


# ----------------------------------------------------------------------------------------
# Scope


def _results_q(scope: Scope) -> Q | None:
    """A filter on Institution; None means no restriction (system administrator)."""
    if scope.is_global:
        return None
    q = Q(pk__in=[])
    own = frozenset(
        i
        for role, i in scope.roles_at
        if role not in _WIDE_ROLES and Permission.VIEW_SURVEY_RESULTS in ROLE_PERMISSIONS[role]
    )
    if own:
        q |= Q(pk__in=own)
    if Role.CONSORTIUM_OFFICE in scope.roles and scope.consortium_ids:
        today = timezone.localdate()
        current = ConsortiumMember.objects.filter(consortium_id__in=scope.consortium_ids).filter(
            Q(left_on__isnull=True) | Q(left_on__gte=today)
        )
        q |= Q(pk__in=current.values("institution_id"))
        q |= Q(pk__in=Consortium.objects.filter(pk__in=scope.consortium_ids).values("lead_institution_id"))
    if Role.COMMISSION_VIEWER in scope.roles:
        for prefix in scope.region_prefixes:
            q |= Q(region__code__startswith=prefix)
    return q


def results_institutions_visible_to(user: AnyUser) -> QuerySet[Institution]:
    """Institutions whose survey results the user may see (none without the permission)."""
    scope = user_scope(user)
    if Permission.VIEW_SURVEY_RESULTS not in scope.permissions:
        return Institution.objects.none()
    q = _results_q(scope)
    return Institution.objects.all() if q is None else Institution.objects.filter(q)


def comment_institution_ids(user: AnyUser) -> frozenset[int]:
    """Institutions whose comments the user may read: their own, as quality staff. Only that role
    counts (a system administrator holds every permission, but is not the hospital's quality office)."""
    return frozenset(
        i
        for role, i in user_scope(user).roles_at
        if role == Role.QUALITY_STAFF and Permission.VIEW_SURVEY_COMMENTS in ROLE_PERMISSIONS[role]
    )


def can_read_comments(user: AnyUser, institution: Institution) -> bool:
    return institution.pk in comment_institution_ids(user)


def access_results_institution(user: AnyUser, code: str) -> Institution:
    """The institution whose results the user asks for: 403 without the permission or out of scope, 404 when unknown."""
    if Permission.VIEW_SURVEY_RESULTS not in user_scope(user).permissions:
        raise PermissionDenied(_("You may not see satisfaction results."))
    institution = Institution.objects.filter(code=code).first()
    if institution is None:
        raise Http404(_("No such institution."))
    if not results_institutions_visible_to(user).filter(pk=institution.pk).exists():
        raise PermissionDenied(_("You may not see the satisfaction results of this institution."))
    return institution


# ----------------------------------------------------------------------------------------
# Figures


@dataclass(frozen=True)
class Share:
    """``part`` of ``whole``: satisfied of the Likert answers, or answered of the links issued."""

    part: int = 0
    whole: int = 0

    @property
    def percent(self) -> float | None:
        return round(self.part * 100 / self.whole, 1) if self.whole else None

    def __add__(self, other: Share) -> Share:
        return Share(self.part + other.part, self.whole + other.whole)


@dataclass(frozen=True)
class ResultFilters:
    """One institution's results, optionally narrowed to a department, a kind and a period [start, end)."""

    institution: Institution
    department: Department | None = None
    kind: str = ""
    start: dt.date | None = None
    end: dt.date | None = None


@dataclass
class MonthFigures:
    month: dt.date  # the first day of the month
    responses: int = 0
    dimensions: dict[str, Share] = field(default_factory=dict)

    @property
    def overall(self) -> Share:
        return self.dimensions.get(Dimension.OVERALL, Share())


@dataclass
class Results:
    filters: ResultFilters
    responses: int
    links: Share  # encounter links answered / issued in the period
    dimensions: dict[str, Share]  # in the order of ``Dimension``, only those with Likert answers
    months: list[MonthFigures]  # in time order, only months with responses
    comments: int  # non-empty free-text answers

    @property
    def overall(self) -> Share:
        return self.dimensions.get(Dimension.OVERALL, Share())


def _start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _response_q(filters: ResultFilters, prefix: str = "") -> Q:
    """The filter on SurveyResponse (or, with ``prefix="response__"``, on its answers)."""
    q = Q(**{f"{prefix}institution_id": filters.institution.pk})
    if filters.department is not None:
        q &= Q(**{f"{prefix}department_id": filters.department.pk})
    if filters.kind:
        q &= Q(**{f"{prefix}kind": filters.kind})
    if filters.start is not None:
        q &= Q(**{f"{prefix}day__gte": filters.start})
    if filters.end is not None:
        q &= Q(**{f"{prefix}day__lt": filters.end})
    return q


def _links(filters: ResultFilters) -> Share:
    qs = SurveyToken.objects.filter(institution_id=filters.institution.pk, channel__in=ENCOUNTER_CHANNELS)
    if filters.department is not None:
        qs = qs.filter(department_id=filters.department.pk)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.start is not None:
        qs = qs.filter(issued_at__gte=_start_of(filters.start))
    if filters.end is not None:
        qs = qs.filter(issued_at__lt=_start_of(filters.end))
    row = qs.aggregate(issued=Count("pk"), answered=Count("pk", filter=Q(used_at__isnull=False)))
    return Share(part=int(row["answered"] or 0), whole=int(row["issued"] or 0))


_LIKERT = Q(likert__isnull=False)
_SATISFIED = Q(likert__gte=SATISFIED_FROM)
_COMMENT = Q(dimension=Dimension.COMMENT) & ~Q(text="")


def _dimension_order(shares: dict[str, Share]) -> dict[str, Share]:
    return {d.value: shares[d.value] for d in Dimension if d.value in shares}


def survey_results(user: AnyUser, filters: ResultFilters) -> Results:
    """Responses, response rate, percent satisfied per dimension and per month: three queries.

    The caller has fetched the institution through ``access_results_institution``; it is checked again
    here so that no path reads an institution out of scope.
    """
    _check(user, filters.institution)
    links = _links(filters)
    per_month = (
        SurveyResponse.objects.filter(_response_q(filters))
        .annotate(month=TruncMonth("day"))
        .order_by()
        .values("month")
        .annotate(n=Count("*"))
    )
    months: dict[dt.date, MonthFigures] = {}
    for row in per_month:
        month = _as_date(row["month"])
        months[month] = MonthFigures(month=month, responses=int(row["n"]))
    answers = (
        SurveyAnswer.objects.filter(_response_q(filters, "response__"))
        .filter(_LIKERT | _COMMENT)
        .annotate(month=TruncMonth("response__day"))
        .order_by()
        .values("month", "dimension")
        .annotate(
            n=Count("pk", filter=_LIKERT), satisfied=Count("pk", filter=_SATISFIED), texts=Count("pk", filter=_COMMENT)
        )
    )
    totals: dict[str, Share] = {}
    comments = 0
    for row in answers:
        comments += int(row["texts"])
        if not row["n"]:
            continue
        share = Share(part=int(row["satisfied"]), whole=int(row["n"]))
        dimension = str(row["dimension"])
        totals[dimension] = totals.get(dimension, Share()) + share
        month = _as_date(row["month"])
        figures = months.setdefault(month, MonthFigures(month=month))
        figures.dimensions[dimension] = figures.dimensions.get(dimension, Share()) + share
    for figures in months.values():
        figures.dimensions = _dimension_order(figures.dimensions)
    return Results(
        filters=filters,
        responses=sum(m.responses for m in months.values()),
        links=links,
        dimensions=_dimension_order(totals),
        months=[months[m] for m in sorted(months)],
        comments=comments,
    )


def _as_date(value: dt.date | dt.datetime) -> dt.date:
    # TruncMonth of a DateField is a date; some back ends hand back a datetime.
    return value.date() if isinstance(value, dt.datetime) else value


def _check(user: AnyUser, institution: Institution) -> None:
    if not results_institutions_visible_to(user).filter(pk=institution.pk).exists():
        raise PermissionDenied(_("You may not see the satisfaction results of this institution."))


@dataclass
class BeforeAfter:
    """The same figures before and after ``pivot`` (e.g. the day a stationing programme started)."""

    pivot: dt.date
    responses_before: int
    responses_after: int
    rows: list[tuple[str, Share, Share]]  # dimension, before, after (in the order of ``Dimension``)

    @property
    def overall(self) -> tuple[Share, Share]:
        for dimension, before, after in self.rows:
            if dimension == Dimension.OVERALL:
                return before, after
        return Share(), Share()


def survey_before_after(user: AnyUser, filters: ResultFilters, *, pivot: dt.date) -> BeforeAfter:
    """Percent satisfied per dimension before ``pivot`` and from ``pivot`` on, inside the period: two queries."""
    _check(user, filters.institution)
    before, after = Q(day__lt=pivot), Q(day__gte=pivot)
    counts = SurveyResponse.objects.filter(_response_q(filters)).aggregate(
        before=Count("pk", filter=before), after=Count("pk", filter=after)
    )
    a_before, a_after = Q(response__day__lt=pivot), Q(response__day__gte=pivot)
    rows = (
        SurveyAnswer.objects.filter(_response_q(filters, "response__"), _LIKERT)
        .order_by()
        .values("dimension")
        .annotate(
            n_before=Count("pk", filter=a_before),
            s_before=Count("pk", filter=a_before & _SATISFIED),
            n_after=Count("pk", filter=a_after),
            s_after=Count("pk", filter=a_after & _SATISFIED),
        )
    )
    by_dimension = {
        str(r["dimension"]): (
            Share(int(r["s_before"]), int(r["n_before"])),
            Share(int(r["s_after"]), int(r["n_after"])),
        )
        for r in rows
    }
    return BeforeAfter(
        pivot=pivot,
        responses_before=int(counts["before"] or 0),
        responses_after=int(counts["after"] or 0),
        rows=[(d.value, *by_dimension[d.value]) for d in Dimension if d.value in by_dimension],
    )


@dataclass(frozen=True)
class Comment:
    day: dt.date
    kind: str
    department: str
    text: str


def survey_comments(user: AnyUser, filters: ResultFilters, *, limit: int = COMMENTS_READ_LIMIT) -> list[Comment]:
    """The free-text comments, newest first: quality staff of the institution only (403 for anyone else)."""
    if not can_read_comments(user, filters.institution):
        raise PermissionDenied(_("Only the quality staff of this institution may read its comments."))
    rows = (
        SurveyAnswer.objects.filter(_response_q(filters, "response__"), _COMMENT)
        .order_by("-response__day", "-response_id")
        .values_list(
            "response__day", "response__kind", "response__department__name_zh", "response__department__name_en", "text"
        )[:limit]
    )
    return [
        Comment(day=day, kind=kind, department=localized(zh or "", en or ""), text=text)
        for day, kind, zh, en, text in rows
    ]


# ----------------------------------------------------------------------------------------
# Indicator inputs


@dataclass
class SatisfactionIndicators:
    """Percent satisfied overall of one institution in a period, per kind of survey."""

    institution_id: int
    outpatient: Share = Share()
    inpatient: Share = Share()
    referred: Share = Share()
    staff: Share = Share()


def satisfaction_indicators(
    user: AnyUser, *, start: dt.date, end: dt.date, institution_ids: list[int] | None = None
) -> dict[int, SatisfactionIndicators]:
    """Per institution, for responses of [start, end): overall satisfaction of outpatients, inpatients,
    referred patients and staff. One query (and one for the scope); institutions limited to those the user
    may see; institutions without answers are absent."""
    if Permission.VIEW_SURVEY_RESULTS not in user_scope(user).permissions:
        raise PermissionDenied(_("You may not see satisfaction results."))
    visible = results_institutions_visible_to(user)
    if institution_ids is not None:
        visible = visible.filter(pk__in=institution_ids)
    rows = (
        SurveyAnswer.objects.filter(
            response__institution_id__in=visible.values("pk"),
            response__day__gte=start,
            response__day__lt=end,
            dimension=Dimension.OVERALL,
            likert__isnull=False,
        )
        .order_by()
        .values("response__institution_id", "response__kind")
        .annotate(n=Count("pk"), satisfied=Count("pk", filter=_SATISFIED))
    )
    out: dict[int, SatisfactionIndicators] = {}
    for row in rows:
        institution_id = int(row["response__institution_id"])
        figures = out.setdefault(institution_id, SatisfactionIndicators(institution_id))
        setattr(figures, SurveyKind(row["response__kind"]).value, Share(int(row["satisfied"]), int(row["n"])))
    return out


def outpatient_satisfaction(
    user: AnyUser, *, start: dt.date, end: dt.date, institution_ids: list[int] | None = None
) -> dict[int, Share]:
    return _one_kind(user, SurveyKind.OUTPATIENT, start=start, end=end, institution_ids=institution_ids)


def inpatient_satisfaction(
    user: AnyUser, *, start: dt.date, end: dt.date, institution_ids: list[int] | None = None
) -> dict[int, Share]:
    return _one_kind(user, SurveyKind.INPATIENT, start=start, end=end, institution_ids=institution_ids)


def referred_satisfaction(
    user: AnyUser, *, start: dt.date, end: dt.date, institution_ids: list[int] | None = None
) -> dict[int, Share]:
    return _one_kind(user, SurveyKind.REFERRED, start=start, end=end, institution_ids=institution_ids)


def staff_satisfaction(
    user: AnyUser, *, start: dt.date, end: dt.date, institution_ids: list[int] | None = None
) -> dict[int, Share]:
    return _one_kind(user, SurveyKind.STAFF, start=start, end=end, institution_ids=institution_ids)


def _one_kind(
    user: AnyUser, kind: SurveyKind, *, start: dt.date, end: dt.date, institution_ids: list[int] | None
) -> dict[int, Share]:
    figures = satisfaction_indicators(user, start=start, end=end, institution_ids=institution_ids)
    shares = {i: getattr(f, kind.value) for i, f in figures.items()}
    return {i: s for i, s in shares.items() if s.whole}
