"""Clinical activity import: a 1,000,000-row visits CSV through ``batch_import``.

Target (issue: clinical activity import): 200,000 rows/s or more, with peak memory under 2 GB.

The file is made from the demo's synthetic visits (``yilian.demo.activity.generate_visits``, seed
2018, twice the demo volumes, the first ``--rows`` rows): institution code, visit number, patient
identifier, department, date, setting, visit type, sex, age, residence code and doctor, one row a
visit. Variants:

- ``utf8``: English canonical headers, UTF-8;
- ``gb18030``: Chinese headers and Chinese values (男/女, 门诊/急诊, 初诊/复诊/远程), GB18030, as
  hospital systems export them, with other visit numbers (so it lands as new records);
- ``reimport``: the UTF-8 file again, so every record replaces its earlier version.

Each import runs in its own process (Django set up, the demo consortium seeded once beforehand in
a fresh SQLite data directory), as the system administrator, through the public service
``yilian.activity.services.batch_import`` (read, validate every row, pseudonymise, derive the
origin, write the Parquet batch, record the manifest and audit row). Reported per variant: seconds
and rows/s of ``batch_import`` alone, and the process's peak resident memory (``ru_maxrss``, which
includes Python, Django and the libraries: their share is reported as the peak before the import).

``--rows`` changes the size (``--quick``: 100,000). Writes benchmarks/results/activity_import.json
(``activity_import_quick.json`` with ``--quick``) and prints a summary.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, peak_rss_mb, run_child

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGET_ROWS_PER_S = 200_000
TARGET_PEAK_MB = 2048
SEED = 2018

CHINESE_HEADERS = {
    "institution_code": "机构代码",
    "visit_id": "就诊流水号",
    "patient_id": "患者ID",
    "department": "科室",
    "visit_date": "就诊日期",
    "setting": "门急诊",
    "visit_type": "就诊类型",
    "sex": "性别",
    "age": "年龄",
    "residence_region": "现住址行政区划代码",
    "doctor": "接诊医生",
}
CHINESE_VALUES = {
    "sex": {"male": "男", "female": "女", "unknown": "未知"},
    "setting": {"outpatient": "门诊", "emergency": "急诊"},
    "visit_type": {"first": "初诊", "follow_up": "复诊", "tele": "远程"},
}


def _django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yilian.settings")
    import django

    django.setup()


# ----------------------------------------------------------------------------------------
# Children


def _setup() -> dict[str, Any]:
    """Migrate and seed the demo consortium (the registry the rows refer to)."""
    _django()
    from django.core.management import call_command

    from yilian.demo.seed import seed_demo

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    seed_demo()
    return {"seconds": round(time.perf_counter() - started, 1)}


def _write_files(rows: int, folder: Path) -> dict[str, Any]:
    """The CSV variants, from the generator's visits."""
    _django()
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from yilian.demo.activity import demo_years, generate_visits

    started = time.perf_counter()
    years = demo_years()
    visits = generate_visits(seed=SEED, round_no=7, years=years, multiplier=2)
    if visits.num_rows < rows:
        raise SystemExit(f"the generator gave {visits.num_rows} rows, fewer than {rows}")
    visits = visits.slice(0, rows)
    # A patient identifier as the hospital's system has it (here: made from the synthetic key).
    patient = pc.utf8_upper(pc.utf8_slice_codeunits(visits["patient_key"], 0, 16))
    table = pa.table(
        {
            "institution_code": visits["institution_code"],
            "visit_id": visits["visit_id"],
            "patient_id": patient,
            "department": visits["department"],
            "visit_date": visits["visit_date"],
            "setting": visits["setting"],
            "visit_type": visits["visit_type"],
            "sex": visits["sex"],
            "age": visits["age"],
            "residence_region": visits["residence_region"],
            "doctor": visits["doctor"],
        }
    )
    utf8 = folder / "visits-utf8.csv"
    pacsv.write_csv(table, utf8)
    chinese = table.set_column(1, "visit_id", pc.binary_join_element_wise("GB", table["visit_id"], ""))
    for name, mapping in CHINESE_VALUES.items():
        column = chinese[name]
        for english, zh in mapping.items():
            column = pc.if_else(pc.equal(column, english), zh, column)
        chinese = chinese.set_column(chinese.schema.get_field_index(name), name, column)
    chinese = chinese.rename_columns([CHINESE_HEADERS[n] for n in chinese.column_names])
    staging = folder / "visits-zh-utf8.csv"
    pacsv.write_csv(chinese, staging)
    gb = folder / "visits-gb18030.csv"
    with open(staging, encoding="utf-8") as src, codecs.open(str(gb), "w", encoding="gb18030") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    staging.unlink()
    return {
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
        "utf8_mb": round(utf8.stat().st_size / 1e6, 1),
        "gb18030_mb": round(gb.stat().st_size / 1e6, 1),
    }


