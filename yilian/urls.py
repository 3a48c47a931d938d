from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from yilian.api import api
from yilian.web import views as web_views

handler404 = "yilian.web.views.page_not_found"

urlpatterns = [
    path("healthz", web_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("", include("yilian.web.urls")),
]
