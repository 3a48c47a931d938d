"""The ``yilian`` command: serve, worker, migrate, seed-demo, createuser, token, audit."""

from __future__ import annotations

import argparse
import os
import sys


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yilian.settings")
    import django

    django.setup()


def _green_beat_in_server() -> None:
    """With the in-process events bus, the green sweep runs in the server process: a time-out it
    handles must reach the boards this process streams (a separate worker's would reach none)."""
    import threading

    from django.conf import settings

    if settings.EVENTS_BACKEND != "inprocess":
        return  # the worker sweeps; LISTEN/NOTIFY carries its events to every server process
    interval = float(os.environ.get("YILIAN_GREEN_SWEEP_SECONDS", "10") or "10")
    threading.Thread(target=_green_beat, args=(max(interval, 1.0),), name="green-beat", daemon=True).start()


def _serve(args: argparse.Namespace) -> int:
    _setup()
    import uvicorn

    if args.workers == 1:
        _green_beat_in_server()

    uvicorn.run(
        "yilian.asgi:application",
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=args.proxy_headers,
        log_level="info",
    )
    return 0


def _sweep_once() -> None:
    """One pass of the periodic work: referral deadlines and no-shows, consult deadlines and expiry,
    then due webhook retries.

    Each part fails on its own (logged, tried again at the next pass, never fatal to the worker);
    the connection is closed afterwards because the beat sleeps longer than a connection should idle.
    """
    import logging

    from django.db import connection

    log = logging.getLogger("yilian.worker")
    try:
        from yilian.referrals.services import referral_sweep

        report = referral_sweep()
        if report.notified or report.escalated or report.no_shows:
            log.info(
                "sweep: %s overdue referrals notified, %s escalated, %s no-shows",
                report.notified,
                report.escalated,
                report.no_shows,
            )
    except Exception:
        log.exception("the referral sweep failed; it runs again at the next pass")
    try:
        from yilian.consults.services import consult_sweep

        consults = consult_sweep()
        if consults.reminded or consults.escalated or consults.expired:
            log.info(
                "sweep: %s overdue consults reminded, %s escalated, %s expired",
                consults.reminded,
                consults.escalated,
                consults.expired,
            )
    except Exception:
        log.exception("the consult sweep failed; it runs again at the next pass")
    try:
        from yilian.notifications.services import webhooks_retry_due

        retried = webhooks_retry_due()
        if retried:
            log.info("sweep: %s webhook deliveries retried", retried)
    except Exception:
        log.exception("the webhook retries failed; they run again at the next pass")
    connection.close()


def _green_sweep_once() -> None:
    """Green-channel offers not answered in time: escalate and offer the next destination."""
    import logging

    from django.db import connection

    log = logging.getLogger("yilian.worker")
    try:
        from yilian.referrals.green_services import green_sweep

        report = green_sweep()
        if report.escalated:
            log.info("green sweep: %s unanswered offers escalated and re-offered", report.escalated)
    except Exception:
        log.exception("the green-channel sweep failed; it runs again at the next pass")
    connection.close()


def _green_beat(interval: float) -> None:
    import time

    while True:
        _green_sweep_once()
        time.sleep(interval)


def _beat(interval: float) -> None:
    import time

    while True:
        _sweep_once()
        time.sleep(interval)


def _worker(args: argparse.Namespace) -> int:
    """The task queue (``db_worker``) in the main thread, the periodic sweep in a "beat" thread.

    YILIAN_GREEN_SWEEP_SECONDS (default 10) is the pause between green-channel sweeps (offers a
    destination did not answer in time), in a thread of their own because minutes count there; with
    the in-process events bus the web server runs that sweep instead, so that its boards hear it.
    YILIAN_SWEEP_SECONDS (default 60) is the pause between sweeps: referral deadlines,
    escalations and no-shows (``referrals.services.referral_sweep``), then webhook deliveries
    whose retry time has come (``notifications.services.webhooks_retry_due``). Several workers
    may sweep at once: each referral and delivery is locked while it changes. ``--once`` runs
    one sweep, then the queued tasks (including the webhooks the sweep queued), and exits.
    """
    import math
    import threading

    intervals: dict[str, float] = {}
    for name, default in (("YILIAN_SWEEP_SECONDS", "60"), ("YILIAN_GREEN_SWEEP_SECONDS", "10")):
        try:
            intervals[name] = float(os.environ.get(name, default))
        except ValueError:
            intervals[name] = math.nan
        if not (math.isfinite(intervals[name]) and intervals[name] > 0):
            print(f"{name} must be a positive number of seconds", file=sys.stderr)
            return 2
    interval = intervals["YILIAN_SWEEP_SECONDS"]
    _setup()
    from django.conf import settings
    from django.core.management import call_command

    if args.once:
        _green_sweep_once()
        _sweep_once()
        call_command("db_worker", "--batch")
        return 0
    # With YILIAN_DEBUG db_worker restarts itself in a child process on code changes; only the
    # process that runs tasks (the child, RUN_MAIN=true) sweeps, not the watching parent.
    if not settings.DEBUG or os.environ.get("RUN_MAIN") == "true":
        threading.Thread(target=_beat, args=(interval,), name="beat", daemon=True).start()
        if settings.EVENTS_BACKEND == "postgres":  # else the web server sweeps (``_green_beat_in_server``)
            green = intervals["YILIAN_GREEN_SWEEP_SECONDS"]
            threading.Thread(target=_green_beat, args=(green,), name="green-beat", daemon=True).start()
    call_command("db_worker")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    _setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=1 if args.verbose else 0)
    return 0


