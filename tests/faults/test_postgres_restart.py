"""PostgreSQL goes away for a few seconds under a running server and workers, as in a restart.

Real services only. ``database_outage`` does to the test database what a restart does to every
client: it ends every connection (``pg_terminate_backend``) and refuses new ones
(``ALLOW_CONNECTIONS false``) for a while, then lets them in again. The server (gunicorn) and the
Celery worker are not restarted: they must reconnect by themselves.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import csv
import datetime
import http.client
import io
import socket
import threading
import time
import zoneinfo
from decimal import Decimal

import psycopg
import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.db.models import Count

from coaching.models import BulkOperation, BulkOperationResult, ExportRecord, MonthlyUsage, MonthlyUsageArchive
from coaching.models.usage import month_start
from tests.coaching.bulk_support import counter_writes_slow, give_usage, make_users
from tests.factories import UserFactory

from . import procs

pytestmark = [pytest.mark.real_worker, pytest.mark.django_db(transaction=True)]

BROKER = f"redis://127.0.0.1:{procs.REDIS_PORT}/0"
WEB_PORT = 31162
RESET = "/api/v1/admin/bulk/reset-usage"
ROWS = 200_000
EXPORT = "/api/v1/usage-history/export?format=csv&from=2025-01-01&to=2025-12-31"


def admin_connection() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or "postgres",
        dbname="postgres",
        autocommit=True,
    )


@contextlib.contextmanager
def database_outage(seconds: float):
    """Every connection to the test database ended and new ones refused for ``seconds`` (ours survives)."""
    name = connection.settings_dict["NAME"]
    mine = connection.cursor().connection.info.backend_pid
    with admin_connection() as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        try:
            ended = 0
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                rows = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                    [name, mine],
                ).fetchall()
                ended += len(rows)
                time.sleep(0.1)
            yield ended
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


class Prober:
    """Clients hitting a page, the analytics API and /readyz in a loop; every status kept, with its time."""

    def __init__(self, port: int, headers: dict) -> None:
        self.port, self.headers = port, headers
        self.seen: list[tuple[float, str, int]] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(path,)) for path in self.PATHS]

    PATHS = ("/dashboard/usage", "/api/v1/usage/analytics?period=30d", "/readyz")

    def _loop(self, path: str) -> None:
        while not self.stopping.is_set():
            status = procs.get(self.port, path, headers=self.headers, timeout=30)[0]
            self.seen.append((time.monotonic(), path, status))
            time.sleep(0.05)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=60)

    def statuses(self, since: float = 0, until: float = float("inf")) -> collections.Counter:
        return collections.Counter(status for at, _, status in self.seen if since <= at <= until)

    def recovered(self, at: float) -> bool:
        return all(any(p == path and s == 200 and t >= at for t, p, s in self.seen) for path in self.PATHS)

    def first_ok_after(self, at: float) -> float:
        """Seconds from ``at`` until every probed path has answered 200 again."""
        return max(min(t for t, p, s in self.seen if p == path and s == 200 and t >= at) for path in self.PATHS) - at


def this_month() -> datetime.date:
    return month_start(datetime.datetime.now(datetime.UTC), zoneinfo.ZoneInfo("Asia/Taipei"))


def test_postgres_restarted_mid_bulk_reset_each_user_is_reset_once_and_the_server_recovers():
    admin = procs.with_password(UserFactory(email="root@example.com", is_staff=True, is_superuser=True))
    coach = UserFactory(email="carol@example.com", name="Carol", plan_id="pro")
    users = make_users(2000)
    given = give_usage(users, period=this_month())
    body = {"user_ids": [str(u.pk) for u in users], "reset_type": "monthly"}

    redis = procs.redis_start()
    worker = web = None
    try:
        worker = procs.worker_start(BROKER, "pg-restart-worker", BULK_CHUNK_SIZE="250")
        web = procs.gunicorn_start(
            WEB_PORT, "pg-restart-web", CELERY_BROKER_URL=BROKER, CELERY_TASK_DEFAULT_QUEUE=worker.queue
        )
        with counter_writes_slow(0.002):  # ≈ 0.5 s per chunk of 250: the outage lands mid-operation
            status, _, content = procs.request(WEB_PORT, "POST", RESET, body=body, headers=procs.basic(admin))
            assert status == 202, content[:500]
            op_id = procs.json_body(content)["id"]
            procs.wait_until(
                lambda: BulkOperationResult.objects.filter(operation_id=op_id).count() >= 250,
                timeout=60,
                what="first chunk",
                log=worker.log_path,
            )
            with Prober(WEB_PORT, procs.session_cookie(coach)) as probe:
                time.sleep(0.5)
                began = time.monotonic()
                with database_outage(3.0) as ended:
                    done_when_down = BulkOperationResult.objects.filter(operation_id=op_id).count()
                back = time.monotonic()
                procs.wait_until(lambda: probe.recovered(back), timeout=30, what="server answers again")
                time.sleep(0.5)
            op = procs.wait_until(
                lambda: BulkOperation.objects.filter(pk=op_id, status__in=BulkOperation.FINISHED).first(),
                timeout=120,
                what="operation finished",
                log=worker.log_path,
            )
    finally:
        procs.stop(web)
        procs.stop(worker)
        procs.stop(redis)

    during = probe.statuses(began, back)
    after = probe.statuses(back + probe.first_ok_after(back))
    assert ended >= 1 and 250 <= done_when_down < 2000  # the outage really was mid-operation
    assert set(during) <= {200, 503}, during  # never a 500, never a dropped connection
    assert set(after) == {200}, after
    assert (op.status, op.processed, op.succeeded, op.skipped, op.failed) == ("succeeded", 2000, 2000, 0, 0)
    per_user = BulkOperationResult.objects.filter(operation_id=op_id).values("user_id").annotate(n=Count("id"))
    assert len(per_user) == 2000 and {row["n"] for row in per_user} == {1}
    archives = dict(MonthlyUsageArchive.objects.filter(bulk_operation_id=op_id).values_list("user_id", "minutes"))
    assert archives == {u: c.minutes for u, c in given.items()}
    assert set(MonthlyUsage.objects.values_list("minutes", flat=True)) == {Decimal("0.00")}
    logged = LogEntry.objects.filter(change_message__contains=op_id).values("object_id").annotate(n=Count("id"))
    assert {row["n"] for row in logged if row["object_id"] != op_id} == {1}
    print(
        f"\n[postgres down 3 s mid-reset] {ended} connections ended; during: {dict(during)}; "
        f"all answering 200 again {probe.first_ok_after(back):.2f} s after; reset finished, 2000 users once each"
    )


def seed_usage(user) -> None:
    from coaching.models import UsageLog

    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {UsageLog._meta.db_table} (user_id, kind, seconds, minutes, provider, provider_cost_usd,
                                                   billable, plan_code, created_at)
            SELECT %s, 'original', 60 + i %% 600, round((60 + i %% 600) / 60.0, 2), 'google', 0.0016, true, 'pro',
                   timestamptz '2025-01-01 00:00:00+00' + i * interval '2 minutes'
            FROM generate_series(0, %s) AS i
            """,
            [user.pk, ROWS - 1],
        )


