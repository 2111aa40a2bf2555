"""The broker (Redis) stopped under a running server: bulk requests get a 503, everything else keeps answering.

Real services only (PostgreSQL, a redis-server of the test's own on port 31160, gunicorn and a
Celery worker pointed at it). The test stops Redis, checks what clients see while it is down,
starts it again and checks that the work asked for during the outage runs, each user once.
"""

from __future__ import annotations

import csv
import datetime
import io
import time
import zoneinfo
from decimal import Decimal

import pytest
from django.db.models import Count

from coaching.models import ApiUsage, BulkOperation, BulkOperationResult, MonthlyUsage, MonthlyUsageArchive
from coaching.models.usage import month_start
from tests.coaching.bulk_support import give_usage, make_users
from tests.factories import UsageLogFactory, UserFactory

from . import procs

pytestmark = [pytest.mark.real_worker, pytest.mark.django_db(transaction=True)]

BROKER = f"redis://127.0.0.1:{procs.REDIS_PORT}/0"
WEB_PORT = 31161
RESET = "/api/v1/admin/bulk/reset-usage"


def this_month() -> datetime.date:
    return month_start(datetime.datetime.now(datetime.UTC), zoneinfo.ZoneInfo("Asia/Taipei"))


def wait_finished(op_id, *, timeout: float, log) -> BulkOperation:
    return procs.wait_until(
        lambda: BulkOperation.objects.filter(pk=op_id, status__in=BulkOperation.FINISHED).first(),
        timeout=timeout,
        what=f"operation {op_id} finished",
        log=log,
    )


def test_redis_stopped_bulk_answers_503_pages_keep_answering_and_the_work_runs_when_it_is_back():
    admin = procs.with_password(UserFactory(email="root@example.com", is_staff=True, is_superuser=True))
    coach = procs.with_password(UserFactory(email="carol@example.com", name="Carol", plan_id="pro"))
    for minute in range(30):
        UsageLogFactory(user=coach, seconds=60 * (minute + 1))
    users = make_users(300)
    given = give_usage(users, period=this_month())
    body = {"user_ids": [str(u.pk) for u in users], "reset_type": "monthly"}
    key = {"Idempotency-Key": "i16-redis-down-1"}
    page = procs.session_cookie(coach)

    redis = procs.redis_start()
    worker = web = None
    try:
        worker = procs.worker_start(BROKER, "redis-down-worker")
        web = procs.gunicorn_start(
            WEB_PORT, "redis-down-web", CELERY_BROKER_URL=BROKER, CELERY_TASK_DEFAULT_QUEUE=worker.queue
        )
        assert procs.get(WEB_PORT, "/readyz")[0] == 200

        procs.stop(redis)
        stopped_at = time.monotonic()
        status, headers, content = procs.get(WEB_PORT, "/readyz")
        ready = procs.json_body(content)
        assert (status, ready["failed"], ready["checks"]["database"]["ok"]) == (503, ["broker"], True)
        assert procs.get(WEB_PORT, "/healthz")[0] == 200  # live: the process is fine, only a dependency is not

        # A bulk reset while the broker is down: 503 with a message and Retry-After; nothing changed.
        started = time.monotonic()
        status, headers, content = procs.request(WEB_PORT, "POST", RESET, body=body, headers=procs.basic(admin) | key)
        refused_in = time.monotonic() - started
        answer = procs.json_body(content)
        assert status == 503, content[:500]
        assert headers["retry-after"] == "30"
        assert "task queue is unavailable" in answer["detail"] and "same Idempotency-Key" in answer["detail"]
        op = BulkOperation.objects.get()
        assert (op.status, answer["operation"]["id"], answer["operation"]["status"]) == ("failed", str(op.pk), "failed")
        assert op.summary["not_queued"]["retryable"] is True
        assert "could not be run" in op.error
        assert not BulkOperationResult.objects.exists() and not MonthlyUsageArchive.objects.exists()
        assert dict(MonthlyUsage.objects.values_list("user_id", "minutes")) == {u: c.minutes for u, c in given.items()}

        # Everything that does not need the broker keeps answering, and the API calls are still counted.
        during = []
        for _ in range(5):
            during.append(procs.get(WEB_PORT, "/dashboard/usage", headers=page)[0])
            during.append(procs.get(WEB_PORT, "/api/v1/usage/analytics?period=30d", headers=page)[0])
        status, headers, csv_body = procs.get(
            WEB_PORT, "/api/v1/usage-history/export?format=csv&period=30d", headers=page
        )
        during.append(status)
        assert during == [200] * 11
        rows = list(csv.reader(io.StringIO(csv_body.decode("utf-8-sig"))))
        assert len(rows) == 1 + 30
        assert ApiUsage.objects.get(user=coach).count == 6  # 5 analytics calls + the export

        # The broker comes back (empty: this Redis keeps nothing on disk). The worker reconnects by itself.
        redis = procs.redis_start()
        restarted = time.monotonic()
        procs.wait_until(lambda: procs.get(WEB_PORT, "/readyz")[0] == 200, timeout=30, what="ready again")
        ready_after = time.monotonic() - restarted

        # The same request with the same key: the operation that was never queued now runs.
        status, _, content = procs.request(WEB_PORT, "POST", RESET, body=body, headers=procs.basic(admin) | key)
        assert status == 202, content[:500]
        assert procs.json_body(content)["id"] == str(op.pk)
        resent = time.monotonic()
        op = wait_finished(op.pk, timeout=90, log=worker.log_path)
        ran_in = time.monotonic() - resent
    finally:
        procs.stop(web)
        procs.stop(worker)
        procs.stop(redis)

    assert (op.status, op.error, op.processed, op.succeeded, op.failed) == ("succeeded", "", 300, 300, 0)
    assert BulkOperation.objects.count() == 1
    per_user = BulkOperationResult.objects.filter(operation=op).values("user_id").annotate(n=Count("id"))
    assert len(per_user) == 300 and {row["n"] for row in per_user} == {1}
    archived = dict(MonthlyUsageArchive.objects.filter(bulk_operation=op).values_list("user_id", "minutes"))
    assert archived == {u: c.minutes for u, c in given.items()}
    assert set(MonthlyUsage.objects.filter(user__in=users).values_list("minutes", flat=True)) == {Decimal("0.00")}
    print(
        f"\n[redis down] bulk refused with 503 in {refused_in:.2f} s; 11/11 other requests 200 during the outage "
        f"({time.monotonic() - stopped_at:.0f} s); ready {ready_after:.2f} s after Redis restarted; "
        f"re-sent reset of 300 users done in {ran_in:.2f} s"
    )


