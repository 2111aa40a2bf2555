"""A server process killed in the middle of a large CSV download (PostgreSQL, real gunicorn).

Skipped on the embedded default. The test starts gunicorn of its own on the test database,
starts a ~16 MB download that it reads slowly, SIGKILLs the worker process after the first
chunk, and checks what the user and the records see: the client cannot mistake the truncated
body for a complete file (the response is chunked, and the terminating chunk never comes),
the export record does not claim success, the sweep then marks it failed, and the worker the
master starts in its place serves the whole file.
"""

from __future__ import annotations

import base64
import csv
import datetime
import http.client
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.utils import timezone

from coaching.models import ExportRecord, UsageLog
from exports.rows import HEADER
from exports.services import STALE_ERROR, stale_exports_fail
from tests.factories import UserFactory

pytestmark = [pytest.mark.real_worker, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "output"
ROWS = 200_000
PASSWORD = "slow-reader-pw-42"
URL = "/api/v1/usage-history/export?format=csv&from=2025-01-01&to=2025-12-31&headers=keys"


def seed_usage(user) -> None:
    """``ROWS`` ledger rows in 2025, two minutes apart, in one INSERT … SELECT (about a second, not a minute)."""
    table = UsageLog._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (user_id, kind, seconds, minutes, provider, provider_cost_usd, billable,
                                 plan_code, created_at)
            SELECT %s, CASE WHEN i %% 4 = 0 THEN 'retry_failed' ELSE 'original' END, 60 + i %% 600,
                   round((60 + i %% 600) / 60.0, 2), 'google', 0.0016 * (1 + i %% 600), true, 'pro',
                   timestamptz '2025-01-01 00:00:00+00' + i * interval '2 minutes'
            FROM generate_series(0, %s) AS i
            """,
            [user.pk, ROWS - 1],
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    """The test database, for a process of our own."""
    db = connection.settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def wait_for_worker(master: subprocess.Popen, port: int, log_path: Path, *, not_pid: int | None = None) -> int:
    """The pid of the master's one worker (not ``not_pid``), once the port accepts connections."""
    deadline = time.monotonic() + 30
    while True:
        if master.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"gunicorn has no worker ready:\n{log_path.read_text()[-3000:]}")
        workers = children(master.pid) - {not_pid}
        if len(workers) == 1:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return workers.pop()
            except OSError:
                pass
        time.sleep(0.1)


def start_server(port: int, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
        "ALLOWED_HOSTS": "127.0.0.1",
        "THROTTLE_EXPORTS": "1000/hour",
        "DB_CONN_MAX_AGE": "0",
    }
    command = [sys.executable, "-m", "gunicorn", "coaching.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"]
    command += ["--no-control-socket", "--graceful-timeout", "5", "--log-level", "info"]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop_server(master: subprocess.Popen) -> None:
    try:
        os.killpg(master.pid, signal.SIGTERM)
        master.wait(timeout=10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(master.pid, signal.SIGKILL)
        master.wait(timeout=10)


def open_download(port: int, email: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Start the download over a socket with a small receive buffer, so the server cannot send it all ahead."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", port))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.sock = sock
    token = base64.b64encode(f"{email}:{PASSWORD}".encode()).decode()
    conn.request("GET", URL, headers={"Authorization": f"Basic {token}"})
    return conn, conn.getresponse()


def test_a_worker_killed_mid_download_leaves_no_file_that_looks_complete():
    coach = UserFactory(email="erin@example.com", name="Erin")
    # The server checks passwords with its own (default) hashers, not the tests' fast MD5.
    hasher = PBKDF2PasswordHasher()
    coach.password = hasher.encode(PASSWORD, hasher.salt())
    coach.save(update_fields=["password"])
    seed_usage(coach)
    OUTPUT.mkdir(exist_ok=True)
    port = free_port()
    log_path = OUTPUT / "gunicorn-export-faults.log"
    master = start_server(port, log_path)
    try:
        worker = wait_for_worker(master, port, log_path)

        conn, response = open_download(port, coach.email)
        assert response.status == 200, response.read()[:500]
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.getheader("Content-Length") is None
        record_id = int(response.getheader("X-Export-Record"))
        partial = bytearray(response.read(64 * 1024))
        assert len(partial) == 64 * 1024

        os.kill(worker, signal.SIGKILL)
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            while chunk := response.read(64 * 1024):
                partial += chunk
        conn.close()

        record = ExportRecord.objects.get(pk=record_id)
        assert (record.status, record.rows, record.bytes, record.finished_at) == ("running", 0, 0, None)
        assert stale_exports_fail() == 0  # fresh: it could still be a download in progress
        later = timezone.now() + datetime.timedelta(minutes=16)
        assert stale_exports_fail(now=later) == 1
        record.refresh_from_db()
        assert (record.status, record.error, record.finished_at) == ("failed", STALE_ERROR, later)

        # The master replaces the killed worker; the same download now completes.
        wait_for_worker(master, port, log_path, not_pid=worker)
        conn, response = open_download(port, coach.email)
        assert response.status == 200
        body = response.read()
        conn.close()
    finally:
        stop_server(master)

    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert tuple(rows[0]) == HEADER
    assert len(rows) - 1 == ROWS
    ids = [int(row[-1]) for row in rows[1:]]
    assert ids == sorted(UsageLog.objects.filter(user=coach).values_list("id", flat=True))
    assert (rows[1][0], rows[-1][0]) == ("2025-01-01 08:00:00", "2025-10-06 02:38:00")

    done = ExportRecord.objects.exclude(pk=record_id).get(subject=coach)
    assert (done.status, done.rows, done.bytes) == ("succeeded", ROWS, len(body))
    # What the killed download delivered is a strict prefix of the file: incomplete, and detectably so.
    assert 64 * 1024 <= len(partial) < len(body) // 2
    assert body.startswith(partial)
