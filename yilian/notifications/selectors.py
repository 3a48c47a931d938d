"""Reads of notifications: a user only ever sees their own."""

from __future__ import annotations

from django.db.models import QuerySet

from yilian.core.permissions import Permission
from yilian.notifications.models import Notification, WebhookDelivery, WebhookEndpoint
from yilian.registry.models import Institution, User
from yilian.registry.selectors import user_scope


def notifications_for(user: User) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user).order_by("-created_at", "-id")


def unread_count(user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def notification_link(user: User, notice_id: int) -> str:
    return Notification.objects.filter(user=user, pk=notice_id).values_list("link", flat=True).first() or ""


def webhook_institutions_for(user: User) -> QuerySet[Institution]:
    scope = user_scope(user)
    if scope.is_global:
        return Institution.objects.filter(is_active=True).order_by("code")
    return Institution.objects.filter(pk__in=scope.institution_ids_with(Permission.MANAGE_WEBHOOKS)).order_by("code")


def webhooks_for(user: User) -> QuerySet[WebhookEndpoint]:
    return (
        WebhookEndpoint.objects.filter(institution__in=webhook_institutions_for(user))
        .select_related("institution")
        .order_by("institution__code", "name")
    )


def deliveries_for(user: User, *, limit: int = 30) -> list[WebhookDelivery]:
    return list(
        WebhookDelivery.objects.filter(endpoint__in=webhooks_for(user))
        .select_related("endpoint")
        .order_by("-created_at", "-id")[:limit]
    )
