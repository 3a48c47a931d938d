"""API schemas of the activity import: batches (the manifest) and the problems found in a file."""

from __future__ import annotations

import datetime as dt
import uuid

from ninja import Schema

from yilian.activity.columns import BatchKind
from yilian.activity.models import BatchStatus
from yilian.core.schemas import In


class RowErrorOut(Schema):
    row: int
    column: str
    message: str


class ProgressOut(Schema):
    stage: str
    done: int
    total: int


class BatchOut(Schema):
    id: uuid.UUID
    seq: int | None
    kind: BatchKind
    filename: str
    file_sha256: str
    status: BatchStatus
    accept_valid: bool
    uploaded_by: str | None
    created_at: dt.datetime
    landed_at: dt.datetime | None
    rows_total: int
    rows_landed: int
    rows_rejected: int
    rows_replaced: int
    errors_total: int
    institutions: list[str]
    date_from: dt.date | None
    date_to: dt.date | None
    progress: ProgressOut
    rejects_url: str | None
    withdrawn_by: str | None
    withdrawn_at: dt.datetime | None
    withdrawal_reason: str


class RepairOut(Schema):
    column: str
    repair: str
    count: int


class ImportReportOut(Schema):
    """What was read. For front pages: the header dialect, stays and operations landed, Excel
    damage repaired (per column and kind of repair), and how the stays' residence was placed
    (``residence``: stays per basis; ``unknown_origin``: stays that could not be placed)."""

    format: str = ""
    encoding: str = ""
    dialect: str | None = None
    stays: int | None = None
    operations: int | None = None
    max_operations_per_stay: int | None = None
    known_unused_columns: int | None = None
    repairs: list[RepairOut] = []
    residence: dict[str, int] = {}
    unknown_origin: int | None = None


class BatchDetailOut(BatchOut):
    coverage: dict[str, list[str]]
    ignored_columns: list[str]
    report: ImportReportOut
    errors: list[RowErrorOut]
    failure: str


class ImportRejectedOut(Schema):
    """422: the file was read and rejected (``errors`` lists the problems by row and column, the
    first ones only when there are many; ``error_count`` counts them all), or the request itself
    was malformed (``errors`` then maps each field to its messages)."""

    detail: str
    errors: list[RowErrorOut] | dict[str, list[str]] | None = None
    error_count: int | None = None
    batch: BatchDetailOut | None = None


class BatchWithdrawIn(In):
    reason: str
