"""The operation-catalogue API: the catalogues the caller may see, one catalogue and its codes
(paged), loading a version from a file, and withdrawing one.

Handlers parse and authorise, then read through ``selectors`` and write through ``services``. A
file rejected whole is 422 with every problem by row, column and value (the first ones); a request
that breaks a rule (an institution for a national catalogue, a version already loaded) is 400; a
refusal 403; an unknown catalogue 404; a second withdrawal 409.
"""

# No ``from __future__ import annotations``: django-ninja reads the ``Query[...]`` annotations of
# paginated handlers at import time and cannot resolve them from strings.

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import File, Query, Router, Schema, Status, UploadedFile
from ninja.pagination import paginate
from ninja.params import Form

from yilian.activity.forms import clean_filename, staged_file
from yilian.catalogues import schemas, selectors, services
from yilian.catalogues.forms import check_file
from yilian.catalogues.models import Catalogue, CatalogueCode, CatalogueKind
from yilian.registry.api import ERRORS as REGISTRY_ERRORS
from yilian.registry.api import Pagination
from yilian.registry.models import Institution, User

router = Router(tags=["catalogues"])

ERRORS: dict[int, type[Schema]] = {**REGISTRY_ERRORS, 422: schemas.CatalogueRejectedOut}


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def catalogue_out(catalogue: Catalogue, until: dict[int, dt.date]) -> dict[str, Any]:
    institution = catalogue.institution
    return {
        "id": catalogue.public_id,
        "kind": catalogue.kind,
        "kind_label": str(catalogue.get_kind_display()),
        "name": catalogue.name,
        "version": catalogue.version,
        "label": catalogue.label,
        "valid_from": catalogue.valid_from,
        "valid_until": until.get(catalogue.pk) if catalogue.is_active else None,
        "institution": institution.code if institution else None,
        "institution_name": institution.name if institution else None,
        "codes_count": catalogue.codes_count,
        "filename": catalogue.filename,
        "file_sha256": catalogue.file_sha256,
        "note": catalogue.note,
        "loaded_by": catalogue.loaded_by.get_username() if catalogue.loaded_by else None,
        "loaded_at": catalogue.created_at,
        "is_active": catalogue.is_active,
        "withdrawn_by": catalogue.withdrawn_by.get_username() if catalogue.withdrawn_by else None,
        "withdrawn_at": catalogue.withdrawn_at,
        "withdrawal_reason": catalogue.withdrawal_reason,
    }


def code_out(code: CatalogueCode) -> dict[str, Any]:
    return {"code": code.code, "name": code.name, "category": code.category}


class _Page:
    """A queryset whose page only is turned into answers (the paginator counts and slices it)."""

    def __init__(self, queryset: QuerySet[Any], out: Callable[[Any], dict[str, Any]]) -> None:
        self.queryset, self.out = queryset, out

    def all(self) -> "_Page":
        return self

    def count(self) -> int:
        return self.queryset.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, window: slice) -> list[dict[str, Any]]:
        return [self.out(obj) for obj in self.queryset[window]]


class CatalogueFilters(Schema):
    kind: CatalogueKind | None = None
    institution: str = ""
    active: bool | None = None


def institution_named(code: str) -> Institution | None:
    if not code:
        return None
    institution = Institution.objects.filter(code=code).first()
    if institution is None:
        raise ValidationError({"institution": [_("No institution with code %(code)s.") % {"code": code[:60]}]})
    return institution


@router.get(
    "/catalogues",
    response={200: list[schemas.CatalogueOut], **ERRORS},
    summary="Operation catalogues the caller may see",
)
@paginate(Pagination)
def catalogue_list(request: HttpRequest, filters: Query[CatalogueFilters]) -> Any:
    """National catalogues (classification, level-4, minimally invasive) and the institutions' own
    minimally invasive lists the caller may see, by kind, newest version first."""
    user = _user(request)
    selectors.require_see(user)
    rows = selectors.catalogue_list_visible_to(
        user,
        kind=filters.kind or "",
        institution=filters.institution[:60],
        active_only=bool(filters.active),
    )
    if filters.active is False:
        rows = rows.filter(is_active=False)
    until = selectors.valid_until(selectors.catalogue_state())
    return _Page(rows, lambda c: catalogue_out(c, until))


