"""Stationing in the administration site: read-only lists for looking things up.

Every stationing write goes through ``services`` (their rules, their audit rows) from the pages and
the API; the admin does not bypass them, so nothing here can be added or changed.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from yilian.core.admin import AuditedAdmin
from yilian.core.permissions import Permission
from yilian.dispatch import selectors
from yilian.dispatch.models import Assignment, CalendarDay, Programme, RosterRun


class _ReadOnly(AuditedAdmin):
    view_permission = Permission.VIEW_STATIONING
    change_permission = Permission.MANAGE_STATIONING

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Programme)
class ProgrammeAdmin(_ReadOnly):
    list_display = ["code", "title_zh", "sending_institution", "host_institution", "batch", "starts_on", "status"]
    list_filter = ["status"]
    search_fields = ["code", "title_zh", "title_en"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Programme]:
        return selectors.programme_queryset_visible_to(request.user).select_related(
            "sending_institution", "host_institution"
        )


@admin.register(Assignment)
class AssignmentAdmin(_ReadOnly):
    list_display = ["practitioner", "programme", "host_department", "role", "commitment", "days_per_week", "starts_on"]
    list_filter = ["role", "commitment"]
    search_fields = ["practitioner__name_zh", "practitioner__name_en", "programme__code"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Assignment]:
        return selectors.assignment_queryset_visible_to(request.user).select_related(
            "practitioner", "programme", "host_department"
        )


@admin.register(RosterRun)
class RosterRunAdmin(_ReadOnly):
    list_display = ["programme", "starts_on", "weeks", "status", "demand_missing", "travel_days", "created_at"]
    list_filter = ["status"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RosterRun]:
        visible = selectors.programme_queryset_visible_to(request.user)
        return RosterRun.objects.filter(programme__in=visible).select_related("programme")


@admin.register(CalendarDay)
class CalendarDayAdmin(_ReadOnly):
    list_display = ["date", "is_workday", "name_zh", "name_en"]
    list_filter = ["is_workday"]
    date_hierarchy = "date"
