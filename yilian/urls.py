from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from yilian.api import api
from yilian.referrals import views as referral_views
from yilian.surveys import views as survey_views
from yilian.web import views as web_views

handler404 = "yilian.web.views.page_not_found"

urlpatterns = [
    path("healthz", web_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("referrals/", include("yilian.referrals.urls")),
    path("notifications/", include("yilian.notifications.urls")),
    path("surveys/", include("yilian.surveys.urls")),
    path("stationing/", include("yilian.dispatch.urls")),
    path("consults/", include("yilian.consults.urls")),
    path("activity/", include("yilian.activity.urls")),
    path("indicators/", include("yilian.indicators.urls")),
    path("catalogues/", include("yilian.catalogues.urls")),
    path("capability/", include("yilian.capability.urls")),
    path("s/<str:token>/", referral_views.status_page, name="referral_status"),
    # Public survey pages (no login): a one-time answer link, and a department poster's QR code.
    path("q/<str:token>/", survey_views.answer, name="survey_answer"),
    path("q/<str:token>/thanks/", survey_views.thanks, name="survey_thanks"),
    path("p/<str:code>/", survey_views.poster_scan, name="survey_poster_scan"),
    path("", include("yilian.web.urls")),
]
