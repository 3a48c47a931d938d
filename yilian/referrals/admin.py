from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from yilian.core.admin import AuditedAdmin
from yilian.core.permissions import Permission
from yilian.referrals.models import ServiceLevel
from yilian.registry.selectors import user_scope


@admin.register(ServiceLevel)
class ServiceLevelAdmin(AuditedAdmin):
    """Referral service levels per consortium and urgency; the defaults apply where none is set."""

    view_permission = Permission.MANAGE_REFERRAL_ROUTING
    change_permission = Permission.MANAGE_REFERRAL_ROUTING
    list_display = [
        "consortium", "urgency", "receive_within_minutes", "decide_within_minutes", "escalate_after_minutes",
        "no_show_grace_minutes",
    ]  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[ServiceLevel]:
        scope = user_scope(request.user)
        qs = super().get_queryset(request).select_related("consortium")
        return qs if scope.is_global else qs.filter(consortium_id__in=scope.consortium_ids)

    def can_change_object(self, request: HttpRequest, obj: Any) -> bool:
        scope = user_scope(request.user)
        return scope.is_global or obj.consortium_id in scope.consortium_ids

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "consortium":
            scope = user_scope(request.user)
            if not scope.is_global:
                from yilian.registry.models import Consortium

                kwargs["queryset"] = Consortium.objects.filter(pk__in=scope.consortium_ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
