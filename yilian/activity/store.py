"""Layout and writing of the Parquet store (``settings.ACTIVITY_DIR``).

::

    <kind>/batch=<seq>/part-0.parquet      the batch's facts, sorted by institution_code then date,
                                           row groups of 131,072 rows, zstd
    <kind>/superseded/batch=<seq>.parquet  keys of records in the batch that an earlier batch also
                                           had, with ``superseded_by`` = seq (only when any)
    rejects/<batch public id>.csv          rejected rows of an accept-valid import (UTF-8 with BOM)

Files are written into a hidden temporary directory and renamed into place, so a reader never sees
half a file; the manifest row is updated in the same database transaction and the files are
removed again if that transaction fails. Nothing here is ever deleted once its batch has landed:
withdrawal is a status in the manifest.
"""

# The SQL here is assembled from the dataset definitions in columns.py (constants); user data only
# ever reaches DuckDB as registered Arrow tables or bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings

from yilian.activity.columns import DATE_COLUMN, FILE_KEY_COLUMNS, KEY_COLUMNS, Kind, fact_schema

ROW_GROUP_SIZE = 131_072


def root() -> Path:
    return Path(settings.ACTIVITY_DIR)


def kind_dir(kind: Kind | str) -> Path:
    return root() / Kind(kind).value


def batch_dir(kind: Kind | str, seq: int) -> Path:
    return kind_dir(kind) / f"batch={seq}"


def batch_file(kind: Kind | str, seq: int) -> Path:
    return batch_dir(kind, seq) / "part-0.parquet"


def batch_glob(kind: Kind | str) -> str:
    return str(kind_dir(kind) / "batch=*" / "part-0.parquet")


def superseded_dir(kind: Kind | str) -> Path:
    return kind_dir(kind) / "superseded"


def superseded_file(kind: Kind | str, seq: int) -> Path:
    return superseded_dir(kind) / f"batch={seq}.parquet"


def superseded_glob(kind: Kind | str) -> str:
    return str(superseded_dir(kind) / "batch=*.parquet")


def rejects_dir() -> Path:
    return root() / "rejects"


@dataclass
class Written:
    """What ``write_batch`` put in place (to remove if the manifest transaction fails)."""

    paths: list[Path] = field(default_factory=list)
    rows: int = 0
    rows_replaced: int = 0

    def remove(self) -> None:
        for path in self.paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _tmp_path(parent: Path, name: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return parent / f".tmp-{name}-{uuid.uuid4().hex}"


def _sort_order(table: pa.Table, date_column: str) -> np.ndarray:
    """Row order by institution code then date: the codes are few, so they are ranked through
    their dictionary and the sort runs on two integer keys (numpy lexsort)."""
    codes = pc.dictionary_encode(table.column("institution_code")).combine_chunks()
    dictionary = codes.dictionary.to_numpy(zero_copy_only=False)
    rank = np.empty(len(dictionary), dtype=np.int64)
    rank[np.argsort(dictionary, kind="stable")] = np.arange(len(dictionary))
    code_key = rank[codes.indices.to_numpy(zero_copy_only=False)]
    date_key = table.column(date_column).cast(pa.int32()).fill_null(np.iinfo(np.int32).max).to_numpy()
    order: np.ndarray = np.lexsort((date_key, code_key))
    return order


def _with_batch_seq(kind: Kind, table: pa.Table, seq: int) -> pa.Table:
    schema = fact_schema(kind, with_batch_seq=False)
    facts = table.select(schema.names).cast(schema)
    if facts.num_rows:
        facts = facts.take(pa.array(_sort_order(facts, DATE_COLUMN[kind])))
    column = pa.array(np.full(facts.num_rows, seq, dtype=np.int64))
    return facts.append_column(pa.field("batch_seq", pa.int64(), nullable=False), column)


def _superseded_keys(kind: Kind, table: pa.Table, seq: int, earlier: Sequence[int]) -> pa.Table:
    keys = KEY_COLUMNS[kind]
    files = [str(batch_file(kind, s)) for s in earlier if batch_file(kind, s).exists()]
    empty = pa.table({k: pa.array([], pa.string()) for k in keys}).append_column(
        "superseded_by", pa.array([], pa.int64())
    )
    if not files or table.num_rows == 0:
        return empty
    con = duckdb.connect()
    try:
        new = table.select(list(keys))
        con.register("new_keys", new)
        codes = sorted(set(new.column("institution_code").unique().to_pylist()))
        key_list = ", ".join(keys)
        join = " AND ".join(f"n.{k} = o.{k}" for k in keys)
        # A semi join needs no distinct earlier keys (a record in several earlier batches matches
        # once). The new keys are unique in a batch but for the operations, where a stay has a
        # row per operation.
        distinct = "DISTINCT" if FILE_KEY_COLUMNS[kind] != keys else ""
        result = con.sql(
            f"""
            WITH o AS (SELECT {key_list} FROM read_parquet($files, hive_partitioning = false)
                       WHERE institution_code IN (SELECT unnest($codes)))
            SELECT {distinct} {", ".join("n." + k for k in keys)}, CAST($seq AS BIGINT) AS superseded_by
            FROM new_keys n SEMI JOIN o ON {join}
            """,
            params={"files": files, "codes": codes, "seq": seq},
        ).to_arrow_table()
    finally:
        con.close()
    return result


def write_batch(
    *, kind: Kind, table: pa.Table, seq: int, earlier: Sequence[int], replaces: pa.Table | None = None
) -> Written:
    """Write one batch's facts (fact schema without ``batch_seq``) as batch ``seq``, and the keys
    it takes over from the batches ``earlier`` (every batch with files of the kind and a lower
    seq, landed or withdrawn: whether they count is decided when reading). ``replaces`` (the key
    columns) names the records taken over when they are not the facts' own: a front-page batch's
    operations replace those of all its stays, including stays that now have none."""
    written = Written()
    target = batch_dir(kind, seq)
    if target.exists():
        # Left behind by a landing whose transaction was rolled back after the rename.
        shutil.rmtree(target)
    # Likewise its list of superseded keys: a stale one would hide records this batch does not replace.
    superseded_file(kind, seq).unlink(missing_ok=True)
    facts = _with_batch_seq(kind, table, seq)
    tmp = _tmp_path(kind_dir(kind), f"batch={seq}")
    try:
        tmp.mkdir()
        pq.write_table(facts, tmp / "part-0.parquet", row_group_size=ROW_GROUP_SIZE, compression="zstd")
        tmp.rename(target)
        written.paths.append(target)
        written.rows = facts.num_rows
        superseded = _superseded_keys(kind, facts if replaces is None else replaces, seq, earlier)
        written.rows_replaced = superseded.num_rows
        if superseded.num_rows:
            sup_tmp = _tmp_path(superseded_dir(kind), f"batch={seq}")
            pq.write_table(superseded, sup_tmp, compression="zstd")
            final = superseded_file(kind, seq)
            sup_tmp.rename(final)
            written.paths.append(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        written.remove()
        raise
    return written