def _seed_demo(args: argparse.Namespace) -> int:
    _setup()
    from django.core.management import call_command

    call_command("seed_demo", seed=args.seed, scale=args.scale)
    return 0


def _createuser(args: argparse.Namespace) -> int:
    _setup()
    from django.core.exceptions import ValidationError
    from django.db import transaction

    from yilian.core.permissions import Role
    from yilian.registry import services
    from yilian.registry.models import Consortium, Institution, Region

    try:
        role = Role(args.role)
    except ValueError:
        print(f"unknown role {args.role!r}; one of: {', '.join(r.value for r in Role)}", file=sys.stderr)
        return 2
    institution = consortium = region = None
    if args.institution:
        institution = Institution.objects.filter(code=args.institution).first()
        if institution is None:
            print(f"no institution with code {args.institution!r}", file=sys.stderr)
            return 2
    if args.consortium:
        consortium = Consortium.objects.filter(code=args.consortium).first()
        if consortium is None:
            print(f"no consortium with code {args.consortium!r}", file=sys.stderr)
            return 2
    if args.region:
        region = Region.objects.filter(code=args.region).first()
        if region is None:
            print(f"no region with code {args.region!r}", file=sys.stderr)
            return 2
    try:
        with transaction.atomic():
            user = services.user_create(actor=None, username=args.username, password=args.password)
            services.membership_grant(
                actor=None,
                user=user,
                role=role,
                institution=institution,
                consortium=consortium,
                region=region,
            )
    except ValidationError as exc:
        print("; ".join(exc.messages), file=sys.stderr)
        return 2
    print(f"created user {user.username} with role {role.value}")
    return 0


def _token_create(args: argparse.Namespace) -> int:
    _setup()
    from yilian.registry import selectors, services

    user = selectors.user_by_username(args.username)
    if user is None:
        print(f"no user {args.username!r}", file=sys.stderr)
        return 2
    _, key = services.api_token_create(actor=None, user=user, name=args.name)
    print(key)
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    _setup()
    from yilian.core.audit import audit_verify

    result = audit_verify()
    if result.ok:
        print(f"audit trail intact: {result.checked} rows verified")
        return 0
    print(
        f"audit trail BROKEN at row {result.broken_id}: {result.reason} ({result.checked} rows verified before it)",
        file=sys.stderr,
    )
    return 1


def _import(args: argparse.Namespace) -> int:
    """Import one file of clinical activity for ``--user`` (whose institutions it may cover), with a
    progress bar on the terminal. Exit 0 when the batch landed (with ``--accept-valid`` some rows
    may have been left out: ``--rejects`` copies them to a file), 1 when it was rejected (the first
    20 problems are printed), 2 when the command itself is wrong (no such user or file)."""
    import shutil
    from pathlib import Path

    _setup()
    from django.core.exceptions import PermissionDenied, ValidationError
    from tqdm import tqdm

    from yilian.activity import services
    from yilian.activity.columns import BatchKind
    from yilian.registry import selectors

    path = Path(args.file)
    if not path.is_file():
        print(f"no file {args.file!r}", file=sys.stderr)
        return 2
    user = selectors.user_by_username(args.user)
    if user is None:
        print(f"no user {args.user!r}", file=sys.stderr)
        return 2
    bar = tqdm(total=1, unit="step", file=sys.stderr, dynamic_ncols=True, leave=False)

    def progress(stage: str, done: int, total: int) -> None:
        if bar.desc != stage:
            bar.set_description(stage)
        bar.total = max(total, 1)
        bar.n = min(done, bar.total)
        bar.refresh()

    try:
        result = services.batch_import(
            user=user,
            kind=BatchKind(args.kind),
            path=path,
            filename=path.name,
            accept_valid=args.accept_valid,
            progress=progress,
        )
    except (PermissionDenied, ValidationError) as exc:
        bar.close()
        print("; ".join(getattr(exc, "messages", None) or [str(exc)]), file=sys.stderr)
        return 2
    bar.close()
    batch = result.batch
    print(
        f"batch {batch.public_id} ({batch.kind}, {path.name}): {batch.status}; "
        f"rows {batch.rows_total}, landed {batch.rows_landed}, rejected {batch.rows_rejected}, "
        f"replaced {batch.rows_replaced}"
    )
    errors = list(batch.errors or [])
    if errors:
        shown = errors[:20]
        print(f"{batch.errors_total} problem(s); the first {len(shown)}:", file=sys.stderr)
        for error in shown:
            print(f"  row {error['row']}, {error['column'] or '-'}: {error['message']}", file=sys.stderr)
    if args.rejects and result.rejects_path is not None:
        shutil.copyfile(result.rejects_path, args.rejects)
        print(f"rejected rows written to {args.rejects}")
    return 0 if batch.status == "landed" else 1