def _import(path: Path, filename: str) -> dict[str, Any]:
    _django()
    from yilian.activity.columns import Kind
    from yilian.activity.services import batch_import
    from yilian.registry.models import User

    admin = User.objects.get(username="admin")
    before = peak_rss_mb()
    stages: dict[str, float] = {}
    current: dict[str, Any] = {"stage": "", "since": time.perf_counter()}

    def close_stage(now: float) -> None:
        stage = str(current["stage"])
        if stage:
            stages[stage] = round(stages.get(stage, 0.0) + now - float(current["since"]), 2)

    def progress(stage: str, done: int, total: int) -> None:
        if stage != current["stage"]:
            now = time.perf_counter()
            close_stage(now)
            current["stage"], current["since"] = stage, now

    started = time.perf_counter()
    result = batch_import(user=admin, kind=Kind.VISITS, path=path, filename=filename, progress=progress)
    seconds = time.perf_counter() - started
    close_stage(time.perf_counter())
    batch = result.batch
    return {
        "status": batch.status,
        "rows_landed": batch.rows_landed,
        "rows_replaced": batch.rows_replaced,
        "errors": len(result.errors),
        "seconds": round(seconds, 2),
        "rows_per_s": round(batch.rows_landed / seconds) if seconds else 0,
        "stages_seconds": stages,
        "peak_rss_mb_before_import": before,
        "peak_rss_mb": peak_rss_mb(),
    }


# ----------------------------------------------------------------------------------------
# Driver


def _child(env: dict[str, str], *args: str) -> dict[str, Any]:
    return run_child(__file__, env, *args, cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    parser.add_argument("--data-dir", help="data directory to use (kept; default: a fresh temporary one)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        step = args.child[0]
        if step == "setup":
            out = _setup()
        elif step == "files":
            out = _write_files(int(args.child[1]), Path(args.child[2]))
        else:
            out = _import(Path(args.child[1]), args.child[2])
        print(json.dumps(out))
        return 0

    rows = 100_000 if args.quick else args.rows
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="yilian-bench-import-")
    files = Path(tempfile.mkdtemp(prefix="yilian-bench-import-files-"))
    env = {k: v for k, v in os.environ.items() if k not in ("YILIAN_DATABASE_URL", "YILIAN_ACTIVITY_DIR")}
    env["YILIAN_DATA_DIR"] = data_dir
    try:
        setup = _child(env, "setup")
        made = _child(env, "files", str(rows), str(files))
        runs = {}
        for variant, name in (
            ("utf8", "visits-utf8.csv"),
            ("gb18030", "visits-gb18030.csv"),
            ("reimport", "visits-utf8.csv"),
        ):
            runs[variant] = _child(env, "import", str(files / name), name)
    finally:
        shutil.rmtree(files, ignore_errors=True)
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)

    met = all(
        r["status"] == "landed" and r["rows_per_s"] >= TARGET_ROWS_PER_S and r["peak_rss_mb"] < TARGET_PEAK_MB
        for r in runs.values()
    )
    result = {
        "benchmark": "activity_import",
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "target_peak_mb": TARGET_PEAK_MB,
        "machine": machine(),
        "database": "sqlite",
        "setup_seconds": setup["seconds"],
        "files": made,
        "runs": runs,
        "target_met": met,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "activity_import_quick.json" if args.quick else "activity_import.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(
        f"visits CSV, {rows:,} rows: UTF-8 {made['utf8_mb']} MB, GB18030 {made['gb18030_mb']} MB "
        f"(made in {made['seconds']} s)"
    )
    for variant, r in runs.items():
        print(
            f"  {variant:<9} {r['status']:<8} {r['seconds']:7.2f} s  {r['rows_per_s']:>9,} rows/s  "
            f"peak RSS {r['peak_rss_mb']:,.0f} MB (before the import {r['peak_rss_mb_before_import']:,.0f} MB)  "
            f"replaced {r['rows_replaced']:,}  stages {r['stages_seconds']}"
        )
    print(f"  target >= {TARGET_ROWS_PER_S:,} rows/s and peak < {TARGET_PEAK_MB:,} MB: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
