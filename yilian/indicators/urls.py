from __future__ import annotations

from django.urls import path

from yilian.indicators import views

app_name = "indicators"

urlpatterns = [
    path("", views.indicator_list, name="list"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/drill/", views.drill, name="drill"),
    path("dashboard/<slug:chart>.xlsx", views.chart_export, name="chart_export"),
]
