"""Live green-channel boards: from activation to the event on 200 open boards, on both bus backends.

Target (issue: green channel): with 200 open board connections, the time from activation to the
event reaching every board is under 1 s at the 99th percentile, for both events-bus backends.

For each backend, on a fresh data directory with the demo consortium seeded (``yilian migrate``,
``yilian seed-demo``, the default green-channel protocols):

- ``inprocess``: one server process (``yilian serve``, uvicorn) on SQLite;
- ``postgres``: two server processes on two ports with ``YILIAN_EVENTS_BACKEND=postgres`` on a
  PostgreSQL database, the boards split between them and the activations sent to the first, so
  that every event reaches the second one's boards through LISTEN/NOTIFY only. The database is
  ``YILIAN_BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/yl_bench_green``,
  created if missing; the backend is skipped with a message when no server answers).

The client (plain asyncio, in this process) logs in as the on-call coordinator of Quzhou People's
Hospital through the login page, opens ``--connections`` Server-Sent-Events streams on
``/referrals/green/events/`` (the coordinator's board) and waits for each stream's ``hello``.
Then the Changshan doctor activates ``--activations`` stroke cases for Quzhou through the API
(``POST /api/v1/green/cases`` with an API token), one every ``--spacing`` seconds after the
previous answer. Per activation: the time from just before the request to the arrival of its
``case`` frame on each board (one clock: this process), the time until the last board has it, and
the request's own response time. ``--warmup`` activations before them (the first requests of a
fresh process) are reported apart. Writes benchmarks/results/green_board.json and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import machine, percentile, postgres_ready

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
HOST = "127.0.0.1"
TARGET_P99_MS = 1000.0
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/yl_bench_green"
BOARD_URL = "/referrals/green/events/"
ACTIVATE_URL = "/api/v1/green/cases"


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p90_ms": percentile(ordered, 0.90),
        "p99_ms": percentile(ordered, 0.99),
        "max_ms": round(ordered[-1], 1),
    }


def _listening_backends(url: str) -> int:
    """Server connections that LISTEN for the events bus (the PostgreSQL backend's, one per process)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN %%'"
        ).fetchone()
        return int(row[0]) if row else 0


# ----------------------------------------------------------------------------------------
# Set-up and servers


def _prepare() -> int:
    """In a child process: the default green-channel protocols for the demo's stroke network; prints
    the demo password."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yilian.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from yilian.demo.seed import DEMO_PASSWORD
    from yilian.referrals.green_services import green_protocols_install_defaults
    from yilian.registry.models import Consortium

    green_protocols_install_defaults(consortium=Consortium.objects.get(code="quzhou-neuro"))
    print(json.dumps({"password": DEMO_PASSWORD}))
    return 0


def _yilian(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "yilian.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"yilian {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def _setup(env: dict[str, str]) -> tuple[str, str, float]:
    """Migrate, seed the demo, install the protocols; an API token for the Changshan doctor and the
    demo password."""
    started = time.perf_counter()
    _yilian(env, "migrate")
    _yilian(env, "seed-demo")
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(Path(__file__).resolve()), "--prepare"], env=env, cwd=ROOT, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"preparing the protocols failed:\n{done.stderr[-3000:]}")
    password = str(json.loads(done.stdout.strip().splitlines()[-1])["password"])
    token = _yilian(env, "token", "create", "doctor", "--name", "green board benchmark").strip().splitlines()[-1]
    return token, password, time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def threads(self) -> int:
        try:
            with open(f"/proc/{self.process.pid}/status") as f:
                return int(next(line for line in f if line.startswith("Threads:")).split()[1])
        except (OSError, StopIteration, ValueError):
            return -1

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _start_server(env: dict[str, str], log_dir: Path, timeout: float = 60) -> Server:
    port = _free_port()
    log = log_dir / f"server-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "yilian.cli", "serve", "--host", HOST, "--port", str(port)],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Server(port=port, process=process, log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"the server on port {port} did not answer /healthz")


# ----------------------------------------------------------------------------------------
# The client: log-in, boards (SSE over plain asyncio streams), activations


def _cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    out = {}
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        out[name.strip()] = rest.split(";", 1)[0]
    return out


def _login(port: int, username: str, password: str) -> str:
    """Log in through the login page (CSRF token from the form); the session cookie's value."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    conn.request("GET", "/login/")
    page = conn.getresponse()
    html = page.read().decode()
    csrf_cookie = _cookies(page)["csrftoken"]
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    if match is None:
        raise RuntimeError("no CSRF token on the login page")
    body = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": match[1]})
    conn.request(
        "POST",
        "/login/",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf_cookie}"},
    )
    answer = conn.getresponse()
    answer.read()
    conn.close()
    session = _cookies(answer).get("sessionid")
    if answer.status != 302 or not session:
        raise RuntimeError(f"log-in as {username} failed (HTTP {answer.status})")
    return session


