from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from yilian.core.admin import REDACTED, AuditedAdmin, AuditedInline
from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission
from yilian.registry import selectors, services
from yilian.registry.models import (
    Agreement,
    ApiToken,
    Capability,
    Consortium,
    ConsortiumMember,
    Department,
    DepartmentPairing,
    Institution,
    Membership,
    Practitioner,
    Region,
    User,
)


class SystemAdminOnly:
    """Accounts, roles and tokens: only system administrators, whatever else a user holds
    (permissions of several roles must not combine into the power to grant roles)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return selectors.user_scope(request.user).is_global

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return selectors.user_scope(request.user).is_global

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return selectors.user_scope(request.user).is_global

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return selectors.user_scope(request.user).is_global


class AgreementForm(forms.ModelForm):  # type: ignore[type-arg]
    def clean_status(self) -> str:
        new = str(self.cleaned_data["status"])
        if self.instance.pk:
            services.check_agreement_transition(self.instance.status, new)  # the service's own table
        return new


class DepartmentInline(AuditedInline):
    model = Department
    change_permission = Permission.MANAGE_INSTITUTIONS
    fields = ["discipline", "name_zh", "name_en", "is_active"]


class CapabilityInline(AuditedInline):
    model = Capability
    change_permission = Permission.MANAGE_INSTITUTIONS
    fields = ["kind", "all_hours", "weekdays", "opens_at", "closes_at", "valid_from", "valid_to", "note"]


@admin.register(Region)
class RegionAdmin(AuditedAdmin):
    list_display = ["code", "name_zh", "name_en", "level", "parent"]
    search_fields = ["code", "name_zh", "name_en"]
    list_filter = ["level"]
    change_permission = Permission.MANAGE_INSTITUTIONS

    def may_write(self, request: HttpRequest) -> bool:
        # Administrative divisions are national data: only system administrators edit them.
        return selectors.user_scope(request.user).is_global


@admin.register(Institution)
class InstitutionAdmin(AuditedAdmin):
    list_display = ["code", "name_zh", "name_en", "grade", "type", "region", "is_active"]
    list_filter = ["grade", "type", "is_active"]
    search_fields = ["code", "name_zh", "name_en", "short_name", "org_code", "uscc", "licence_no"]
    autocomplete_fields = ["region"]
    inlines = [DepartmentInline, CapabilityInline]
    change_permission = Permission.MANAGE_INSTITUTIONS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Institution]:
        return selectors.institution_queryset_visible_to(request.user).select_related("region")

    def can_change_object(self, request: HttpRequest, obj: Any) -> bool:
        if obj.pk is None:  # the office registers new partners
            return True
        return selectors.institution_queryset_managed_by(request.user).filter(pk=obj.pk).exists()


class MemberInline(AuditedInline):
    model = ConsortiumMember
    change_permission = Permission.MANAGE_CONSORTIA
    readonly_fields = ["role"]  # the lead is set when the consortium is created

    def check_row(self, request: HttpRequest, row: Any) -> None:
        if row.pk is None:
            services.check_admission(cast(User, request.user), row.institution)

    fields = ["institution", "role", "relation", "joined_on", "left_on"]
    autocomplete_fields = ["institution"]


@admin.register(Consortium)
class ConsortiumAdmin(AuditedAdmin):
    list_display = ["code", "name_zh", "type", "lead_institution", "established_on", "is_active"]
    list_filter = ["type", "is_active"]
    search_fields = ["code", "name_zh", "name_en"]
    autocomplete_fields = ["lead_institution", "region"]
    inlines = [MemberInline]
    change_permission = Permission.MANAGE_CONSORTIA

    def get_queryset(self, request: HttpRequest) -> QuerySet[Consortium]:
        return selectors.consortium_queryset_visible_to(request.user).select_related("lead_institution")

    def can_change_object(self, request: HttpRequest, obj: Any) -> bool:
        managed = selectors.consortium_ids_managed_by(request.user)
        return managed is None or (obj.pk is not None and obj.pk in managed)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return selectors.user_scope(request.user).is_global  # consortia are founded by the platform

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if selectors.user_scope(request.user).is_global else ["lead_institution", "code"]


class PairingInline(AuditedInline):
    model = DepartmentPairing
    change_permission = Permission.MANAGE_CONSORTIA
    raw_id_fields = ["lead_department", "member_department"]  # never list every department in the country
    fields = ["kind", "lead_department", "member_department", "label_zh", "label_en"]


@admin.register(Agreement)
class AgreementAdmin(AuditedAdmin):
    form = AgreementForm
    list_display = ["code", "title_zh", "consortium", "signed_on", "valid_from", "valid_to", "status"]
    list_filter = ["status"]
    search_fields = ["code", "title_zh", "title_en"]
    filter_horizontal = ["parties"]
    inlines = [PairingInline]
    change_permission = Permission.MANAGE_CONSORTIA
    view_permission = Permission.VIEW_AGREEMENTS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agreement]:
        return selectors.agreement_queryset_visible_to(request.user).select_related("consortium")

    def can_change_object(self, request: HttpRequest, obj: Any) -> bool:
        managed = selectors.consortium_ids_managed_by(request.user)
        return managed is None or obj.consortium_id in managed


@admin.register(Practitioner)
class PractitionerAdmin(AuditedAdmin):
    list_display = ["name_zh", "name_en", "title", "institution", "department", "is_active"]
    list_filter = ["title", "is_active"]
    search_fields = ["name_zh", "name_en"]
    autocomplete_fields = ["institution", "user"]
    change_permission = Permission.MANAGE_PRACTITIONERS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Practitioner]:
        return Practitioner.objects.filter(
            institution__in=selectors.institution_queryset_visible_to(request.user)
        ).select_related("institution", "department")

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Licence numbers are entered once; afterwards they are shown, with an audit row, only
        # on the practitioner page to those entitled to them.
        return [] if obj is None else ["licence_number"]

    def can_change_object(self, request: HttpRequest, obj: Any) -> bool:
        return selectors.manages_staff_of(request.user, obj.institution_id)


class MembershipInline(AuditedInline):
    model = Membership
    change_permission = Permission.MANAGE_USERS
    fk_name = "user"
    fields = ["role", "institution", "consortium", "region", "is_active"]


@admin.register(User)
class UserAdmin(SystemAdminOnly, DjangoUserAdmin[User], AuditedAdmin):
    list_display = ["username", "display_name", "email", "is_active", "last_login"]
    search_fields = ["username", "display_name", "email"]
    inlines = [MembershipInline]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Profile"), {"fields": ("display_name", "email", "language")}),
        (_("Status"), {"fields": ("is_active", "is_staff", "last_login", "date_joined")}),
    )
    readonly_fields = ["last_login", "date_joined"]
    change_permission = Permission.MANAGE_USERS
    view_permission = Permission.MANAGE_USERS

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        qs: QuerySet[User] = super().get_queryset(request)
        scope = selectors.user_scope(request.user)
        if scope.is_global:
            return qs
        return qs.filter(memberships__institution_id__in=scope.admin_institution_ids).distinct()

    def can_change_object(self, request: HttpRequest, obj: Any) -> bool:
        scope = selectors.user_scope(request.user)
        if scope.is_global:
            return True
        # A hospital administrator manages accounts that hold roles only at their institution.
        held = set(obj.memberships.values_list("institution_id", flat=True))
        return bool(held) and held <= set(scope.admin_institution_ids)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> Any:
        """Django's password form, in one transaction with its audit row (never the password)."""
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                user = User.objects.get(pk=id)
                audit_record(
                    actor=request.user,
                    action=AuditAction.UPDATE,
                    obj=user,
                    changes={"via": "admin", "password": REDACTED},
                )
        return response


@admin.register(ApiToken)
class ApiTokenAdmin(SystemAdminOnly, AuditedAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "key_hash", "last_used_at"]
    change_permission = Permission.MANAGE_USERS
    view_permission = Permission.MANAGE_USERS

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # tokens are created with `yilian token create`, which shows the key once
