from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CapabilityConfig(AppConfig):
    name = "yilian.capability"
    label = "capability"
    verbose_name = _("Capability building")