@dataclass
class Board:
    """One open board: an SSE stream, and when each case's frame arrived (perf_counter seconds)."""

    port: int
    session: str
    hello: asyncio.Event = field(default_factory=asyncio.Event)
    arrivals: dict[str, float] = field(default_factory=dict)
    error: str = ""
    writer: asyncio.StreamWriter | None = None
    chunked: bool = False
    buffer: str = ""
    decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")())

    async def run(self, opening: asyncio.Semaphore) -> None:
        try:
            async with opening:  # held until this stream has said hello (or failed)
                reader, self.writer = await asyncio.open_connection(HOST, self.port)
                await self._request(reader, self.writer)
                while not self.hello.is_set():
                    if not await self._read_once(reader):
                        return
            while await self._read_once(reader):
                pass
        except (OSError, asyncio.IncompleteReadError, RuntimeError, ValueError) as exc:
            self.error = self.error or f"{type(exc).__name__}: {exc}"
        finally:
            self.hello.set()  # never leave a waiter hanging on a failed board

    async def _request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            (
                f"GET {BOARD_URL} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nAccept: text/event-stream\r\n"
                f"Cookie: sessionid={self.session}\r\nCache-Control: no-cache\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status = head.split(" ", 2)[1]
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head.split("\r\n")[1:])}
        if status != "200" or not headers.get("content-type", "").startswith("text/event-stream"):
            raise RuntimeError(f"HTTP {status} {headers.get('content-type', '')}")
        self.chunked = headers.get("transfer-encoding", "").lower() == "chunked"

    async def _read_once(self, reader: asyncio.StreamReader) -> bool:
        """Read the next piece of the body and handle the frames it completes; False at its end."""
        if self.chunked:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                return False
            data = (await reader.readexactly(size + 2))[:-2]
        else:
            data = await reader.read(65536)
            if not data:
                return False
        arrived = time.perf_counter()
        self.buffer += self.decoder.decode(data)
        while "\n\n" in self.buffer:
            block, self.buffer = self.buffer.split("\n\n", 1)
            self._frame(block, arrived)
        return True

    def _frame(self, block: str, arrived: float) -> None:
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if event == "hello":
            self.hello.set()
        elif event == "case":
            case = str(json.loads("\n".join(data)).get("case", ""))
            self.arrivals.setdefault(case, arrived)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Activator:
    """The Changshan doctor's API client: one kept-alive connection, in a thread of its own."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self.token = token
        self.count = 0

    def activate(self) -> tuple[str, float, float]:
        """Activate one stroke case for Quzhou; its id, the start (perf_counter) and the response ms."""
        import datetime as dt

        self.count += 1
        onset = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=90)
        body = json.dumps(
            {
                "sender": "csph",
                "protocol": "stroke",
                "consortium": "quzhou-neuro",
                "patient": {"sex": "male", "approximate_age": 60 + self.count % 20},
                "onset_at": onset.isoformat(),
                "scores": {"nihss": 14},
                "imaging_done": True,
                "findings": ["lvo"],
                "destination": "qzph",
            }
        )
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        started = time.perf_counter()
        self.conn.request("POST", ACTIVATE_URL, body=body, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 201:
            raise RuntimeError(f"activation failed: HTTP {response.status} {payload[:500]!r}")
        return str(json.loads(payload)["id"]), started, elapsed

    def close(self) -> None:
        self.conn.close()


async def _drive(args: argparse.Namespace, servers: list[Server], token: str, password: str) -> dict[str, Any]:
    session = await asyncio.to_thread(_login, servers[0].port, "coordinator", password)
    boards = [Board(port=servers[i % len(servers)].port, session=session) for i in range(args.connections)]
    # Boards open a few at a time, as people open them. All at once, each opening request holds a
    # database connection in its own thread for a moment, and 200 of them exceed PostgreSQL's
    # default 100 connections (see docs/benchmarks.md); ``--open-concurrency`` changes it.
    opening = asyncio.Semaphore(args.open_concurrency)
    started = time.perf_counter()
    tasks = [asyncio.create_task(b.run(opening)) for b in boards]
    try:
        await asyncio.wait_for(asyncio.gather(*(b.hello.wait() for b in boards)), timeout=120)
        opened_seconds = time.perf_counter() - started
        failed = [b.error for b in boards if b.error]
        if failed:
            raise RuntimeError(f"{len(failed)} boards failed to open, e.g. {failed[0]}")
        threads = [s.threads() for s in servers]

        activator = Activator(servers[0].port, token)
        activations: list[tuple[str, float, float]] = []
        try:
            for i in range(args.warmup + args.activations):
                activations.append(await asyncio.to_thread(activator.activate))
                if i < args.warmup + args.activations - 1:
                    await asyncio.sleep(args.spacing)
        finally:
            activator.close()
        # Wait for the stragglers (a lost event shows as missing, not as a hang).
        deadline = time.perf_counter() + 15
        while time.perf_counter() < deadline:
            if all(case in b.arrivals for b in boards for case, _, _ in activations):
                break
            await asyncio.sleep(0.05)
        broken = [b.error for b in boards if b.error]
    finally:
        for b in boards:
            b.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def figures(batch: list[tuple[str, float, float]]) -> dict[str, Any]:
        per_board: list[float] = []
        last: list[float] = []
        first: list[float] = []
        by_server: dict[int, list[float]] = {s.port: [] for s in servers}
        missing = 0
        for case, start, _ in batch:
            reached = []
            for b in boards:
                if case in b.arrivals:
                    ms = (b.arrivals[case] - start) * 1000
                    reached.append(ms)
                    by_server[b.port].append(ms)
                else:
                    missing += 1
            per_board += reached
            if len(reached) == len(boards):
                last.append(max(reached))
            if reached:
                first.append(min(reached))
        return {
            "activations": len(batch),
            "per_board": _percentiles(per_board),
            "first_board": _percentiles(first),
            "every_board": _percentiles(last),
            "per_board_by_server": {str(i + 1): _percentiles(by_server[s.port]) for i, s in enumerate(servers)},
            "activation_response": _percentiles([ms for _, _, ms in batch]),
            "frames_missing": missing,
        }

    return {
        "connections": len(boards),
        "servers": len(servers),
        "connections_per_server": [sum(1 for b in boards if b.port == s.port) for s in servers],
        "open_concurrency": args.open_concurrency,
        "boards_opened_seconds": round(opened_seconds, 2),
        "server_threads_with_boards_open": threads,
        "boards_broken": len(broken),
        "warmup": figures(activations[: args.warmup]),
        "measured": figures(activations[args.warmup :]),
    }


# ----------------------------------------------------------------------------------------
# One backend


def _run_backend(name: str, env: dict[str, str], servers_wanted: int, args: argparse.Namespace) -> dict[str, Any]:
    token, password, setup_seconds = _setup(env)
    log_dir = Path(env["YILIAN_DATA_DIR"])
    servers: list[Server] = []
    try:
        for _ in range(servers_wanted):
            servers.append(_start_server(env, log_dir))
        listening = -1
        result = asyncio.run(_drive(args, servers, token, password))
        if env.get("YILIAN_EVENTS_BACKEND") == "postgres":
            listening = _listening_backends(env["YILIAN_DATABASE_URL"])
    finally:
        for s in servers:
            s.stop()
    measured = result["measured"]
    p99 = measured["every_board"].get("p99_ms", math.inf)
    met = measured["frames_missing"] == 0 and p99 < TARGET_P99_MS
    return {
        "backend": name,
        "events_backend": env.get("YILIAN_EVENTS_BACKEND", "inprocess"),
        "database": "postgresql" if env.get("YILIAN_DATABASE_URL") else "sqlite",
        "setup_seconds": round(setup_seconds, 1),
        "listen_connections_after_run": listening,
        **result,
        "target_p99_ms": TARGET_P99_MS,
        "target_met": met,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--activations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--spacing", type=float, default=0.3, help="seconds between an answer and the next activation")
    parser.add_argument("--open-concurrency", type=int, default=10, help="boards opening at the same time")
    parser.add_argument("--backend", choices=["inprocess", "postgres", "both"], default="both")
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        return _prepare()

    base = {k: v for k, v in os.environ.items() if not k.startswith("YILIAN_")}
    base["YILIAN_SESSION_IDLE_SECONDS"] = "7200"
    runs: list[tuple[str, dict[str, str], int]] = []
    dirs: list[str] = []
    if args.backend in ("inprocess", "both"):
        data_dir = tempfile.mkdtemp(prefix="yilian-bench-green-board-")
        dirs.append(data_dir)
        runs.append(("inprocess", {**base, "YILIAN_DATA_DIR": data_dir, "YILIAN_EVENTS_BACKEND": "inprocess"}, 1))
    if args.backend in ("postgres", "both"):
        url = os.environ.get("YILIAN_BENCH_DATABASE_URL", DEFAULT_POSTGRES)
        why_not = postgres_ready(url)
        if why_not:
            print(f"(PostgreSQL backend skipped: {why_not})")
        else:
            data_dir = tempfile.mkdtemp(prefix="yilian-bench-green-board-pg-")
            dirs.append(data_dir)
            env = {
                **base,
                "YILIAN_DATA_DIR": data_dir,
                "YILIAN_DATABASE_URL": url,
                "YILIAN_SECRET_KEY": os.environ.get("YILIAN_SECRET_KEY", "bench-only-not-a-secret"),
                "YILIAN_EVENTS_BACKEND": "postgres",
            }
            runs.append(("postgres", env, 2))

    results = []
    try:
        for name, env, servers in runs:
            print(f"== {name}: set-up and {args.connections} boards on {servers} server process(es)", flush=True)
            results.append(_run_backend(name, env, servers, args))
    except BaseException:
        print(f"(the servers' logs are kept in {', '.join(dirs)})", file=sys.stderr)
        raise
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)

    result = {"benchmark": "green_board", "target_p99_ms": TARGET_P99_MS, "machine": machine(), "runs": results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "green_board.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    ok = True
    for r in results:
        m = r["measured"]
        print(
            f"{r['backend']} bus ({r['database']}, {r['servers']} server process{'es' if r['servers'] > 1 else ''}): "
            f"{r['connections']} boards open in {r['boards_opened_seconds']} s, {m['activations']} activations"
        )
        for key, label in (
            ("every_board", "every board reached"),
            ("per_board", "each board"),
            ("first_board", "first board"),
            ("activation_response", "activation request"),
        ):
            f = m[key]
            if f:
                print(
                    f"  {label:<20} p50 {f['p50_ms']:7.1f} ms  p90 {f['p90_ms']:7.1f} ms  "
                    f"p99 {f['p99_ms']:7.1f} ms  max {f['max_ms']:7.1f} ms"
                )
        if r["servers"] > 1:
            for server, f in m["per_board_by_server"].items():
                print(f"  boards on server {server}   p50 {f['p50_ms']:7.1f} ms  p99 {f['p99_ms']:7.1f} ms")
        w = r["warmup"]["every_board"]
        if w:
            print(f"  warm-up ({r['warmup']['activations']}): every board reached within {w['max_ms']:.1f} ms")
        print(f"  frames missing: {m['frames_missing']}; server threads: {r['server_threads_with_boards_open']}")
        print(f"  target p99 < {TARGET_P99_MS:.0f} ms: {'met' if r['target_met'] else 'MISSED'}")
        ok = ok and r["target_met"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
