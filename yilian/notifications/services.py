"""Writes of notifications and webhook deliveries.

Rules:
- a notification is written for each user once per event; reading marks it read, never deletes;
- a webhook delivery is written in the caller's transaction and sent by the worker after
  commit; a failed attempt is retried with exponential backoff (``BACKOFF``) until
  ``MAX_ATTEMPTS``, then marked failed; every outcome stays on the row for administrators.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from yilian.core.audit import audit_record
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission
from yilian.notifications.models import (
    DeliveryStatus,
    Notification,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookKind,
)
from yilian.registry.models import Institution, User
from yilian.registry.selectors import user_scope

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
BACKOFF = dt.timedelta(seconds=30)  # 30 s, 1 min, 2 min, 4 min, 8 min between attempts
TIMEOUT_SECONDS = 5
# An attempt in flight holds its delivery this long, so that the queue and the sweep never post
# one message twice; a worker that dies mid-attempt leaves it to the sweep after this.
IN_FLIGHT = dt.timedelta(seconds=TIMEOUT_SECONDS * 6)
# The web and worker machines' clocks may differ a little; a delivery this close to due is due.
CLOCK_SKEW = dt.timedelta(seconds=5)


def notify(*, users: Iterable[User], kind: str, title_zh: str, title_en: str, link: str = "") -> int:
    now = timezone.now()
    rows = [
        Notification(user=u, kind=kind, title_zh=title_zh[:200], title_en=title_en[:240], link=link, created_at=now)
        for u in {u.pk: u for u in users}.values()
    ]
    Notification.objects.bulk_create(rows)
    return len(rows)


def notification_mark_read(*, user: User, ids: list[int] | None = None) -> int:
    """Mark the user's notifications read (all when ``ids`` is None); returns how many changed."""
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return qs.update(read_at=timezone.now())


def _payload(kind: str, text: str, link: str) -> dict[str, Any]:
    content = f"{text}\n{link}" if link else text
    # WeCom and DingTalk group robots both take {"msgtype": "text", "text": {"content": ...}}.
    if kind in (WebhookKind.WECOM, WebhookKind.DINGTALK):
        return {"msgtype": "text", "text": {"content": content}}
    raise ValueError(kind)


def webhooks_enqueue(*, institution: Institution | None, text: str, link: str = "") -> list[WebhookDelivery]:
    """Queue a message to every active webhook of the institution; sent after commit."""
    if institution is None:
        return []
    now = timezone.now()
    deliveries = [
        WebhookDelivery.objects.create(
            endpoint=endpoint, payload=_payload(endpoint.kind, text, link), created_at=now, next_attempt_at=now
        )
        for endpoint in WebhookEndpoint.objects.filter(institution=institution, is_active=True)
    ]
    if deliveries:
        from yilian.notifications.tasks import deliver_webhook

        ids = [d.pk for d in deliveries]
        transaction.on_commit(lambda: [deliver_webhook.enqueue(i) for i in ids])
    return deliveries


def webhook_deliver(*, delivery_id: int, now: dt.datetime | None = None) -> WebhookDelivery:
    """One attempt. Success is an HTTP 2xx whose JSON body, if any, has no non-zero ``errcode``."""
    now = now or timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery_id)
        if delivery.status != DeliveryStatus.PENDING:
            return delivery
        # Not due: a stale task, or the sweep racing the queue; the run at the due time sends it.
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + CLOCK_SKEW:
            return delivery
        delivery.next_attempt_at = now + IN_FLIGHT
        delivery.save(update_fields=["next_attempt_at"])
    error = _post(delivery.endpoint.url, delivery.payload)
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        if delivery.status != DeliveryStatus.PENDING:
            return delivery
        delivery.attempts += 1
        if error is None:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            delivery.last_error = ""
        elif delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            delivery.last_error = error[:500]
            log.warning("webhook %s gave up after %s attempts: %s", delivery.endpoint_id, delivery.attempts, error)
        else:
            delivery.next_attempt_at = now + BACKOFF * (2 ** (delivery.attempts - 1))
            delivery.last_error = error[:500]
        delivery.save()
        if delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at is not None:
            from yilian.notifications.tasks import deliver_webhook

            run_after = delivery.next_attempt_at
            transaction.on_commit(lambda: deliver_webhook.using(run_after=run_after).enqueue(delivery_id))
    return delivery


def webhooks_retry_due(*, now: dt.datetime | None = None) -> int:
    """Attempt every pending delivery whose time has come (the worker's safety net)."""
    now = now or timezone.now()
    ids = list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now).values_list(
            "pk", flat=True
        )[:200]
    )
    for delivery_id in ids:
        webhook_deliver(delivery_id=delivery_id, now=now)
    return len(ids)


def _post(url: str, payload: dict[str, Any]) -> str | None:
    if not url.startswith(("http://", "https://")):
        return gettext("Only http and https webhook addresses are allowed.")
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (scheme checked)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 (admin-set URL)
            raw = response.read(10_000)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        answer = json.loads(raw or b"{}")
    except ValueError:
        return None
    if isinstance(answer, dict) and answer.get("errcode") not in (None, 0):
        return f"errcode {answer.get('errcode')}: {answer.get('errmsg', '')}"
    return None


def webhook_create(
    *, actor: User, institution: Institution, name: str, url: str, kind: str = WebhookKind.WECOM
) -> WebhookEndpoint:
    scope = user_scope(actor)
    if not scope.is_global and institution.pk not in scope.institution_ids_with(Permission.MANAGE_WEBHOOKS):
        raise PermissionDenied(gettext("You may not manage this institution's webhooks."))
    if not url.strip().lower().startswith(("http://", "https://")):  # URLField would also take ftp://
        raise ValidationError({"url": gettext("Only http and https webhook addresses are allowed.")})
    endpoint = WebhookEndpoint(institution=institution, name=name, url=url, kind=kind)
    endpoint.full_clean()
    with transaction.atomic():
        endpoint.save()
        audit_record(actor=actor, action=AuditAction.CREATE, obj=endpoint, changes={"name": name, "kind": kind})
    return endpoint


def webhook_set_active(*, actor: User, endpoint: WebhookEndpoint, is_active: bool) -> WebhookEndpoint:
    scope = user_scope(actor)
    if not scope.is_global and endpoint.institution_id not in scope.institution_ids_with(Permission.MANAGE_WEBHOOKS):
        raise PermissionDenied(gettext("You may not manage this institution's webhooks."))
    with transaction.atomic():
        endpoint.is_active = is_active
        endpoint.save(update_fields=["is_active", "updated_at"])
        audit_record(actor=actor, action=AuditAction.UPDATE, obj=endpoint, changes={"is_active": is_active})
    return endpoint
