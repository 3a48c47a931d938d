"""Satisfaction surveys: questionnaires as versioned data, one-time answer tokens, department
posters and the anonymous responses.

Invariants:
- a version's items never change once saved (``QuestionnaireVersion.save`` refuses), so an
  answer always reads against the items it was given; the current version is the highest number;
- a token is stored only as the sha256 of the raw token; the raw token lives in the link alone;
- a token is answered at most once (``used_at`` is set under a row lock) and a referral gets at
  most one survey token;
- responses and answers hold no personal data (no name, phone, IP address or user) and no way
  back to their link: a response does not point at its token, it records the day only (no time),
  and a token records only the day it was answered, so neither a key nor a moment joins an
  answer to the referral, the doctor or the phone its link came from.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from yilian.core.models import BaseModel
from yilian.referrals.models import Referral
from yilian.registry.models import Consortium, Department, Institution, localized


class SurveyKind(models.TextChoices):
    OUTPATIENT = "outpatient", _("Outpatient")
    INPATIENT = "inpatient", _("Inpatient")
    REFERRED = "referred", _("Referred patient")
    STAFF = "staff", _("Staff")


class Dimension(models.TextChoices):
    ACCESS = "access", _("Access and registration")
    WAITING = "waiting", _("Waiting time")
    COMMUNICATION = "communication", _("Communication with doctors")
    NURSING = "nursing", _("Nursing")
    ENVIRONMENT = "environment", _("Environment and facilities")
    COSTS = "costs", _("Costs")
    OVERALL = "overall", _("Overall satisfaction")
    RECOMMEND = "recommend", _("Would recommend")
    COLLABORATION = "collaboration", _("Collaboration and support")
    TRAINING = "training", _("Teaching and training")
    COMMENT = "comment", _("Comment")


class ItemType(models.TextChoices):
    LIKERT = "likert", _("Rating 1 to 5")
    SINGLE = "single", _("Single choice")
    MULTIPLE = "multiple", _("Multiple choice")
    TEXT = "text", _("Free text")


class Channel(models.TextChoices):
    QR = "qr", _("QR code")
    SMS = "sms", _("Text message")
    POSTER = "poster", _("Poster")
    LINK = "link", _("Link")


# Channels that stand for one encounter; response rates count only these (a poster scan is not an encounter).
ENCOUNTER_CHANNELS = (Channel.QR, Channel.SMS, Channel.LINK)


def new_poster_code() -> str:
    return secrets.token_urlsafe(9)


class Questionnaire(BaseModel):
    consortium = models.ForeignKey(
        Consortium,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="questionnaires",
        verbose_name=_("consortium"),
        help_text=_("Empty for the built-in default, used where a consortium has none of its own."),
    )
    kind = models.CharField(_("kind"), max_length=20, choices=SurveyKind.choices)
    name_zh = models.CharField(_("name (Chinese)"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=160, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    # Days a link issued from this questionnaire stays valid; empty = the site's default.
    valid_days = models.PositiveSmallIntegerField(
        _("link valid for (days)"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )

    class Meta:
        ordering = ["consortium_id", "kind"]
        verbose_name = _("questionnaire")
        verbose_name_plural = _("questionnaires")
        constraints = [
            models.UniqueConstraint(
                fields=["consortium", "kind"],
                name="questionnaire_unique_per_consortium",
                violation_error_message=_("This consortium already has a questionnaire of this kind."),
            ),
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(consortium__isnull=True),
                name="questionnaire_unique_default",
                violation_error_message=_("There is already a built-in questionnaire of this kind."),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return localized(self.name_zh, self.name_en)

    def current_version(self) -> QuestionnaireVersion | None:
        return self.versions.order_by("-number").first()


class QuestionnaireVersion(BaseModel):
    questionnaire = models.ForeignKey(
        Questionnaire, on_delete=models.PROTECT, related_name="versions", verbose_name=_("questionnaire")
    )
    number = models.PositiveIntegerField(_("version"))
    items = models.JSONField(_("items"), default=list)
    published_at = models.DateTimeField(_("published at"))
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["questionnaire_id", "-number"]
        verbose_name = _("questionnaire version")
        verbose_name_plural = _("questionnaire versions")
        constraints = [
            models.UniqueConstraint(
                fields=["questionnaire", "number"],
                name="questionnaire_version_unique_number",
                violation_error_message=_("This version number already exists."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.questionnaire} v{self.number}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Items are immutable: answers are read against the items they were given.
        if self.pk is not None:
            stored = QuestionnaireVersion.objects.filter(pk=self.pk).values_list("items", flat=True).first()
            if stored is not None and stored != self.items:
                raise PermissionError("a published questionnaire version cannot change; publish a new one")
        super().save(*args, **kwargs)

    def item(self, key: str) -> dict[str, Any] | None:
        return next((i for i in self.items if i.get("key") == key), None)


class Poster(BaseModel):
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="survey_posters", verbose_name=_("institution")
    )
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("department")
    )
    questionnaire = models.ForeignKey(
        Questionnaire, on_delete=models.PROTECT, related_name="posters", verbose_name=_("questionnaire")
    )
    code = models.CharField(_("code"), max_length=20, unique=True, default=new_poster_code, editable=False)
    valid_days = models.PositiveSmallIntegerField(
        _("link valid for (days)"), default=1, validators=[MinValueValidator(1), MaxValueValidator(30)]
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["institution_id", "-created_at"]
        verbose_name = _("survey poster")
        verbose_name_plural = _("survey posters")

    def __str__(self) -> str:
        where = self.department.name if self.department_id and self.department else self.institution.name
        return f"{where} · {SurveyKind(self.questionnaire.kind).label}"


class SurveyToken(BaseModel):
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    version = models.ForeignKey(
        QuestionnaireVersion, on_delete=models.PROTECT, related_name="tokens", verbose_name=_("questionnaire version")
    )
    kind = models.CharField(_("kind"), max_length=20, choices=SurveyKind.choices)
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="survey_tokens", verbose_name=_("institution")
    )
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("department")
    )
    referral = models.ForeignKey(
        Referral, on_delete=models.PROTECT, null=True, blank=True, related_name="survey_tokens"
    )
    poster = models.ForeignKey(Poster, on_delete=models.PROTECT, null=True, blank=True, related_name="tokens")
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    issued_at = models.DateTimeField(_("issued at"))
    expires_at = models.DateTimeField(_("expires at"))
    # The start of the day (China time) it was answered: no finer, see the module's invariants.
    used_at = models.DateTimeField(_("answered on"), null=True, blank=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-issued_at"]
        verbose_name = _("survey link")
        verbose_name_plural = _("survey links")
        indexes = [models.Index(fields=["institution", "issued_at"], name="surveytoken_inst_issued")]
        constraints = [
            models.UniqueConstraint(
                fields=["referral"],
                condition=Q(referral__isnull=False),
                name="surveytoken_one_per_referral",
                violation_error_message=_("This referral already has a survey link."),
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("issued_at")), name="surveytoken_expires_after_issue"
            ),
        ]

    def __str__(self) -> str:
        return f"{SurveyKind(self.kind).label} {self.issued_at:%Y-%m-%d}"


class PosterScan(models.Model):
    """One scan of a poster, kept for the per-device and per-address ceilings.

    Neither the device cookie nor the address is stored as such: both are keyed hashes.
    """

    poster = models.ForeignKey(Poster, on_delete=models.CASCADE, related_name="scans")
    device_hash = models.CharField(max_length=64)
    ip_hash = models.CharField(max_length=64)
    token = models.ForeignKey(SurveyToken, on_delete=models.CASCADE, related_name="+")
    scanned_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["device_hash", "scanned_at"], name="posterscan_device"),
            models.Index(fields=["ip_hash", "scanned_at"], name="posterscan_ip"),
        ]

    def __str__(self) -> str:
        return f"{self.poster_id} {self.scanned_at:%Y-%m-%d %H:%M}"


class SurveyResponse(BaseModel):
    """One submitted questionnaire. Deliberately without personal data: no user, IP, phone or name."""

    # No precise moment on an anonymous answer: it could be matched to the moment its link was used.
    created_at = None  # type: ignore[assignment]
    updated_at = None  # type: ignore[assignment]
    version = models.ForeignKey(QuestionnaireVersion, on_delete=models.PROTECT, related_name="responses")
    kind = models.CharField(_("kind"), max_length=20, choices=SurveyKind.choices)
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="survey_responses", verbose_name=_("institution")
    )
    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("department")
    )
    day = models.DateField(_("day"))

    class Meta:
        ordering = ["-day", "-id"]
        verbose_name = _("survey response")
        verbose_name_plural = _("survey responses")
        indexes = [models.Index(fields=["institution", "day"], name="surveyresponse_inst_day")]

    def __str__(self) -> str:
        return f"{SurveyKind(self.kind).label} {self.day:%Y-%m-%d}"


class SurveyAnswer(models.Model):
    response = models.ForeignKey(SurveyResponse, on_delete=models.CASCADE, related_name="answers")
    item_key = models.CharField(max_length=20)
    dimension = models.CharField(max_length=20, choices=Dimension.choices)
    likert = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    choices = models.JSONField(default=list, blank=True)
    text = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["dimension", "likert"], name="surveyanswer_dim_likert")]
        constraints = [
            models.UniqueConstraint(fields=["response", "item_key"], name="surveyanswer_one_per_item"),
            models.CheckConstraint(
                condition=Q(likert__isnull=True) | Q(likert__gte=1, likert__lte=5), name="surveyanswer_likert_1_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item_key}: {self.likert or self.choices or self.text[:20]}"
