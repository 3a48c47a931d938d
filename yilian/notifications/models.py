"""In-app notifications and outgoing webhooks (enterprise-chat group robots).

A notification belongs to one user and is read or not. A webhook delivery is one message to
one endpoint; it is retried with backoff until it is delivered or gives up, and every attempt's
outcome stays visible to administrators.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from yilian.core.models import BaseModel
from yilian.registry.models import Institution


class Notification(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(_("kind"), max_length=40)
    # Stored in both languages: the reader's language may change after the notice was written.
    title_zh = models.CharField(max_length=200)
    title_en = models.CharField(max_length=240)
    link = models.CharField(_("link"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("at"), db_index=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [models.Index(fields=["user", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return self.title_zh


class WebhookKind(models.TextChoices):
    WECOM = "wecom", _("WeCom group robot (text message)")
    DINGTALK = "dingtalk", _("DingTalk group robot (text message)")


class WebhookEndpoint(BaseModel):
    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="webhooks", verbose_name=_("institution")
    )
    name = models.CharField(_("name"), max_length=80)
    kind = models.CharField(_("format"), max_length=20, choices=WebhookKind.choices, default=WebhookKind.WECOM)
    # Group robots answer on http(s); Django's URL validator alone would also take ftp://.
    url = models.URLField(_("URL"), max_length=400, validators=[URLValidator(schemes=["http", "https"])])
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("webhook")
        verbose_name_plural = _("webhooks")

    def __str__(self) -> str:
        return self.name


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed (gave up)")


class WebhookDelivery(models.Model):
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    payload: models.JSONField[Any, Any] = models.JSONField()
    status = models.CharField(
        _("status"), max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created at"), db_index=True)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.endpoint_id} {self.status}"
