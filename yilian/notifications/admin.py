from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from yilian.core.admin import AuditedAdmin
from yilian.core.permissions import Permission
from yilian.notifications.models import WebhookDelivery, WebhookEndpoint
from yilian.registry.selectors import user_scope


def _institution_ids(request: HttpRequest) -> frozenset[int] | None:
    scope = user_scope(request.user)
    return None if scope.is_global else scope.institution_ids_with(Permission.MANAGE_WEBHOOKS)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AuditedAdmin):
    change_permission = Permission.MANAGE_WEBHOOKS
    view_permission = Permission.MANAGE_WEBHOOKS
    list_display = ["name", "institution", "kind", "is_active"]
    list_filter = ["kind", "is_active"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        ids = _institution_ids(request)
        qs = super().get_queryset(request).select_related("institution")
        return qs if ids is None else qs.filter(institution_id__in=ids)

    def can_change_object(self, request: HttpRequest, obj: Any) -> bool:
        ids = _institution_ids(request)
        return ids is None or obj.institution_id in ids


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AuditedAdmin):
    """Read-only: what was sent where, how often it was tried and why it failed."""

    view_permission = Permission.MANAGE_WEBHOOKS
    list_display = ["created_at", "endpoint", "status", "attempts", "last_error", "delivered_at"]
    list_filter = ["status"]
    readonly_fields = [
        "endpoint", "payload", "status", "attempts", "last_error", "created_at", "next_attempt_at", "delivered_at",
    ]  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        ids = _institution_ids(request)
        qs = super().get_queryset(request).select_related("endpoint__institution")
        return qs if ids is None else qs.filter(endpoint__institution_id__in=ids)

    def may_write(self, request: HttpRequest) -> bool:
        return False
