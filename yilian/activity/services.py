"""Writes of the activity store: import a file, land a table, withdraw a batch.

Domain rules enforced here:
- only users holding the import permission may import, and only for the institutions they may
  import for (``selectors.institution_codes_importable_by``); a row for any other institution is
  an error like any other;
- a batch lands whole or not at all: by default any error rejects the whole file and nothing is
  stored; with ``accept_valid`` the valid rows land and the rejected rows are written to a CSV
  (UTF-8 with BOM, patient identifiers masked) under ``ACTIVITY_DIR/rejects/``;
- patient identifiers never reach the store: they are replaced by a keyed pseudonym during
  validation, before anything is written;
- landing is serialised by a lock row; the batch gets the next ``seq`` and records which of its
  keys earlier batches already had, so the newest active version of a record is the current
  one (``yilian.activity.facts``); withdrawal only changes the status (files are kept) and brings
  the earlier versions back;
- every import, landing and withdrawal writes an audit row in the same transaction.
"""

# The SQL here is assembled from the dataset definitions in columns.py (constants); user data only
# ever reaches DuckDB as registered Arrow tables or bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from yilian.activity import frontpage, readers, store
from yilian.activity.columns import (
    BATCH_DATASETS,
    DATE_COLUMN,
    FILE_KEY_COLUMNS,
    KEY_COLUMNS,
    BatchKind,
    Kind,
    batch_kinds_of,
    complete,
    fact_schema,
)
from yilian.activity.models import BatchStatus, ImportBatch, StoreLock
from yilian.activity.selectors import institution_codes_importable_by
from yilian.activity.validation import MAX_ERRORS, InstitutionInfo, Outcome, RowError, identifier_key, validate
from yilian.core.audit import audit_record
from yilian.core.errors import Conflict
from yilian.core.models import AuditAction
from yilian.core.permissions import Permission
from yilian.registry.models import Institution, User
from yilian.registry.selectors import require_perm

logger = logging.getLogger(__name__)

AnyUser = AbstractBaseUser | AnonymousUser
Progress = Callable[[str, int, int], None]

__all__ = ["ImportResult", "RowError", "batch_import", "batch_land_table", "batch_withdraw"]

_PROGRESS_INTERVAL = 0.5


@dataclass
class ImportResult:
    batch: ImportBatch
    errors: list[RowError] = field(default_factory=list)
    rejects_path: Path | None = None


class _Progress:
    """Calls the caller's callback on every step and saves the batch's progress fields at most
    every half second (and at each change of stage), so a page can poll them."""

    def __init__(self, batch: ImportBatch, callback: Progress | None) -> None:
        self.batch = batch
        self.callback = callback
        self.last = 0.0
        self.stage = ""

    def __call__(self, stage: str, done: int, total: int, *, save: bool = True) -> None:
        if self.callback is not None:
            self.callback(stage, done, total)
        if not save:
            return
        now = time.monotonic()
        if stage != self.stage or now - self.last >= _PROGRESS_INTERVAL or done >= total:
            self.stage, self.last = stage, now
            ImportBatch.objects.filter(pk=self.batch.pk).update(
                progress_stage=stage, progress_done=done, progress_total=total
            )


def _account(user: AnyUser | None) -> User | None:
    return user if isinstance(user, User) and user.is_authenticated else None


def _institutions(user: AnyUser | None) -> dict[str, InstitutionInfo]:
    """Every way a file may name an institution (its code; its organisation code, unified social
    credit code and licence registration number) -> the institution."""
    allowed = None if user is None else institution_codes_importable_by(user)
    found: dict[str, InstitutionInfo] = {}
    rows = Institution.objects.values_list("code", "region__code", *Institution.IDENTIFIER_FIELDS)
    for code, region, *identifiers in rows:
        info = InstitutionInfo(code=code, region_code=region, allowed=allowed is None or code in allowed)
        for name in (code, *identifiers):
            if name:
                found.setdefault(identifier_key(name), info)
    return found


def _lock() -> None:
    lock, _created = StoreLock.objects.get_or_create(name="store")
    StoreLock.objects.select_for_update().get(pk=lock.pk)


@dataclass
class _Summary:
    codes: list[str]
    coverage: dict[str, list[str]]
    date_from: Any
    date_to: Any