def open_download(port: int, user) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """A download over a socket with a small receive buffer, so the server cannot send it all ahead."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.sock = sock
    token = base64.b64encode(f"{user.email}:{procs.PASSWORD}".encode()).decode()
    conn.request("GET", EXPORT, headers={"Authorization": f"Basic {token}"})
    return conn, conn.getresponse()


def test_postgres_restarted_mid_csv_export_the_record_ends_failed_and_the_next_export_is_whole():
    coach = procs.with_password(UserFactory(email="erin@example.com", name="Erin", plan_id="pro"))
    seed_usage(coach)
    web = procs.gunicorn_start(WEB_PORT, "pg-restart-export")
    try:
        conn, response = open_download(WEB_PORT, coach)
        assert response.status == 200
        record_id = int(response.getheader("X-Export-Record"))
        partial = bytearray(response.read(64 * 1024))
        with database_outage(2.0):
            pass
        back = time.monotonic()
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            while chunk := response.read(64 * 1024):
                partial += chunk
        conn.close()
        record = procs.wait_until(
            lambda: ExportRecord.objects.filter(pk=record_id).exclude(status="running").first(),
            timeout=20,
            what="export record finished",
        )
        recorded_after = time.monotonic() - back
        # The same server, not restarted, serves the whole file next.
        conn, response = open_download(WEB_PORT, coach)
        assert response.status == 200
        body = response.read()
        conn.close()
    finally:
        procs.stop(web)

    assert record.status == "failed" and record.finished_at is not None, (record.status, record.error)
    assert "terminat" in record.error or "connection" in record.error.lower(), record.error
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert len(rows) - 1 == ROWS
    assert body.startswith(bytes(partial)) and len(partial) < len(body)
    done = ExportRecord.objects.exclude(pk=record_id).get(subject=coach)
    assert (done.status, done.rows, done.bytes) == ("succeeded", ROWS, len(body))
    assert not ExportRecord.objects.filter(status="succeeded", bytes__lt=len(body)).exists()
    print(
        f"\n[postgres down 2 s mid-CSV] client saw a cut chunked body ({len(partial):,} of {len(body):,} bytes, "
        f"no terminating chunk); record failed {recorded_after:.2f} s after the database was back: {record.error[:80]}"
    )
