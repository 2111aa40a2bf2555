"""Load: the product served as in production, driven by concurrent clients on loopback.

Runs gunicorn (DEBUG off, collected static files) on PostgreSQL and Redis with the demo
world in a database of its own, logs in as the demo coach and as staff, then for a
bounded time drives the dashboard, the analytics API and the CSV export with N
concurrent keep-alive clients. Prints requests, errors, throughput and latency
percentiles per target, next to a static file served in the same run (the baseline).

Then, held: the same clients for ``--held-seconds`` (60) while a Celery worker runs a usage reset
of 10,000 users (asked through the bulk API) and ten clients download a 100,000-row CSV each.
Every download is parsed back (100,000 rows, its record succeeded) and the reset must end
succeeded with every user reset once; the usage page's p50 is printed next to the idle figure.

    .venv/bin/python benchmarks/load.py                 # 32 clients, 20 s idle + 60 s held
    .venv/bin/python benchmarks/load.py --clients 8 --seconds 5 --held-seconds 0
Exits non-zero when any request failed (the goal is 0 errors at 32 clients), or the reset or an export did.
Environment: DATABASE_URL names the PostgreSQL server (its database name is replaced); default
postgres://postgres@127.0.0.1:5432/.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

from _common import ROOT, create_database, database_url, percentile

PY = sys.executable
TARGETS = {
    "dashboard": "/dashboard/usage?period=30d",
    "analytics API": "/api/v1/usage/analytics?period=30d",
    "analytics API (staff, platform)": "/api/v1/usage/analytics?period=30d",
    "CSV export (90 days)": "/api/v1/usage-history/export?format=csv&period=90d",
    "static file (baseline)": "/static/css/app.css",
}
STAFF_TARGETS = {"analytics API (staff, platform)"}


def run(cmd: list[str], env: dict) -> None:
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def prepare_database(env: dict, name: str) -> None:
    create_database(name, reuse=False)
    run([PY, "manage.py", "migrate", "--noinput", "-v0"], env)
    run([PY, "manage.py", "seed_demo", "--no-progress"], env)
    run([PY, "manage.py", "collectstatic", "--noinput", "-v0"], env)


def wait_for(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/accounts/login/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer in time")


def login(port: int, email: str, password: str) -> str:
    """Log in through the real form (CSRF included); returns the Cookie header to reuse."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/accounts/login/")
    page = conn.getresponse()
    body = page.read().decode()
    csrf_cookie = re.search(r"csrftoken=([^;]+)", page.getheader("Set-Cookie") or "").group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
    form = urllib.parse.urlencode({"username": email, "password": password, "csrfmiddlewaretoken": token})
    conn.request(
        "POST",
        "/accounts/login/",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf_cookie}"},
    )
    answer = conn.getresponse()
    answer.read()
    session = re.search(r"sessionid=([^;]+)", answer.getheader("Set-Cookie") or "")
    if answer.status != 302 or not session:
        raise SystemExit(f"login as {email} failed: HTTP {answer.status}")
    return f"sessionid={session.group(1)}"


def client_loop(port, plan, deadline, results, lock):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    mine: dict[str, list] = {}
    i = 0
    while time.monotonic() < deadline:
        name, path, cookie = plan[i % len(plan)]
        i += 1
        started = time.perf_counter()
        try:
            conn.request("GET", path, headers={"Cookie": cookie})
            response = conn.getresponse()
            response.read()
            ok = 200 <= response.status < 300
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine.setdefault(name, []).append((time.perf_counter() - started, ok))
    with lock:
        for name, samples in mine.items():
            results.setdefault(name, []).extend(samples)


HELD_USERS = 10_000
EXPORT_ROWS = 100_000
EXPORTS = 10
EXPORTER = "load-exports@example.com"
SEED_HELD = f"""
import datetime, uuid
from django.db import connection
from coaching.models import MonthlyUsage, User, UsageLog
users = [User(id=uuid.uuid4(), email=f"load{{i:05d}}@example.com", name=f"Load {{i}}", plan_id="pro",
              timezone="Asia/Taipei") for i in range({HELD_USERS})]
for u in users:
    u.set_unusable_password()
User.objects.bulk_create(users, batch_size=2000)
period = datetime.datetime.now(datetime.UTC).date().replace(day=1)
MonthlyUsage.objects.bulk_create(
    [MonthlyUsage(user=u, period=period, minutes=10 + i % 50, sessions=1 + i % 7, transcriptions=2) for i, u in
     enumerate(users)], batch_size=2000)
exporter = User.objects.create_user(email="{EXPORTER}", password=None, name="Load exports", plan_id="pro",
                                    timezone="Asia/Taipei")
with connection.cursor() as cursor:
    cursor.execute(
        "INSERT INTO " + UsageLog._meta.db_table + " (user_id, kind, seconds, minutes, provider, provider_cost_usd,"
        " billable, plan_code, created_at) SELECT %s, 'original', 60 + i % 600, round((60 + i % 600) / 60.0, 2),"
        " 'google', 0.0016, true, 'pro', timestamptz '2025-01-01 00:00:00+00' + i * interval '4 minutes'"
        " FROM generate_series(0, %s) AS i".replace("% ", "%% "),
        [exporter.pk, {EXPORT_ROWS} - 1],
    )
print(exporter.pk)
"""


