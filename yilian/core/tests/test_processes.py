"""The `yilian` command as separate processes, the way an operator runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YILIAN_")}
    return {**env, "YILIAN_DATA_DIR": str(data_dir), **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 90) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                import json

                body: dict[str, str] = json.loads(r.read())
                return body
        except OSError:
            time.sleep(0.2)
    raise AssertionError("no answer from /healthz")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_production_database_without_a_secret_key_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "yilian.cli", "audit", "verify"],
        env=_env(tmp_path, YILIAN_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/none"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Set YILIAN_SECRET_KEY" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_migrate_serve_and_worker(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "yilian.cli"]
    env = _env(tmp_path)
    subprocess.run([*cli, "migrate"], env=env, check=True, timeout=120)  # noqa: S603
    assert (tmp_path / "yilian.sqlite3").exists()
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    subprocess.run([*cli, "worker", "--once"], env=env, check=True, timeout=60)  # noqa: S603
    port = _free_port()
    server = subprocess.Popen([*cli, "serve", "--port", str(port)], env=env)  # noqa: S603
    try:
        assert _wait_healthy(port, server) == {"status": "ok", "database": "ok", "vendor": "sqlite"}
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads the process table from /proc")
def test_demo_stops_its_worker_when_terminated(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "demo.log"
    demo = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "yilian.cli", "demo", "--port", str(port)],
        env=_env(tmp_path),
        stdout=log.open("wb"),  # a file, not a pipe: an orphaned worker would hold a pipe open
        stderr=subprocess.STDOUT,
    )
    workers: list[int] = []
    try:
        _wait_healthy(port, demo)
        workers = _children(demo.pid)
        assert len(workers) == 1, "the demo runs one worker beside the server"
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)
        output = log.read_text()
        assert "Yilian-demo-2026" in output and "commission" in output  # the logins were printed
        deadline = time.monotonic() + 15
        while _alive(workers[0]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(workers[0]), "the worker outlived the demo"
    finally:
        if demo.poll() is None:
            demo.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
