"""Processes the fault tests start and stop: a Redis of their own, gunicorn and Celery workers on the test database.

Every process runs in a session of its own so it (and its children) can be stopped as a group,
and each test stops what it started. Ports: 31160–31169 (this suite's own range), below the kernel's
ephemeral range (32768–60999 here): a fixed port inside it can be held by any outgoing connection
of the run (a pooled PostgreSQL or Redis client), and the server then can't bind it.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "output"
REDIS_PORT = 31160
PASSWORD = "fault-tests-pw-42"


def log_file(name: str) -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT / f"faults-{name}.log"


def database_url() -> str:
    """The test database, for a process of our own."""
    db = connection.settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_until(condition: Callable[[], object], *, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{tail}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen | None, *, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Stop a process started with ``start_new_session`` and everything it started."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def redis_start(port: int = REDIS_PORT, *, data_dir: Path | None = None) -> subprocess.Popen:
    """A redis-server of our own; with ``data_dir``, persistent (append-only file, as production runs it)."""
    if port_open(port):
        pytest.fail(f"port {port} is taken: another Redis of the fault tests is still running")
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    if data_dir is None:
        command += ["--appendonly", "no"]
    else:
        command += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(data_dir)]
    log = log_file(f"redis-{port}")
    proc = subprocess.Popen(command, stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: port_open(port), timeout=10, what="redis-server did not start", log=log)
    return proc


def app_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "THROTTLE_EXPORTS": "100000/hour",
        "THROTTLE_BULK": "100000/hour",
        "DB_CONN_MAX_AGE": "60",
        **extra,
    }


def gunicorn_start(
    port: int, name: str, *, workers: int = 1, file_size_limit: int | None = None, **env: str
) -> subprocess.Popen:
    """gunicorn serving the app on the test database; ``file_size_limit`` (bytes): RLIMIT_FSIZE, a full disk."""

    def limits() -> None:
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, resource.RLIM_INFINITY))

    log = log_file(name)
    command = [sys.executable, "-m", "gunicorn", "coaching.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers)]
    command += ["-k", "gthread", "--threads", "4", "--no-control-socket", "--graceful-timeout", "5"]
    command += ["--timeout", "120", "--log-level", "info"]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=app_env(**env),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=limits,
    )
    wait_until(lambda: proc.poll() is None and get(port, "/healthz")[0] == 200, timeout=60, what="gunicorn", log=log)
    return proc


def worker_start(broker: str, name: str, *, queue: str | None = None, **env: str) -> subprocess.Popen:
    """A Celery worker (one process) on ``broker`` and the test database; its queue is ``proc.queue``."""
    queue = queue or f"i16-{uuid.uuid4().hex[:8]}"
    log = log_file(name)
    command = [sys.executable, "-m", "celery", "-A", "coaching", "worker", "-Q", queue, "-c", "1"]
    command += ["-n", f"{queue}@%h", "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=app_env(CELERY_BROKER_URL=broker, CELERY_TASK_DEFAULT_QUEUE=queue, DB_CONN_MAX_AGE="0", **env),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_until(lambda: proc.poll() is not None or "ready." in log.read_text(), timeout=60, what="worker", log=log)
    if proc.poll() is not None:
        pytest.fail(f"worker {name} exited:\n{log.read_text()[-3000:]}")
    proc.queue = queue
    proc.log_path = log
    return proc


@contextlib.contextmanager
def running(*procs: subprocess.Popen):
    try:
        yield procs
    finally:
        for proc in procs:
            stop(proc)


def with_password(user):
    """Give ``user`` a password the server (default PBKDF2 hashers, not the tests' MD5) accepts."""
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(PASSWORD, hasher.salt())
    user.save(update_fields=["password"])
    return user


def basic(user) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user.email}:{PASSWORD}".encode()).decode()}


def session_cookie(user) -> dict[str, str]:
    """A logged-in session for ``user``, stored in the (shared) database: the server accepts its cookie."""
    client = Client()
    client.force_login(user)
    return {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}


def request(port: int, method: str, path: str, *, body=None, headers=None, timeout: float = 60):
    """``(status, headers, body bytes)``; a refused or dropped connection is status 0 (the client saw no answer)."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    except (OSError, http.client.HTTPException):
        return 0, {}, b""
    finally:
        conn.close()


def get(port: int, path: str, **kwargs):
    return request(port, "GET", path, **kwargs)


def json_body(content: bytes) -> dict:
    return json.loads(content.decode())
