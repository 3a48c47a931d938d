from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CataloguesConfig(AppConfig):
    name = "yilian.catalogues"
    label = "catalogues"
    verbose_name = _("Operation catalogues")
