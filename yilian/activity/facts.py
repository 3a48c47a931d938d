"""The indicator engine's only way into the activity store.

``current_facts`` is the union of the active (landed, not withdrawn) batches' facts minus every
record that an active batch with a higher seq has replaced: a row of batch *s* with key *k* is
hidden when ``<kind>/superseded/batch=<t>.parquet`` lists *k* for an active batch *t > s*.
Withdrawing *t* therefore brings the earlier versions back without touching any file.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import ibis
import ibis.expr.types as ir
from django.db.models import Count, Max, Q

from yilian.activity import store
from yilian.activity.columns import KEY_COLUMNS, Kind, batch_kinds_of, fact_schema
from yilian.activity.models import BatchStatus, ImportBatch


def _active(kind: Kind) -> list[tuple[int, int]]:
    """(seq, rows_replaced) of the active batches of the kind."""
    return [
        (int(seq or 0), int(replaced))
        for seq, replaced in ImportBatch.objects.filter(
            kind__in=batch_kinds_of(kind), status=BatchStatus.LANDED, seq__isnull=False
        )
        .order_by("seq")
        .values_list("seq", "rows_replaced")
    ]


def _read(con: ibis.BaseBackend, pattern: str) -> ir.Table:
    kwargs: dict[str, Any] = {"hive_partitioning": False} if con.name == "duckdb" else {}
    return con.read_parquet(pattern, **kwargs)


# Columns added to a fact schema after the first release, and their value in older files.
_LATER_COLUMNS: dict[str, Any] = {"residence_basis": None, "category_basis": "file"}


def _complete(facts: ir.Table, kind: Kind) -> ir.Table:
    """The exact fact columns: a column added later is null (or its default) where files lack it."""
    schema = fact_schema(kind)
    present = set(facts.columns)
    added: dict[str, Any] = {}
    for field in schema:
        if field.name not in present:
            added[field.name] = ibis.literal(_LATER_COLUMNS.get(field.name), type=ibis.dtype(field.type))
    if added:
        facts = facts.mutate(**added)
    if kind == Kind.DISCHARGES:
        # Older files: the basis was the region code column whenever there was a region.
        known = facts.residence_region.re_search(r"^[0-9]{6}$").fill_null(False)
        facts = facts.mutate(
            residence_basis=facts.residence_basis.fill_null(ibis.ifelse(known, "region_code", "unknown"))
        )
    if kind == Kind.OPERATIONS:
        facts = facts.mutate(category_basis=facts.category_basis.fill_null("file"))
    return facts.select(*schema.names)


def current_facts(con: ibis.BaseBackend, kind: Kind) -> ir.Table | None:
    """The current version of every record of the kind, as an Ibis table with the exact fact
    schema (``columns.fact_schema``); None when no batch of the kind is active."""
    kind = Kind(kind)
    active = _active(kind)
    if not active:
        return None
    seqs = [seq for seq, _ in active]
    files = [str(path) for seq in seqs if (path := store.batch_file(kind, seq)).exists()]
    if not files:
        return None  # the manifest names batches whose files are not under this ACTIVITY_DIR
    names = fact_schema(kind).names
    if con.name == "duckdb":
        # Only the active batches' files are opened (no filter on batch_seq over every row). Files
        # written before a column was added lack it: read by name, the column is null there.
        facts = _complete(con.read_parquet(files, hive_partitioning=False, union_by_name=True), kind)
    else:
        # Spark takes one file's schema unless told to merge them (columns added later).
        facts = _complete(con.read_parquet(store.batch_glob(kind), mergeSchema=True), kind)
        facts = facts.filter(facts.batch_seq.isin(seqs))
    # A batch's superseded file says which records it replaced (a front-page batch replaces the
    # operations of its stays even when none of its stays replaced a discharge).
    replacing = [seq for seq, _replaced in active if store.superseded_file(kind, seq).exists()]
    if not replacing:
        return facts
    keys = KEY_COLUMNS[kind]
    superseded = _read(con, store.superseded_glob(kind))
    superseded = superseded.filter(superseded.superseded_by.isin(replacing)).select(*keys, "superseded_by")
    predicates = [facts[k] == superseded[k] for k in keys]
    predicates.append(superseded.superseded_by > facts.batch_seq)
    return facts.anti_join(superseded, predicates).select(*names)


def coverage(kind: Kind) -> dict[str, set[tuple[int, int]]]:
    """Institution code -> (year, month) pairs that active batches of the kind cover."""
    covered: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for months in ImportBatch.objects.filter(kind__in=batch_kinds_of(kind), status=BatchStatus.LANDED).values_list(
        "coverage", flat=True
    ):
        for code, labels in (months or {}).items():
            for label in labels:
                year, month = label.split("-")
                covered[code].add((int(year), int(month)))
    return dict(covered)


def store_version() -> str:
    """Changes whenever a batch lands or is withdrawn (a cache key for computed indicators), and
    when the store or the manifest is another one with the same counts (a restored database, a
    store moved elsewhere): the landing times and the store's place are part of it."""
    summary = ImportBatch.objects.filter(seq__isnull=False).aggregate(
        n=Count("id"),
        last=Max("seq"),
        withdrawn=Count("id", filter=Q(status=BatchStatus.WITHDRAWN)),
        last_withdrawn=Max("withdrawn_at"),
        last_landed=Max("landed_at"),
    )
    stamps = [t.isoformat() if t else "-" for t in (summary["last_withdrawn"], summary["last_landed"])]
    return f"{summary['n']}:{summary['last'] or 0}:{summary['withdrawn']}:{':'.join(stamps)}:{store.root()}"
