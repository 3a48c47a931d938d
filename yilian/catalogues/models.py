"""Operation catalogues: versioned code lists that decide how the indicators read an operation.

The national appraisal decides an operation's category (surgery, interventional, diagnostic,
therapeutic) by the national operation classification, and the level-4 and minimally invasive shares
by national code catalogues. They are not public: a consortium loads the versions it holds, and an
institution may keep its own list of minimally invasive codes for when no national one is loaded.

A version of a kind (of one institution, for an institution's list) applies from its ``valid_from``
until the next active version of the same kind takes over; a withdrawn version applies nowhere.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from yilian.core.models import BaseModel
from yilian.registry.models import Institution


class CatalogueKind(models.TextChoices):
    CLASSIFICATION = "classification", _("Operation classification (category of each code)")
    LEVEL4 = "level4", _("Level-4 operation catalogue (四级手术目录)")
    MINIMALLY_INVASIVE = "minimally_invasive", _("Minimally invasive operation catalogue (微创手术目录)")
    INSTITUTION_MI = "institution_mi", _("Institution's own minimally invasive code list")


NATIONAL_KINDS = (CatalogueKind.CLASSIFICATION, CatalogueKind.LEVEL4, CatalogueKind.MINIMALLY_INVASIVE)


class OperationCategory(models.TextChoices):
    """The categories of the national operation classification (the same values as the operation
    facts' ``category``)."""

    SURGERY = "surgery", _("Surgery")
    INTERVENTIONAL = "interventional", _("Interventional treatment")
    DIAGNOSTIC = "diagnostic", _("Diagnostic procedure")
    THERAPEUTIC = "therapeutic", _("Therapeutic procedure")


class Catalogue(BaseModel):
    """One loaded version of a catalogue, with its codes (``CatalogueCode``)."""

    kind = models.CharField(_("kind"), max_length=20, choices=CatalogueKind.choices)
    name = models.CharField(_("name"), max_length=120)
    version = models.CharField(_("version"), max_length=40, help_text=_("E.g. 2022版."))
    valid_from = models.DateField(_("valid from"))
    institution = models.ForeignKey(
        Institution,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("institution"),
        help_text=_("Only for an institution's own list."),
    )
    codes_count = models.PositiveIntegerField(_("codes"), default=0)
    filename = models.CharField(_("file name"), max_length=255, blank=True)
    file_sha256 = models.CharField(_("file SHA-256"), max_length=64, blank=True)
    note = models.CharField(_("note"), max_length=500, blank=True)
    loaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("loaded by"),
    )
    is_active = models.BooleanField(_("active"), default=True)
    withdrawn_at = models.DateTimeField(_("withdrawn at"), null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=pgettext_lazy("catalogue", "withdrawn by"),
    )
    withdrawal_reason = models.CharField(_("reason for the withdrawal"), max_length=500, blank=True)

    class Meta:
        ordering = ["kind", "institution__code", "-valid_from", "-id"]
        verbose_name = _("operation catalogue")
        verbose_name_plural = _("operation catalogues")
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=CatalogueKind.values),
                name="catalogue_kind_known",
            ),
            # An institution's list belongs to exactly one institution; a national catalogue to none.
            models.CheckConstraint(
                condition=(Q(kind=CatalogueKind.INSTITUTION_MI) & Q(institution__isnull=False))
                | (~Q(kind=CatalogueKind.INSTITUTION_MI) & Q(institution__isnull=True)),
                name="catalogue_institution_only_for_institution_lists",
                violation_error_message=_("An institution's list names its institution; a national catalogue none."),
            ),
            # One active version of each name per kind (and institution). A withdrawn version frees
            # its name, so a corrected file can be loaded under the same one.
            models.UniqueConstraint(
                fields=["kind", "version"],
                condition=Q(institution__isnull=True, is_active=True),
                name="catalogue_national_version_unique",
                violation_error_message=_("This version of the catalogue is already loaded."),
            ),
            models.UniqueConstraint(
                fields=["kind", "institution", "version"],
                condition=Q(institution__isnull=False, is_active=True),
                name="catalogue_institution_version_unique",
                violation_error_message=_("This version of the institution's list is already loaded."),
            ),
            # Versions take over from one another at their valid_from: two starting on the same day
            # would leave it open which one applies.
            models.UniqueConstraint(
                fields=["kind", "valid_from"],
                condition=Q(institution__isnull=True, is_active=True),
                name="catalogue_national_valid_from_unique",
                violation_error_message=_("Another version of the catalogue starts on this day."),
            ),
            models.UniqueConstraint(
                fields=["kind", "institution", "valid_from"],
                condition=Q(institution__isnull=False, is_active=True),
                name="catalogue_institution_valid_from_unique",
                violation_error_message=_("Another version of the institution's list starts on this day."),
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        """The name and version as the basis sentences quote them, e.g. 国家四级手术目录 2022版."""
        return f"{self.name} {self.version}".strip()


class CatalogueCode(models.Model):
    """One code of a catalogue version, normalised like the operation facts' codes (upper case,
    trimmed, without Excel's trailing ``.0``). ``category`` only in a classification."""

    catalogue = models.ForeignKey(
        Catalogue, on_delete=models.CASCADE, related_name="codes", verbose_name=_("operation catalogue")
    )
    code = models.CharField(_("code"), max_length=20)
    name = models.CharField(_("name"), max_length=200, blank=True)
    # NULL, not "": a level-4 or minimally invasive list has no category at all.
    category = models.CharField(  # noqa: DJ001
        _("category"), max_length=20, choices=OperationCategory.choices, null=True, blank=True
    )

    class Meta:
        ordering = ["catalogue", "code"]
        verbose_name = _("catalogue code")
        verbose_name_plural = _("catalogue codes")
        constraints = [
            models.UniqueConstraint(fields=["catalogue", "code"], name="catalogue_code_unique"),
            models.CheckConstraint(
                condition=Q(category__isnull=True) | Q(category__in=OperationCategory.values),
                name="catalogue_code_category_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}".strip()
