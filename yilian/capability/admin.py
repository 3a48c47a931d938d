from __future__ import annotations

from django.contrib import admin

from yilian.capability.models import Technique


@admin.register(Technique)
class TechniqueAdmin(admin.ModelAdmin[Technique]):
    list_display = ("code", "name_zh", "operation_code", "level", "restricted", "discipline", "is_active")
    list_filter = ("discipline", "level", "restricted")
    search_fields = ("code", "name_zh", "name_en", "operation_code")
