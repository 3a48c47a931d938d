"""The activity-import API: the batches the caller may see, importing a file, one batch's manifest
with its problems, the rejected rows' file and the withdrawal.

An import runs in the request: the answer comes once the file is landed (201) or rejected (422,
with every problem by row and column, the first ones when there are many). Files of at most
``forms.max_upload_bytes()`` (512 MB by default) are accepted.
"""

import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _
from ninja import File, Query, Router, Schema, Status, UploadedFile
from ninja.pagination import paginate
from ninja.params import Form

from yilian.activity import schemas, selectors, services
from yilian.activity.columns import BatchKind
from yilian.activity.forms import check_upload, clean_filename, staged_file
from yilian.activity.models import BatchStatus, ImportBatch
from yilian.activity.views import can_import, record_rejects_download, rejects_filename, rejects_path
from yilian.registry.api import ERRORS as REGISTRY_ERRORS
from yilian.registry.api import Pagination
from yilian.registry.models import User

router = Router(tags=["activity"])

ERRORS: dict[int, type[Schema]] = {**REGISTRY_ERRORS, 422: schemas.ImportRejectedOut}


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def _require_import(user: User) -> None:
    if not can_import(user):
        raise PermissionDenied(_("You may not import clinical activity."))


def batch_out(batch: ImportBatch, *, detail: bool = False, rows_visible: bool = True) -> dict[str, Any]:
    """``rows_visible`` False (``selectors.may_see_rows``): no problems (they quote the rows' values)
    and no link to the rejected rows."""
    out: dict[str, Any] = {
        "id": batch.public_id,
        "seq": batch.seq,
        "kind": batch.kind,
        "filename": batch.filename,
        "file_sha256": batch.file_sha256,
        "status": batch.status,
        "accept_valid": batch.accept_valid,
        "uploaded_by": batch.uploaded_by.get_username() if batch.uploaded_by else None,
        "created_at": batch.created_at,
        "landed_at": batch.landed_at,
        "rows_total": batch.rows_total,
        "rows_landed": batch.rows_landed,
        "rows_rejected": batch.rows_rejected,
        "rows_replaced": batch.rows_replaced,
        "errors_total": batch.errors_total,
        "institutions": list(batch.institution_codes),
        "date_from": batch.date_from,
        "date_to": batch.date_to,
        "progress": {"stage": batch.progress_stage, "done": batch.progress_done, "total": batch.progress_total},
        "rejects_url": (
            reverse("api:activity_batch_rejects", kwargs={"public_id": batch.public_id})
            if batch.rejects_file and rows_visible
            else None
        ),
        "withdrawn_by": batch.withdrawn_by.get_username() if batch.withdrawn_by else None,
        "withdrawn_at": batch.withdrawn_at,
        "withdrawal_reason": batch.withdrawal_reason,
    }
    if detail:
        out["coverage"] = dict(batch.coverage or {})
        out["ignored_columns"] = list(batch.ignored_columns or [])
        out["report"] = dict(batch.report or {})
        out["errors"] = list(batch.errors or []) if rows_visible else []
        out["failure"] = batch.failure
    return out


class BatchFilters(Schema):
    kind: BatchKind | None = None
    status: BatchStatus | None = None


@router.get(
    "/activity/batches",
    response={200: list[schemas.BatchOut], **ERRORS},
    summary="Import batches the caller may see, newest first",
)
@paginate(Pagination)
def batch_list(request: HttpRequest, filters: Query[BatchFilters]) -> Any:
    """Batches of the institutions the caller may import for, and the ones they uploaded."""
    user = _user(request)
    _require_import(user)
    rows = selectors.batch_list_visible_to(user)
    if filters.kind:
        rows = rows.filter(kind=filters.kind)
    if filters.status:
        rows = rows.filter(status=filters.status)
    # Only the page asked for is turned into rows (the paginator slices, and counts in the database).
    return _Page(rows, lambda b: batch_out(b, rows_visible=selectors.may_see_rows(user, b)))


