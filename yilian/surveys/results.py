"""Satisfaction results pages: one institution's dashboard and its Excel export.

Filters: the institution (among those the user may see), a department, a kind of survey, a period
(from and to, both included) and an optional pivot date for the before/after comparison. The comment
words and the comments are shown to the institution's quality staff only; everyone else sees how many
comments there are. Views parse, call the selectors, render.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from yilian.core.permissions import Permission
from yilian.dispatch.selectors import programmes_hosted_at
from yilian.registry.models import Department, Institution, User
from yilian.registry.selectors import user_scope
from yilian.surveys import export, selectors
from yilian.surveys.models import Dimension, SurveyKind
from yilian.surveys.text import group_comments
from yilian.web.forms import EARLIEST, LATEST

if TYPE_CHECKING:
    from yilian.dispatch.models import Programme

TOP_WORDS = 12
CHART_HEIGHT = 160
BAR_WIDTH = 28
BAR_GAP = 10


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def default_period(today: dt.date) -> tuple[dt.date, dt.date]:
    """The last twelve months: from the first day of the month eleven months ago to today."""
    month = today.year * 12 + today.month - 1 - 11
    return dt.date(month // 12, month % 12 + 1, 1), today


class ResultsFilterForm(forms.Form):
    department = forms.ChoiceField(label=gettext_lazy("Department"), required=False, choices=())
    kind = forms.ChoiceField(
        label=gettext_lazy("Survey"), required=False, choices=[("", gettext_lazy("All surveys")), *SurveyKind.choices]
    )
    date_from = forms.DateField(
        label=gettext_lazy("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(label=gettext_lazy("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    programme = forms.ChoiceField(
        label=gettext_lazy("Before and after a programme"),
        required=False,
        choices=(),
        help_text=gettext_lazy("The stationing programmes this hospital hosts."),
    )
    pivot = forms.DateField(
        label=gettext_lazy("…or before and after a day"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(
        self,
        *args: Any,
        departments: list[tuple[str, str]] | None = None,
        programmes: list[tuple[str, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = [("", _("All departments")), *(departments or [])]  # type: ignore[attr-defined]
        self.fields["programme"].choices = [("", _("No comparison")), *(programmes or [])]  # type: ignore[attr-defined]
        for field in self.fields.values():
            css = (
                "form-select form-select-sm"
                if isinstance(field.widget, forms.Select)
                else "form-control form-control-sm"
            )
            field.widget.attrs.setdefault("class", css)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("date_from", "date_to", "pivot"):
            day = data.get(name)
            if day is not None and not (EARLIEST <= day <= LATEST):
                self.add_error(name, _("Choose a date between 1900 and 9998."))
        start, end, pivot = data.get("date_from"), data.get("date_to"), data.get("pivot")
        if pivot and data.get("programme"):
            self.add_error("pivot", _("Compare around a programme or around a day, not both."))
        if start and end and start > end:
            self.add_error("date_to", _("The end of the period comes before its start."))
        if pivot and ((start and pivot <= start) or (end and pivot > end)):
            self.add_error("pivot", _("Choose a day inside the period, after its first day."))
        return data


@dataclass(frozen=True)
class Parsed:
    institution: Institution
    institutions: list[Institution]
    departments: list[Department]
    form: ResultsFilterForm
    filters: selectors.ResultFilters | None  # None: the form has errors
    pivot: dt.date | None
    programme: Programme | None = None  # the programme whose start is the pivot
    notice: str = ""  # why the chosen programme is not compared in this period


def _parse(request: HttpRequest) -> Parsed | None:
    """The filters of the request; None when the user may see no institution at all."""
    user = _user(request)
    scope = user_scope(user)
    if Permission.VIEW_SURVEY_RESULTS not in scope.permissions:
        raise PermissionDenied(_("You may not see satisfaction results."))
    institutions = list(selectors.results_institutions_visible_to(user).order_by("code"))
    code = request.GET.get("institution", "").strip()
    if code:
        institution = next((i for i in institutions if i.code == code), None)
        if institution is None:
            selectors.access_results_institution(user, code)  # raises 404 or 403 with the reason
            raise PermissionDenied(_("You may not see the satisfaction results of this institution."))
    else:
        candidates = [i for i in institutions if i.pk in scope.institution_ids] or institutions
        if not candidates:
            return None
        institution = candidates[0]
    departments = list(Department.objects.filter(institution=institution, is_active=True).order_by("discipline", "pk"))
    start, end = default_period(timezone.localdate())
    data = request.GET.copy()
    hosted = programmes_hosted_at(institution)
    if not any(k in data for k in ("date_from", "date_to", "programme", "pivot")):
        data["date_from"], data["date_to"] = start.isoformat(), end.isoformat()
        # First visit to a host whose latest programme started in the last two years: widen the
        # period to a year before that start, so that the page opens on the improvement.
        recent = [p for p in hosted if end - dt.timedelta(days=730) < p.starts_on <= end]
        if recent and recent[0].starts_on <= start:
            first = recent[0].starts_on - dt.timedelta(days=365)
            data["date_from"] = first.replace(day=1).isoformat()
    elif not any(k in data for k in ("date_from", "date_to")):
        data["date_from"], data["date_to"] = start.isoformat(), end.isoformat()
    if "programme" not in data and "pivot" not in data:
        # First visit: compare around the latest programme that started inside the period.
        start_day, end_day = _iso_day(data.get("date_from")), _iso_day(data.get("date_to"))
        inside = [
            p
            for p in hosted
            if (start_day is None or p.starts_on > start_day) and (end_day is None or p.starts_on <= end_day)
        ]
        if inside:
            data["programme"] = inside[0].code
    form = ResultsFilterForm(
        data,
        departments=[(str(d.public_id), d.name) for d in departments],
        programmes=[(p.code, programme_label(p)) for p in hosted],
    )
    if not form.is_valid():
        return Parsed(institution, institutions, departments, form, None, None)
    cleaned = form.cleaned_data
    programme = next((p for p in hosted if p.code == cleaned["programme"]), None)
    pivot = programme.starts_on if programme is not None else cleaned["pivot"]
    notice = ""
    if programme is not None and (
        (cleaned["date_from"] and pivot <= cleaned["date_from"]) or (cleaned["date_to"] and pivot > cleaned["date_to"])
    ):
        # The figures of the period are still shown (the person narrowed the period on purpose);
        # the comparison needs the programme's start inside it.
        notice = _("%(title)s started on %(day)s, outside this period; widen the period to compare.") % {
            "title": programme.title,
            "day": programme.starts_on.isoformat(),
        }
        programme, pivot = None, None
    department = next((d for d in departments if str(d.public_id) == cleaned["department"]), None)
    date_to = cleaned["date_to"]
    filters = selectors.ResultFilters(
        institution=institution,
        department=department,
        kind=cleaned["kind"],
        start=cleaned["date_from"],
        end=date_to + dt.timedelta(days=1) if date_to else None,
    )
    return Parsed(institution, institutions, departments, form, filters, pivot, programme, notice)


def _iso_day(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return None


def programme_label(programme: Programme) -> str:
    return f"{programme.title}（{programme.starts_on:%Y-%m-%d}）"


def _chart(months: list[selectors.MonthFigures]) -> dict[str, Any]:
    """Bars of the monthly percent satisfied overall, as coordinates for an inline SVG."""
    bars = []
    for i, month in enumerate(months):
        percent = month.overall.percent
        height = round((percent or 0) * CHART_HEIGHT / 100, 1)
        x = i * (BAR_WIDTH + BAR_GAP)
        bars.append(
            {
                "x": x,
                "y": CHART_HEIGHT - height,
                "height": height,
                "percent": percent,
                "label": month.month.strftime("%y-%m"),
                "month": month.month.strftime("%Y-%m"),
                "responses": month.responses,
                "text_x": x + BAR_WIDTH / 2,
            }
        )
    width = max(len(months) * (BAR_WIDTH + BAR_GAP), BAR_WIDTH)
    return {"bars": bars, "width": width, "height": CHART_HEIGHT, "bar_width": BAR_WIDTH}


def _query_string(request: HttpRequest) -> str:
    return request.GET.urlencode()


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    parsed = _parse(request)
    if parsed is None:
        return render(request, "surveys/results/dashboard.html", {"nothing_visible": True})
    context: dict[str, Any] = {
        "institution": parsed.institution,
        "institutions": parsed.institutions,
        "form": parsed.form,
        "kinds": SurveyKind,
        "query": _query_string(request),
    }
    if parsed.filters is None:
        return render(request, "surveys/results/dashboard.html", context, status=400)
    filters = parsed.filters
    results = selectors.survey_results(user, filters)
    can_read = selectors.can_read_comments(user, filters.institution)
    context.update(
        {
            "results": results,
            "dimensions": [(Dimension(d).label, share) for d, share in results.dimensions.items()],
            "chart": _chart(results.months),
            "period": export.period_label(filters),
            "can_read_comments": can_read,
        }
    )
    context["comparison_notice"] = parsed.notice
    if parsed.pivot:
        before_after = selectors.survey_before_after(user, filters, pivot=parsed.pivot)
        context["before_after"] = before_after
        context["before_after_programme"] = parsed.programme
        context["before_after_rows"] = [
            (
                Dimension(d).label,
                before,
                after,
                round(after.percent - before.percent, 1)
                if after.percent is not None and before.percent is not None
                else None,
            )
            for d, before, after in before_after.rows
        ]
    if can_read:
        comments = selectors.survey_comments(user, filters)
        context["word_groups"] = group_comments([c.text for c in comments], top=TOP_WORDS)
        context["recent_comments"] = comments[:10]
    return render(request, "surveys/results/dashboard.html", context)


@login_required
@require_GET
def export_xlsx(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    parsed = _parse(request)
    if parsed is None:
        raise PermissionDenied(_("You may not see the satisfaction results of any institution."))
    if parsed.filters is None:
        fields = parsed.form.fields
        errors = "; ".join(
            f"{fields[name].label if name in fields else ''}: {' '.join(str(m) for m in e)}"
            for name, e in parsed.form.errors.items()
        )
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    content = export.results_workbook(
        user,
        parsed.filters,
        pivot=parsed.pivot,
        pivot_label=programme_label(parsed.programme) if parsed.programme else "",
    )
    filters = parsed.filters
    start = filters.start.isoformat() if filters.start else "start"
    end = (filters.end - dt.timedelta(days=1)).isoformat() if filters.end else "now"
    response = HttpResponse(content, content_type=export.CONTENT_TYPE)
    response["Content-Disposition"] = (
        f'attachment; filename="satisfaction-{filters.institution.code}-{start}-{end}.xlsx"'
    )
    return response
