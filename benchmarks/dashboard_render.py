"""Usage page: median server time to render /dashboard/usage for a coach with 10k usage logs.

Creates its own PostgreSQL database (``bench_dashboard`` by default; never the dev database),
migrates it and seeds one coach with a year of history: N usage logs, each with its session
(8 % failed with a free retry, 3 % paid re-runs, 5 % deleted, one still processing), 40
clients, exports and API usage; around them a crowd of other coaches' ledger rows so the
coach's queries read a shared table through its indexes. Then it GETs the page through the
whole Django stack (the test ``Client``: middleware, session, auth, the view, every query,
templates, i18n) and prints the median, next to baselines measured in the same run: an empty
page (the login form, anonymous) and the same dashboard for a coach with no history.
Goal: the default period (last 30 days) under 100 ms.

    .venv/bin/python benchmarks/dashboard_render.py              # 10k logs, 100k other rows
    .venv/bin/python benchmarks/dashboard_render.py --quick      # 1k logs, 10k other rows
    .venv/bin/python benchmarks/dashboard_render.py --reuse      # keep an already seeded database
Environment: DATABASE_URL names the server (its database name is replaced); default
postgres://postgres@127.0.0.1:5432/. Runs with DEBUG on (the default), which records every
query: a slight overestimate of production.
"""

from __future__ import annotations

import argparse
import datetime
import random
import sys
import time
from decimal import Decimal

from _common import median_ms, prepare_database

