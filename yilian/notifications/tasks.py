"""Background tasks run by ``yilian worker``."""

from __future__ import annotations

from django_tasks import task

from yilian.notifications import services


@task()
def deliver_webhook(delivery_id: int) -> str:
    return str(services.webhook_deliver(delivery_id=delivery_id).status)
