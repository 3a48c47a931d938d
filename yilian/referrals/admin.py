from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from yilian.core.admin import AuditedInline, ConsortiumScopedAdmin
from yilian.core.permissions import Permission
from yilian.referrals import protocols
from yilian.referrals.models import GreenProtocol, GreenProtocolVersion, GreenSettings, ServiceLevel, TravelTime


@admin.register(ServiceLevel)
class ServiceLevelAdmin(ConsortiumScopedAdmin):
    """Referral service levels per consortium and urgency; the defaults apply where none is set."""

    view_permission = Permission.MANAGE_REFERRAL_ROUTING
    change_permission = Permission.MANAGE_REFERRAL_ROUTING
    list_display = [
        "consortium", "urgency", "receive_within_minutes", "decide_within_minutes", "escalate_after_minutes",
        "no_show_grace_minutes",
    ]  # fmt: skip


class GreenProtocolVersionInline(AuditedInline):
    """The versions of a protocol, read only: a new version is written by editing the protocol on
    its page (the service checks the definition), and cases keep the version they started with."""

    model = GreenProtocolVersion
    change_permission = Permission.MANAGE_REFERRAL_ROUTING
    fields = ["version", "created_at", "created_by", "note", "summary"]
    readonly_fields = ["version", "created_at", "created_by", "note", "summary"]
    ordering = ["-version"]

    @admin.display(description=_("definition"))
    def summary(self, obj: GreenProtocolVersion) -> str:
        try:
            definition = protocols.parse(obj.definition)
        except ValueError:
            return "—"
        windows = ", ".join(
            f"{w.code} {w.hours:g} h" + (f" ({w.extended_hours:g} h)" if w.extended_hours else "")
            for w in definition.windows
        )
        targets = ", ".join(f"{m.code} ≤ {m.target_minutes}" for m in definition.metrics if m.target_minutes)
        return " · ".join(part for part in (", ".join(definition.capabilities), windows, targets) if part)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(GreenProtocol)
class GreenProtocolAdmin(ConsortiumScopedAdmin):
    """A consortium's green-channel protocols: name, order and whether in use. What a protocol
    requires is edited on the protocols page, which writes a new version."""

    view_permission = Permission.MANAGE_REFERRAL_ROUTING
    change_permission = Permission.MANAGE_REFERRAL_ROUTING
    list_display = ["consortium", "code", "name_zh", "name_en", "is_active", "position"]
    list_filter = ["consortium", "is_active"]
    search_fields = ["code", "name_zh", "name_en"]
    fields = ["consortium", "code", "name_zh", "name_en", "is_active", "position"]
    readonly_fields = ["consortium", "code"]
    inlines = [GreenProtocolVersionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a consortium gets the default protocols; each needs a checked first version


@admin.register(GreenSettings)
class GreenSettingsAdmin(ConsortiumScopedAdmin):
    """How a consortium estimates arrival times without a travel-time matrix, and how long a
    destination has to answer a green-channel offer."""

    view_permission = Permission.MANAGE_REFERRAL_ROUTING
    change_permission = Permission.MANAGE_REFERRAL_ROUTING
    list_display = ["consortium", "road_factor", "average_speed_kmh", "offer_timeout_minutes"]
    fields = ["consortium", "road_factor", "average_speed_kmh", "offer_timeout_minutes"]


@admin.register(TravelTime)
class TravelTimeAdmin(ConsortiumScopedAdmin):
    """Imported road travel times between two institutions; a matrix is imported (whole or not at
    all) on the green-channel settings page, single minutes can be corrected here."""

    view_permission = Permission.MANAGE_REFERRAL_ROUTING
    change_permission = Permission.MANAGE_REFERRAL_ROUTING
    list_display = ["consortium", "from_institution", "to_institution", "minutes", "imported_at"]
    list_filter = ["consortium"]
    search_fields = ["from_institution__code", "to_institution__code", "from_institution__name_zh"]
    fields = ["consortium", "from_institution", "to_institution", "minutes", "imported_at"]
    readonly_fields = ["consortium", "from_institution", "to_institution", "imported_at"]
    list_select_related = ["consortium", "from_institution", "to_institution"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
