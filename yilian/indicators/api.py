"""The indicator API: the definitions, and the values of one indicator per organisation unit and
period (as JSON, or as an Excel workbook).

Handlers parse and authorise, then read through ``selectors`` and the ``engine``; they compute
nothing themselves. An unknown indicator is 404; an organisation unit the caller may not see is
403; a malformed or impossible request (a backwards range, an unknown unit) is 400 or 422 with
a message in the caller's language.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Query, Router

from yilian.core.permissions import Permission
from yilian.indicators import engine, export, selectors
from yilian.indicators.engine import IndicatorValue, OrgUnit
from yilian.indicators.models import Indicator
from yilian.indicators.schemas import IndicatorOut, ValuesOut, ValuesQuery
from yilian.registry.api import ERRORS
from yilian.registry.models import User
from yilian.registry.selectors import user_scope

router = Router(tags=["indicators"])


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def require_indicators(user: User) -> None:
    if Permission.VIEW_INDICATORS not in user_scope(user).permissions:
        raise PermissionDenied(_("You may not see indicators."))


def top_level(units: list[OrgUnit]) -> list[OrgUnit]:
    """The units at the top of what a user sees: their regions, else their consortia, else their
    institutions (a hospital's staff see their hospital; an office its consortium)."""
    for kind in ("region", "consortium", "institution"):
        found = [u for u in units if u.kind == kind]
        if found:
            return found
    return []


def resolve_orgs(user: User, keys: list[str], *, field: str = "org") -> list[OrgUnit]:
    """The units named (kind:code), each visible to the user; the top-level ones when none is named.
    An unknown unit is a bad parameter (400), one the user may not see is 403."""
    if not keys:
        return top_level(selectors.org_units_visible_to(user))
    units: list[OrgUnit] = []
    for key in dict.fromkeys(keys):
        try:
            units.append(selectors.access_org_unit(user, key))
        except Http404:
            raise ValidationError({field: [_("No organisation unit %(key)s.") % {"key": key[:60]}]}) from None
    return units


def indicator_out(indicator: Indicator) -> dict[str, Any]:
    return {
        "code": indicator.code,
        "name": indicator.name,
        "name_zh": indicator.name_zh,
        "name_en": indicator.name_en,
        "definition": indicator.definition,
        "definition_zh": indicator.definition_zh,
        "definition_en": indicator.definition_en,
        "programme": indicator.programme,
        "programme_label": str(indicator.get_programme_display()),
        "unit": indicator.unit,
        "unit_label": str(indicator.get_unit_display()),
        "factor": float(indicator.factor),
        "direction": indicator.direction,
        "target": None if indicator.target is None else float(indicator.target),
        "numerator": indicator.numerator,
        "denominator": indicator.denominator,
    }


def value_out(v: IndicatorValue) -> dict[str, Any]:
    return {
        "org": {"key": f"{v.org.kind}:{v.org.code}", "kind": v.org.kind, "code": v.org.code, "name": v.org.name},
        "period": {
            "grain": v.period.grain,
            "label": v.period.label,
            "start": v.period.start,
            "end": v.period.end - dt.timedelta(days=1),
        },
        "numerator": v.numerator,
        "denominator": v.denominator,
        "value": v.value,
        "target": v.target,
        "met": v.met,
        "coverage": {"share": v.coverage.share, "note": v.coverage.note},
        "previous": v.previous,
        "yoy": v.yoy,
        "basis": list(v.basis),
    }


def _evaluate(
    user: User, code: str, query: ValuesQuery
) -> tuple[Indicator, list[OrgUnit], dt.date, dt.date, list[IndicatorValue]]:
    require_indicators(user)
    indicator = selectors.access_indicator(user, code)
    try:
        start, end = query.range(timezone.localdate())
    except ValueError as exc:
        raise ValidationError({"to": [str(exc)]}) from None
    orgs = resolve_orgs(user, query.org)
    values = engine.evaluate(
        user, codes=[indicator.code], orgs=orgs, grain=query.period, start=start, end=end, department=query.department
    )
    return indicator, orgs, start, end, values


@router.get("/indicators", response={200: list[IndicatorOut], **ERRORS})
def indicator_list(request: HttpRequest) -> list[dict[str, Any]]:
    """The indicator definitions, in the order of the dashboards: what each counts (numerator and
    denominator as stored), its unit, factor, direction, target and the programme it reports to."""
    user = _user(request)
    require_indicators(user)
    return [indicator_out(i) for i in selectors.indicator_list(user)]


@router.get("/indicators/{code}/values", response={200: ValuesOut, **ERRORS})
def indicator_values(request: HttpRequest, code: str, query: Query[ValuesQuery]) -> dict[str, Any]:
    """The indicator for each organisation unit and period: numerator, denominator, value, target,
    whether it is met, how much of the unit the data covers, the value a year earlier and the
    change on it. Periods are whole: `from` and `to` widen to the periods that contain them."""
    user = _user(request)
    indicator, _orgs, start, end, values = _evaluate(user, code, query)
    return {
        "indicator": indicator_out(indicator),
        "grain": query.period,
        "start": start,
        "end": end - dt.timedelta(days=1),
        "department": query.department,
        "values": [value_out(v) for v in values],
    }


_XLSX = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "/indicators/{code}/values.xlsx",
    response=ERRORS,
    openapi_extra={
        "responses": {
            200: {
                "description": "The same values as an Excel workbook (the export is audited).",
                "content": {export.CONTENT_TYPE: _XLSX},
            }
        }
    },
)
def indicator_values_xlsx(request: HttpRequest, code: str, query: Query[ValuesQuery]) -> HttpResponse:
    """The values of `/indicators/{code}/values` as an Excel workbook: a sheet with the filters,
    a sheet with the definition, the coverage notes and one row per unit and period."""
    user = _user(request)
    indicator, orgs, start, end, values = _evaluate(user, code, query)
    last = end - dt.timedelta(days=1)
    filters = [
        (_("Indicator"), f"{indicator.name} ({indicator.code})"),
        (_("Organisation units"), "、".join(o.name for o in orgs)),
        (_("Period"), f"{start.isoformat()} – {last.isoformat()}"),
        (_("Grain"), str(export.GRAIN_LABELS[query.period])),
    ]
    if query.department:
        filters.append((_("Department"), query.department))
    content = export.workbook(
        user,
        title=indicator.name,
        filters=filters,
        tables=[export.values_table(indicator, values)],
        what={
            "indicator": indicator.code,
            "orgs": [f"{o.kind}:{o.code}" for o in orgs],
            "period": f"{start.isoformat()}/{last.isoformat()}",
            "grain": query.period,
        },
    )
    response = HttpResponse(content, content_type=export.CONTENT_TYPE)
    name = f"{indicator.code}-{start:%Y%m}-{last:%Y%m}-{query.period}.xlsx"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
