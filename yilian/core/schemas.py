"""Pieces shared by the API schemas of every app."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.utils.translation import gettext as _
from ninja import Schema
from ninja.schema import DjangoGetter
from pydantic import ConfigDict, model_validator


class In(Schema):
    """Request bodies: surrounding whitespace is dropped, so "  " is as empty as ""."""

    model_config = ConfigDict(str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, data: Any) -> Any:
        # Schemas read attributes too; without this, a JSON list or number would pass as a body
        # whose fields all have defaults.
        if not isinstance(data._obj if isinstance(data, DjangoGetter) else data, dict):
            raise ValueError(_("Must be an object."))
        return data


_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")


def iso_text(value: Any) -> Any:
    """Dates and times as ISO 8601 text only (pydantic would also read 0 as 1970-01-01)."""
    if value is None or isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not _ISO_DAY.match(value):
        raise ValueError(_("Not a valid date or time."))
    return value


def plausible_day(day: dt.date | None) -> dt.date | None:
    if day is not None and not dt.date(1900, 1, 1) <= day <= dt.date(2100, 12, 31):
        raise ValueError(_("Choose a date between 1900 and 2100."))
    return day
