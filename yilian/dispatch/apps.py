from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DispatchConfig(AppConfig):
    name = "yilian.dispatch"
    label = "dispatch"
    verbose_name = _("Expert stationing")