def _demo(args: argparse.Namespace) -> int:
    """Migrate, seed the demo consortium, print the logins, run the worker and the server."""
    import signal
    import subprocess

    _setup()
    from django.core.management import call_command

    from yilian.demo.seed import DEMO_PASSWORD, DEMO_USERS

    call_command("migrate", interactive=False, verbosity=0)
    call_command("seed_demo", seed=2018, scale=1)
    url = f"http://{args.host}:{args.port}/"
    lines = [
        "",
        f"  Yilian demo consortium 医联演示: {url}",
        f"  Password for every demo login 演示密码: {DEMO_PASSWORD}",
        "",
    ]
    lines += [f"    {u.username:<12} {u.description_zh} / {u.description_en}" for u in DEMO_USERS]
    lines += ["", "  Ctrl-C stops the server and the worker.", ""]
    print("\n".join(lines), flush=True)
    worker = subprocess.Popen([sys.executable, "-m", "yilian.cli", "worker"])
    # uvicorn re-raises the SIGTERM it caught once it has shut down; turning it into
    # SystemExit lets the `finally` below stop the worker instead of orphaning it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        import uvicorn

        _green_beat_in_server()
        uvicorn.run("yilian.asgi:application", host=args.host, port=args.port, log_level="warning")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
    return 0


def _manage(args: argparse.Namespace) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yilian.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["yilian manage", *args.rest])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yilian", description="Yilian (医联): the medical consortium platform")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the web server (ASGI)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-* from the reverse proxy")
    p.set_defaults(func=_serve)

    p = sub.add_parser("worker", help="run the background task worker and the periodic sweep")
    p.add_argument("--once", action="store_true", help="sweep once, run the queued tasks, then exit")
    p.set_defaults(func=_worker)

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=_migrate)

    p = sub.add_parser("seed-demo", help="load the demo consortium (idempotent)")
    p.add_argument("--seed", type=int, default=2018)
    p.add_argument("--scale", type=int, default=1)
    p.set_defaults(func=_seed_demo)

    p = sub.add_parser("createuser", help="create a user with one role")
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--role", required=True, help="system_admin, consortium_office, hospital_admin, doctor, ...")
    p.add_argument("--institution", default="", help="institution code (roles at an institution)")
    p.add_argument("--consortium", default="", help="consortium code (consortium_office)")
    p.add_argument("--region", default="", help="6-digit region code (commission_viewer)")
    p.set_defaults(func=_createuser)

    p = sub.add_parser("token", help="API tokens")
    token_sub = p.add_subparsers(dest="token_command", required=True)
    tc = token_sub.add_parser("create", help="create an API token and print it once")
    tc.add_argument("username")
    tc.add_argument("--name", default="")
    tc.set_defaults(func=_token_create)

    p = sub.add_parser("audit", help="audit trail")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    av = audit_sub.add_parser("verify", help="check the hash chain; exit 1 at the first broken row")
    av.set_defaults(func=_audit_verify)

    p = sub.add_parser("import", help="import a file of clinical activity (discharges, operations, visits)")
    p.add_argument("kind", choices=["discharges", "operations", "visits", "frontpages"])
    p.add_argument("file", help=".csv (UTF-8 or GB18030), .xlsx or a FHIR R4B bundle (.json)")
    p.add_argument("--user", required=True, help="the user the import is made as (their institutions)")
    p.add_argument("--accept-valid", action="store_true", help="import the valid rows, leave out the rest")
    p.add_argument("--rejects", default="", metavar="OUT.csv", help="with --accept-valid: write the rows left out here")
    p.set_defaults(func=_import)

    p = sub.add_parser("demo", help="migrate, seed the demo consortium, run worker and server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.set_defaults(func=_demo)

    p = sub.add_parser("manage", help="any Django management command")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_manage)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