def seed_held(env: dict) -> str:
    """10,000 users with this month's counters, and a user with 100,000 ledger rows in 2025; that user's id."""
    out = subprocess.run(
        [PY, "manage.py", "shell", "-c", SEED_HELD], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def sql(env: dict, query: str, params=()) -> list[tuple]:
    import psycopg

    with psycopg.connect(env["DATABASE_URL"].replace("postgres://", "postgresql://", 1)) as conn:
        return conn.execute(query, params).fetchall()


def start_worker(env: dict, queue: str) -> subprocess.Popen:
    log = ROOT / "output" / f"load-worker-{queue}.log"
    log.parent.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "celery",
            "-A",
            "coaching",
            "worker",
            "-Q",
            queue,
            "-c",
            "2",
            "-n",
            f"{queue}@%h",
            "-l",
            "info",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env={**env, "CELERY_TASK_DEFAULT_QUEUE": queue, "LOG_LEVEL": "INFO"},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the Celery worker did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc


def bulk_reset(port: int, env: dict, outcome: dict) -> None:
    """Ask for a monthly reset of the 10,000 load users as the demo admin; wait for it to finish."""
    import base64
    import json

    ids = [str(row[0]) for row in sql(env, "SELECT id FROM coaching_user WHERE email LIKE 'load0%%' ORDER BY email")]
    token = base64.b64encode(b"admin@example.com:admin-demo-2026").decode()
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request(
        "POST",
        "/api/v1/admin/bulk/reset-usage",
        body=json.dumps({"user_ids": ids, "reset_type": "monthly"}),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    body = response.read()
    outcome["accepted_ms"] = (time.monotonic() - started) * 1000
    if response.status != 202:
        outcome["error"] = f"bulk reset: HTTP {response.status} {body[:300]!r}"
        return
    op = json.loads(body)["id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status, succeeded, failed = sql(
            env, "SELECT status, succeeded, failed FROM coaching_bulkoperation WHERE id = %s", [op]
        )[0]
        if status not in ("pending", "running"):
            break
        time.sleep(0.5)
    outcome["seconds"] = time.monotonic() - started
    reset = sql(
        env,
        "SELECT count(*) FROM coaching_monthlyusage m JOIN coaching_user u ON u.id = m.user_id "
        "WHERE u.email LIKE 'load0%%' AND m.minutes = 0",
    )[0][0]
    outcome["summary"] = f"{status}, {succeeded:,} succeeded, {failed} failed, {reset:,} counters at zero"
    if (status, succeeded, failed, reset) != ("succeeded", HELD_USERS, 0, HELD_USERS):
        outcome["error"] = f"bulk reset ended {outcome['summary']}"


def big_export(port: int, cookie: str, user_id: str, env: dict, outcomes: list, lock) -> None:
    """Staff downloads the 100,000-row history; the file is parsed back and its record checked."""
    started = time.monotonic()
    path = f"/api/v1/usage-history/export?format=csv&from=2025-01-01&to=2025-12-31&user={user_id}"
    error = ""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        conn.request("GET", path, headers={"Cookie": cookie})
        response = conn.getresponse()
        body = response.read()
        lines = body.count(b"\n") - 1  # minus the header (no line breaks inside these cells)
        record = response.getheader("X-Export-Record")
        if response.status != 200 or lines != EXPORT_ROWS:
            error = f"export: HTTP {response.status}, {lines} rows"
        else:
            status, rows = sql(env, "SELECT status, rows FROM coaching_exportrecord WHERE id = %s", [record])[0]
            if (status, rows) != ("succeeded", EXPORT_ROWS):
                error = f"export record {record}: {status}, {rows} rows"
    except (OSError, http.client.HTTPException) as exc:
        error = f"export: {type(exc).__name__}: {exc}"
    with lock:
        outcomes.append((time.monotonic() - started, error))


def drive(port: int, plan, clients: int, seconds: float) -> tuple[dict, float]:
    results: dict[str, list] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=client_loop,
            args=(port, plan[i % len(plan) :] + plan[: i % len(plan)], deadline, results, lock),
        )
        for i in range(clients)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.monotonic() - started


def report(results: dict, elapsed: float, title: str) -> tuple[int, float | None]:
    """Print the table; returns (errors, the usage page's p50 in ms)."""
    print(f"\n{title}")
    print(f"{'target':34} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    total = errors = 0
    base = page = None
    for name in TARGETS:
        samples = results.get(name, [])
        if not samples:
            continue
        latencies = [s[0] * 1000 for s in samples]
        bad = sum(1 for s in samples if not s[1])
        total, errors = total + len(samples), errors + bad
        p50 = percentile(latencies, 50)
        base = p50 if name == "static file (baseline)" else base
        page = p50 if name == "dashboard" else page
        print(
            f"{name:34} {len(samples):9d} {bad:7d} {len(samples) / elapsed:8.1f} {p50:8.1f} "
            f"{percentile(latencies, 95):8.1f} {percentile(latencies, 99):8.1f}"
        )
    print(f"{'all':34} {total:9d} {errors:7d} {total / elapsed:8.1f}")
    if base:
        print(f"(baseline: a static file's p50 is {base:.1f} ms under the same load)")
    return errors, page


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes (gthread, 4 threads each)")
    parser.add_argument("--database", default="bench_load")
    parser.add_argument(
        "--held-seconds", type=float, default=60.0, help="then load held under a bulk reset and exports (0: skip)"
    )
    args = parser.parse_args()

    env = {
        **os.environ,
        "DATABASE_URL": database_url(args.database),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        "DEBUG": "false",
        "SECRET_KEY": "load-test-secret-key-not-for-production-0123456789abcdefghij",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "THROTTLE_EXPORTS": "1000000/hour",
        "LOG_LEVEL": "WARNING",
    }
    held = args.held_seconds > 0
    queue = f"load-{uuid.uuid4().hex[:8]}"
    if held:
        env["CELERY_TASK_DEFAULT_QUEUE"] = queue
    print(f"Preparing database {args.database} (migrate, demo world, collectstatic)…", flush=True)
    prepare_database(env, args.database)
    exporter = seed_held(env) if held else ""
    server = subprocess.Popen(
        [
            PY,
            "-m",
            "gunicorn",
            "coaching.wsgi",
            "-b",
            f"127.0.0.1:{args.port}",
            "-w",
            str(args.workers),
            "-k",
            "gthread",
            "--threads",
            "4",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    worker = None
    failures: list[str] = []
    try:
        wait_for(args.port, time.monotonic() + 60)
        coach = login(args.port, "coach@example.com", "coach-demo-2026")
        staff = login(args.port, "staff@example.com", "staff-demo-2026")
        plan = [(name, path, staff if name in STAFF_TARGETS else coach) for name, path in TARGETS.items()]
        idle, idle_elapsed = drive(args.port, plan, args.clients, args.seconds)
        if held:
            worker = start_worker(env, queue)
            outcome: dict = {}
            exports: list = []
            lock = threading.Lock()
            background = [threading.Thread(target=bulk_reset, args=(args.port, env, outcome))]
            background += [
                threading.Thread(target=big_export, args=(args.port, staff, exporter, env, exports, lock))
                for _ in range(EXPORTS)
            ]
            for t in background:
                t.start()
            loaded, held_elapsed = drive(args.port, plan, args.clients, args.held_seconds)
            for t in background:
                t.join()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
            import redis

            broker = redis.Redis.from_url(env["CELERY_BROKER_URL"])  # this run's queue, nobody else's
            broker.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")

    workers = f"gunicorn {args.workers}x4 threads"
    errors, idle_page = report(
        idle, idle_elapsed, f"Idle: {args.clients} concurrent clients for {idle_elapsed:.1f} s, {workers}"
    )
    if held:
        held_errors, held_page = report(
            loaded,
            held_elapsed,
            f"Held: {args.clients} clients for {held_elapsed:.1f} s while a {HELD_USERS:,}-user reset and "
            f"{EXPORTS} downloads of {EXPORT_ROWS:,} CSV rows run ({workers}, Celery worker -c 2)",
        )
        errors += held_errors
        print(
            f"bulk reset of {HELD_USERS:,} users: {outcome.get('summary', 'not run')}; accepted in "
            f"{outcome.get('accepted_ms', 0):.0f} ms, finished {outcome.get('seconds', 0):.1f} s after it was asked"
        )
        times = sorted(t for t, _ in exports)
        print(
            f"{EXPORTS} exports of {EXPORT_ROWS:,} rows: {sum(1 for _, e in exports if not e)} whole and parsed back; "
            f"{times[0]:.1f}–{times[-1]:.1f} s each"
            if times
            else "no export ran"
        )
        failures += [e for _, e in exports if e] + ([outcome["error"]] if "error" in outcome else [])
        if idle_page and held_page:
            print(f"usage page p50: {idle_page:.1f} ms idle, {held_page:.1f} ms held ({held_page / idle_page:.2f}x)")
    for failure in failures:
        print(f"FAILED: {failure}")
    print("(a shared machine: figures read slower than on a quiet one)")
    return 1 if errors or failures else 0


if __name__ == "__main__":
    sys.exit(main())