@router.post(
    "/catalogues",
    response={201: schemas.CatalogueOut, **ERRORS},
    summary="Load a version of a catalogue from a file",
)
def catalogue_create(
    request: HttpRequest,
    kind: Form[CatalogueKind],
    name: Form[str],
    version: Form[str],
    valid_from: Form[dt.date],
    file: File[UploadedFile],
    institution: Form[str] = "",
    note: Form[str] = "",
) -> Any:
    """multipart/form-data with ``kind``, ``name``, ``version``, ``valid_from`` (YYYY-MM-DD),
    ``institution`` (its code; only for ``institution_mi``), ``note`` and ``file`` (.csv in UTF-8 or
    GB18030, or .xlsx; columns 编码/code, 名称/name and, for a classification, 类别/category). 201: the
    version is loaded and applies from ``valid_from``. 422: the file was rejected whole, nothing was
    loaded (``problems`` by row, column and value)."""
    user = _user(request)
    selectors.require_see(user)
    if not selectors.may_load_any(user):
        raise PermissionDenied(_("You may not load operation catalogues."))
    upload = check_file(file)
    owner = institution_named(institution.strip())
    try:
        with staged_file(upload) as path:
            catalogue = services.catalogue_import(
                user=user,
                kind=kind,
                path=path,
                filename=clean_filename(upload),
                name=name,
                version=version,
                valid_from=valid_from,
                institution=owner,
                note=note,
            )
    except services.CatalogueRejected as exc:
        body = {
            "detail": _("The file was rejected: nothing was loaded."),
            "problems": [
                {"row": p.row, "column": p.column, "value": p.value, "message": p.message} for p in exc.problems
            ],
            "problem_count": exc.total,
        }
        return Status(422, body)
    return Status(201, catalogue_out(catalogue, selectors.valid_until(selectors.catalogue_state())))


@router.get("/catalogues/{public_id}", response={200: schemas.CatalogueOut, **ERRORS})
def catalogue_detail(request: HttpRequest, public_id: uuid.UUID) -> dict[str, Any]:
    """One catalogue (its codes: ``/catalogues/{id}/codes``)."""
    catalogue = selectors.access_catalogue(_user(request), str(public_id))
    return catalogue_out(catalogue, selectors.valid_until(selectors.catalogue_state()))


class CodeFilters(Schema):
    q: str = ""


@router.get("/catalogues/{public_id}/codes", response={200: list[schemas.CatalogueCodeOut], **ERRORS})
@paginate(Pagination)
def catalogue_code_list(request: HttpRequest, public_id: uuid.UUID, filters: Query[CodeFilters]) -> Any:
    """The catalogue's codes in code order (paged); ``q`` matches the start of a code or any part of
    a name."""
    catalogue = selectors.access_catalogue(_user(request), str(public_id))
    return _Page(selectors.catalogue_codes(catalogue, search=filters.q[:80]), code_out)


@router.post("/catalogues/{public_id}/withdraw", response={200: schemas.CatalogueOut, **ERRORS})
def catalogue_withdraw(
    request: HttpRequest, public_id: uuid.UUID, payload: schemas.CatalogueWithdrawIn
) -> dict[str, Any]:
    """Take a version back: it stays on record but no indicator uses it any more (the version before
    it applies again). 409 when it is already withdrawn."""
    user = _user(request)
    catalogue = selectors.access_catalogue(user, str(public_id))
    withdrawn = services.catalogue_withdraw(user=user, catalogue=catalogue, reason=payload.reason)
    return catalogue_out(withdrawn, selectors.valid_until(selectors.catalogue_state()))
