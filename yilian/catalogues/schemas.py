"""API schemas of the operation catalogues."""

from __future__ import annotations

import datetime as dt
import uuid

from ninja import Field, Schema

from yilian.catalogues.models import CatalogueKind
from yilian.core.schemas import In


class CatalogueOut(Schema):
    id: uuid.UUID
    kind: CatalogueKind
    kind_label: str = Field(description="The kind in the language of the request.")
    name: str
    version: str
    label: str = Field(description="Name and version, as the indicators' basis sentences quote them.")
    valid_from: dt.date
    valid_until: dt.date | None = Field(
        description="The day the next active version of the same kind (and institution) takes over; null when "
        "none does, or when this one is withdrawn."
    )
    institution: str | None = Field(description="The institution's code, for an institution's own list.")
    institution_name: str | None
    codes_count: int
    filename: str
    file_sha256: str
    note: str
    loaded_by: str | None
    loaded_at: dt.datetime
    is_active: bool
    withdrawn_by: str | None
    withdrawn_at: dt.datetime | None
    withdrawal_reason: str


class CatalogueCodeOut(Schema):
    code: str = Field(description="Normalised: upper case, trimmed, without a trailing .0.")
    name: str
    category: str | None = Field(description="surgery, interventional, diagnostic or therapeutic (classifications).")


class CatalogueProblemOut(Schema):
    row: int = Field(description="The spreadsheet row (1 is the header line; 0 the whole file).")
    column: str = Field(description="The column's header as written in the file.")
    value: str
    message: str


class CatalogueRejectedOut(Schema):
    """422: the file was rejected whole (``problems`` lists the first ones by row and column,
    ``problem_count`` counts them all), or the request itself was malformed (``errors`` maps each
    field to its messages)."""

    detail: str
    errors: dict[str, list[str]] | None = None
    problems: list[CatalogueProblemOut] | None = None
    problem_count: int | None = None


class CatalogueWithdrawIn(In):
    reason: str = Field(min_length=1, max_length=500)
