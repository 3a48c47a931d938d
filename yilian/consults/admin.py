from __future__ import annotations

from django.contrib import admin

from yilian.consults.models import ServiceLevel
from yilian.core.admin import ConsortiumScopedAdmin
from yilian.core.permissions import Permission


@admin.register(ServiceLevel)
class ServiceLevelAdmin(ConsortiumScopedAdmin):
    """Consult service levels per consortium, kind and urgency; the defaults apply where none is set."""

    view_permission = Permission.OVERSEE_CONSULTS
    change_permission = Permission.OVERSEE_CONSULTS
    list_display = [
        "consortium", "kind", "urgency", "reading_type", "accept_within_minutes", "answer_within_minutes",
        "escalate_after_minutes",
    ]  # fmt: skip