class _Page:
    """A queryset seen through a function: sliced and counted by the paginator, mapped per page."""

    def __init__(self, queryset: QuerySet[ImportBatch], out: Callable[[ImportBatch], dict[str, Any]]) -> None:
        self.queryset = queryset
        self.out = out

    def all(self) -> QuerySet[ImportBatch]:
        return self.queryset.all()

    def __getitem__(self, page: slice) -> list[dict[str, Any]]:
        return [self.out(b) for b in self.queryset[page]]


@router.post(
    "/activity/batches",
    response={201: schemas.BatchDetailOut, **ERRORS},
    summary="Import a file of discharges, operations, visits or national front pages",
)
def batch_create(
    request: HttpRequest,
    kind: Form[BatchKind],
    file: File[UploadedFile],
    accept_valid: Form[bool] = False,
) -> Status[Any]:
    """multipart/form-data with ``kind``, ``file`` (.csv in UTF-8, GB18030 or UTF-16, .xlsx, or a
    FHIR R4B Bundle as .json) and ``accept_valid``. ``kind`` ``frontpages``: a national front-page
    export (2019 interface codes, TCM or provincial pinyin codes, or Chinese names), one row per stay
    with its operations in numbered columns; it lands as discharges and operations. 201: the batch
    landed (with ``accept_valid``, the rows left out are at ``rejects_url``). 422: the file was
    rejected whole; nothing was imported."""
    user = _user(request)
    _require_import(user)
    upload = check_upload(file)
    with staged_file(upload) as path:
        result = services.batch_import(
            user=user, kind=kind, path=path, filename=clean_filename(upload), accept_valid=accept_valid
        )
    batch = result.batch
    if batch.status != BatchStatus.LANDED:
        body = {
            "detail": _("The file was rejected: nothing was imported."),
            "errors": list(batch.errors or []),
            "error_count": batch.errors_total,
            "batch": batch_out(batch, detail=True),
        }
        return Status(422, body)
    return Status(201, batch_out(batch, detail=True))


@router.get("/activity/batches/{public_id}", response={200: schemas.BatchDetailOut, **ERRORS})
def batch_detail(request: HttpRequest, public_id: uuid.UUID) -> dict[str, Any]:
    """The manifest of one batch with the problems found in its file (the first ones)."""
    user = _user(request)
    batch = selectors.access_batch(user, str(public_id))
    return batch_out(batch, detail=True, rows_visible=selectors.may_see_rows(user, batch))


@router.get(
    "/activity/batches/{public_id}/rejects",
    response=ERRORS,
    url_name="activity_batch_rejects",
    openapi_extra={
        "responses": {
            200: {
                "description": "The rows left out, with the reason for each, as CSV (UTF-8 with BOM). Audited.",
                "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
            }
        }
    },
)
def batch_rejects(request: HttpRequest, public_id: uuid.UUID) -> FileResponse:
    user = _user(request)
    batch = selectors.access_batch_rows(user, str(public_id))
    path = rejects_path(batch)
    if path is None:
        raise Http404(_("This batch has no rejected rows to download."))
    record_rejects_download(user, batch)
    return FileResponse(path.open("rb"), as_attachment=True, filename=rejects_filename(batch), content_type="text/csv")


@router.post("/activity/batches/{public_id}/withdraw", response={200: schemas.BatchDetailOut, **ERRORS})
def batch_withdraw(request: HttpRequest, public_id: uuid.UUID, payload: schemas.BatchWithdrawIn) -> dict[str, Any]:
    """Withdraw a landed batch: its rows stop counting, the records it replaced count again. 409 when
    the batch is not landed (rejected, failed or already withdrawn)."""
    user = _user(request)
    batch = selectors.access_batch(user, str(public_id))
    withdrawn = services.batch_withdraw(user=user, batch=batch, reason=payload.reason)
    return batch_out(withdrawn, detail=True, rows_visible=selectors.may_see_rows(user, withdrawn))