def _summarise(kind: Kind, facts: pa.Table) -> _Summary:
    if facts.num_rows == 0:
        return _Summary(codes=[], coverage={}, date_from=None, date_to=None)
    column = DATE_COLUMN[kind]
    con = duckdb.connect()
    try:
        con.register("facts", facts.select(["institution_code", column]))
        rows = con.sql(
            f"""SELECT institution_code, strftime({column}, '%Y-%m') AS month, min({column}), max({column})
                FROM facts GROUP BY ALL ORDER BY 1, 2"""
        ).fetchall()
    finally:
        con.close()
    coverage: dict[str, list[str]] = {}
    for code, month, _first, _last in rows:
        coverage.setdefault(code, []).append(month)
    return _Summary(
        codes=sorted(coverage),
        coverage=coverage,
        date_from=min(r[2] for r in rows),
        date_to=max(r[3] for r in rows),
    )


def _land(
    *,
    batch: ImportBatch,
    kind: BatchKind | Kind,
    facts: pa.Table | dict[Kind, pa.Table],
    user: AnyUser | None,
    audit_changes: dict[str, Any],
    progress: _Progress,
) -> ImportBatch:
    """Write the facts as the next batch and mark it landed, in one transaction with the
    manifest row and the audit row; the files are removed if the transaction fails.

    A front-page batch writes two datasets under the same seq: its stays (discharges) and their
    operations; the operations replace every earlier operation of the batch's stays, so a stay
    re-imported without operations has none any more."""
    datasets = BATCH_DATASETS[BatchKind(kind).value]
    tables = facts if isinstance(facts, dict) else {datasets[0]: facts}
    primary = tables[datasets[0]]
    summary = _summarise(datasets[0], primary)
    all_written: list[store.Written] = []
    progress("writing", 0, primary.num_rows)
    try:
        with transaction.atomic():
            _lock()
            seq = int(ImportBatch.objects.aggregate(m=Max("seq"))["m"] or 0) + 1
            for dataset in datasets:
                earlier = [
                    int(s or 0)
                    for s in ImportBatch.objects.filter(
                        kind__in=batch_kinds_of(dataset), seq__isnull=False, seq__lt=seq
                    ).values_list("seq", flat=True)
                ]
                replaces = None if dataset == datasets[0] else primary.select(list(KEY_COLUMNS[dataset]))
                all_written.append(
                    store.write_batch(kind=dataset, table=tables[dataset], seq=seq, earlier=earlier, replaces=replaces)
                )
            written = all_written[0]
            batch.seq = seq
            batch.status = BatchStatus.LANDED
            batch.rows_landed = written.rows
            batch.rows_replaced = written.rows_replaced
            batch.institution_codes = summary.codes
            batch.coverage = summary.coverage
            batch.date_from = summary.date_from
            batch.date_to = summary.date_to
            batch.landed_at = timezone.now()
            batch.progress_stage, batch.progress_done, batch.progress_total = "done", written.rows, written.rows
            batch.save()
            batch.institutions.set(Institution.objects.filter(code__in=summary.codes))
            audit_record(
                actor=user,
                action=AuditAction.CREATE,
                obj=batch,
                changes={
                    "event": "activity.batch_land",
                    "kind": BatchKind(kind).value,
                    "seq": seq,
                    "filename": batch.filename,
                    "rows_landed": written.rows,
                    "rows_replaced": written.rows_replaced,
                    "datasets": {
                        dataset.value: {"rows": each.rows, "replaced": each.rows_replaced}
                        for dataset, each in zip(datasets, all_written, strict=True)
                    },
                    "institutions": summary.codes,
                    **audit_changes,
                },
            )
    except BaseException:
        for each in all_written:
            each.remove()
        raise
    progress("writing", primary.num_rows, primary.num_rows, save=False)
    return batch


def batch_land_table(
    *, user: AnyUser | None, kind: Kind, table: pa.Table, filename: str, note: str = ""
) -> ImportBatch:
    """Land an already valid fact table (the fact schema without ``batch_seq``; ``patient_key``
    already pseudonymised) as one batch. ``user`` None means the system (demo generator); a user
    must hold the import permission for every institution in the table."""
    kind = Kind(kind)
    schema = fact_schema(kind, with_batch_seq=False)
    missing = [
        name
        for name in schema.names
        if name not in table.column_names and name not in ("residence_basis", "category_basis")
    ]
    if missing:
        raise ValidationError(_("The table lacks the columns %(columns)s.") % {"columns": ", ".join(missing)})
    facts = complete(kind, table)
    keys = list(FILE_KEY_COLUMNS[kind])
    repeated = facts.group_by(keys).aggregate([([], "count_all")]).filter(pc.field("count_all") > 1)
    if repeated.num_rows:
        raise ValidationError(
            ngettext(
                "%(n)d record appears more than once in the table (same %(key)s).",
                "%(n)d records appear more than once in the table (same %(key)s).",
                repeated.num_rows,
            )
            % {"n": repeated.num_rows, "key": ", ".join(keys)}
        )
    if user is not None:
        require_perm(user, Permission.IMPORT_ACTIVITY)
        codes = set(facts.column("institution_code").unique().to_pylist())
        refused = sorted(codes - institution_codes_importable_by(user))
        if refused:
            raise PermissionDenied(
                _("You may not import data for %(institutions)s.") % {"institutions": ", ".join(refused)}
            )
    batch = ImportBatch.objects.create(
        kind=kind,
        filename=filename,
        note=note,
        uploaded_by=_account(user),
        rows_total=facts.num_rows,
    )
    return _land(
        batch=batch,
        kind=kind,
        facts=facts,
        user=user,
        audit_changes={"source": "table", "note": note},
        progress=_Progress(batch, None),
    )


