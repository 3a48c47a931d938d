"""Indicator engine: all indicators of one institution for one year, on a province-sized store.

Target (issue: clinical activity import and indicators): under 1 s warm on 10 million operations
and 50 million visits; the same indicators computed by SQL on PostgreSQL from the same data in the
same run, reported as a ratio.

Data: the demo consortium (``seed_demo``) plus rounds of the synthetic demo activity
(``yilian.demo.activity``, the same generator as the demo, with a volume multiplier per round),
landed through ``batch_land_table`` as one batch per dataset and round until the store holds at
least ``--visits`` visits and ``--operations`` operations (the discharges come with the
operations). Every round after the first lands at copies of the demo institutions made for it, so
the volume is spread over many institutions as a province's is; the measured institution is the
one with the most discharges (the Bijie centre, with the first round and the demo's operational
records). Building is idempotent: with ``--data-dir`` a second run reuses the store.

Measured, in a fresh process:

- DuckDB (the default backend): ``engine.evaluate`` as the system administrator for every active
  indicator, that institution, the last story year by month (12 periods, each with the same month a
  year earlier) and by year: the first call (cold: the process's first query, Parquet metadata
  read, connection opened) and ``--runs`` calls after it (warm);
- PostgreSQL: the current facts of the same store copied into PostgreSQL with ``COPY`` (btree
  indexes on institution and date, ``ANALYZE``), then the same ``engine.evaluate`` calls with the
  engine's fact tables pointed at the PostgreSQL tables through Ibis's PostgreSQL backend: the very
  same Ibis expressions, compiled to PostgreSQL SQL. The values are compared with DuckDB's.

The operational indicators (referrals, consults, stationing, green channel) are read from the
operational database (SQLite here) in both cases; their share is reported separately.

``--quick`` runs on 2 million visits and 400,000 operations. Writes benchmarks/results/indicators.json
(``indicators_quick.json`` with ``--quick``) and prints a summary.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, peak_rss_mb, postgres_ready, run_child, summary

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGET_WARM_S = 1.0
SEED = 2018
FIRST_ROUND = 100  # rounds 0.. are the demo's own
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/yl_bench_indicators"
# A round with multiplier 1 has about 630,000 visits and 73,000 operations; rounds are at most
# 8 times (about 5 million visits) and 20 times (about 1.5 million operations) that.
VISITS_PER_UNIT, VISITS_MAX_MULTIPLIER = 630_000, 8
OPERATIONS_PER_UNIT, INPATIENT_MAX_MULTIPLIER = 73_000, 20


def _multiplier(missing: int, per_unit: int, most: int) -> int:
    return max(1, min(most, math.ceil(missing / per_unit)))


def _django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yilian.settings")
    import django

    django.setup()


# ----------------------------------------------------------------------------------------
# Build (child)


def _counts() -> dict[str, int]:
    from django.db.models import Sum

    from yilian.activity.columns import Kind
    from yilian.activity.models import BatchStatus, ImportBatch

    out = {}
    for kind in Kind:
        total = ImportBatch.objects.filter(kind=kind, status=BatchStatus.LANDED).aggregate(n=Sum("rows_landed"))["n"]
        out[kind.value] = int(total or 0)
    return out


def clone_code(code: str, round_no: int) -> str:
    return f"{code}-r{round_no}"


def _spread_over_clones(table: Any, round_no: int) -> Any:
    """The round's rows moved to copies of the demo institutions made for the round (same region,
    type and grade): the province's volume is spread over 20 institutions per round instead of
    piling up in the 20 of the demo, so that one hospital's share of it stays that of a real one.
    The first round stays with the demo institutions: the Bijie centre, which also has the demo's
    referrals, green-channel cases, stationing and consultations, is the largest hospital."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from yilian.registry.models import Institution

    if round_no == FIRST_ROUND:
        return table

    codes = table.column("institution_code").unique().to_pylist()
    for original in Institution.objects.filter(code__in=codes):
        Institution.objects.get_or_create(
            code=clone_code(original.code, round_no),
            defaults={
                "name_zh": f"{original.name_zh}（{round_no}）",
                "name_en": f"{original.name_en} ({round_no})",
                "grade": original.grade,
                "type": original.type,
                "region": original.region,
            },
        )
    index = table.column_names.index("institution_code")
    suffix = f"-r{round_no}"
    renamed = pc.binary_join_element_wise(table.column("institution_code"), pa.scalar(suffix), "")
    return table.set_column(index, "institution_code", renamed)


