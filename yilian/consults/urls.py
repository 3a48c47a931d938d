from __future__ import annotations

from django.urls import path

from yilian.consults import views

app_name = "consults"

urlpatterns = [
    path("", views.queue, name="list"),
    path("new/", views.new, name="new"),
    path("figures/", views.figures, name="figures"),
    path("meetings/", views.calendar, name="calendar"),
    path("meetings/new/", views.meeting_new, name="meeting_new"),
    path("meetings/<uuid:public_id>/", views.meeting, name="meeting"),
    path("meetings/<uuid:public_id>/invite.ics", views.meeting_ics, name="meeting_ics"),
    path("meetings/<uuid:public_id>/<str:action>/", views.meeting_act, name="meeting_act"),
    path("<uuid:public_id>/", views.detail, name="detail"),
    path("<uuid:public_id>/report/", views.report, name="report"),
    path("<uuid:public_id>/message/", views.message, name="message"),
    path("<uuid:public_id>/opinion/", views.opinion, name="opinion"),
    path("<uuid:public_id>/attach/", views.attach, name="attach"),
    path("<uuid:public_id>/files/<uuid:attachment_id>/", views.attachment, name="attachment"),
    path("<uuid:public_id>/act/<str:action>/", views.act, name="act"),
]
