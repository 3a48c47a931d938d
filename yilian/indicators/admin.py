from __future__ import annotations

from django.contrib import admin

from yilian.core.admin import AuditedAdmin
from yilian.core.permissions import Permission
from yilian.indicators.models import Indicator


@admin.register(Indicator)
class IndicatorAdmin(AuditedAdmin):
    """Indicator definitions: names, definitions in words, numerator and denominator (the definition
    language of docs/indicators.md, checked on save), target. Deactivate rather than delete."""

    view_permission = Permission.VIEW_INDICATORS
    change_permission = Permission.MANAGE_INDICATORS
    list_display = ["code", "name_zh", "name_en", "programme", "unit", "target", "is_active", "position"]
    list_filter = ["programme", "is_active"]
    search_fields = ["code", "name_zh", "name_en"]
    ordering = ["position", "code"]