def _build(visits: int, operations: int) -> dict[str, Any]:
    _django()
    from django.core.management import call_command

    from yilian.activity.columns import Kind
    from yilian.activity.models import ImportBatch
    from yilian.activity.services import batch_land_table
    from yilian.demo.activity import demo_years, generate_inpatient, generate_visits
    from yilian.demo.seed import seed_demo

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    seed_demo()
    seeded = time.perf_counter() - started
    years = demo_years()
    done = set(ImportBatch.objects.filter(filename__startswith="bench-spread-").values_list("filename", flat=True))
    timings: dict[str, float] = {"generate": 0.0, "land": 0.0}
    batches = 0

    def land(kind: Kind, table: Any, name: str, round_no: int) -> None:
        nonlocal batches
        t0 = time.perf_counter()
        table = _spread_over_clones(table, round_no)
        batch_land_table(user=None, kind=kind, table=table, filename=name, note="benchmark data")
        timings["land"] += time.perf_counter() - t0
        batches += 1

    round_no = FIRST_ROUND
    while (have := _counts()["visits"]) < visits:
        name = f"bench-spread-s{SEED}-r{round_no}-visits.parquet"
        if name not in done:
            t0 = time.perf_counter()
            multiplier = _multiplier(visits - have, VISITS_PER_UNIT, VISITS_MAX_MULTIPLIER)
            table = generate_visits(seed=SEED, round_no=round_no, years=years, multiplier=multiplier)
            timings["generate"] += time.perf_counter() - t0
            land(Kind.VISITS, table, name, round_no)
            del table
        round_no += 1
    round_no = FIRST_ROUND
    while (have := _counts()["operations"]) < operations:
        names = {k: f"bench-spread-s{SEED}-r{round_no}-{k.value}.parquet" for k in (Kind.DISCHARGES, Kind.OPERATIONS)}
        if not all(n in done for n in names.values()):
            t0 = time.perf_counter()
            multiplier = _multiplier(operations - have, OPERATIONS_PER_UNIT, INPATIENT_MAX_MULTIPLIER)
            discharges, ops = generate_inpatient(seed=SEED, round_no=round_no, years=years, multiplier=multiplier)
            timings["generate"] += time.perf_counter() - t0
            land(Kind.DISCHARGES, discharges, names[Kind.DISCHARGES], round_no)
            land(Kind.OPERATIONS, ops, names[Kind.OPERATIONS], round_no)
            del discharges, ops
        round_no += 1
    size = sum(f.stat().st_size for f in Path(os.environ["YILIAN_DATA_DIR"], "activity").rglob("*.parquet"))
    return {
        "rows": _counts(),
        "batches_landed_now": batches,
        "parquet_gb": round(size / 1e9, 2),
        "seed_demo_seconds": round(seeded, 1),
        "generate_seconds": round(timings["generate"], 1),
        "land_seconds": round(timings["land"], 1),
        "build_seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


# ----------------------------------------------------------------------------------------
# Measure (child)

PG_TYPES = {
    "string": "text",
    "date32[day]": "date",
    "int8": "smallint",
    "int16": "smallint",
    "int32": "integer",
    "int64": "bigint",
    "double": "double precision",
    "bool": "boolean",
}


def _load_postgres(url: str, version: str) -> dict[str, Any]:
    """The current facts of the store, copied into PostgreSQL (skipped when the tables already hold
    this store version)."""
    import ibis
    import psycopg
    import pyarrow.csv as pacsv

    from yilian.activity import facts
    from yilian.activity.columns import DATE_COLUMN, Kind, fact_schema

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_marker (version text)")
        row = conn.execute("SELECT version FROM bench_marker").fetchone()
        if row is not None and row[0] == version:
            return {"reused": True, "seconds": 0.0, **_pg_sizes(conn)}
        duck = ibis.duckdb.connect()
        duck.raw_sql("SET threads TO 2")
        rows: dict[str, int] = {}
        for kind in Kind:
            schema = fact_schema(kind)
            columns = ", ".join(f"{f.name} {PG_TYPES[str(f.type)]}" for f in schema)
            conn.execute(f"DROP TABLE IF EXISTS {kind.value}")
            conn.execute(f"CREATE UNLOGGED TABLE {kind.value} ({columns})")
            table = facts.current_facts(duck, kind)
            assert table is not None
            n = 0
            with conn.cursor() as cur, cur.copy(f"COPY {kind.value} FROM STDIN (FORMAT csv)") as copy:
                sql = str(duck.compile(table))
                for batch in duck.con.sql(sql).to_arrow_reader(500_000):
                    buffer = io.BytesIO()
                    pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=False))
                    copy.write(buffer.getvalue())
                    n += batch.num_rows
            rows[kind.value] = n
            conn.execute(f"CREATE INDEX ON {kind.value} (institution_code, {DATE_COLUMN[kind]})")
            conn.execute(f"ANALYZE {kind.value}")
        conn.execute("DELETE FROM bench_marker")
        conn.execute("INSERT INTO bench_marker VALUES (%s)", [version])
        return {"reused": False, "seconds": round(time.perf_counter() - started, 1), "rows": rows, **_pg_sizes(conn)}


