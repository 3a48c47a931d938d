from __future__ import annotations

import datetime as dt

from django.urls import path, register_converter

from yilian.dispatch import views

app_name = "dispatch"


class IsoDateConverter:
    """A day in the address as YYYY-MM-DD; anything else is no page (404)."""

    regex = r"\d{4}-\d{2}-\d{2}"

    def to_python(self, value: str) -> dt.date:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(value) from None

    def to_url(self, value: dt.date) -> str:
        return value.isoformat()


register_converter(IsoDateConverter, "isodate")

urlpatterns = [
    path("", views.programme_list, name="list"),
    path("new/", views.programme_create, name="create"),
    path("my-week/", views.my_week, name="my_week"),
    path("calendar/", views.calendar, name="calendar"),
    path("feeds/<uuid:public_id>.ics", views.feed, name="feed"),
    path("my-week/feed/reset/", views.feed_reset, name="feed_reset"),
    path("assignments/<uuid:public_id>/", views.assignment_detail, name="assignment"),
    path("assignments/<uuid:public_id>/edit/", views.assignment_edit, name="assignment_edit"),
    path("assignments/<uuid:public_id>/withdraw/", views.assignment_withdraw, name="withdraw"),
    path("assignments/<uuid:public_id>/leave/", views.leave_add, name="leave_add"),
    path("assignments/<uuid:public_id>/leave/<uuid:leave_id>/remove/", views.leave_remove, name="leave_remove"),
    path("assignments/<uuid:public_id>/attendance/", views.attendance_record, name="attendance_record"),
    path("assignments/<uuid:public_id>/check-in/", views.check_in, name="check_in"),
    path("assignments/<uuid:public_id>/log/<isodate:day>/", views.work_log, name="work_log"),
    path("<slug:code>/", views.programme_detail, name="programme"),
    path("<slug:code>/status/", views.programme_status, name="programme_status"),
    path("<slug:code>/edit/", views.programme_edit, name="programme_edit"),
    path("<slug:code>/objectives/", views.objective_add, name="objective_add"),
    path("<slug:code>/objectives/<uuid:objective_id>/remove/", views.objective_remove, name="objective_remove"),
    path("<slug:code>/demand/", views.demand_set, name="demand_set"),
    path("<slug:code>/assignments/", views.assignment_create, name="assignment_create"),
    path("<slug:code>/roster/", views.roster, name="roster"),
    path("<slug:code>/roster/fix/", views.roster_fix, name="roster_fix"),
    path("<slug:code>/roster/optimise/", views.roster_optimise, name="roster_optimise"),
    path("<slug:code>/roster.xlsx", views.roster_export, name="roster_export"),
    path("<slug:code>/attendance/", views.attendance_report, name="attendance"),
    path("<slug:code>/attendance.xlsx", views.attendance_export, name="attendance_export"),
]
