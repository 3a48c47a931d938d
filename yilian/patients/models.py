"""Patients: the person a referral (and later a consult) is about.

Invariants:
- one person, one record: a resident ID number is stored once (unique) and validated with its
  check digit, birth date and birth region before it is saved;
- a patient without an ID number is *unidentified*; when the person is identified later the
  unidentified record is merged into the identified one (``merged_into``), never deleted, so
  its history stays readable.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from yilian.core.models import BaseModel
from yilian.registry.models import Institution, Region


class Sex(models.TextChoices):
    # GB/T 2261.1 codes are 1 male, 2 female, 0 unknown, 9 unspecified; readable values here.
    MALE = "male", _("Male")
    FEMALE = "female", _("Female")
    UNKNOWN = "unknown", _("Unknown")


def mask_id_number(value: str | None) -> str:
    """``330822198001011234`` -> ``3308**********1234``: region of issue and last four only."""
    if not value:
        return ""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_phone(value: str) -> str:
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_name(value: str) -> str:
    """张三丰 -> 张**: the family name only, as on Chinese public notices."""
    if not value:
        return ""
    return value[0] + "*" * max(1, len(value) - 1)


class Patient(BaseModel):
    name = models.CharField(_("name"), max_length=60)
    sex = models.CharField(_("sex"), max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    # Used only when the birth date is unknown (an unidentified patient in an emergency).
    approximate_age = models.PositiveSmallIntegerField(_("approximate age"), null=True, blank=True)
    id_number = models.CharField(_("resident ID number"), max_length=18, null=True, blank=True, unique=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    residence_region = models.ForeignKey(
        Region,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("residence region"),
    )
    address = models.CharField(_("address"), max_length=200, blank=True)
    emergency_contact_name = models.CharField(_("emergency contact"), max_length=60, blank=True)
    emergency_contact_relation = models.CharField(_("relation"), max_length=20, blank=True)
    emergency_contact_phone = models.CharField(_("emergency contact phone"), max_length=20, blank=True)
    registered_by = models.ForeignKey(
        Institution,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("registered by"),
    )
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="merged_records",
        verbose_name=_("merged into"),
    )
    merged_at = models.DateTimeField(_("merged at"), null=True, blank=True)
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("patient")
        verbose_name_plural = _("patients")
        constraints = [
            models.CheckConstraint(
                condition=Q(merged_into__isnull=True) | Q(id_number__isnull=True),
                name="patient_merged_record_is_unidentified",
            ),
        ]

    def __str__(self) -> str:
        # Masked: a patient's str() ends up in logs and audit rows.
        return f"{mask_name(self.name)} {mask_id_number(self.id_number)}".strip()

    @property
    def is_identified(self) -> bool:
        return bool(self.id_number)

    @property
    def masked_id_number(self) -> str:
        return mask_id_number(self.id_number)

    @property
    def masked_name(self) -> str:
        return mask_name(self.name)

    @property
    def age(self) -> int | None:
        """Age in whole years today (local date) from the birth date, else the approximate age."""
        if self.birth_date is None:
            return self.approximate_age
        today = timezone.localdate()
        born = self.birth_date
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
