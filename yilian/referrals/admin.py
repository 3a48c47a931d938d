from __future__ import annotations

from django.contrib import admin

from yilian.core.admin import ConsortiumScopedAdmin
from yilian.core.permissions import Permission
from yilian.referrals.models import ServiceLevel


@admin.register(ServiceLevel)
class ServiceLevelAdmin(ConsortiumScopedAdmin):
    """Referral service levels per consortium and urgency; the defaults apply where none is set."""

    view_permission = Permission.MANAGE_REFERRAL_ROUTING
    change_permission = Permission.MANAGE_REFERRAL_ROUTING
    list_display = [
        "consortium", "urgency", "receive_within_minutes", "decide_within_minutes", "escalate_after_minutes",
        "no_show_grace_minutes",
    ]  # fmt: skip
