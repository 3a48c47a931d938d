"""Admin base: access by our named permissions, querysets scoped by selectors, and every
save recorded in the audit trail (the admin is a write path like any other).

Rules: nothing is deleted through the admin; secrets (password fields) never reach the
audit trail, only the fact that they changed; a row may be changed only by someone whose
write scope reaches it (``can_change_object``), which may be narrower than what they see.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction, AuditEvent
from yilian.core.permissions import Permission

SECRET_MARKERS = ("password", "secret", "token", "key_hash")
REDACTED = "[changed, not recorded]"


def _has(request: HttpRequest, permission: Permission) -> bool:
    from yilian.registry.selectors import user_has_perm

    return user_has_perm(request.user, permission)


def form_changes(form: ModelForm[Any]) -> dict[str, str]:
    """The changed fields of a form as text, with secrets redacted."""
    return {
        name: REDACTED if any(marker in name for marker in SECRET_MARKERS) else str(form.cleaned_data.get(name))
        for name in form.changed_data
    }


class AuditedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    view_permission: Permission = Permission.USE_ADMIN
    change_permission: Permission = Permission.USE_ADMIN

    def can_change_object(self, request: HttpRequest, obj: Any) -> bool:
        """Whether this user's write scope reaches ``obj``; subclasses narrow it."""
        return True

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _has(request, Permission.USE_ADMIN)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _has(request, Permission.USE_ADMIN) and _has(request, self.view_permission)

    def may_write(self, request: HttpRequest) -> bool:
        return _has(request, Permission.USE_ADMIN) and _has(request, self.change_permission)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.may_write(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not self.may_write(request):
            return False
        return obj is None or self.can_change_object(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Nothing is hard-deleted: records are deactivated or closed through their fields.
        return False

    def save_model(self, request: HttpRequest, obj: models.Model, form: ModelForm[Any], change: bool) -> None:
        # The write scope is judged on the row as it will be saved, not only as it was: moving a
        # practitioner to, or creating an agreement in, someone else's consortium is refused.
        if not self.can_change_object(request, obj):
            raise PermissionDenied(_("This change would reach outside what you may manage."))
        super().save_model(request, obj, form, change)
        audit_record(
            actor=request.user,
            action=AuditAction.UPDATE if change else AuditAction.CREATE,
            obj=obj,
            changes={"via": "admin", **form_changes(form)},
        )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        inline = next(
            (
                i
                for i in self.get_inline_instances(request)
                if isinstance(i, AuditedInline) and i.model is formset.model
            ),
            None,
        )
        new_rows = {id(row) for row in formset.forms if row.instance.pk is None}
        for row in formset.forms:
            if row.has_changed() and inline is not None and row.is_valid():
                inline.check_row(request, row.save(commit=False))
        super().save_formset(request, form, formset, change)
        for row in formset.forms:
            if row.has_changed() and row.instance.pk is not None:
                audit_record(
                    actor=request.user,
                    action=AuditAction.CREATE if id(row) in new_rows else AuditAction.UPDATE,
                    obj=row.instance,
                    changes={"via": "admin", **form_changes(row)},
                )


class ReadOnlyAuditedAdmin(AuditedAdmin):
    """Rows that change only through their services (which keep files and the audit trail in step):
    every field shown, nothing added, changed or deleted here."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ConsortiumScopedAdmin(AuditedAdmin):
    """Rows that belong to one consortium (``consortium`` field): an office sees and changes its own
    consortia's only, and picks among them when adding."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        from yilian.registry.selectors import user_scope

        scope = user_scope(request.user)
        qs = super().get_queryset(request).select_related("consortium")
        return qs if scope.is_global else qs.filter(consortium_id__in=scope.consortium_ids)

    def can_change_object(self, request: HttpRequest, obj: Any) -> bool:
        from yilian.registry.selectors import user_scope

        scope = user_scope(request.user)
        return scope.is_global or obj.consortium_id in scope.consortium_ids

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "consortium":
            from yilian.registry.models import Consortium
            from yilian.registry.selectors import user_scope

            scope = user_scope(request.user)
            if not scope.is_global:
                kwargs["queryset"] = Consortium.objects.filter(pk__in=scope.consortium_ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class AuditedInline(admin.TabularInline):  # type: ignore[type-arg]
    """Inline rows follow the parent's rights (our roles, not Django's per-model permissions);
    their saves are audited by ``AuditedAdmin.save_formset``."""

    extra = 0
    can_delete = False
    change_permission: Permission = Permission.USE_ADMIN

    def _allowed(self, request: HttpRequest, obj: Any) -> bool:
        if not (_has(request, Permission.USE_ADMIN) and _has(request, self.change_permission)):
            return False
        parent_admin = admin.site._registry.get(self.parent_model)
        if obj is not None and isinstance(parent_admin, AuditedAdmin):
            return parent_admin.can_change_object(request, obj)
        return True

    def check_row(self, request: HttpRequest, row: Any) -> None:
        """Refuse (PermissionDenied) a new or changed row this user may not write; subclasses add rules."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _has(request, Permission.USE_ADMIN)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
