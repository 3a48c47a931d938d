"""What every benchmark shares: the machine it ran on, percentiles, a PostgreSQL database to use.

Imported by the ``bench_*.py`` scripts, which run as scripts (their folder is on ``sys.path``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any


def percentile(sorted_ms: list[float], share: float, digits: int = 1) -> float:
    """Nearest rank: the value at or below which ``share`` of the (sorted) timings fall."""
    return round(sorted_ms[max(0, math.ceil(len(sorted_ms) * share) - 1)], digits)


def summary(timings: list[float], digits: int = 1) -> dict[str, float]:
    """p50, p95 and max of timings in milliseconds."""
    ordered = sorted(timings)
    return {
        "p50_ms": round(statistics.median(ordered), digits),
        "p95_ms": percentile(ordered, 0.95, digits),
        "max_ms": round(ordered[-1], digits),
    }


def machine() -> dict[str, Any]:
    """CPU model and count, memory, Python and platform, for the results file."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    memory_gib = 0.0
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
            memory_gib = round(kib / 1024 / 1024, 1)
    except (OSError, StopIteration, ValueError):
        pass
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def postgres_ready(url: str) -> str:
    """Create the database ``url`` names if it is missing; "" when ready, else why not."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = str(conninfo_to_dict(url).get("dbname") or "")
    if not name:
        return "the URL names no database"
    try:
        with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True, connect_timeout=3) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        return f"no PostgreSQL server answers ({str(exc).strip().splitlines()[0]})"
    return ""


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB (ru_maxrss is in kB on Linux)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_child(script: str, env: dict[str, str], *args: str, cwd: Path | None = None) -> dict[str, Any]:
    """Run ``script --child ARGS`` in a fresh Python process (its own peak memory, no warm caches)
    and return the JSON object its last line of output holds."""
    command = [sys.executable, str(Path(script).resolve()), "--child", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=cwd)  # noqa: S603
    if done.returncode != 0:
        print(done.stderr[-6000:], file=sys.stderr)
        raise SystemExit(f"child {args[0]} failed")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
