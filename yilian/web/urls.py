from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from yilian.web import views

app_name = "web"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("language/", views.set_language, name="set_language"),
    path("consortia/", views.consortium_list, name="consortium_list"),
    path("consortia/<slug:code>/", views.consortium_detail, name="consortium_detail"),
    path("agreements/<slug:code>/document/", views.agreement_document, name="agreement_document"),
    path("institutions/", views.institution_list, name="institution_list"),
    path("institutions/<slug:code>/", views.institution_detail, name="institution_detail"),
    path("practitioners/<str:public_id>/", views.practitioner_detail, name="practitioner_detail"),
    path("search/", views.search, name="search"),
    path("audit/", views.audit_list, name="audit_list"),
]
