"""Server time of the directory pages with a demo consortium seeded at a larger scale.

Renders each page through Django's test client (no network), 50 times after a warm-up,
and reports p50/p95 and the query count. Writes benchmarks/results/directory_pages.json.
Usage: python benchmarks/bench_directory_pages.py [--scale N] (default 20: ~900 practitioners).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PAGES = [
    ("office", "/"),
    ("office", "/consortia/zju2-quzhou/"),
    ("admin", "/institutions/"),
    ("coordinator", "/institutions/qzph/"),
    ("admin", "/search/?q=%E5%8C%BB"),
    ("admin", "/audit/"),
    ("admin", "/api/v1/practitioners?limit=50"),
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=20)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    os.environ.setdefault("YILIAN_DATA_DIR", tempfile.mkdtemp(prefix="yilian-bench-pages-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yilian.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    from yilian.demo.seed import DEMO_PASSWORD, seed_demo

    setup_test_environment()
    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    seed_demo(scale=args.scale)

    clients: dict[str, Client] = {}
    rows = []
    for username, url in PAGES:
        client = clients.get(username)
        if client is None:
            client = clients[username] = Client()
            response = client.post("/login/", {"username": username, "password": DEMO_PASSWORD})
            assert response.status_code == 302, f"log-in failed for {username}"
        client.get(url)
        timings = []
        for _ in range(args.runs):
            start = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        timings.sort()
        rows.append(
            {
                "user": username,
                "url": url,
                "p50_ms": round(statistics.median(timings), 1),
                "p95_ms": round(timings[int(len(timings) * 0.95) - 1], 1),
                "queries": len(queries),
            }
        )
    result = {
        "benchmark": "directory_pages",
        "scale": args.scale,
        "runs": args.runs,
        "database": connection.vendor,
        "pages": rows,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "directory_pages.json").write_text(json.dumps(result, indent=2))
    print(f"directory pages, scale {args.scale}, {connection.vendor}, {args.runs} runs each")
    for row in rows:
        print(
            f"  {row['url']:<36} {row['user']:<12} p50 {row['p50_ms']:6.1f} ms  "
            f"p95 {row['p95_ms']:6.1f} ms  {row['queries']} queries"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
