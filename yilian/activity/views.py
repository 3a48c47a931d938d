"""Activity pages: the import batches with the upload form, one batch's manifest with its
problems, the rejected rows' file and the withdrawal.

The import runs in the upload's request: the file is read, checked and landed (or rejected) before
the answer, so the page works without JavaScript (the form posts, the answer redirects to the
batch). With JavaScript the form is sent by ``activity-upload.js``, which shows the upload's
progress, then polls ``progress`` for the importer's while the request is still running.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from yilian.activity import selectors, services
from yilian.activity.columns import BatchKind
from yilian.activity.forms import (
    BatchFilterForm,
    UploadForm,
    WithdrawForm,
    clean_filename,
    max_upload_bytes,
    staged_file,
)
from yilian.activity.frontpage import read_report
from yilian.activity.models import BatchStatus, ImportBatch
from yilian.core.audit import audit_record
from yilian.core.errors import Conflict
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission
from yilian.registry.models import User
from yilian.registry.selectors import user_scope
from yilian.web.forms import errors_to_form

PAGE_SIZE = 25
# Room for the form's other fields and the multipart framing around the file.
_ENVELOPE_BYTES = 64 * 1024


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False)) and not request.htmx.boosted  # type: ignore[attr-defined]


def _is_xhr(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


def can_import(user: User) -> bool:
    return Permission.IMPORT_ACTIVITY in user_scope(user).permissions


def _require_import(user: User) -> None:
    if not can_import(user):
        raise PermissionDenied(_("You may not import clinical activity."))


def may_withdraw(user: User, batch: ImportBatch) -> bool:
    """A landed batch, all of whose institutions the user may import for (as the service checks)."""
    if batch.status != BatchStatus.LANDED:
        return False
    return set(batch.institution_codes) <= selectors.institution_codes_importable_by(user)


# ----------------------------------------------------------------------------------------
# The list and the upload


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def batches(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    _require_import(user)
    if request.method == "POST":
        return _upload(request, user)
    return _list(request, user, UploadForm())


def _list(
    request: HttpRequest, user: User, form: UploadForm | None, *, status: int = 200, upload_error: str = ""
) -> HttpResponse:
    filters = BatchFilterForm(request.GET or None, auto_id="filter_%s")
    rows = selectors.batch_list_visible_to(user).select_related("uploaded_by")
    if filters.is_valid():
        if filters.cleaned_data["kind"]:
            rows = rows.filter(kind=filters.cleaned_data["kind"])
        if filters.cleaned_data["status"]:
            rows = rows.filter(status=filters.cleaned_data["status"])
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"filters": filters, "page": page, "form": form, "upload_error": upload_error}
    if _is_htmx(request) and request.method == "GET":
        return render(request, "activity/_batch_rows.html", context)
    return render(request, "activity/batches.html", context, status=status)


def _refuse_upload(request: HttpRequest, user: User, form: UploadForm | None, upload_error: str = "") -> HttpResponse:
    status = 413 if upload_error else 400
    if _is_xhr(request):
        html = render(
            request, "activity/_upload_form.html", {"form": form or UploadForm(), "upload_error": upload_error}
        )
        return HttpResponse(html.content, status=status)
    return _list(request, user, form or UploadForm(), status=status, upload_error=upload_error)


def _upload(request: HttpRequest, user: User) -> HttpResponse:
    # A body far beyond the limit is refused before it is read (the form checks the file's exact size).
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = max_upload_bytes()
    if length > limit + _ENVELOPE_BYTES:
        message = _("The file is larger than %(mb)s MB.") % {"mb": limit // (1024 * 1024)}
        return _refuse_upload(request, user, None, message)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _refuse_upload(request, user, form)
    upload = form.cleaned_data["file"]
    try:
        with staged_file(upload) as path:
            result = services.batch_import(
                user=user,
                kind=BatchKind(form.cleaned_data["kind"]),
                path=path,
                filename=clean_filename(upload),
                accept_valid=form.cleaned_data["accept_valid"],
            )
    except ValidationError as exc:
        errors_to_form(form, exc)
        return _refuse_upload(request, user, form)
    batch = result.batch
    url = reverse("activity:batch", args=[batch.public_id])
    if _is_xhr(request):
        return JsonResponse({"url": url, "status": batch.status})
    return redirect(url)


@login_required
@require_GET
def progress(request: HttpRequest) -> JsonResponse:
    """How far the caller's running import of the file named ``name`` has got (the newest of the
    last hour still processing), for the upload page's progress bar; ``{}`` until it has begun."""
    user = _user(request)
    _require_import(user)
    name = request.GET.get("name", "")[:255]
    since = timezone.now() - timedelta(hours=1)
    batch = (
        ImportBatch.objects.filter(
            uploaded_by=user, filename=name, status=BatchStatus.PROCESSING, created_at__gte=since
        )
        .order_by("-created_at")
        .first()
    )
    if batch is None:
        return JsonResponse({})
    return JsonResponse(
        {
            "stage": batch.progress_stage,
            "stage_label": stage_label(batch.progress_stage),
            "done": batch.progress_done,
            "total": batch.progress_total,
        }
    )


