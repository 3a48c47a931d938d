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


# ----------------------------------------------------------------------------------------
# The worker's periodic sweep: referral deadlines and webhook deliveries, end to end.

_OVERDUE_REFERRAL = """
import datetime as dt
import time_machine
from django.utils import timezone
from stdnum.cn import ric
from yilian.notifications.services import webhook_create
from yilian.patients.services import patient_register
from yilian.referrals import services
from yilian.registry.models import Institution, User

doctor = User.objects.get(username="doctor")
csph, qzph = Institution.objects.get(code="csph"), Institution.objects.get(code="qzph")
if not qzph.webhooks.exists():
    webhook_create(actor=User.objects.get(username="hospadmin"), institution=qzph, name="neuro", url="{url}")
body = "33082219580315{serial}"
patient = patient_register(
    actor=doctor, institution=csph, name="陈福生", id_number=body + ric.calc_check_digit(body + "0")
)
# Sent 25 hours ago and never opened: a routine referral is due to be received within 24 hours.
with time_machine.travel(timezone.now() - dt.timedelta(hours=25), tick=False):
    referral, _ = services.referral_create(
        actor=doctor, patient=patient, direction="up", from_institution=csph, to_institution=qzph,
        reason="突发左侧肢体无力", requested_service="admission", diagnosis_code="I63.9",
        diagnosis_name="急性脑梗死", consent=services.Consent("王建国", "written", timezone.now()), send=True,
    )
print(referral.number)
"""

_STATE = """
import json
from yilian.notifications.models import Notification
from yilian.referrals.models import Referral
r = Referral.objects.get(number="{number}")
told = Notification.objects.filter(
    user__username="coordinator", link__contains=str(r.public_id), title_en__startswith="Referral overdue"
)
print(json.dumps({{"level": r.escalation_level, "overdue_notices": told.count()}}))
"""


class _Robot:
    """A group-robot endpoint on 127.0.0.1 that records the text of every message posted to it."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.texts: list[str] = []
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                robot.texts.append(body["text"]["content"])
                answer = b'{"errcode": 0, "errmsg": "ok"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/webhook/send?key=test"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with the schema and the demo consortium, made once and copied per test."""
    data_dir = tmp_path_factory.mktemp("seeded")
    cli, env = [sys.executable, "-m", "yilian.cli"], _env(data_dir)
    subprocess.run([*cli, "migrate"], env=env, check=True, timeout=120)  # noqa: S603
    subprocess.run([*cli, "seed-demo"], env=env, check=True, timeout=300, stdout=subprocess.DEVNULL)  # noqa: S603
    return data_dir


@pytest.fixture
def seeded(seeded_template: Path, tmp_path: Path) -> Path:
    import shutil

    data_dir = tmp_path / "data"
    shutil.copytree(seeded_template, data_dir)
    return data_dir


def _shell(data_dir: Path, code: str, **env: str) -> str:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "yilian.cli", "manage", "shell", "-c", code],
        env=_env(data_dir, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_worker_once_escalates_an_overdue_referral_and_delivers_its_webhook(seeded: Path) -> None:
    import json

    robot = _Robot()
    try:
        number = _shell(seeded, _OVERDUE_REFERRAL.format(url=robot.url, serial="321"))
        assert json.loads(_shell(seeded, _STATE.format(number=number))) == {"level": 0, "overdue_notices": 0}

        subprocess.run(
            [sys.executable, "-m", "yilian.cli", "worker", "--once"], env=_env(seeded), check=True, timeout=120
        )

        assert json.loads(_shell(seeded, _STATE.format(number=number))) == {"level": 1, "overdue_notices": 1}
        # The sweep queued the overdue message and the same run delivered it, with the message about
        # the referral's arrival that was still queued; each reached the group once. (The demo's
        # own overdue referrals to qzph are announced too.)
        ours = sorted(text.splitlines()[1].split(" · ")[0] for text in robot.texts if f" · {number} · " in text)
        assert ours == ["New referral to receive", "Referral overdue"]
    finally:
        robot.close()


def test_worker_sweeps_every_few_seconds_and_stops_on_sigterm(seeded: Path) -> None:
    robot = _Robot()
    worker = None
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "yilian.cli", "worker"],
            env=_env(seeded, YILIAN_SWEEP_SECONDS="1"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Became overdue while the worker was already running: the next sweep picks it up.
        number = _shell(seeded, _OVERDUE_REFERRAL.format(url=robot.url, serial="331"))
        deadline = time.monotonic() + 60

        def overdue() -> list[str]:
            return [text for text in robot.texts if "Referral overdue · " + number in text]

        while not overdue() and time.monotonic() < deadline:
            assert worker.poll() is None, "the worker exited"
            time.sleep(0.2)
        assert len(overdue()) == 1
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        robot.close()


def test_worker_refuses_a_sweep_interval_that_is_not_a_positive_number(tmp_path: Path) -> None:
    for value in ("0", "-5", "soon"):
        result = subprocess.run(
            [sys.executable, "-m", "yilian.cli", "worker", "--once"],
            env=_env(tmp_path, YILIAN_SWEEP_SECONDS=value),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert "YILIAN_SWEEP_SECONDS" in result.stderr
