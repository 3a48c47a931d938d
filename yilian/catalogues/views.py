"""Catalogue pages: the list with the upload form, one catalogue with its searchable codes and the
withdrawal. Thin: parse, call a selector or a service, render."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from yilian.activity.forms import clean_filename, staged_file
from yilian.catalogues import selectors, services
from yilian.catalogues.forms import FilterForm, UploadForm, WithdrawForm
from yilian.catalogues.models import NATIONAL_KINDS, Catalogue, CatalogueKind
from yilian.catalogues.services import Problem
from yilian.core.errors import Conflict
from yilian.registry.models import User
from yilian.web.forms import errors_to_form

PAGE_SIZE = 25
CODES_PAGE_SIZE = 50


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False)) and not request.htmx.boosted  # type: ignore[attr-defined]


def _kinds_for(user: User) -> list[tuple[str, str]]:
    """The kinds the user may load, for the upload form's choices."""
    kinds: list[tuple[str, str]] = []
    if selectors.may_load_national(user):
        kinds += [(k.value, str(k.label)) for k in NATIONAL_KINDS]
    if selectors.institution_queryset_listable_by(user).exists():
        kinds.append((CatalogueKind.INSTITUTION_MI.value, str(CatalogueKind.INSTITUTION_MI.label)))
    return kinds


def _upload_form(user: User, data: Any = None, files: Any = None) -> UploadForm | None:
    kinds = _kinds_for(user)
    if not kinds:
        return None
    return UploadForm(data, files, kinds=kinds, institutions=selectors.institution_queryset_listable_by(user))


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def catalogue_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    selectors.require_see(user)
    if request.method == "POST":
        return _upload(request, user)
    return _list(request, user, _upload_form(user))


def _list(
    request: HttpRequest,
    user: User,
    form: UploadForm | None,
    *,
    status: int = 200,
    problems: list[Problem] | None = None,
    problem_count: int = 0,
) -> HttpResponse:
    filters = FilterForm(request.GET or None, auto_id="filter_%s")
    kind, state = "", ""
    if filters.is_valid():
        kind, state = filters.cleaned_data["kind"], filters.cleaned_data["status"]
    rows = selectors.catalogue_list_visible_to(user, kind=kind, active_only=state == "active")
    if state == "withdrawn":
        rows = rows.filter(is_active=False)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    until = selectors.valid_until(selectors.catalogue_state())
    entries = [(c, until.get(c.pk) if c.is_active else None) for c in page]
    context = {
        "filters": filters,
        "page": page,
        "entries": entries,
        "form": form,
        "open_form": form is not None and form.is_bound,
        "problems": problems or [],
        "more_problems": max(problem_count - len(problems or []), 0),
    }
    return render(request, "catalogues/list.html", context, status=status)


def _upload(request: HttpRequest, user: User) -> HttpResponse:
    form = _upload_form(user, request.POST, request.FILES)
    if form is None:
        raise PermissionDenied(_("You may not load operation catalogues."))
    if not form.is_valid():
        return _list(request, user, form, status=400)
    data = form.cleaned_data
    upload = data["file"]
    try:
        with staged_file(upload) as path:
            catalogue = services.catalogue_import(
                user=user,
                kind=data["kind"],
                path=path,
                filename=clean_filename(upload),
                name=data["name"],
                version=data["version"],
                valid_from=data["valid_from"],
                institution=data["institution"],
                note=data["note"],
            )
    except services.CatalogueRejected as exc:
        form.add_error("file", _("The file was rejected: nothing was loaded."))
        return _list(request, user, form, status=400, problems=exc.problems, problem_count=exc.total)
    except ValidationError as exc:
        errors_to_form(form, exc)
        return _list(request, user, form, status=400)
    messages.success(
        request,
        _("%(catalogue)s is loaded: %(n)s codes, read for stays discharged from %(date)s.")
        % {"catalogue": catalogue.label, "n": catalogue.codes_count, "date": catalogue.valid_from.isoformat()},
    )
    return redirect("catalogues:detail", public_id=catalogue.public_id)


def _detail(
    request: HttpRequest, catalogue: Catalogue, *, withdraw_form: WithdrawForm | None = None, status: int = 200
) -> HttpResponse:
    user = _user(request)
    q = request.GET.get("q", "").strip()[:80]
    codes = Paginator(selectors.catalogue_codes(catalogue, search=q), CODES_PAGE_SIZE).get_page(request.GET.get("page"))
    if _is_htmx(request) and request.method == "GET":
        return render(request, "catalogues/_codes.html", {"catalogue": catalogue, "codes": codes, "q": q})
    until = selectors.valid_until(selectors.catalogue_state())
    versions = (
        selectors.catalogue_list_visible_to(user, kind=catalogue.kind)
        .filter(institution=catalogue.institution)
        .exclude(pk=catalogue.pk)
    )
    context = {
        "catalogue": catalogue,
        "valid_until": until.get(catalogue.pk) if catalogue.is_active else None,
        "codes": codes,
        "q": q,
        "versions": [(v, until.get(v.pk) if v.is_active else None) for v in versions],
        "may_withdraw": selectors.may_withdraw(user, catalogue),
        "withdraw_form": withdraw_form or WithdrawForm(),
        "is_classification": catalogue.kind == CatalogueKind.CLASSIFICATION,
    }
    return render(request, "catalogues/detail.html", context, status=status)


@login_required
@require_GET
def catalogue_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    return _detail(request, selectors.access_catalogue(_user(request), str(public_id)))


@login_required
@require_POST
def catalogue_withdraw(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    catalogue = selectors.access_catalogue(user, str(public_id))
    form = WithdrawForm(request.POST)
    if not form.is_valid():
        return _detail(request, catalogue, withdraw_form=form, status=400)
    try:
        services.catalogue_withdraw(user=user, catalogue=catalogue, reason=form.cleaned_data["reason"])
    except ValidationError as exc:
        errors_to_form(form, exc)
        return _detail(request, catalogue, withdraw_form=form, status=400)
    except Conflict as exc:
        form.add_error(None, str(exc))
        return _detail(request, catalogue, withdraw_form=form, status=409)
    messages.success(request, _("The catalogue is withdrawn: no indicator reads it any more."))
    return redirect("catalogues:detail", public_id=catalogue.public_id)
