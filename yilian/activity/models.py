"""The manifest of the activity store: one row per import batch.

The facts themselves live in Parquet under ``settings.ACTIVITY_DIR`` (see ``yilian.activity.store``);
a batch's files count only while its row says ``landed``. ``seq`` is given when the batch lands,
under the store lock, so a higher ``seq`` always means landed later; it is the ``batch_seq`` column
of the batch's facts and decides which version of a re-imported record is current.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from yilian.activity.columns import BatchKind
from yilian.core.models import BaseModel


class BatchStatus(models.TextChoices):
    PROCESSING = "processing", _("Processing")
    LANDED = "landed", _("Landed")
    REJECTED = "rejected", _("Rejected")
    WITHDRAWN = "withdrawn", pgettext_lazy("import batch", "Withdrawn")
    FAILED = "failed", _("Failed")


class ImportBatch(BaseModel):
    seq = models.PositiveBigIntegerField(
        _("sequence"), null=True, blank=True, unique=True, help_text=_("Given when the batch lands.")
    )
    kind = models.CharField(_("dataset"), max_length=20, choices=BatchKind.choices)
    filename = models.CharField(_("file name"), max_length=255)
    file_sha256 = models.CharField(_("file SHA-256"), max_length=64, blank=True)
    note = models.CharField(_("note"), max_length=500, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    status = models.CharField(
        _("status"), max_length=12, choices=BatchStatus.choices, default=BatchStatus.PROCESSING, db_index=True
    )
    accept_valid = models.BooleanField(_("accept valid rows"), default=False)
    rows_total = models.PositiveBigIntegerField(_("rows in file"), default=0)
    rows_landed = models.PositiveBigIntegerField(_("rows landed"), default=0)
    rows_rejected = models.PositiveBigIntegerField(_("rows rejected"), default=0)
    rows_replaced = models.PositiveBigIntegerField(
        _("records replaced"), default=0, help_text=_("Records of earlier batches that this batch replaces.")
    )
    errors_total = models.PositiveBigIntegerField(_("errors"), default=0)
    errors = models.JSONField(_("first errors"), default=list, blank=True)
    ignored_columns = models.JSONField(_("ignored columns"), default=list, blank=True)
    institution_codes = models.JSONField(_("institution codes"), default=list, blank=True)
    institutions = models.ManyToManyField(
        "registry.Institution", blank=True, related_name="+", verbose_name=_("institutions")
    )
    coverage = models.JSONField(
        _("months covered"), default=dict, blank=True, help_text=_("Institution code -> months (YYYY-MM).")
    )
    date_from = models.DateField(_("first date"), null=True, blank=True)
    date_to = models.DateField(_("last date"), null=True, blank=True)
    rejects_file = models.CharField(
        _("rejected rows file"), max_length=255, blank=True, help_text=_("Relative to the activity directory.")
    )
    failure = models.TextField(_("failure"), blank=True)
    landed_at = models.DateTimeField(_("landed at"), null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("withdrawn by"),
    )
    withdrawn_at = models.DateTimeField(_("withdrawn at"), null=True, blank=True)
    withdrawal_reason = models.TextField(pgettext_lazy("import batch", "reason for withdrawal"), blank=True)
    report = models.JSONField(
        _("report"),
        default=dict,
        blank=True,
        help_text=_("What was read: format, encoding, header dialect, repairs, residence bases, operations."),
    )
    progress_stage = models.CharField(_("stage"), max_length=20, blank=True)
    progress_done = models.PositiveBigIntegerField(_("done"), default=0)
    progress_total = models.PositiveBigIntegerField(_("total"), default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("import batch")
        verbose_name_plural = _("import batches")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(seq__isnull=True) | models.Q(status__in=["landed", "withdrawn"]),
                name="activity_batch_seq_only_when_landed",
            ),
            models.CheckConstraint(
                condition=~models.Q(status__in=["landed", "withdrawn"]) | models.Q(seq__isnull=False),
                name="activity_batch_landed_has_seq",
            ),
        ]

    def __str__(self) -> str:
        label = f"#{self.seq}" if self.seq is not None else str(self.public_id)[:8]
        return f"{self.get_kind_display()} {label} {self.filename}"

    @property
    def is_active(self) -> bool:
        """Its facts count: landed and not withdrawn."""
        return self.status == BatchStatus.LANDED


class StoreLock(models.Model):
    """One row, locked (SELECT ... FOR UPDATE) while a batch lands or is withdrawn, so landings
    are serialised and ``seq`` follows the order in which batches land."""

    name = models.CharField(max_length=20, unique=True)

    class Meta:
        verbose_name = _("store lock")
        verbose_name_plural = _("store locks")

    def __str__(self) -> str:
        return self.name
