from __future__ import annotations

from django.urls import path

from yilian.referrals import green_admin_views, green_stream, green_views, views

app_name = "referrals"

urlpatterns = [
    path("", views.board, name="board"),
    path("new/", views.create, name="create"),
    path("<uuid:public_id>/", views.detail, name="detail"),
    path("<uuid:public_id>/edit/", views.edit_draft, name="edit"),
    path("<uuid:public_id>/act/<slug:action>/", views.act, name="act"),
    path("<uuid:public_id>/attachments/", views.attachment_upload, name="attachment_upload"),
    path("<uuid:public_id>/attachments/<uuid:attachment_id>/", views.attachment_download, name="attachment"),
    path("<uuid:public_id>/slip/", views.slip, name="slip"),
    path("patients/<uuid:public_id>/", views.patient_detail, name="patient"),
    # Green channel (绿色通道)
    path("green/", green_views.board, name="green_board"),
    path("green/rows/", green_views.board_rows, name="green_board_rows"),
    path("green/events/", green_stream.board_events, name="green_events"),
    path("green/new/", green_views.activate, name="green_activate"),
    path("green/new/destinations/", green_views.destinations, name="green_destinations"),
    path("green/<uuid:public_id>/", green_views.case, name="green_case"),
    path("green/<uuid:public_id>/act/<slug:action>/", green_views.act, name="green_act"),
    path("green/<uuid:public_id>/node/", green_views.node, name="green_node"),
    path("green/<uuid:public_id>/files/", green_views.files, name="green_files"),
    path("green/protocols/", green_admin_views.protocols, name="green_protocols"),
    path("green/protocols/<uuid:public_id>/", green_admin_views.protocol_edit, name="green_protocol"),
    path("green/settings/", green_admin_views.settings, name="green_settings"),
    path("green/report/", green_admin_views.report, name="green_report"),
]