def _write_rejects(batch: ImportBatch, rejects: pa.Table) -> Path:
    directory = store.rejects_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{batch.public_id}.csv"
    tmp = directory / f".tmp-{batch.public_id}.csv"
    with tmp.open("wb") as handle:
        handle.write(b"\xef\xbb\xbf")
        pacsv.write_csv(rejects, handle)
    tmp.rename(path)
    return path


def batch_import(
    *,
    user: AnyUser,
    kind: BatchKind | Kind | str,
    path: Path,
    filename: str,
    accept_valid: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Read, check and land one file. Returns the batch (landed or rejected), the first errors
    and, with ``accept_valid`` and rejected rows, the path of the rejects file.

    ``kind`` front pages: a national front-page export (``yilian.activity.frontpage``), which lands
    its stays as discharges and their operations in one batch; the batch's ``report`` says which
    dialect and encoding were read, what was repaired and how the stays' residence was placed."""
    kind = BatchKind(kind)
    require_perm(user, Permission.IMPORT_ACTIVITY)
    path = Path(path)
    sha256, encoding = readers.scan(path)
    batch = ImportBatch.objects.create(
        kind=kind,
        filename=filename[:255],
        file_sha256=sha256,
        uploaded_by=_account(user),
        accept_valid=accept_valid,
        progress_stage="reading",
    )
    report = _Progress(batch, progress)
    try:
        report("reading", 0, 1)
        if kind == BatchKind.FRONTPAGES and Path(filename).suffix.lower() == ".json":
            raise readers.ReadError(_("Front pages are read from CSV or Excel (.xlsx) files."))
        dataset = Kind.DISCHARGES if kind == BatchKind.FRONTPAGES else Kind(kind)
        raw = readers.read_file(dataset, path, filename, encoding=encoding)
        if raw.num_rows == 0:
            # A header line alone (an export that selected nothing) would land as an empty batch.
            raise readers.ReadError(_("The file has no rows of data under its column headers: nothing to import."))
        report("reading", 1, 1)
        outcome: Outcome | frontpage.FrontpageOutcome
        if kind == BatchKind.FRONTPAGES:
            outcome = frontpage.validate_frontpages(
                raw=raw,
                institutions=_institutions(user),
                today=timezone.localdate(),
                want_rejects=accept_valid,
                progress=report,
            )
            facts: pa.Table | dict[Kind, pa.Table] = {
                Kind.DISCHARGES: outcome.discharges,
                Kind.OPERATIONS: outcome.operations,
            }
            landing = outcome.discharges.num_rows
            batch.report = outcome.report
        else:
            outcome = validate(
                kind=Kind(kind),
                raw=raw,
                institutions=_institutions(user),
                today=timezone.localdate(),
                want_rejects=accept_valid,
                progress=report,
            )
            facts, landing = outcome.facts, outcome.facts.num_rows
            batch.report = {"format": raw.format, "encoding": raw.encoding}
    except readers.ReadError as exc:
        errors = [RowError(row=0, column="", message=str(exc))]
        rejected = _reject(batch, user, errors, 1, rows_total=0, rows_rejected=0, ignored=[])
        return ImportResult(batch=rejected, errors=errors)
    except Exception as exc:
        _fail(batch, user, exc)
        raise
    batch.rows_total = outcome.rows_total
    batch.ignored_columns = outcome.ignored_columns
    batch.errors = [{"row": e.row, "column": e.column, "message": e.message} for e in outcome.errors]
    batch.errors_total = outcome.errors_total
    batch.rows_rejected = outcome.rows_rejected
    if outcome.errors_total and (not accept_valid or landing == 0 or outcome.rejects is None):
        rejected = _reject(
            batch,
            user,
            outcome.errors,
            outcome.errors_total,
            rows_total=outcome.rows_total,
            rows_rejected=outcome.rows_total,
            ignored=outcome.ignored_columns,
        )
        return ImportResult(batch=rejected, errors=outcome.errors)
    rejects_path: Path | None = None
    try:
        if outcome.rejects is not None and outcome.rejects.num_rows:
            rejects_path = _write_rejects(batch, outcome.rejects)
            batch.rejects_file = str(rejects_path.relative_to(store.root()))
        _land(
            batch=batch,
            kind=kind,
            facts=facts,
            user=user,
            audit_changes={
                "source": "file",
                "file_sha256": batch.file_sha256,
                "rows_total": outcome.rows_total,
                "rows_rejected": outcome.rows_rejected,
                "errors_total": outcome.errors_total,
                "accept_valid": accept_valid,
            },
            progress=report,
        )
    except Exception as exc:
        if rejects_path is not None:
            rejects_path.unlink(missing_ok=True)
            batch.rejects_file = ""
        _fail(batch, user, exc)
        raise
    return ImportResult(batch=batch, errors=outcome.errors, rejects_path=rejects_path)


def _reject(
    batch: ImportBatch,
    user: AnyUser,
    errors: list[RowError],
    errors_total: int,
    *,
    rows_total: int,
    rows_rejected: int,
    ignored: list[str],
) -> ImportBatch:
    with transaction.atomic():
        batch.status = BatchStatus.REJECTED
        batch.rows_total = rows_total
        batch.rows_rejected = rows_rejected
        batch.errors_total = errors_total
        batch.errors = [{"row": e.row, "column": e.column, "message": e.message} for e in errors[:MAX_ERRORS]]
        batch.ignored_columns = ignored
        batch.progress_stage = "done"
        batch.save()
        audit_record(
            actor=user,
            action=AuditAction.CREATE,
            obj=batch,
            changes={
                "event": "activity.batch_import",
                "kind": batch.kind,
                "status": BatchStatus.REJECTED.value,
                "filename": batch.filename,
                "file_sha256": batch.file_sha256,
                "rows_total": rows_total,
                "errors_total": errors_total,
            },
        )
    return batch


def _fail(batch: ImportBatch, user: AnyUser, exc: BaseException) -> None:
    """Record an unexpected failure (a bug or a full disk) on the batch; nothing has landed. The
    batch keeps only the kind of error: a library's message may quote a value of the file (patient
    data), so the message itself goes to the server log alone."""
    logger.error("import batch %s failed", batch.public_id, exc_info=exc)
    detail = type(exc).__name__
    with transaction.atomic():
        ImportBatch.objects.filter(pk=batch.pk).update(
            status=BatchStatus.FAILED, failure=detail, progress_stage="failed", seq=None
        )
        batch.refresh_from_db()
        audit_record(
            actor=user,
            action=AuditAction.CREATE,
            obj=batch,
            changes={"event": "activity.batch_import", "status": BatchStatus.FAILED.value, "failure": detail[:200]},
        )


def batch_withdraw(*, user: AnyUser, batch: ImportBatch, reason: str) -> ImportBatch:
    """Withdraw a landed batch: its facts stop counting and the versions it replaced count again.
    Files are kept (nothing clinical is hard-deleted). Needs the import permission for every
    institution the batch covers (system administrators: any)."""
    require_perm(user, Permission.IMPORT_ACTIVITY)
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": _("Say why the batch is withdrawn.")})
    with transaction.atomic():
        _lock()
        locked = ImportBatch.objects.select_for_update().get(pk=batch.pk)
        if locked.status != BatchStatus.LANDED:
            # Already withdrawn (perhaps by someone a moment earlier), rejected or failed: a conflict
            # with the batch's state, not bad input.
            raise Conflict(
                _("Only a landed batch can be withdrawn; this one is %(status)s.")
                % {"status": locked.get_status_display()}
            )
        refused = sorted(set(locked.institution_codes) - institution_codes_importable_by(user))
        if refused:
            raise PermissionDenied(
                _("You may not withdraw data of %(institutions)s.") % {"institutions": ", ".join(refused)}
            )
        locked.status = BatchStatus.WITHDRAWN
        locked.withdrawn_by = _account(user)
        locked.withdrawn_at = timezone.now()
        locked.withdrawal_reason = reason
        locked.save()
        audit_record(
            actor=user,
            action=AuditAction.UPDATE,
            obj=locked,
            changes={
                "event": "activity.batch_withdraw",
                "kind": locked.kind,
                "seq": locked.seq,
                "reason": reason,
                "rows_landed": locked.rows_landed,
            },
        )
    return locked
