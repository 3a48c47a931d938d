from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from yilian.core.admin import AuditedAdmin
from yilian.core.permissions import Permission
from yilian.registry import selectors
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


class DepartmentInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Department
    extra = 0
    fields = ["discipline", "name_zh", "name_en", "is_active"]
    can_delete = False


class CapabilityInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Capability
    extra = 0
    fields = ["kind", "all_hours", "weekdays", "opens_at", "closes_at", "valid_from", "valid_to", "note"]
    can_delete = False


@admin.register(Region)
class RegionAdmin(AuditedAdmin):
    list_display = ["code", "name_zh", "name_en", "level", "parent"]
    search_fields = ["code", "name_zh", "name_en"]
    list_filter = ["level"]
    change_permission = Permission.MANAGE_INSTITUTIONS


@admin.register(Institution)
class InstitutionAdmin(AuditedAdmin):
    list_display = ["code", "name_zh", "name_en", "grade", "type", "region", "is_active"]
    list_filter = ["grade", "type", "is_active"]
    search_fields = ["code", "name_zh", "name_en", "short_name"]
    autocomplete_fields = ["region"]
    inlines = [DepartmentInline, CapabilityInline]
    change_permission = Permission.MANAGE_INSTITUTIONS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Institution]:
        return selectors.institution_queryset_visible_to(request.user).select_related("region")


class MemberInline(admin.TabularInline):  # type: ignore[type-arg]
    model = ConsortiumMember
    extra = 0
    fields = ["institution", "role", "relation", "joined_on", "left_on"]
    autocomplete_fields = ["institution"]
    can_delete = False


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


class PairingInline(admin.TabularInline):  # type: ignore[type-arg]
    model = DepartmentPairing
    extra = 0
    fields = ["kind", "lead_department", "member_department", "label_zh", "label_en"]
    can_delete = False


@admin.register(Agreement)
class AgreementAdmin(AuditedAdmin):
    list_display = ["code", "title_zh", "consortium", "signed_on", "valid_from", "valid_to", "status"]
    list_filter = ["status"]
    search_fields = ["code", "title_zh", "title_en"]
    filter_horizontal = ["parties"]
    inlines = [PairingInline]
    change_permission = Permission.MANAGE_CONSORTIA
    view_permission = Permission.VIEW_AGREEMENTS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agreement]:
        return selectors.agreement_queryset_visible_to(request.user).select_related("consortium")


@admin.register(Practitioner)
class PractitionerAdmin(AuditedAdmin):
    list_display = ["name_zh", "name_en", "title", "institution", "department", "is_active"]
    list_filter = ["title", "is_active"]
    search_fields = ["name_zh", "name_en", "licence_number"]
    autocomplete_fields = ["institution", "user"]
    change_permission = Permission.MANAGE_PRACTITIONERS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Practitioner]:
        return Practitioner.objects.filter(
            institution__in=selectors.institution_queryset_visible_to(request.user)
        ).select_related("institution", "department")


class MembershipInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Membership
    extra = 0
    fk_name = "user"
    fields = ["role", "institution", "consortium", "region", "is_active"]
    can_delete = False


@admin.register(User)
class UserAdmin(DjangoUserAdmin[User], AuditedAdmin):
    list_display = ["username", "display_name", "email", "is_active", "last_login"]
    search_fields = ["username", "display_name", "email"]
    inlines = [MembershipInline]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Profile", {"fields": ("display_name", "email", "language")}),
        ("Status", {"fields": ("is_active", "is_staff", "last_login", "date_joined")}),
    )
    readonly_fields = ["last_login", "date_joined"]
    change_permission = Permission.MANAGE_USERS
    view_permission = Permission.MANAGE_USERS

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        qs: QuerySet[User] = super().get_queryset(request)
        scope = selectors.user_scope(request.user)
        if scope.is_global:
            return qs
        return qs.filter(memberships__institution_id__in=scope.institution_ids).distinct()


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "key_hash", "last_used_at"]
    change_permission = Permission.MANAGE_USERS
    view_permission = Permission.MANAGE_USERS

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # tokens are created with `yilian token create`, which shows the key once
