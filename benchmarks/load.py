"""Load: the product served as in production, driven by concurrent clients on loopback.

Runs gunicorn (DEBUG off, collected static files) on PostgreSQL and Redis with the demo
world in a database of its own, logs in as the demo coach and as staff, then for a
bounded time drives the dashboard, the analytics API and the CSV export with N
concurrent keep-alive clients. Prints requests, errors, throughput and latency
percentiles per target, next to a static file served in the same run (the baseline).

    .venv/bin/python benchmarks/load.py                 # 32 clients, 20 s
    .venv/bin/python benchmarks/load.py --clients 8 --seconds 5
Exits non-zero when any request failed (the goal is 0 errors at 32 clients).
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes (gthread, 4 threads each)")
    parser.add_argument("--database", default="bench_load")
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
    print(f"Preparing database {args.database} (migrate, demo world, collectstatic)…", flush=True)
    prepare_database(env, args.database)
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
    try:
        wait_for(args.port, time.monotonic() + 60)
        coach = login(args.port, "coach@example.com", "coach-demo-2026")
        staff = login(args.port, "staff@example.com", "staff-demo-2026")
        plan = [(name, path, staff if name in STAFF_TARGETS else coach) for name, path in TARGETS.items()]
        results: dict[str, list] = {}
        lock = threading.Lock()
        deadline = time.monotonic() + args.seconds
        threads = [
            threading.Thread(
                target=client_loop,
                args=(args.port, plan[i % len(plan) :] + plan[: i % len(plan)], deadline, results, lock),
            )
            for i in range(args.clients)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    print(f"\n{args.clients} concurrent clients for {elapsed:.1f} s, gunicorn {args.workers}x4 threads")
    print(f"{'target':34} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    total = errors = 0
    base = None
    for name in TARGETS:
        samples = results.get(name, [])
        if not samples:
            continue
        latencies = [s[0] * 1000 for s in samples]
        bad = sum(1 for s in samples if not s[1])
        total, errors = total + len(samples), errors + bad
        p50 = percentile(latencies, 50)
        base = p50 if name == "static file (baseline)" else base
        print(
            f"{name:34} {len(samples):9d} {bad:7d} {len(samples) / elapsed:8.1f} {p50:8.1f} "
            f"{percentile(latencies, 95):8.1f} {percentile(latencies, 99):8.1f}"
        )
    print(f"{'all':34} {total:9d} {errors:7d} {total / elapsed:8.1f}")
    if base:
        print(f"(baseline: a static file's p50 is {base:.1f} ms under the same load)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