def _pg_sizes(conn: Any) -> dict[str, Any]:
    size = conn.execute(
        "SELECT sum(pg_total_relation_size(c)) FROM unnest(ARRAY['visits', 'discharges', 'operations']::regclass[]) c"
    ).fetchone()[0]
    return {"database_gb": round(int(size) / 1e9, 2)}


def _measure(url: str, runs: int) -> dict[str, Any]:
    _django()
    import datetime as dt

    from yilian.activity import facts
    from yilian.demo.activity import demo_years
    from yilian.indicators import engine
    from yilian.indicators.models import Indicator
    from yilian.registry.models import Institution, User

    admin = User.objects.get(username="admin")
    year = demo_years()[-1]
    start, end = dt.date(year, 1, 1), dt.date(year + 1, 1, 1)
    code, volume = _largest(start, end)
    hospital = Institution.objects.get(code=code)
    org = engine.OrgUnit(kind="institution", code=code, name=hospital.name)
    indicators = list(Indicator.objects.filter(is_active=True).order_by("position", "code"))
    fact_codes = [i.code for i in indicators if _is_fact(i)]

    def call(grain: str, codes: list[str] | None = None) -> list[Any]:
        return engine.evaluate(admin, codes=codes, orgs=[org], grain=grain, start=start, end=end)  # type: ignore[arg-type]

    def timed(grain: str, codes: list[str] | None = None) -> tuple[float, list[Any]]:
        t0 = time.perf_counter()
        values = call(grain, codes)
        return time.perf_counter() - t0, values

    partial = RESULTS / "indicators_partial.json"
    RESULTS.mkdir(exist_ok=True)

    def series(grain: str, codes: list[str] | None = None) -> tuple[dict[str, Any], list[Any]]:
        cold, values = timed(grain, codes)
        warm = [timed(grain, codes)[0] * 1000 for _ in range(runs)]
        result = {"cold_ms": round(cold * 1000, 1), "warm": summary(warm)}
        # What is measured so far, for a run that is stopped before its end.
        partial.write_text(json.dumps({"so_far": out, "last": [grain, bool(codes), result]}, default=str))
        return result, values

    out: dict[str, Any] = {
        "indicators": len(indicators),
        "fact_indicators": len(fact_codes),
        "institution": code,
        "institution_rows_in_year": volume,
        "year": year,
        "runs": runs,
    }
    duck: dict[str, Any] = {}
    out["duckdb"] = duck
    duck["month"], month_values = series("month")
    duck["year"], year_values = series("year")
    duck["month_fact_only"], _ = series("month", fact_codes)
    duck["peak_rss_mb"] = peak_rss_mb()
    out["values"] = {
        v.indicator: {"value": v.value, "previous": v.previous, "yoy": v.yoy}
        for v in year_values
        if v.value is not None
    }

    if url:
        import ibis
        from psycopg.conninfo import conninfo_to_dict

        out["postgres_load"] = _load_postgres(url, facts.store_version())
        partial.write_text(json.dumps({"so_far": out}, default=str))
        info = conninfo_to_dict(url)
        pg = ibis.postgres.connect(
            host=info.get("host", "127.0.0.1"),
            port=int(str(info.get("port") or 5432)),
            user=info.get("user", "postgres"),
            database=info.get("dbname"),
        )
        out["postgres_version"] = pg.version
        tables = {kind: pg.table(kind) for kind in ("visits", "discharges", "operations")}
        # Point the engine's fact tables at PostgreSQL: the same Ibis expressions, run by PostgreSQL.
        engine.BACKENDS.reset()
        engine.BACKENDS.connection = lambda backend: pg  # type: ignore[method-assign]
        engine.BACKENDS.facts = lambda backend, kind: tables[kind]  # type: ignore[method-assign]
        post: dict[str, Any] = {}
        out["postgres"] = post
        post["month"], pg_month = series("month")
        post["year"], pg_year = series("year")
        post["month_fact_only"], _ = series("month", fact_codes)
        out["same_values"] = _same(month_values, pg_month) and _same(year_values, pg_year)
        out["ratio_postgres_over_duckdb"] = {
            key: {
                "cold": round(post[key]["cold_ms"] / duck[key]["cold_ms"], 1),
                "warm_p50": round(post[key]["warm"]["p50_ms"] / duck[key]["warm"]["p50_ms"], 1),
            }
            for key in ("month", "year", "month_fact_only")
        }
    return out


