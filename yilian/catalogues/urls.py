from __future__ import annotations

from django.urls import path

from yilian.catalogues import views

app_name = "catalogues"

urlpatterns = [
    path("", views.catalogue_list, name="list"),
    path("<uuid:public_id>/", views.catalogue_detail, name="detail"),
    path("<uuid:public_id>/withdraw/", views.catalogue_withdraw, name="withdraw"),
]
