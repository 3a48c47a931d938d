"""Admin base: access by our named permissions, querysets scoped by selectors, and every
save or deletion recorded in the audit trail (the admin is a write path like any other)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction, AuditEvent
from yilian.core.permissions import Permission


def _has(request: HttpRequest, permission: Permission) -> bool:
    from yilian.registry.selectors import user_has_perm

    return user_has_perm(request.user, permission)


class AuditedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    view_permission: Permission = Permission.USE_ADMIN
    change_permission: Permission = Permission.USE_ADMIN

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _has(request, Permission.USE_ADMIN)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _has(request, Permission.USE_ADMIN) and _has(request, self.view_permission)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _has(request, Permission.USE_ADMIN) and _has(request, self.change_permission)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Nothing is hard-deleted: records are deactivated or closed through their fields.
        return False

    def save_model(self, request: HttpRequest, obj: models.Model, form: ModelForm[Any], change: bool) -> None:
        super().save_model(request, obj, form, change)
        changes = {name: str(form.cleaned_data.get(name)) for name in form.changed_data}
        audit_record(
            actor=request.user,
            action=AuditAction.UPDATE if change else AuditAction.CREATE,
            obj=obj,
            changes={"via": "admin", **changes},
        )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "occurred_at", "actor_label", "ip_address", "action", "object_type", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "object_id", "object_repr"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _has(request, Permission.VIEW_AUDIT) and _has(request, Permission.USE_ADMIN)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        from yilian.registry.selectors import audit_list_visible_to

        return audit_list_visible_to(request.user)


admin.site.site_header = _("Yilian administration")
admin.site.site_title = _("Yilian")
admin.site.index_title = _("Registry and accounts")
