from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsultsConfig(AppConfig):
    name = "yilian.consults"
    label = "consults"
    verbose_name = _("Teleconsultation")
