from __future__ import annotations

from django.urls import path

from yilian.surveys import results, views

app_name = "surveys"

urlpatterns = [
    path("", views.home, name="home"),
    path("issue/", views.issue, name="issue"),
    path("sms/", views.sms, name="sms"),
    path("staff-links/", views.staff_batch, name="staff_batch"),
    path("posters/", views.posters, name="posters"),
    path("posters/<uuid:public_id>/", views.poster, name="poster"),
    path("posters/<uuid:public_id>/deactivate/", views.poster_deactivate, name="poster_deactivate"),
    path("questionnaires/", views.questionnaires, name="questionnaires"),
    path("questionnaires/<slug:consortium>/<slug:kind>/", views.questionnaire_edit, name="questionnaire"),
    path("results/", results.dashboard, name="results"),
    path("results/export.xlsx", results.export_xlsx, name="results_export"),
]
