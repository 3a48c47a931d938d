from __future__ import annotations

from django.urls import path

from yilian.capability import views

app_name = "capability"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("techniques/", views.technique_list, name="techniques"),
    path("techniques/new/", views.technique_create, name="technique_create"),
    path("techniques/<slug:code>/edit/", views.technique_edit, name="technique_edit"),
    path("ledger/", views.ledger_list, name="ledgers"),
    path("ledger/new/", views.ledger_open, name="ledger_open"),
    path("ledger/<uuid:public_id>/", views.ledger_detail, name="ledger"),
    path("ledger/<uuid:public_id>/cases/", views.case_add, name="case_add"),
    path("ledger/<uuid:public_id>/collect/", views.ledger_collect, name="collect"),
    path("ledger/<uuid:public_id>/cases/<uuid:case_id>/advance/", views.case_advance, name="advance"),
    path("ledger/<uuid:public_id>/privileges/", views.privilege_grant, name="privilege_grant"),
    path("firsts/", views.first_list, name="firsts"),
    path("firsts/new/", views.first_claim, name="first_claim"),
    path("firsts/<uuid:public_id>/", views.first_detail, name="first"),
    path("firsts/<uuid:public_id>/verify/", views.first_verify, name="first_verify"),
    path("teaching/", views.teaching_list, name="teaching_list"),
    path("teaching/new/", views.teaching_create, name="teaching_create"),
    path("teaching/<uuid:public_id>/", views.teaching_detail, name="teaching"),
    path("teaching/<uuid:public_id>/sign-in/", views.sign_in, name="sign_in"),
    path("teaching/<uuid:public_id>/sign-in/start/", views.sign_in_start, name="sign_in_start"),
    path("teaching/<uuid:public_id>/sign-in/panel/", views.sign_in_panel, name="sign_in_panel"),
    path("teaching/<uuid:public_id>/sign-in/stop/", views.sign_in_stop, name="sign_in_stop"),
    path("teaching/<uuid:public_id>/attendees/", views.attendee_add, name="attendee_add"),
    path("training/", views.training_list, name="training_list"),
    path("training/new/", views.training_create, name="training_create"),
    path("training/<uuid:public_id>/", views.training_detail, name="training"),
    path("training/<uuid:public_id>/milestones/", views.milestone_add, name="milestone_add"),
    path("training/<uuid:public_id>/mentees/", views.mentee_add, name="mentee_add"),
    path("mentees/<uuid:public_id>/", views.mentee_detail, name="mentee"),
    path("mentees/<uuid:public_id>/assessments/", views.assessment_add, name="assessment_add"),
    path(
        "mentees/<uuid:public_id>/assessments/<uuid:assessment_id>/sign-off/",
        views.assessment_sign_off,
        name="sign_off",
    ),
]
