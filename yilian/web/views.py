"""Pages. Each view authorises with an ``access_*`` selector first, then renders; with HTMX
it returns only the partial that changed, and every page works without JavaScript."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db import DatabaseError, connection
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import Resolver404
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from yilian.consults import selectors as consult_selectors
from yilian.core.permissions import Permission
from yilian.referrals import selectors as referral_selectors
from yilian.registry import selectors, services
from yilian.registry.models import (
    ConsortiumMember,
    ConsortiumType,
    InstitutionGrade,
    InstitutionType,
    Region,
    User,
)
from yilian.web.forms import AuditFilterForm, LoginForm

PAGE_SIZE = 25


def _page(request: HttpRequest, items: Any, size: int = PAGE_SIZE) -> Page[Any]:
    return Paginator(items, size).get_page(request.GET.get("page"))


def _template(request: HttpRequest, page: str, partial: str) -> str:
    """The partial for an HTMX request that targets it, else the whole page."""
    return partial if getattr(request, "htmx", False) and not request.htmx.boosted else page  # type: ignore[attr-defined]


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Our 404: the reason when a view gave one (e.g. "No institution with code x"), else a
    plain sentence, never the name of Django's URL resolver exception."""
    message = "" if isinstance(exception, Resolver404) else str(exception.args[0] if exception.args else "")
    return render(request, "404.html", {"exception": message}, status=404)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        database = "ok"
    except DatabaseError as exc:
        return JsonResponse({"status": "error", "database": "unavailable", "detail": str(exc)[:200]}, status=503)
    return JsonResponse({"status": "ok", "database": database, "vendor": connection.vendor})


class LoginView(auth_views.LoginView):
    template_name = "web/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        user = form.get_user()
        if user.language:
            response.set_cookie("django_language", user.language, samesite="Lax")
        return response


def lockout_response(
    request: HttpRequest, credentials: dict[str, Any] | None = None, *args: Any, **kwargs: Any
) -> HttpResponse:
    """What django-axes shows when a username is locked after repeated failures."""
    form = LoginForm(request)
    return render(
        request,
        "web/login.html",
        {
            "form": form,
            "locked": True,
            "cooloff_minutes": int(_cooloff_minutes()),
        },
        status=429,
    )


