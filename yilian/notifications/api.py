"""The caller's own notifications: list (newest first, with the unread count) and mark read."""

import datetime as dt
from typing import Annotated, Any

from django.http import HttpRequest
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema
from ninja.schema import DjangoGetter
from pydantic import model_validator

from yilian.notifications import selectors, services
from yilian.notifications.models import Notification
from yilian.registry.api import ERRORS
from yilian.registry.models import User

router = Router(tags=["notifications"])


class NotificationOut(Schema):
    id: int
    kind: str
    title: str
    link: str
    created_at: dt.datetime
    read_at: dt.datetime | None

    @staticmethod
    def resolve_title(obj: Notification) -> str:
        # Both languages are stored: the reader's language may have changed since it was written.
        return obj.title_en if (get_language() or "").startswith("en") else obj.title_zh


class NotificationsOut(Schema):
    unread: int
    count: int
    items: list[NotificationOut]


class NotificationFilters(Schema):
    unread_only: bool = False
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10_000_000)


class NotificationsReadIn(Schema):
    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, data: Any) -> Any:
        # Schemas read attributes too: without this a JSON list would pass as a body of defaults.
        if not isinstance(data._obj if isinstance(data, DjangoGetter) else data, dict):
            raise ValueError(_("Must be an object."))
        return data

    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(
        None, max_length=500, description="Omit to mark every notification read."
    )


class NotificationsReadOut(Schema):
    marked: int
    unread: int


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


@router.get("/notifications", response={200: NotificationsOut, **ERRORS})
def notification_list(request: HttpRequest, filters: Query[NotificationFilters]) -> dict[str, Any]:
    user = _user(request)
    notices = selectors.notifications_for(user)
    if filters.unread_only:
        notices = notices.filter(read_at__isnull=True)
    return {
        "unread": selectors.unread_count(user),
        "count": notices.count(),
        "items": list(notices[filters.offset : filters.offset + filters.limit]),
    }


@router.post("/notifications/read", response={200: NotificationsReadOut, **ERRORS})
def notification_read(request: HttpRequest, payload: NotificationsReadIn) -> dict[str, int]:
    """Mark the given notifications (or all) read; others' ids are ignored, never an error."""
    user = _user(request)
    marked = services.notification_mark_read(user=user, ids=payload.ids)
    return {"marked": marked, "unread": selectors.unread_count(user)}
