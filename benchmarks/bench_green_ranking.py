"""Green-channel destination ranking for a consortium of 1,000 institutions.

Target (issue: green channel): ranking the destinations for a case takes under 50 ms with 1,000
member institutions.

For each database, in a consortium of its own (``bench-green-rank``): a sending county hospital
and ``--institutions`` member institutions spread over Zhejiang province (27.0-31.2 N,
118.0-122.9 E), each with CT and other capabilities, some 24/7 and some in office hours only
(weekdays 08:00-17:30), the default stroke protocol, and an imported travel time from the sender
to a share of them (``--matrix``). Then, for a stroke case with a large-vessel occlusion two
hours after onset, on a Wednesday at 10:00 (office-hours services open):

- ``green_services.rank_for`` as the activation page and ``green_activate`` call it (loads the
  members, their capabilities, the travel-time matrix and the consortium's settings, then ranks),
  ``--runs`` times after a warm-up: p50/p95/max, the queries and their share of the time;
- ``routing.rank`` alone on the loaded inputs (the pure ranking);
- the same at 22:00, when the office-hours services are closed.

SQLite runs in a fresh temporary data directory (or ``--data-dir``). PostgreSQL runs on
``YILIAN_BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/yl_bench_green_ranking``,
created if missing; skipped with a message when no server answers, or with ``--no-postgres``).
Building the consortium is idempotent. Writes benchmarks/results/green_ranking.json and prints
a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, postgres_ready, summary

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGET_P95_MS = 50.0
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/yl_bench_green_ranking"
CONSORTIUM = "bench-green-rank"
SEED = 20261124


# ----------------------------------------------------------------------------------------
# One database (runs in its own process: Django is set up once per process)


def _build(n: int, matrix_share: float) -> dict[str, Any]:
    """The consortium, its members with coordinates and capabilities, the stroke protocol and a
    partial travel-time matrix from the sender (idempotent)."""
    import datetime as dt
    from decimal import Decimal

    from django.db import transaction
    from django.utils import timezone

    from yilian.referrals.green_services import green_protocols_install_defaults
    from yilian.referrals.models import TravelTime
    from yilian.registry.models import (
        Capability,
        CapabilityKind,
        Consortium,
        ConsortiumMember,
        ConsortiumType,
        Institution,
        InstitutionGrade,
        InstitutionType,
        MemberRole,
        Region,
        RegionLevel,
    )

    rng = random.Random(SEED)
    since = dt.date(2020, 1, 1)
    started = time.perf_counter()
    with transaction.atomic():
        province, _ = Region.objects.get_or_create(
            code="330000", defaults={"name_zh": "浙江省", "name_en": "Zhejiang", "level": RegionLevel.PROVINCE}
        )
        sender, _ = Institution.objects.get_or_create(
            code="bench-rank-sender",
            defaults={
                "name_zh": "基准县人民医院",
                "name_en": "Benchmark County People's Hospital",
                "grade": InstitutionGrade.GRADE_2A,
                "type": InstitutionType.GENERAL,
                "region": province,
                "latitude": Decimal("28.900000"),
                "longitude": Decimal("118.500000"),
            },
        )
        consortium, _ = Consortium.objects.get_or_create(
            code=CONSORTIUM,
            defaults={
                "name_zh": "基准卒中联盟",
                "name_en": "Benchmark stroke alliance",
                "type": ConsortiumType.SPECIALTY_ALLIANCE,
                "lead_institution": sender,
                "region": province,
            },
        )
        ConsortiumMember.objects.get_or_create(
            consortium=consortium,
            institution=sender,
            defaults={"role": MemberRole.LEAD, "joined_on": since},
        )
        have = set(Institution.objects.filter(code__startswith="bench-rank-m").values_list("code", flat=True))
        new = []
        for i in range(n):
            code = f"bench-rank-m{i:04d}"
            lat = Decimal(f"{rng.uniform(27.0, 31.2):.6f}")
            lon = Decimal(f"{rng.uniform(118.0, 122.9):.6f}")
            if code in have:
                continue
            new.append(
                Institution(
                    code=code,
                    name_zh=f"基准成员医院 {i:04d}",
                    name_en=f"Benchmark member hospital {i:04d}",
                    grade=InstitutionGrade.GRADE_2A if i % 3 else InstitutionGrade.GRADE_3A,
                    type=InstitutionType.GENERAL,
                    region=province,
                    latitude=lat,
                    longitude=lon,
                )
            )
        Institution.objects.bulk_create(new, batch_size=500)
        members = list(Institution.objects.filter(code__startswith="bench-rank-m").order_by("code")[:n])
        in_consortium = set(
            ConsortiumMember.objects.filter(consortium=consortium).values_list("institution_id", flat=True)
        )
        ConsortiumMember.objects.bulk_create(
            [
                ConsortiumMember(consortium=consortium, institution=m, role=MemberRole.MEMBER, joined_on=since)
                for m in members
                if m.pk not in in_consortium
            ],
            batch_size=500,
        )
        with_caps = set(
            Capability.objects.filter(institution__in=members).values_list("institution_id", flat=True).distinct()
        )
        caps = []
        office = {"all_hours": False, "weekdays": "12345", "opens_at": dt.time(8), "closes_at": dt.time(17, 30)}
        for i, m in enumerate(members):
            if m.pk in with_caps:
                continue
            # A third are stroke centres (thrombolysis and thrombectomy 24/7), a third thrombolyse
            # around the clock, a sixth only in office hours, and a sixth have CT but no thrombolysis.
            kind = i % 6
            kinds: list[tuple[str, dict[str, Any]]] = [(CapabilityKind.CT, {}), (CapabilityKind.ICU, {})]
            if kind in (0, 1):
                kinds += [(CapabilityKind.IV_THROMBOLYSIS, {}), (CapabilityKind.THROMBECTOMY, {})]
            elif kind in (2, 3):
                kinds += [(CapabilityKind.IV_THROMBOLYSIS, {})]
            elif kind == 4:
                kinds += [(CapabilityKind.IV_THROMBOLYSIS, office), (CapabilityKind.THROMBECTOMY, office)]
            caps += [Capability(institution=m, kind=k, valid_from=since, **extra) for k, extra in kinds]
        Capability.objects.bulk_create(caps, batch_size=500)
        green_protocols_install_defaults(consortium=consortium)
        have_pairs = set(
            TravelTime.objects.filter(consortium=consortium, from_institution=sender).values_list(
                "to_institution_id", flat=True
            )
        )
        pairs = []
        now = timezone.now()
        for m in members:
            draw, factor = rng.random(), rng.uniform(1.2, 1.6)  # drawn for every member: the same matrix each run
            if draw >= matrix_share or m.pk in have_pairs:
                continue
            assert m.latitude is not None and m.longitude is not None
            km = math.dist((28.9, 118.5), (float(m.latitude), float(m.longitude))) * 111
            pairs.append(
                TravelTime(
                    consortium=consortium,
                    from_institution=sender,
                    to_institution=m,
                    minutes=max(5, round(km * factor)),
                    imported_at=now,
                )
            )
        TravelTime.objects.bulk_create(pairs, batch_size=500)
    return {
        "consortium": CONSORTIUM,
        "institutions": len(members),
        "capabilities": Capability.objects.filter(institution__in=members).count(),
        "travel_times": TravelTime.objects.filter(consortium=consortium, from_institution=sender).count(),
        "build_seconds": round(time.perf_counter() - started, 1),
    }


def _run_one(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    import datetime as dt

    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    # Set the process up as the web server's is (``yilian.asgi``): Django, the URL patterns, and
    # the start-up heap frozen out of the garbage collector's sight.
    import yilian.asgi  # noqa: F401
    from yilian.referrals import protocols, routing
    from yilian.referrals.green_services import current_version, rank_for
    from yilian.referrals.models import GreenProtocol
    from yilian.registry.models import Institution

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    migrate_seconds = time.perf_counter() - started
    built = _build(args.institutions, args.matrix)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE" if connection.vendor == "sqlite" else "VACUUM ANALYZE")

    protocol = GreenProtocol.objects.get(consortium__code=CONSORTIUM, code="stroke")
    sender = Institution.objects.get(code="bench-rank-sender")
    tz = timezone.get_current_timezone()
    day = dt.datetime(2026, 11, 25, 10, 0, tzinfo=tz)  # a Wednesday: office-hours services are open
    night = dt.datetime(2026, 11, 25, 22, 0, tzinfo=tz)

    def measure_rank_for(now: dt.datetime) -> tuple[dict[str, Any], list[Any]]:
        def once() -> list[routing.Destination]:
            # What the activation does: the protocol's current version, then rank_for.
            version = current_version(protocol)
            return rank_for(
                version=version, sender=sender, onset_at=now - dt.timedelta(hours=2), findings=["lvo"], now=now
            )

        for _ in range(5):
            once()
        timings = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            once()
            timings.append((time.perf_counter() - t0) * 1000)
        with CaptureQueriesContext(connection) as queries:
            ranked = once()
        captured = [{"ms": round(float(q["time"]) * 1000, 2), "sql": q["sql"][:200]} for q in queries.captured_queries]
        return {**summary(timings, digits=2), "queries": len(captured), "query_log": captured}, ranked

    day_result, ranked = measure_rank_for(day)
    night_result, night_ranked = measure_rank_for(night)

    # The pure ranking on inputs loaded once.
    version = current_version(protocol)
    definition = protocols.parse(version.definition)
    windows = protocols.windows(definition, onset_at=day - dt.timedelta(hours=2), findings=["lvo"])
    institutions = routing.candidates(consortium_id=protocol.consortium_id, sender_id=sender.pk, on=day.date())
    ids = [i.pk for i in institutions]
    from yilian.referrals.models import TravelTime

    matrix = dict(
        TravelTime.objects.filter(
            consortium_id=protocol.consortium_id, from_institution_id=sender.pk, to_institution_id__in=ids
        ).values_list("to_institution_id", "minutes")
    )
    capabilities = routing.capabilities_now(ids, day)
    travel = routing.travel_of(protocol.consortium_id)
    timings = []
    for _ in range(5):
        routing.rank(protocol=definition, windows=windows, sender=sender, institutions=institutions,
                     capabilities=capabilities, matrix=matrix, travel=travel, now=day)  # fmt: skip
    for _ in range(args.runs):
        t0 = time.perf_counter()
        routing.rank(protocol=definition, windows=windows, sender=sender, institutions=institutions,
                     capabilities=capabilities, matrix=matrix, travel=travel, now=day)  # fmt: skip
        timings.append((time.perf_counter() - t0) * 1000)

    def top(dest: list[routing.Destination]) -> list[dict[str, Any]]:
        return [
            {
                "institution": d.institution.code,
                "eta_minutes": d.eta_minutes,
                "basis": d.basis,
                "best_window": d.best_window,
            }
            for d in dest[:3]
        ]

    return {
        "database": connection.vendor,
        "database_version": _database_version(connection),
        "migrate_seconds": round(migrate_seconds, 1),
        "data": built,
        "case": "stroke, large-vessel occlusion, onset 2 h before; Wednesday 10:00 and 22:00 (Asia/Shanghai)",
        "rank_for_day": {
            "what": "current_version + green_services.rank_for (load and rank)",
            "runs": args.runs,
            "destinations": len(ranked),
            "inside_window": sum(1 for d in ranked if d.inside_window),
            "top": top(ranked),
            **day_result,
        },
        "rank_for_night": {
            "what": "the same at 22:00 (office-hours services closed)",
            "runs": args.runs,
            "destinations": len(night_ranked),
            "inside_window": sum(1 for d in night_ranked if d.inside_window),
            **night_result,
        },
        "rank_alone": {"what": "routing.rank on loaded inputs", "runs": args.runs, **summary(timings, digits=2)},
        "target_p95_ms": TARGET_P95_MS,
        "target_met": day_result["p95_ms"] < TARGET_P95_MS and night_result["p95_ms"] < TARGET_P95_MS,
    }


def _database_version(connection: Any) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sqlite_version()" if connection.vendor == "sqlite" else "SHOW server_version")
        return str(cursor.fetchone()[0])


# ----------------------------------------------------------------------------------------
# The driver: one child process per database


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--institutions", type=int, default=1000)
    parser.add_argument("--matrix", type=float, default=0.3, help="share of destinations with an imported time")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--data-dir", help="SQLite data directory to use (kept; default: a fresh temporary one)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yilian.settings")
        print(json.dumps(_run_one(args)))
        return 0

    targets: list[tuple[str, dict[str, str]]] = []
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="yilian-bench-green-rank-")
    sqlite_env = {k: v for k, v in os.environ.items() if k != "YILIAN_DATABASE_URL"}
    targets.append(("sqlite", {**sqlite_env, "YILIAN_DATA_DIR": data_dir}))
    pg_dir = tempfile.mkdtemp(prefix="yilian-bench-green-rank-pg-")
    postgres_url = os.environ.get("YILIAN_BENCH_DATABASE_URL", DEFAULT_POSTGRES)
    why_not = "--no-postgres" if args.no_postgres else postgres_ready(postgres_url)
    if why_not:
        print(f"(PostgreSQL skipped: {why_not})")
    else:
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

    results = []
    try:
        for name, env in targets:
            child = [sys.executable, str(Path(__file__).resolve()), "--child", "--institutions",
                     str(args.institutions), "--matrix", str(args.matrix), "--runs", str(args.runs)]  # fmt: skip
            done = subprocess.run(child, env=env, capture_output=True, text=True, check=False, cwd=ROOT)  # noqa: S603
            if done.returncode != 0:
                print(done.stderr[-4000:], file=sys.stderr)
                print(f"{name}: the benchmark failed", file=sys.stderr)
                return 1
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(pg_dir, ignore_errors=True)

    result = {"benchmark": "green_ranking", "target_p95_ms": TARGET_P95_MS, "machine": machine(), "runs": results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "green_ranking.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    ok = True
    for r in results:
        d = r["data"]
        print(
            f"{r['database']} {r['database_version']}: {d['institutions']:,} member institutions, "
            f"{d['capabilities']:,} capabilities, {d['travel_times']:,} imported travel times "
            f"(built in {d['build_seconds']} s)"
        )
        for key, label in (("rank_for_day", "rank_for, 10:00"), ("rank_for_night", "rank_for, 22:00")):
            b = r[key]
            print(
                f"  {label:<18} p50 {b['p50_ms']:6.2f} ms  p95 {b['p95_ms']:6.2f} ms  max {b['max_ms']:6.2f} ms  "
                f"{b['queries']} queries, {b['destinations']} destinations ({b['inside_window']} inside the window)"
            )
        b = r["rank_alone"]
        print(f"  {'rank alone':<18} p50 {b['p50_ms']:6.2f} ms  p95 {b['p95_ms']:6.2f} ms  max {b['max_ms']:6.2f} ms")
        print(f"  target p95 < {TARGET_P95_MS:.0f} ms: {'met' if r['target_met'] else 'MISSED'}")
        ok = ok and r["target_met"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
