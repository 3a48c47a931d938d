from __future__ import annotations

from django.urls import path

from yilian.referrals import views

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
]