def _cooloff_minutes() -> float:
    from django.conf import settings

    return float(settings.AXES_COOLOFF_TIME) * 60


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Switch the interface language; remembered on the account and in a cookie."""
    language = request.POST.get("language", "")
    next_url = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    if language not in {"zh-hans", "en"}:
        return HttpResponse(_("Unknown language."), status=400)
    if request.user.is_authenticated:
        services.user_set_language(actor=_acting_user(request), language=language)
    translation.activate(language)
    response = HttpResponseRedirect(next_url)
    response.set_cookie("django_language", language, max_age=365 * 24 * 3600, samesite="Lax")
    return response


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "web/home.html",
        {
            "memberships": selectors.user_memberships(request.user),
            "consortia": list(selectors.consortium_list_visible_to(request.user)),
            "institution_count": selectors.institution_list_visible_to(request.user).count(),
            "practitioner_count": selectors.practitioner_list_visible_to(request.user).count(),
            "worklist": referral_selectors.referral_worklist(request.user),
            "consult_worklist": consult_selectors.consult_worklist(request.user),
            "consult_boxes": consult_selectors.boxes_for(request.user),
        },
    )


@login_required
def consortium_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    type_ = request.GET.get("type", "")
    consortia = selectors.consortium_list_visible_to(request.user, search=search, type=type_)
    return render(
        request,
        "web/consortium_list.html",
        {
            "page": _page(request, consortia),
            "q": search,
            "type": type_,
            "types": ConsortiumType.choices,
        },
    )


@dataclass(frozen=True)
class MapPoint:
    code: str
    name: str
    x: float
    y: float
    is_lead: bool
    label_dy: float = 4.0


def _map_points(members: list[ConsortiumMember], width: int = 520, height: int = 320, pad: int = 40) -> list[MapPoint]:
    """Project member coordinates onto an SVG box (equirectangular; fine at city scale)."""
    located = [m for m in members if m.institution.latitude is not None and m.institution.longitude is not None]
    if not located:
        return []
    lats = [float(m.institution.latitude or Decimal(0)) for m in located]
    lons = [float(m.institution.longitude or Decimal(0)) for m in located]
    span = max(max(lats) - min(lats), max(lons) - min(lons), 0.05)
    scale = min((width - 2 * pad) / span, (height - 2 * pad) / span)
    mid_lon = (max(lons) + min(lons)) / 2
    mid_lat = (max(lats) + min(lats)) / 2
    points = sorted(
        (
            MapPoint(
                code=m.institution.code,
                name=m.institution.short_name or m.institution.name,
                x=round(width / 2 + (lon - mid_lon) * scale, 1),
                y=round(height / 2 - (lat - mid_lat) * scale, 1),
                is_lead=m.role == "lead",
            )
            for m, lat, lon in zip(located, lats, lons, strict=True)
        ),
        key=lambda p: (p.y, p.x),
    )
    return _spread_labels(points)


def _spread_labels(points: list[MapPoint], line: float = 14.0, width: float = 90.0) -> list[MapPoint]:
    """Move a label down a line while it would overlap a label already placed (same city)."""
    placed: list[tuple[float, float]] = []
    result = []
    for p in points:
        label_y = p.y + 4.0
        while any(abs(label_y - y) < line and abs(p.x - x) < width for x, y in placed):
            label_y += line
        placed.append((p.x, label_y))
        result.append(MapPoint(p.code, p.name, p.x, p.y, p.is_lead, round(label_y - p.y, 1)))
    return result


@dataclass(frozen=True)
class RegionNode:
    region: Region
    depth: int
    members: list[ConsortiumMember]


def _region_tree(members: list[ConsortiumMember]) -> list[RegionNode]:
    """Members grouped under their province, city and county, in code order."""
    by_region: dict[str, list[ConsortiumMember]] = {}
    regions: dict[str, Region] = {}
    for m in members:
        region = m.institution.region
        by_region.setdefault(region.code, []).append(m)
        node: Region | None = region
        while node is not None:
            regions[node.code] = node
            node = node.parent
    depth = {"province": 0, "city": 1, "county": 2}
    return [
        RegionNode(region=regions[code], depth=depth.get(regions[code].level, 2), members=by_region.get(code, []))
        for code in sorted(regions)
    ]


@login_required
def consortium_detail(request: HttpRequest, code: str) -> HttpResponse:
    consortium = selectors.access_consortium(request.user, code)
    members = selectors.consortium_members(consortium)
    can_see_agreements = selectors.user_has_perm(request.user, Permission.VIEW_AGREEMENTS)
    agreements = selectors.agreement_list_visible_to(request.user, consortium=consortium) if can_see_agreements else []
    visible_ids = set(
        selectors.institution_queryset_visible_to(request.user)
        .filter(pk__in=[m.institution_id for m in members])
        .values_list("pk", flat=True)
    )
    return render(
        request,
        "web/consortium_detail.html",
        {
            "consortium": consortium,
            "members": members,
            "visible_ids": visible_ids,
            "agreements": agreements,
            "can_see_agreements": can_see_agreements,
            "map_points": _map_points(members),
            "region_tree": _region_tree(members),
        },
    )


@login_required
def agreement_document(request: HttpRequest, code: str) -> FileResponse:
    """The signed agreement (PDF), for those who may see the agreement; the download is audited."""
    agreement = selectors.access_agreement(request.user, code)
    if not agreement.document or not agreement.document.storage.exists(agreement.document.name):
        raise Http404(_("No document is attached to this agreement."))
    services.agreement_document_read(actor=_acting_user(request), agreement=agreement)
    return FileResponse(
        agreement.document.open("rb"),
        content_type="application/pdf",
        as_attachment=False,
        filename=f"{agreement.code}.pdf",
    )


def _acting_user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@login_required
def institution_list(request: HttpRequest) -> HttpResponse:
    filters = {
        "search": request.GET.get("q", "").strip(),
        "region_code": request.GET.get("region", ""),
        "grade": request.GET.get("grade", ""),
        "type": request.GET.get("type", ""),
    }
    institutions = selectors.institution_list_visible_to(
        request.user,
        search=filters["search"],
        region_code=filters["region_code"],
        grade=filters["grade"],
        type=filters["type"],
    )
    context = {
        "page": _page(request, institutions),
        "filters": filters,
        "grades": InstitutionGrade.choices,
        "types": InstitutionType.choices,
        "regions": selectors.region_tree(),
    }
    return render(request, _template(request, "web/institution_list.html", "web/_institution_rows.html"), context)


@login_required
def institution_detail(request: HttpRequest, code: str) -> HttpResponse:
    institution = selectors.institution_detail(selectors.access_institution(request.user, code))
    practitioners = selectors.practitioner_list_visible_to(request.user, institution=institution)
    now = timezone.now()
    capabilities = [(c, c.is_available_at(now)) for c in institution.capabilities.all()]
    memberships = list(institution.memberships.all())
    openable = set(
        selectors.consortium_queryset_visible_to(request.user)
        .filter(pk__in=[m.consortium_id for m in memberships])
        .values_list("pk", flat=True)
    )
    return render(
        request,
        "web/institution_detail.html",
        {
            "institution": institution,
            "capabilities": capabilities,
            "practitioners": _page(request, practitioners),
            "memberships": memberships,
            "openable_consortium_ids": openable,
        },
    )


@login_required
def practitioner_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    try:
        practitioner = selectors.access_practitioner(request.user, public_id)
    except ValidationError as exc:  # a malformed UUID
        raise Http404(_("No such practitioner.")) from exc
    return render(
        request,
        "web/practitioner_detail.html",
        {
            "practitioner": practitioner,
            "licence_number": selectors.practitioner_licence_for(request.user, practitioner),
        },
    )


@login_required
def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    results = selectors.directory_search(request.user, query=query)
    context = {"q": query, "results": results}
    return render(request, _template(request, "web/search.html", "web/_search_results.html"), context)


@login_required
def audit_list(request: HttpRequest) -> HttpResponse:
    selectors.require_perm(request.user, Permission.VIEW_AUDIT)
    form = AuditFilterForm(request.GET or None)
    filters: dict[str, Any] = {}
    if form.is_valid():
        data = form.cleaned_data
        filters = {
            "username": data["user"] or "",
            "object_query": data["object"] or "",
            "action": data["action"] or "",
            "since": _start_of(data["since"]),
            "until": _start_of(data["until"] + dt.timedelta(days=1)) if data["until"] else None,
        }
    events = selectors.audit_list_visible_to(request.user, **filters)
    context = {"form": form, "page": _page(request, events, size=50)}
    return render(request, _template(request, "web/audit_list.html", "web/_audit_rows.html"), context)


def _start_of(day: dt.date | None) -> dt.datetime | None:
    if day is None:
        return None
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))