COACH_EMAIL = "bench-dashboard-coach@example.com"
EMPTY_EMAIL = "bench-dashboard-newcomer@example.com"
PAGES = (
    ("last 30 days", "?period=30d"),
    ("this month", "?period=month"),
    ("last 90 days", "?period=90d"),
    ("this year", "?period=year"),
    ("this year, history page 5", "?period=year&page=5"),
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs", type=int, default=10_000, help="The coach's usage logs (default 10000).")
    parser.add_argument("--other-logs", type=int, default=100_000, help="Other coaches' usage logs (default 100000).")
    parser.add_argument("--quick", action="store_true", help="1,000 logs and 10,000 other rows.")
    parser.add_argument("--repeat", type=int, default=25, help="Timed renders per figure (default 25).")
    parser.add_argument("--database", default="bench_dashboard", help="Database to create (default bench_dashboard).")
    parser.add_argument("--reuse", action="store_true", help="Keep the database and its rows if already seeded.")
    parser.add_argument("--goal-ms", type=float, default=100.0, help="Goal for the 30-day page's median.")
    args = parser.parse_args()
    if args.quick:
        args.logs, args.other_logs = 1_000, 10_000
    if args.logs < 1 or args.other_logs < 0 or args.repeat < 1:
        parser.error("--logs must be at least 1, --other-logs zero or more, --repeat at least 1.")
    return args


def needs_seeding(args: argparse.Namespace) -> bool:
    """True unless reusing a database already seeded."""
    from coaching.models import User

    return not (args.reuse and User.objects.filter(email=COACH_EMAIL).exists())


def seed_coach(n_logs: int, *, now: datetime.datetime) -> None:
    """One pro coach: ``n_logs`` ledger rows over the last 400 days, each with its session."""
    from django.contrib.auth.hashers import make_password

    from coaching.demo import counters_from_ledger
    from coaching.models import ApiUsage, Client, CoachingSession, ExportRecord, UsageLog, User, minutes_from_seconds

    rng = random.Random(2026)
    password = make_password("bench-password")
    coach = User.objects.create(email=COACH_EMAIL, name="王小明 (bench)", plan_id="pro", password=password)
    User.objects.create(email=EMPTY_EMAIL, name="New coach (bench)", plan_id="student", password=password)
    clients = Client.objects.bulk_create(Client(coach=coach, name=f"客戶 {i}") for i in range(40))
    sessions, kinds = [], []
    while len(kinds) < n_logs:
        at = now - datetime.timedelta(seconds=rng.randint(3600, 400 * 86400))
        seconds = rng.randint(15 * 60, 90 * 60)
        failed = rng.random() < 0.08
        started = at + datetime.timedelta(seconds=30)
        sessions.append(
            CoachingSession(
                coach=coach,
                client=rng.choice(clients),
                title="Coaching session",
                session_date=at.date(),
                audio_size_bytes=seconds * 16_000,
                duration_seconds=seconds,
                status="failed" if failed else "completed",
                processing_started_at=started,
                processing_finished_at=started + datetime.timedelta(seconds=seconds // 6),
                error_message="Provider timeout" if failed else "",
                created_at=at,
                deleted_at=at + datetime.timedelta(days=20) if rng.random() < 0.05 else None,
            )
        )
        if failed:
            kinds.append("retry_failed")
        else:
            kinds.append("original")
            if rng.random() < 0.03 and len(kinds) < n_logs:
                kinds.append("retry_success")
                sessions.append(sessions[-1])
    # A paid re-run repeats its session in ``sessions``: insert each once.
    CoachingSession.objects.bulk_create({id(s): s for s in sessions}.values(), batch_size=2000)
    CoachingSession.objects.create(  # one still processing, no usage yet
        coach=coach,
        client=clients[0],
        title="Coaching session",
        session_date=now.date(),
        audio_size_bytes=16_000 * 3600,
        duration_seconds=3600,
        status="processing",
        processing_started_at=now - datetime.timedelta(minutes=5),
        created_at=now - datetime.timedelta(minutes=6),
    )
    logs = []
    for session, kind in zip(sessions, kinds, strict=True):
        at = session.processing_finished_at + datetime.timedelta(days=1 if kind == "retry_success" else 0)
        logs.append(
            UsageLog(
                user=coach,
                session=session,
                client=session.client,
                kind=kind,
                seconds=session.duration_seconds,
                minutes=minutes_from_seconds(session.duration_seconds),
                provider="google",
                provider_cost_usd=Decimal("0.2400"),
                billable=kind != "retry_failed",
                plan_code="pro",
                created_at=min(at, now),
            )
        )
    UsageLog.objects.bulk_create(logs, batch_size=2000)
    ExportRecord.objects.bulk_create(
        ExportRecord(
            requested_by=coach,
            subject=coach,
            format=rng.choice(["csv", "pdf", "xlsx"]),
            status="succeeded",
            rows=100,
            bytes=50_000,
            created_at=now - datetime.timedelta(hours=rng.randint(1, 9000)),
        )
        for _ in range(max(1, n_logs // 50))
    )
    ApiUsage.objects.bulk_create(
        ApiUsage(user=coach, day=(now - datetime.timedelta(days=d)).date(), count=rng.randint(1, 60))
        for d in range(400)
    )
    counters_from_ledger(User.objects.filter(pk=coach.pk), now=now)


CROWD_SQL = """
    INSERT INTO coaching_user (id, password, is_superuser, email, name, plan_id, timezone, country, language,
                               date_joined, is_active, is_staff, is_test_account)
    SELECT md5('bench-dash-' || i)::uuid, 'bench-no-login', false, 'bench-dash-' || i || '@example.com',
           'Other coach ' || i, 'pro', 'Asia/Taipei', 'TW', 'zh-hant', %(now)s, true, false, false
    FROM generate_series(1, %(coaches)s) AS i;
    INSERT INTO coaching_usagelog (user_id, kind, seconds, minutes, provider, provider_cost_usd, billable,
                                   plan_code, created_at)
    SELECT md5('bench-dash-' || (1 + mod(i, %(coaches)s)))::uuid, 'original', 1800, 30.00, 'google', 0.48, true,
           'pro', %(now)s - make_interval(secs => floor(random() * 400 * 86400)::int)
    FROM generate_series(1, %(logs)s) AS i;
"""


def seed(args: argparse.Namespace) -> float:
    from django.db import connection, transaction

    started = time.perf_counter()
    now = datetime.datetime.now(datetime.UTC)
    with transaction.atomic():
        seed_coach(args.logs, now=now)
        if args.other_logs:
            with connection.cursor() as cursor:
                cursor.execute("SELECT setseed(0.2026)")
                coaches = max(1, args.other_logs // 1000)
                cursor.execute(CROWD_SQL, {"now": now, "coaches": coaches, "logs": args.other_logs})
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def main() -> int:
    args = parse_args()
    # django-axes logs every login at INFO
    prepare_database(args.database, reuse=args.reuse, defaults={"LOG_LEVEL": "WARNING"})
    needs_seed = needs_seeding(args)
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from coaching.models import UsageLog, User

    if needs_seed:
        print(f"seeding one coach with {args.logs:,} usage logs and {args.other_logs:,} other rows …", flush=True)
        print(f"seeded in {seed(args):.1f} s")
    coach = User.objects.get(email=COACH_EMAIL)
    print(
        f"database {args.database}: the coach has {UsageLog.objects.filter(user=coach).count():,} usage logs "
        f"of {UsageLog.objects.count():,}"
    )

    def page(user: User | None, url: str):
        client = Client(HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="zh-Hant")
        if user is not None:
            client.force_login(user)

        def render():
            response = client.get(url)
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}")

        return render

    def queries(render) -> int:
        with CaptureQueriesContext(connection) as captured:
            render()
        return len(captured)

    empty = page(None, "/accounts/login/")
    base = median_ms(empty, args.repeat)
    print(f"baseline  an empty page (login form)          median {base:7.1f} ms")
    newcomer = page(User.objects.get(email=EMPTY_EMAIL), "/dashboard/usage")
    took = median_ms(newcomer, args.repeat)
    print(
        f"baseline  dashboard, coach with no history    median {took:7.1f} ms  {took / base:5.1f}x  "
        f"{queries(newcomer)} queries"
    )
    verdict = 0
    for label, query in PAGES:
        render = page(coach, f"/dashboard/usage{query}")
        took = median_ms(render, args.repeat)
        goal = ""
        if query == "?period=30d":
            met = took < args.goal_ms
            verdict = 0 if met else 1
            goal = f"  goal < {args.goal_ms:.0f} ms: {'met' if met else 'MISSED'}"
        print(f"dashboard {label:<32}  median {took:7.1f} ms  {took / base:5.1f}x  {queries(render)} queries{goal}")
    return verdict


if __name__ == "__main__":
    sys.exit(main())
