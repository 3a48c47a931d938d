from __future__ import annotations

from django.urls import path

from yilian.activity import views

app_name = "activity"

urlpatterns = [
    path("", views.batches, name="batches"),
    path("progress/", views.progress, name="progress"),
    path("<uuid:public_id>/", views.batch, name="batch"),
    path("<uuid:public_id>/withdraw/", views.withdraw, name="withdraw"),
    path("<uuid:public_id>/rejects/", views.rejects, name="rejects"),
]
