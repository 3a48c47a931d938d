"""How long `make demo` takes until the server answers: first start on an empty data
directory (migrate + seed) and second start (the target: under 15 s).

Writes benchmarks/results/demo_start.json and prints a summary.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGET_SECONDS = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_and_time(data_dir: Path, port: int, timeout: float = 300) -> float:
    env = {**os.environ, "YILIAN_DATA_DIR": str(data_dir), "PORT": str(port)}
    env.pop("YILIAN_DATABASE_URL", None)
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "demo"],  # noqa: S607
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while time.perf_counter() - started < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("the demo did not answer /healthz in time")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="yilian-bench-"))
    try:
        first = _start_and_time(data_dir, _free_port())
        second = [_start_and_time(data_dir, _free_port()) for _ in range(3)]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    result = {
        "benchmark": "demo_start",
        "first_start_seconds": round(first, 2),
        "second_start_seconds": [round(s, 2) for s in second],
        "second_start_worst_seconds": round(max(second), 2),
        "target_seconds": TARGET_SECONDS,
        "meets_target": max(second) < TARGET_SECONDS,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "demo_start.json").write_text(json.dumps(result, indent=2))
    print(
        f"demo start: first {first:.1f} s (migrate + seed), "
        f"second {min(second):.1f}-{max(second):.1f} s (target < {TARGET_SECONDS:.0f} s): "
        f"{'OK' if result['meets_target'] else 'MISSED'}"
    )
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
