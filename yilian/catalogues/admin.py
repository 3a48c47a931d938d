"""The catalogues in the admin: read-only (versions are loaded and withdrawn through the services,
which check the files and keep the audit trail), scoped to what the user may see."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from yilian.catalogues.models import Catalogue
from yilian.catalogues.selectors import catalogue_list_visible_to
from yilian.core.admin import ReadOnlyAuditedAdmin
from yilian.core.permissions import Permission


@admin.register(Catalogue)
class CatalogueAdmin(ReadOnlyAuditedAdmin):
    view_permission = Permission.MANAGE_CATALOGUES
    change_permission = Permission.MANAGE_CATALOGUES
    list_display = ["kind", "name", "version", "valid_from", "institution", "codes_count", "is_active", "loaded_by"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "version", "filename"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Catalogue]:
        return catalogue_list_visible_to(request.user)
