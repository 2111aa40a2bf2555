"""Bulk usage reset: end-to-end time for 1,000 / 10,000 / 100,000 users next to a naive per-user loop.

Creates its own PostgreSQL database (``bench_bulk`` by default; never the dev database), migrates
it, seeds users with this month's counters (one ``INSERT … SELECT generate_series``), starts a real
Celery worker subprocess on that database and a queue of its own over Redis, then for each size:

  end to end   POST /api/v1/admin/bulk/reset-usage (the APIView in-process, admin user, JSON body
               of N ids, validation included) → poll the operation until it has finished.
               Every user gets an archive, a zeroed counter, a result row and an admin-log entry;
               the run is checked afterwards (exact counts), not just timed.
  undo         POST …/operations/<id>/undo right after (202; the worker runs it), until reverted; checked: all restored.
  naive loop   the same work one user at a time with ``save()`` (select the counter, create the
               archive, zero and save the counter, create the result, log the admin entry, one
               transaction per user), measured in this run on ``--loop-users`` users and
               extrapolated per user to each size (printed as such).

Goals: 100,000 users under 10 s end to end, and at least 50 x faster than the loop.

    .venv/bin/python benchmarks/bulk_reset.py                   # 1k / 10k / 100k, loop on 2,000 users
    .venv/bin/python benchmarks/bulk_reset.py --quick           # 500 / 2,000, loop on 200 users
    .venv/bin/python benchmarks/bulk_reset.py --sizes 5000 --concurrency 4
Environment: DATABASE_URL names the PostgreSQL server (its database name is replaced; default
postgres://postgres@127.0.0.1:5432/), CELERY_BROKER_URL the broker (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from _common import ROOT, database_url, prepare_database

GOAL_SECONDS = 10.0
GOAL_RATIO = 50.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="Users per reset, comma-separated.")
    parser.add_argument("--loop-users", type=int, default=2000, help="Users the naive loop is measured on.")
    parser.add_argument("--quick", action="store_true", help="Sizes 500,2000 and the loop on 200 users.")
    parser.add_argument("--chunk-size", type=int, default=1000, help="Users per chunk task (default 1000).")
    parser.add_argument("--concurrency", type=int, default=2, help="Worker processes (celery -c; default 2).")
    parser.add_argument("--database", default="bench_bulk", help="Database to (re)create (default bench_bulk).")
    parser.add_argument("--timeout", type=float, default=600, help="Seconds to wait for one operation.")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.loop_users = "500,2000", 200
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes must be whole numbers separated by commas, e.g. 1000,10000")
    if not args.sizes or min(args.sizes) < 1 or args.loop_users < 1 or args.chunk_size < 1:
        parser.error("sizes, --loop-users and --chunk-size must be at least 1")
    return args


def prepare(args: argparse.Namespace, queue: str) -> dict:
    """(Re)create the benchmark database, point Django at it, migrate. Returns the worker's environment."""
    env = {
        "DATABASE_URL": database_url(args.database),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "BULK_CHUNK_SIZE": str(args.chunk_size),
        "BULK_MAX_USERS": str(max(100_000, *args.sizes)),
        "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        "THROTTLE_BULK": "1000/hour",
        "LOG_LEVEL": "WARNING",
    }
    prepare_database(args.database, reuse=False, env=env)
    return env


USERS_SQL = """
    INSERT INTO coaching_user (id, password, is_superuser, email, name, plan_id, timezone, country, language,
                               date_joined, is_active, is_staff, is_test_account)
    SELECT md5('bench-bulk-' || i)::uuid, 'bench-no-login', false, 'bulk' || i || '@bench.example',
           '教練 ' || i, 'pro', CASE WHEN mod(i, 10) = 0 THEN 'Asia/Hong_Kong' ELSE 'Asia/Taipei' END,
           'TW', 'zh-hant', now(), true, false, false
    FROM generate_series(1, %(users)s) AS i
"""
COUNTERS_SQL = """
    INSERT INTO coaching_monthlyusage (user_id, period, minutes, sessions, transcriptions, updated_at)
    SELECT md5('bench-bulk-' || i)::uuid, %(period)s, mod(i, 600) + 0.25, mod(i, 7) + 1, mod(i, 5) + 2, now()
    FROM generate_series(1, %(users)s) AS i
"""


