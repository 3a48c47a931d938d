"""Write and verify the audit trail.

Rules enforced here:
- ``audit_record`` must run inside the transaction of the write it describes, so the
  row exists if and only if the write committed.
- Appends are serialised (PostgreSQL advisory lock; SQLite takes its write lock at
  BEGIN IMMEDIATE) so the chain never forks under concurrent writers.
- ``audit_verify`` recomputes every hash in id order and names the first broken row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import connection, models, transaction
from django.utils import timezone

from yilian.core import context
from yilian.core.models import AuditAction, AuditEvent

GENESIS = "0" * 64
_ADVISORY_LOCK_KEY = 0x59494C49  # "YILI"


def _canonical(event: AuditEvent) -> str:
    payload = {
        "occurred_at": event.occurred_at.isoformat(timespec="microseconds"),
        "actor": event.actor_id,
        "actor_label": event.actor_label,
        "ip": event.ip_address,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "changes": event.changes,
    }
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))


def _hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256((prev_hash + _canonical(event)).encode()).hexdigest()


def _json_safe(changes: dict[str, Any]) -> dict[str, Any]:
    # Round-trip through JSON so the stored value and the hashed value are identical.
    loaded: dict[str, Any] = json.loads(json.dumps(changes, ensure_ascii=False, default=str))
    return loaded


def audit_record(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: AuditAction,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    changes: dict[str, Any] | None = None,
    actor_label: str = "",
) -> AuditEvent:
    """Append one audit row. Call it inside the caller's transaction."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(getattr(obj, "public_id", None) or obj.pk)
        object_repr = object_repr or str(obj)[:200]
    # The concrete user model lives in the registry app; keep core free of that import.
    user: Any = actor if actor is not None and actor.is_authenticated else None
    if user is not None and not actor_label:
        actor_label = user.get_username()
    ctx = context.current.get() or context.COMMAND_LINE
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_KEY])
        last = AuditEvent.objects.order_by("-id").values_list("row_hash", flat=True).first()
        event = AuditEvent(
            occurred_at=timezone.now(),
            actor=user,
            actor_label=actor_label or ctx.channel,
            ip_address=ctx.ip_address,
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_repr=object_repr[:200],
            changes=_json_safe(changes or {}),
            prev_hash=last or GENESIS,
        )
        event.row_hash = _hash(event.prev_hash, event)
        event.save()
    return event


def audit_pii_read(
    *, actor: AbstractBaseUser | AnonymousUser, obj: models.Model, fields: list[str], purpose: str = ""
) -> AuditEvent:
    """Record that ``actor`` was shown identifying fields of ``obj`` (a patient, say).

    Call it from the selector that returns unmasked data, so that no view can show such data
    without leaving a row. Only the names of the fields are stored, never their values.
    """
    if not fields:
        raise ValueError("name the identifying fields that were read")
    with transaction.atomic():
        return audit_record(
            actor=actor,
            action=AuditAction.READ_PII,
            obj=obj,
            changes={"fields": sorted(fields), **({"purpose": purpose} if purpose else {})},
        )


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    broken_id: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_id is None


def _in_order(batch: int = 2000) -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        rows = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:batch])
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id


def audit_verify() -> VerifyResult:
    """Walk the chain; report the first row whose content or link does not match."""
    expected_prev = GENESIS
    checked = 0
    for event in _in_order():
        if event.prev_hash != expected_prev:
            return VerifyResult(checked, event.id, "previous-hash link broken (a row before it was removed)")
        if _hash(event.prev_hash, event) != event.row_hash:
            return VerifyResult(checked, event.id, "content does not match its hash (the row was altered)")
        expected_prev = event.row_hash
        checked += 1
    return VerifyResult(checked)