def stage_label(stage: str) -> str:
    labels = {
        "reading": _("Reading the file"),
        "validating": _("Checking the rows and pseudonymising patients"),
        "writing": _("Writing the facts"),
        "done": _("Done"),
        "failed": _("Failed"),
    }
    return labels.get(stage, stage)


# ----------------------------------------------------------------------------------------
# One batch


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    status: str
    label: str
    who: str
    note: str


def history(batch: ImportBatch) -> list[HistoryEntry]:
    """The batch's steps from its manifest: uploaded, then landed / rejected / failed, then withdrawn."""
    uploader = str(batch.uploaded_by) if batch.uploaded_by else _("system")
    entries = [HistoryEntry(batch.created_at, "processing", _("Uploaded"), uploader, batch.filename)]
    if batch.landed_at is not None:
        entries.append(HistoryEntry(batch.landed_at, "landed", _("Landed"), "", ""))
    elif batch.status in (BatchStatus.REJECTED, BatchStatus.FAILED):
        label = _("Rejected") if batch.status == BatchStatus.REJECTED else _("Failed")
        entries.append(HistoryEntry(batch.updated_at, batch.status, label, "", batch.failure))
    if batch.withdrawn_at is not None:
        who = str(batch.withdrawn_by) if batch.withdrawn_by else ""
        entries.append(
            HistoryEntry(
                batch.withdrawn_at, "withdrawn", pgettext("import batch", "Withdrawn"), who, batch.withdrawal_reason
            )
        )
    return entries


def _detail(
    request: HttpRequest, batch: ImportBatch, *, withdraw_form: WithdrawForm | None = None, status: int = 200
) -> HttpResponse:
    user = _user(request)
    if _is_htmx(request) and request.GET.get("progress"):
        response = render(request, "activity/_progress.html", {"batch": batch})
        if batch.status != BatchStatus.PROCESSING:
            response["HX-Refresh"] = "true"
        return response
    rows_visible = selectors.may_see_rows(user, batch)
    errors = batch.errors if rows_visible else []
    context: dict[str, Any] = {
        "batch": batch,
        "errors": errors,
        "more_errors": max(batch.errors_total - len(errors), 0),
        "rows_visible": rows_visible,
        "history": history(batch),
        "may_withdraw": may_withdraw(user, batch),
        "institutions": list(batch.institutions.order_by("code")),
        "withdraw_form": withdraw_form or WithdrawForm(),
        "stage_label": stage_label(batch.progress_stage),
        "coverage": sorted((code, ", ".join(months)) for code, months in (batch.coverage or {}).items()),
        "report": read_report(batch.report or {}),
    }
    return render(request, "activity/batch.html", context, status=status)


@login_required
@require_GET
def batch(request: HttpRequest, public_id: str) -> HttpResponse:
    return _detail(request, selectors.access_batch(_user(request), public_id))


@login_required
@require_POST
def withdraw(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    batch = selectors.access_batch(user, public_id)
    form = WithdrawForm(request.POST)
    if not form.is_valid():
        return _detail(request, batch, withdraw_form=form, status=400)
    try:
        services.batch_withdraw(user=user, batch=batch, reason=form.cleaned_data["reason"])
    except ValidationError as exc:
        errors_to_form(form, exc)
        return _detail(request, batch, withdraw_form=form, status=400)
    except Conflict as exc:
        form.add_error(None, str(exc))
        return _detail(request, batch, withdraw_form=form, status=409)
    messages.success(request, _("The batch is withdrawn: its rows no longer count in any indicator."))
    return redirect("activity:batch", public_id=batch.public_id)


@login_required
@require_GET
def rejects(request: HttpRequest, public_id: str) -> FileResponse:
    """The rows an accept-valid import left out, with the reason for each (audited)."""
    user = _user(request)
    batch = selectors.access_batch_rows(user, public_id)
    path = rejects_path(batch)
    if path is None:
        raise Http404(_("This batch has no rejected rows to download."))
    record_rejects_download(user, batch)
    return FileResponse(path.open("rb"), as_attachment=True, filename=rejects_filename(batch), content_type="text/csv")


def record_rejects_download(user: User, batch: ImportBatch) -> None:
    """The rejected rows are the hospital's own export (patient identifiers masked, the rest as
    sent): each download leaves an audit row."""
    with transaction.atomic():
        audit_record(actor=user, action=AuditAction.EXPORT, obj=batch, changes={"export": "rejects"})


def rejects_path(batch: ImportBatch) -> Path | None:
    if not batch.rejects_file:
        return None
    root = Path(settings.ACTIVITY_DIR).resolve()
    path = (root / batch.rejects_file).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def rejects_filename(batch: ImportBatch) -> str:
    stem = Path(batch.filename).stem or "batch"
    return f"{stem}-rejects.csv"