def seed(users: int) -> None:
    import datetime
    import zoneinfo

    from django.db import connection

    from coaching.models.usage import month_start

    period = month_start(datetime.datetime.now(datetime.UTC), zoneinfo.ZoneInfo("Asia/Taipei"))
    with connection.cursor() as cur:
        cur.execute(USERS_SQL, {"users": users})
        cur.execute(COUNTERS_SQL, {"users": users, "period": period})
        cur.execute("ANALYZE")


def user_ids(first: int, count: int) -> list[str]:
    """The ids ``seed`` gave users ``first`` … ``first + count - 1`` (md5 of a name, as a UUID)."""
    import hashlib

    return [str(uuid.UUID(hashlib.md5(f"bench-bulk-{i}".encode()).hexdigest())) for i in range(first, first + count)]


def start_worker(env: dict, queue: str, concurrency: int, log_path: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "coaching", "worker", "-Q", queue, "-c", str(concurrency)]
    command += ["-n", f"{queue}@%h", "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while "ready." not in log_path.read_text():
        time.sleep(0.1)
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_worker(proc)
            raise SystemExit(f"the Celery worker did not start:\n{log_path.read_text()[-3000:]}")
    return proc


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def reset_end_to_end(admin, ids: list[str], timeout: float) -> tuple[float, float, str]:
    """POST the reset, poll until finished. Returns (seconds end to end, seconds for the request, operation id)."""
    from rest_framework.test import APIClient

    from coaching.models import BulkOperation

    client = APIClient()
    client.force_authenticate(user=admin)
    started = time.perf_counter()
    response = client.post("/api/v1/admin/bulk/reset-usage", {"user_ids": ids, "reset_type": "monthly"}, format="json")
    answered = time.perf_counter() - started
    if response.status_code != 202:
        raise SystemExit(f"reset-usage answered {response.status_code}: {response.content[:500]!r}")
    op_id = response.json()["id"]
    while True:
        op = BulkOperation.objects.only("status", "processed", "total").get(pk=op_id)
        if op.status in BulkOperation.FINISHED:
            return time.perf_counter() - started, answered, op_id
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"operation {op_id} still {op.status} ({op.processed}/{op.total}) after {timeout:.0f} s")
        time.sleep(0.05)


def check(op_id: str, ids: list[str]) -> None:
    """The run did what it says: every user archived once, zeroed, with a result and an admin-log entry."""
    from django.contrib.admin.models import LogEntry

    from coaching.models import BulkOperation, MonthlyUsage, MonthlyUsageArchive

    op = BulkOperation.objects.get(pk=op_id)
    n = len(ids)
    archives = MonthlyUsageArchive.objects.filter(bulk_operation=op).count()
    logged = LogEntry.objects.filter(content_type__model="user", change_message__startswith=f"Bulk operation {op_id}")
    nonzero = sum(
        MonthlyUsage.objects.filter(user_id__in=ids[i : i + 5000], minutes__gt=0).count() for i in range(0, n, 5000)
    )
    problems = [
        f"{what}: {got} != {want}"
        for what, got, want in [
            ("status", op.status, "succeeded"),
            ("succeeded", op.succeeded, n),
            ("archives", archives, n),
            ("results", op.results.count(), n),
            ("admin log entries", logged.count(), n),
            ("counters not zeroed", nonzero, 0),
        ]
        if got != want
    ]
    if problems:
        raise SystemExit(f"operation {op_id} is wrong: " + "; ".join(problems))


def undo_seconds(admin, op_id: str, size: int) -> float:
    """POST …/undo (202: the worker runs it), wait until the operation reads reverted, check every counter came back."""
    from rest_framework.test import APIClient

    from coaching.models import BulkOperation

    client = APIClient()
    client.force_authenticate(user=admin)
    started = time.perf_counter()
    response = client.post(f"/api/v1/admin/bulk/operations/{op_id}/undo")
    if response.status_code != 202:
        raise SystemExit(f"undo answered {response.status_code}: {response.content[:300]!r}")
    while (op := BulkOperation.objects.defer("user_ids").get(pk=op_id)).status != "reverted":
        if time.perf_counter() - started > 600 or op.summary.get("undo", {}).get("status") == "failed":
            raise SystemExit(f"undo did not finish: {op.summary.get('undo')}")
        time.sleep(0.05)
    took = time.perf_counter() - started
    restored = op.summary["undo"]["users_restored"]
    if restored != size:
        raise SystemExit(f"undo restored {restored} of {size}")
    return took


