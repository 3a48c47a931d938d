"""The incoming referral board with 200,000 referrals in the database, and create+accept throughput.

Target (issue: two-way referral): the incoming board's first page renders in under 150 ms server
time at the 95th percentile, on SQLite and on PostgreSQL.

For each database: seeds the demo consortium and the referral history up to ``--referrals``
(``yilian.demo.referrals.seed_referrals``), then
- renders the on-call coordinator's incoming board (``/referrals/?box=incoming``, Quzhou People's
  Hospital) through Django's test client (no network), ``--runs`` times after a warm-up:
  p50/p95/max, the query count and each query's share of the time; the same for the board's HTMX
  partial and for the selector alone (counts and the first 25 rows, no template);
- plans the board's queries (EXPLAIN) so a slow one can be explained;
- times ``--throughput`` referrals created and sent by the Changshan doctor through the services,
  then received and accepted by the coordinator (notifications included).

SQLite runs in a fresh temporary data directory (or ``--data-dir`` to keep and reuse it).
PostgreSQL runs when ``YILIAN_BENCH_DATABASE_URL`` names a database (for example
``postgres://postgres@127.0.0.1:5432/yl_bench_referrals``); seeding is idempotent, so a second run
on the same database skips it. Writes benchmarks/results/referral_board.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, summary

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGET_P95_MS = 150.0
BOARD_URL = "/referrals/?box=incoming"


# ----------------------------------------------------------------------------------------
# One database (runs in its own process: Django is set up once per process)


def _run_one(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    from yilian.demo.referrals import ROUND_SIZE, seed_referrals
    from yilian.demo.seed import DEMO_PASSWORD, seed_demo
    from yilian.referrals import selectors
    from yilian.referrals.models import Referral
    from yilian.registry.models import Institution, User

    setup_test_environment()
    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    seed_demo()
    demo_seconds = time.perf_counter() - started
    scale = max(1, math.ceil(args.referrals / ROUND_SIZE))
    started = time.perf_counter()
    seeded = seed_referrals(scale=scale)
    history_seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        # After a bulk load: fresh planner statistics, and on PostgreSQL the visibility map that
        # index-only scans need (autovacuum does both on its own after this many inserts).
        cursor.execute("ANALYZE" if connection.vendor == "sqlite" else "VACUUM ANALYZE")
    total = Referral.objects.count()

    coordinator = User.objects.get(username="coordinator")
    qzph = Institution.objects.get(code="qzph")
    client = Client()
    response = client.post("/login/", {"username": "coordinator", "password": DEMO_PASSWORD})
    assert response.status_code == 302, "log-in failed for the coordinator"

    def measure(fetch: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        for _ in range(3):
            fetch()
        timings = []
        for _ in range(args.runs):
            start = time.perf_counter()
            fetch()
            timings.append((time.perf_counter() - start) * 1000)
        with CaptureQueriesContext(connection) as queries:
            fetch()
        captured = [{"ms": round(float(q["time"]) * 1000, 1), "sql": q["sql"]} for q in queries.captured_queries]
        return {**summary(timings), "queries": len(captured)}, captured

    def page() -> None:
        assert client.get(BOARD_URL).status_code == 200

    def partial() -> None:
        assert client.get(BOARD_URL, headers={"HX-Request": "true"}).status_code == 200

    def selector() -> None:
        board = selectors.referral_board(coordinator, box=selectors.Box.INCOMING, institution=qzph)
        rows = list(board.rows[:25])
        assert len(rows) == 25

    board_page, page_queries = measure(page)
    board_partial, _ = measure(partial)
    board_selector, _ = measure(selector)

    plans = []
    slow = sorted(page_queries, key=lambda q: q["ms"], reverse=True)[:3]
    for query in slow:
        explain = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
        with connection.cursor() as cursor:
            cursor.execute(explain + query["sql"])
            plan = [" ".join(str(c) for c in row) for row in cursor.fetchall()]
        plans.append({"ms": query["ms"], "sql": query["sql"], "plan": plan})

    throughput = _throughput(args.throughput)
    return {
        "database": connection.vendor,
        "database_version": _database_version(connection),
        "referrals": total,
        "seed": {
            "demo_consortium_seconds": round(demo_seconds, 1),
            "history_seconds": round(history_seconds, 1),
            "history_referrals_created": seeded.referrals,
            "history_events_created": seeded.events,
            "scale": scale,
        },
        "board_page": {"url": BOARD_URL, "user": "coordinator", "runs": args.runs, **board_page},
        "board_partial": {"url": BOARD_URL + " (HX-Request)", "runs": args.runs, **board_partial},
        "board_selector": {"what": "referral_board + first 25 rows, no template", "runs": args.runs, **board_selector},
        "page_queries": [{"ms": q["ms"], "sql": q["sql"][:300]} for q in page_queries],
        "slowest_query_plans": plans,
        "throughput": throughput,
        "target_p95_ms": TARGET_P95_MS,
        "target_met": board_page["p95_ms"] < TARGET_P95_MS,
    }


def _database_version(connection: Any) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sqlite_version()" if connection.vendor == "sqlite" else "SHOW server_version")
        return str(cursor.fetchone()[0])


def _throughput(n: int) -> dict[str, Any]:
    """``n`` referrals created and sent by the Changshan doctor, then received and accepted at Quzhou."""
    from django.utils import timezone
    from stdnum.cn import ric

    from yilian.patients.services import patient_register
    from yilian.referrals import services
    from yilian.registry.models import Institution, User

    doctor = User.objects.get(username="doctor")
    coordinator = User.objects.get(username="coordinator")
    csph = Institution.objects.get(code="csph")
    qzph = Institution.objects.get(code="qzph")
    referrals = []
    started = time.perf_counter()
    for i in range(n):
        body = f"33082219{50 + i % 20:02d}0{1 + i % 9}{10 + i % 18:02d}{i % 500:03d}"
        patient = patient_register(
            actor=doctor, institution=csph, name="测试患者", id_number=body + ric.calc_check_digit(body + "0")
        )
        referral, _created = services.referral_create(
            actor=doctor,
            patient=patient,
            direction="up",
            from_institution=csph,
            to_institution=qzph,
            reason="基准测试：急性脑梗死上转评估取栓。",
            requested_service="procedure",
            diagnosis_code="I63.9",
            diagnosis_name="急性脑梗死",
            urgency="urgent",
            consent=services.Consent(obtained_by="王建国", method="written", at=timezone.now()),
            send=True,
        )
        referrals.append(referral)
    created_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for referral in referrals:
        received = services.referral_receive(actor=coordinator, referral=referral)
        services.referral_accept(actor=coordinator, referral=received)
    accepted_seconds = time.perf_counter() - started
    return {
        "referrals": n,
        "create_and_send_per_second": round(n / created_seconds, 1),
        "receive_and_accept_per_second": round(n / accepted_seconds, 1),
        "create_to_accept_per_second": round(n / (created_seconds + accepted_seconds), 1),
        "note": "each through the services: patient lookup, create + send, receive + accept, audit rows, "
        "notifications after commit",
    }


# ----------------------------------------------------------------------------------------
# The driver: one child process per database


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--referrals", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--throughput", type=int, default=200)
    parser.add_argument("--data-dir", help="SQLite data directory to use (kept; default: a fresh temporary one)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yilian.settings")
        print(json.dumps(_run_one(args)))
        return 0

    targets: list[tuple[str, dict[str, str]]] = []
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="yilian-bench-referrals-")
    sqlite_env = {k: v for k, v in os.environ.items() if k != "YILIAN_DATABASE_URL"}
    targets.append(("sqlite", {**sqlite_env, "YILIAN_DATA_DIR": data_dir}))
    postgres_url = os.environ.get("YILIAN_BENCH_DATABASE_URL")
    if postgres_url:
        pg_dir = tempfile.mkdtemp(prefix="yilian-bench-referrals-pg-")
        targets.append(
            (
                "postgresql",
                {
                    **os.environ,
                    "YILIAN_DATABASE_URL": postgres_url,
                    "YILIAN_SECRET_KEY": os.environ.get("YILIAN_SECRET_KEY", "bench-only"),
                    "YILIAN_DATA_DIR": pg_dir,
                },
            )
        )
    else:
        print("(PostgreSQL skipped: set YILIAN_BENCH_DATABASE_URL to a database to include it)")

    results = []
    for name, env in targets:
        child = [sys.executable, str(Path(__file__).resolve()), "--child", "--referrals", str(args.referrals),
                 "--runs", str(args.runs), "--throughput", str(args.throughput)]  # fmt: skip
        done = subprocess.run(child, env=env, capture_output=True, text=True, check=False, cwd=ROOT)  # noqa: S603
        if done.returncode != 0:
            print(done.stderr[-4000:], file=sys.stderr)
            print(f"{name}: the benchmark failed", file=sys.stderr)
            return 1
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))

    result = {"benchmark": "referral_board", "target_p95_ms": TARGET_P95_MS, "machine": machine(), "runs": results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "referral_board.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    for r in results:
        seed = r["seed"]
        print(
            f"{r['database']} {r['database_version']}: {r['referrals']:,} referrals "
            f"(history seeded in {seed['history_seconds']} s, demo consortium {seed['demo_consortium_seconds']} s)"
        )
        for key in ("board_page", "board_partial", "board_selector"):
            b = r[key]
            label = {
                "board_page": "incoming board page",
                "board_partial": "  HTMX partial",
                "board_selector": "  selector",
            }
            print(
                f"  {label[key]:<22} p50 {b['p50_ms']:7.1f} ms  p95 {b['p95_ms']:7.1f} ms  max {b['max_ms']:7.1f} ms"
                f"  {b['queries']} queries"
            )
        for q in sorted(r["page_queries"], key=lambda q: q["ms"], reverse=True)[:3]:
            print(f"    {q['ms']:6.1f} ms  {q['sql'][:110]}")
        t = r["throughput"]
        print(
            f"  throughput ({t['referrals']}): create+send {t['create_and_send_per_second']}/s, "
            f"receive+accept {t['receive_and_accept_per_second']}/s, "
            f"create to accept {t['create_to_accept_per_second']}/s"
        )
        print(f"  target p95 < {TARGET_P95_MS:.0f} ms: {'met' if r['target_met'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