def _largest(start: Any, end: Any) -> tuple[str, dict[str, int]]:
    """The institution with the most discharges in [start, end), and its rows of each kind then."""
    import ibis

    from yilian.activity import facts
    from yilian.activity.columns import DATE_COLUMN, Kind

    con = ibis.duckdb.connect()
    counts: dict[str, dict[str, int]] = {}
    for kind in Kind:
        t = facts.current_facts(con, kind)
        assert t is not None
        date = t[DATE_COLUMN[kind]]
        year = t.filter((date >= start) & (date < end))
        rows = year.group_by("institution_code").aggregate(n=year.count())
        for row in con.to_pyarrow(rows).to_pylist():
            counts.setdefault(row["institution_code"], {})[kind.value] = int(row["n"])
    code = max(counts, key=lambda c: counts[c].get("discharges", 0))
    return code, counts[code]


def _is_fact(indicator: Any) -> bool:
    from yilian.indicators import dsl

    parts = [indicator.numerator, indicator.denominator]
    return all(p is None or p.get("source") in dsl.FACT_SOURCES for p in parts)


def _same(a: list[Any], b: list[Any]) -> bool:
    def key(values: list[Any]) -> list[tuple[Any, ...]]:
        return [
            (v.indicator, v.period.label, _round(v.numerator), _round(v.denominator), _round(v.previous))
            for v in values
        ]

    return key(a) == key(b)


def _round(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 6)


# ----------------------------------------------------------------------------------------
# Driver


def _child(env: dict[str, str], *args: str) -> dict[str, Any]:
    return run_child(__file__, env, *args, cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--visits", type=int, default=50_000_000)
    parser.add_argument("--operations", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="2 million visits, 400,000 operations")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--data-dir", help="data directory to use (kept and reused; default: a fresh temporary one)")
    parser.add_argument("--no-postgres", action="store_true", help="DuckDB only")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        step = args.child[0]
        if step == "build":
            out = _build(int(args.child[1]), int(args.child[2]))
        else:
            out = _measure(args.child[1] if len(args.child) > 2 else "", int(args.child[-1]))
        print(json.dumps(out, ensure_ascii=False))
        return 0

    visits, operations = (2_000_000, 400_000) if args.quick else (args.visits, args.operations)
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="yilian-bench-indicators-")
    env = {k: v for k, v in os.environ.items() if k not in ("YILIAN_DATABASE_URL", "YILIAN_ACTIVITY_DIR")}
    env["YILIAN_DATA_DIR"] = data_dir
    env["YILIAN_INDICATOR_BACKEND"] = "duckdb"
    url = os.environ.get("YILIAN_BENCH_DATABASE_URL", DEFAULT_POSTGRES)
    why_not = "--no-postgres" if args.no_postgres else postgres_ready(url)
    if why_not:
        print(f"(PostgreSQL skipped: {why_not})")
    try:
        built = _child(env, "build", str(visits), str(operations))
        measure_args = ["measure", url, str(args.runs)] if not why_not else ["measure", str(args.runs)]
        measured = _child(env, *measure_args)
    finally:
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)

    warm = measured["duckdb"]["month"]["warm"]["p95_ms"] / 1000
    result = {
        "benchmark": "indicators",
        "target_warm_s": TARGET_WARM_S,
        "machine": machine(),
        "data": built,
        "measured": measured,
        "target_met": warm < TARGET_WARM_S,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "indicators_quick.json" if args.quick else "indicators.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    rows = built["rows"]
    print(
        f"store: {rows['visits']:,} visits, {rows['discharges']:,} discharges, {rows['operations']:,} operations "
        f"({built['parquet_gb']} GB Parquet; built in {built['build_seconds']} s)"
    )
    m = measured
    volume = ", ".join(f"{n:,} {kind}" for kind, n in m["institution_rows_in_year"].items())
    print(f"all {m['indicators']} indicators ({m['fact_indicators']} over the facts), {m['year']}:")
    print(f"  institution {m['institution']} ({volume} in the year)")
    backends = ["duckdb"] + (["postgres"] if "postgres" in m else [])
    for backend in backends:
        for key, label in (("month", "by month"), ("year", "by year"), ("month_fact_only", "facts only, by month")):
            r = m[backend][key]
            print(
                f"  {backend:<8} {label:<21} cold {r['cold_ms']:8.1f} ms  warm p50 {r['warm']['p50_ms']:8.1f} ms  "
                f"p95 {r['warm']['p95_ms']:8.1f} ms"
            )
    if "postgres" in m:
        load = m["postgres_load"]
        print(f"  PostgreSQL load: {load['seconds']} s ({load['database_gb']} GB); same values: {m['same_values']}")
        print(f"  ratio PostgreSQL / DuckDB: {m['ratio_postgres_over_duckdb']}")
    print(f"  target warm < {TARGET_WARM_S:.0f} s: {'met' if result['target_met'] else 'MISSED'}")
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