def naive_loop(admin, ids: list[str]) -> float:
    """The same work one user at a time with save(); returns seconds per user."""
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.db import transaction
    from django.utils import timezone

    from coaching.models import BulkOperation, BulkOperationResult, MonthlyUsage, MonthlyUsageArchive, User

    op = BulkOperation.objects.create(
        kind="reset_usage", parameters={"reset_type": "monthly"}, requested_by=admin, total=len(ids), status="running"
    )
    started = time.perf_counter()
    for user_id in ids:
        with transaction.atomic():
            user = User.objects.get(pk=user_id)
            counter = MonthlyUsage.objects.select_for_update().get(user=user)
            before = {"period": counter.period.isoformat(), "minutes": str(counter.minutes)}
            MonthlyUsageArchive(
                user=user,
                period=counter.period,
                minutes=counter.minutes,
                sessions=counter.sessions,
                transcriptions=counter.transcriptions,
                bulk_operation=op,
            ).save()
            counter.minutes, counter.sessions, counter.transcriptions = 0, 0, 0
            counter.save()
            BulkOperationResult(operation=op, user=user, status="succeeded", before=before).save()
            LogEntry.objects.log_actions(admin.pk, [user], CHANGE, f"Bulk operation {op.id}: reset", single_object=True)
            op.processed += 1
            op.succeeded += 1
            op.save(update_fields=["processed", "succeeded"])
    took = time.perf_counter() - started
    op.status, op.finished_at = "succeeded", timezone.now()
    op.save(update_fields=["status", "finished_at"])
    return took / len(ids)


def main() -> int:
    args = parse_args()
    queue = f"bench-bulk-{uuid.uuid4().hex[:8]}"
    env = prepare(args, queue)
    from coaching.models import User

    total = sum(args.sizes) + args.loop_users
    print(f"database {args.database}: seeding {total:,} users with this month's counters …", flush=True)
    started = time.perf_counter()
    seed(total)
    print(f"seeded in {time.perf_counter() - started:.1f} s")
    admin = User.objects.create_superuser("bench-admin@bench.example", "bench-admin-password", name="Bench admin")

    loop_ids = user_ids(sum(args.sizes) + 1, args.loop_users)
    per_user = naive_loop(admin, loop_ids)
    print(
        f"naive loop   {args.loop_users:>7,} users measured: {per_user * 1000:6.2f} ms per user "
        f"(one transaction and five saves each; figures below extrapolate this per user)"
    )

    log_path = ROOT / "output" / f"{queue}.log"
    log_path.parent.mkdir(exist_ok=True)
    worker = start_worker(env, queue, args.concurrency, log_path)
    verdict = 0
    try:
        print(f"worker: celery -c {args.concurrency}, chunks of {args.chunk_size:,} users, queue {queue}")
        first = 1
        for size in args.sizes:
            ids = user_ids(first, size)
            first += size
            took, answered, op_id = reset_end_to_end(admin, ids, args.timeout)
            check(op_id, ids)
            undo = undo_seconds(admin, op_id, size)
            loop = per_user * size
            ratio = loop / took
            goals = ""
            if size >= 100_000:
                ok = took < GOAL_SECONDS and ratio >= GOAL_RATIO
                verdict |= 0 if ok else 1
                goals = f"  goals < {GOAL_SECONDS:.0f} s and >= {GOAL_RATIO:.0f}x: {'met' if ok else 'MISSED'}"
            elif ratio < GOAL_RATIO:
                goals = f"  (below {GOAL_RATIO:.0f}x)"
            print(
                f"bulk reset {size:>8,} users: {took:7.2f} s end to end (request {answered:5.2f} s), "
                f"{size / took:9,.0f} users/s; naive loop ≈ {loop:8.1f} s (extrapolated) -> {ratio:6.1f}x faster"
                f"{goals}; undo {undo:5.2f} s",
                flush=True,
            )
    finally:
        stop_worker(worker)
    return verdict


if __name__ == "__main__":
    sys.exit(main())
