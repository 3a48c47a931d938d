"""The import manifest in the admin: read-only (batches change only through the services, which
keep the store and the audit trail in step), scoped to the batches the user may see."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from yilian.activity.models import ImportBatch
from yilian.activity.selectors import batch_list_visible_to
from yilian.core.admin import ReadOnlyAuditedAdmin
from yilian.core.permissions import Permission


@admin.register(ImportBatch)
class ImportBatchAdmin(ReadOnlyAuditedAdmin):
    view_permission = Permission.IMPORT_ACTIVITY
    change_permission = Permission.IMPORT_ACTIVITY
    list_display = [
        "seq", "kind", "filename", "status", "rows_total", "rows_landed", "rows_rejected", "rows_replaced",
        "uploaded_by", "created_at",
    ]  # fmt: skip
    list_filter = ["kind", "status"]
    search_fields = ["filename", "file_sha256"]
    exclude = ["institutions"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ImportBatch]:
        return batch_list_visible_to(request.user)