def test_redis_stopped_mid_reset_the_queued_chunks_run_when_it_is_back(tmp_path):
    """A persistent Redis (append-only file, as deploy/ runs it) stopped while a reset's chunks wait in the queue."""
    from tests.coaching.bulk_support import counter_writes_slow

    admin = procs.with_password(UserFactory(email="root@example.com", is_staff=True, is_superuser=True))
    coach = UserFactory(email="carol@example.com", name="Carol", plan_id="pro")
    users = make_users(1000)
    given = give_usage(users, period=this_month())
    body = {"user_ids": [str(u.pk) for u in users], "reset_type": "monthly"}
    page = procs.session_cookie(coach)

    redis = procs.redis_start(data_dir=tmp_path)
    worker = web = None
    try:
        worker = procs.worker_start(BROKER, "redis-mid-worker", BULK_CHUNK_SIZE="100")
        web = procs.gunicorn_start(
            WEB_PORT, "redis-mid-web", CELERY_BROKER_URL=BROKER, CELERY_TASK_DEFAULT_QUEUE=worker.queue
        )
        with counter_writes_slow(0.003):  # ≈ 0.3 s a chunk of 100: most chunks are still queued when Redis stops
            status, _, content = procs.request(WEB_PORT, "POST", RESET, body=body, headers=procs.basic(admin))
            assert status == 202, content[:500]
            op_id = procs.json_body(content)["id"]
            procs.wait_until(
                lambda: BulkOperationResult.objects.filter(operation_id=op_id).count() >= 200,
                timeout=60,
                what="two chunks done",
                log=worker.log_path,
            )
            procs.stop(redis)
            stopped = time.monotonic()
            done_when_stopped = BulkOperationResult.objects.filter(operation_id=op_id).count()
            during = [procs.get(WEB_PORT, "/dashboard/usage", headers=page)[0] for _ in range(3)]
            during.append(procs.request(WEB_PORT, "POST", RESET, body=body, headers=procs.basic(admin))[0])
            time.sleep(max(0.0, 3 - (time.monotonic() - stopped)))
            done_while_down = BulkOperationResult.objects.filter(operation_id=op_id).count()

            redis = procs.redis_start(data_dir=tmp_path)
            back = time.monotonic()
            op = procs.wait_until(
                lambda: BulkOperation.objects.filter(pk=op_id, status__in=BulkOperation.FINISHED).first(),
                timeout=120,
                what="operation finished after Redis came back",
                log=worker.log_path,
            )
            finished_after = time.monotonic() - back
    finally:
        procs.stop(web)
        procs.stop(worker)
        procs.stop(redis)

    assert during == [200, 200, 200, 503]
    assert 200 <= done_when_stopped < 1000 and done_while_down < 1000  # the outage really was mid-operation
    assert (op.status, op.processed, op.succeeded, op.failed) == ("succeeded", 1000, 1000, 0)
    per_user = BulkOperationResult.objects.filter(operation_id=op_id).values("user_id").annotate(n=Count("id"))
    assert len(per_user) == 1000 and {row["n"] for row in per_user} == {1}
    archived = dict(MonthlyUsageArchive.objects.filter(bulk_operation_id=op_id).values_list("user_id", "minutes"))
    assert archived == {u: c.minutes for u, c in given.items()}
    print(
        f"\n[redis down mid-reset] {done_when_stopped}/1000 users done when Redis stopped, {done_while_down} "
        f"after 3 s down; finished {finished_after:.1f} s after it came back; each user once"
    )
