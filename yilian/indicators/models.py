"""Indicator definitions, stored as data (docs/indicators.md, "Indicators")."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from yilian.core.models import BaseModel
from yilian.registry.models import localized


class Programme(models.TextChoices):
    NATIONAL_APPRAISAL = "national_appraisal", _("National appraisal of public hospitals (国考)")
    TWO_IMPROVEMENTS = "two_improvements", _("Two sinkings, two improvements (双下沉、两提升)")
    REGIONAL_CENTRE = "regional_centre", _("National regional medical centre (国家区域医疗中心)")
    CONSORTIUM = "consortium", _("Consortium construction (医联体建设)")
    COUNTY_COMMUNITY = "county_community", _("County medical community (县域医共体)")


class Unit(models.TextChoices):
    PERCENT = "percent", _("%")
    STAYS = "stays", _("stays")
    OPERATIONS = "operations", _("operations")
    VISITS = "visits", _("visits")
    REFERRALS = "referrals", _("referrals")
    DOCTORS = "doctors", _("doctors")
    DAYS = "days", _("days")
    CONSULTATIONS = "consultations", _("consultations")
    MINUTES = "minutes", _("minutes")
    TECHNIQUES = "techniques", _("techniques")
    HOURS = "hours", _("hours")
    MILESTONES = "milestones", _("milestones")


class Direction(models.TextChoices):
    HIGHER_BETTER = "higher_better", _("Higher is better")
    LOWER_BETTER = "lower_better", _("Lower is better")


def validate_measure(value: Any) -> None:
    from yilian.indicators.dsl import parse_measure

    parse_measure(value)


class Indicator(BaseModel):
    """Value = numerator / denominator x factor (numerator alone when there is no denominator)."""

    code = models.SlugField(_("code"), max_length=60, unique=True)
    name_zh = models.CharField(_("name (Chinese)"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=160, blank=True)
    definition_zh = models.TextField(_("definition (Chinese)"), blank=True)
    definition_en = models.TextField(_("definition (English)"), blank=True)
    programme = models.CharField(_("programme"), max_length=30, choices=Programme.choices)
    unit = models.CharField(_("unit"), max_length=20, choices=Unit.choices)
    factor = models.FloatField(_("factor"), default=1.0, help_text=_("100 for a percentage."))
    direction = models.CharField(
        _("direction"), max_length=20, choices=Direction.choices, default=Direction.HIGHER_BETTER
    )
    target = models.FloatField(_("target"), null=True, blank=True)
    numerator = models.JSONField(_("numerator"), validators=[validate_measure])
    denominator = models.JSONField(_("denominator"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    position = models.PositiveIntegerField(_("position"), default=0)

    class Meta:
        ordering = ["position", "code"]
        verbose_name = _("indicator")
        verbose_name_plural = _("indicators")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from yilian.indicators.dsl import parse_measure

        errors: dict[str, Any] = {}
        for field_name in ("numerator", "denominator"):
            value = getattr(self, field_name)
            if value is None:
                continue
            try:
                parse_measure(value)
            except ValidationError as exc:
                errors[field_name] = exc.messages
        if self.factor == 0:
            errors["factor"] = [_("The factor cannot be zero.")]
        if errors:
            raise ValidationError(errors)

    @property
    def name(self) -> str:
        return localized(self.name_zh, self.name_en)

    @property
    def definition(self) -> str:
        return localized(self.definition_zh, self.definition_en)
