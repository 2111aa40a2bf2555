"""Bulk operations on PostgreSQL with real Celery workers over Redis.

Skipped on the embedded default. The crash test starts and SIGKILLs workers of its own, on a
Redis database of its own, so the shared worker (and anyone else's messages) are never touched.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
import uuid
import zoneinfo
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.db.models import Count

from coaching import bulk, celery_app, tasks
from coaching.models import BulkOperation, BulkOperationResult, MonthlyUsage, MonthlyUsageArchive
from coaching.models.usage import month_start
from tests.coaching.bulk_support import counter_write_fails, counter_writes_slow, give_usage, make_users

pytestmark = [pytest.mark.real_worker, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
URL = "/api/v1/admin/bulk/reset-usage"


def this_month() -> datetime.date:
    return month_start(datetime.datetime.now(datetime.UTC), zoneinfo.ZoneInfo("Asia/Taipei"))


def wait_finished(op_id, *, timeout: float = 180, log: Path | None = None) -> BulkOperation:
    deadline = time.monotonic() + timeout
    while True:
        op = BulkOperation.objects.get(pk=op_id)
        if op.status in BulkOperation.FINISHED:
            return op
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log else ""
            done = op.results.count()
            pytest.fail(f"operation still {op.status} at {done}/{op.total} after {timeout}s\n{tail}")
        time.sleep(0.2)


def test_reset_of_many_users_then_resend_then_undo(admin_user, api_for, celery_worker_process):
    users = make_users(2500)
    given = give_usage(users, period=this_month())
    client = api_for(admin_user)
    body = {"user_ids": [str(u.pk) for u in users], "reset_type": "monthly"}

    response = client.post(URL, body, format="json")
    assert response.status_code == 202
    op = wait_finished(response.json()["id"], log=celery_worker_process.log_path)

    assert (op.status, op.total, op.processed, op.succeeded, op.failed) == ("succeeded", 2500, 2500, 2500, 0)
    archives = {
        a.user_id: (a.period, a.minutes, a.sessions, a.transcriptions)
        for a in MonthlyUsageArchive.objects.filter(bulk_operation=op)
    }
    assert archives == {c.user_id: (this_month(), c.minutes, c.sessions, c.transcriptions) for c in given.values()}
    assert set(MonthlyUsage.objects.values_list("minutes", "sessions", "transcriptions")) == {(Decimal("0.00"), 0, 0)}
    assert LogEntry.objects.filter(content_type__model="user", change_message__contains=str(op.pk)).count() == 2500

    # The same request again: a new operation that finds nothing left to do.
    again = wait_finished(client.post(URL, body, format="json").json()["id"], log=celery_worker_process.log_path)
    assert (again.status, again.succeeded, again.skipped) == ("succeeded", 0, 2500)
    assert MonthlyUsageArchive.objects.count() == 2500

    undone = client.post(f"/api/v1/admin/bulk/operations/{op.pk}/undo")
    assert undone.status_code == 202  # the worker runs the undo
    deadline = time.monotonic() + 120
    while BulkOperation.objects.get(pk=op.pk).status != "reverted":
        assert time.monotonic() < deadline, f"undo not done after 120 s: {BulkOperation.objects.get(pk=op.pk).summary}"
        time.sleep(0.2)
    restored = dict(MonthlyUsage.objects.values_list("user_id", "minutes"))
    assert restored == {c.user_id: c.minutes for c in given.values()}


def test_one_failing_user_leaves_the_others_done(admin_user, api_for, celery_worker_process):
    users = make_users(40)
    given = give_usage(users, period=this_month())
    bad = users[17]
    with counter_write_fails(bad):
        response = api_for(admin_user).post(
            URL, {"user_ids": [str(u.pk) for u in users], "reset_type": "all"}, format="json"
        )
        op = wait_finished(response.json()["id"], log=celery_worker_process.log_path)

    assert (op.status, op.succeeded, op.failed) == ("partially_failed", 39, 1)
    failed = op.results.get(status="failed")
    assert failed.user_id == bad.pk
    assert "counter frozen for audit" in failed.reason
    assert MonthlyUsage.objects.get(user=bad).minutes == given[bad.pk].minutes
    assert MonthlyUsageArchive.objects.filter(bulk_operation=op).count() == 39


# --- a worker killed mid-operation -------------------------------------------------------------------

CRASH_BROKER = "redis://127.0.0.1:6379/13"


def start_worker(name: str, queue: str, log_path: Path, **env_extra) -> subprocess.Popen:
    db = connection.settings_dict
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{host}/{db['NAME']}",
        "CELERY_BROKER_URL": CRASH_BROKER,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "DB_CONN_MAX_AGE": "0",
        **env_extra,
    }
    command = [sys.executable, "-m", "celery", "-A", "coaching", "worker", "-Q", queue, "-c", "1", "-n", f"{name}@%h"]
    command += ["-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while "ready." not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"worker {name} did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc


def received_chunks(log_path: Path) -> list[str]:
    return [
        line.split("bulk_operation_chunk[", 1)[1].split("]", 1)[0]
        for line in log_path.read_text().splitlines()
        if "Task coaching.tasks.bulk_operation_chunk[" in line and "received" in line.lower()
    ]


def test_a_worker_killed_mid_chunk_is_redelivered_and_each_user_is_reset_once(admin_user, monkeypatch):
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    logs = ROOT / "output"
    logs.mkdir(exist_ok=True)
    log_a, log_b = logs / f"celery-{queue}-a.log", logs / f"celery-{queue}-b.log"
    users = make_users(2000)
    give_usage(users, period=this_month())
    # Create the operation but enqueue it ourselves, on this test's own broker database.
    monkeypatch.setattr(tasks.bulk_operation_start, "delay", lambda *a, **k: None)
    op, _ = bulk.operation_create(
        kind="reset_usage",
        user_ids=[u.pk for u in users],
        parameters={"reset_type": "monthly"},
        requested_by=admin_user,
    )
    workers: list[subprocess.Popen] = []
    with counter_writes_slow(0.004):  # ≈ 2 s per chunk of 500
        try:
            workers.append(start_worker("crash-a", queue, log_a))
            with celery_app.connection_for_write(CRASH_BROKER) as conn:
                tasks.bulk_operation_start.apply_async((str(op.pk),), {"chunk_size": 500}, connection=conn, queue=queue)
            deadline = time.monotonic() + 60
            while op.results.count() < 500:
                assert time.monotonic() < deadline, log_a.read_text()[-3000:]
                time.sleep(0.05)
            time.sleep(0.3)  # the second chunk is now half-way through its UPDATE
            os.killpg(workers[0].pid, signal.SIGKILL)
            workers[0].wait(timeout=10)
            killed_during = received_chunks(log_a)[-1]
            time.sleep(1.0)
            op.refresh_from_db()
            assert (op.status, op.results.count()) == ("running", 500)  # the killed chunk left nothing behind

            time.sleep(1.5)  # older than the new worker's visibility timeout: it restores the unacked chunk
            workers.append(start_worker("crash-b", queue, log_b, CELERY_VISIBILITY_TIMEOUT="1"))
            op = wait_finished(op.pk, timeout=120, log=log_b)
        finally:
            for proc in workers:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            broker = redis.Redis.from_url(CRASH_BROKER)
            broker.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")

    assert killed_during in received_chunks(log_b)  # the very message the dead worker held was redelivered
    assert (op.status, op.processed, op.succeeded, op.skipped, op.failed) == ("succeeded", 2000, 2000, 0, 0)
    per_user = BulkOperationResult.objects.filter(operation=op).values("user_id").annotate(n=Count("id"))
    assert {row["n"] for row in per_user} == {1} and len(per_user) == 2000
    archives = MonthlyUsageArchive.objects.filter(bulk_operation=op).values("user_id").annotate(n=Count("id"))
    assert {row["n"] for row in archives} == {1} and len(archives) == 2000
    assert set(MonthlyUsage.objects.values_list("minutes", flat=True)) == {Decimal("0.00")}
    assert LogEntry.objects.filter(content_type__model="user", change_message__contains=str(op.pk)).count() == 2000
    assert settings.CELERY_TASK_ACKS_LATE and settings.CELERY_TASK_REJECT_ON_WORKER_LOST
