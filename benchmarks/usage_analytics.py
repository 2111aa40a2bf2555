"""Usage analytics at scale: GET /api/v1/usage/analytics from the daily roll-ups, next to a raw scan.

Creates its own PostgreSQL database (``bench_usage`` by default; never the dev database),
migrates it, seeds it, then times the endpoint through the whole Django stack (APIClient:
middleware, the API-call counter, DRF, serialization) for one coach and for platform totals
(staff) over 30d, 12m and all, next to the raw-scan baseline measured in the same run: the same
request with the roll-ups switched off, every number from the raw rows (``analytics.usage_raw``,
what the endpoint did before the roll-ups). Then the cost the roll-up
write adds to recording one usage event (``usage_record`` with and without the hook, alternating).
Goals: platform p50 < 100 ms for each period, one coach p50 < 20 ms, write cost < 1 ms; run at
1M and at 10M usage logs to see the cost stay flat.

Seeding (``--seed-with``):
  command  (default) ``seed_demo --users U --usage-logs N``: the seeder itself (generated server-side on PostgreSQL),
           which also rebuilds the roll-ups; its wall time is printed.
  sql      bulk ``INSERT … SELECT generate_series`` (sessions over the last year, 8 % failed, 5 %
           deleted, a few still processing, exports, API usage), then ``rollups_rebuild``.

    .venv/bin/python benchmarks/usage_analytics.py --users 100000 --usage-logs 1000000
    .venv/bin/python benchmarks/usage_analytics.py --users 100000 --usage-logs 10000000 --database i12_bench
    .venv/bin/python benchmarks/usage_analytics.py --quick      # 1k coaches, 50k usage logs
    .venv/bin/python benchmarks/usage_analytics.py --reuse      # keep an already seeded database
Environment: DATABASE_URL names the server (its database name is replaced); default
postgres://postgres@127.0.0.1:5432/.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time

from _common import DEBUG_OFF, DEBUG_OFF_DEFAULTS, median_ms, prepare_database

PERIODS = ("30d", "12m", "all")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000, help="Coaches (default 10000).")
    parser.add_argument("--usage-logs", type=int, default=1_000_000, help="Usage logs (default 1000000).")
    parser.add_argument("--quick", action="store_true", help="1,000 coaches and 50,000 usage logs.")
    parser.add_argument("--repeat", type=int, default=15, help="Timed runs per figure (default 15).")
    parser.add_argument("--database", default="bench_usage", help="Database to create (default bench_usage).")
    parser.add_argument(
        "--seed-with", choices=("sql", "command"), default="command", help="See above (default command)."
    )
    parser.add_argument("--reuse", action="store_true", help="Keep the database and its rows if already seeded.")
    parser.add_argument("--coach-goal-ms", type=float, default=20.0, help="Goal for one coach (default 20).")
    parser.add_argument("--platform-goal-ms", type=float, default=100.0, help="Goal for the platform (100).")
    parser.add_argument("--raw-repeat", type=int, default=3, help="Timed runs of the raw-scan baseline (3).")
    args = parser.parse_args()
    if args.quick:
        args.users, args.usage_logs = 1_000, 50_000
    if args.users < 1 or args.usage_logs < 0 or args.repeat < 1:
        parser.error("--users must be at least 1, --usage-logs zero or more, --repeat at least 1.")
    return args


def needs_seeding(args: argparse.Namespace) -> bool:
    """True unless reusing a database already seeded."""
    from coaching.models import User

    return not (args.reuse and User.objects.filter(email__startswith="bench").exists())


USERS_SQL = """
    INSERT INTO coaching_user (id, password, is_superuser, email, name, plan_id, timezone, country, language,
                               date_joined, is_active, is_staff, is_test_account)
    SELECT md5('bench-user-' || i)::uuid, 'bench-no-login', false, 'bench' || i || '@example.com',
           'Bench coach ' || i, (ARRAY['free','student','pro','coaching_school'])[1 + mod(i, 4)],
           CASE WHEN mod(i, 5) = 0 THEN 'Asia/Hong_Kong' ELSE 'Asia/Taipei' END,
           CASE WHEN mod(i, 5) = 0 THEN 'HK' ELSE 'TW' END, 'zh-hant',
           %(now)s - interval '800 days', true, false, false
    FROM generate_series(1, %(users)s) AS i
"""
# Sessions over the last year; 8 % failed, 5 % of the older ones deleted, a few still processing.
SESSIONS_SQL = """
    INSERT INTO coaching_coachingsession (coach_id, client_id, title, session_date, audio_filename, audio_size_bytes,
        duration_seconds, language, stt_provider, provider_cost_usd, status, processing_started_at,
        processing_finished_at, error_message, fee_amount, fee_currency, created_at, deleted_at)
    SELECT coach, NULL, 'Benchmark session', (at AT TIME ZONE 'Asia/Taipei')::date, 'bench.m4a', seconds * 16000,
           seconds, 'cmn-Hant-TW', 'google', round(seconds / 60.0 * 0.016, 4),
           CASE WHEN live THEN 'processing' WHEN failed THEN 'failed' ELSE 'completed' END,
           at + interval '30 seconds',
           CASE WHEN live THEN NULL ELSE at + interval '30 seconds' + make_interval(secs => seconds / 5) END,
           CASE WHEN failed AND NOT live THEN 'Provider timeout' ELSE '' END, NULL, '', at,
           CASE WHEN deleted AND at < %(now)s - interval '30 days' THEN at + interval '20 days' END
    FROM (
        SELECT md5('bench-user-' || (1 + floor(random() * %(users)s)::int))::uuid AS coach,
               %(now)s - make_interval(secs => 3600 + floor(random() * 365 * 86400)::int) AS at,
               600 + floor(random() * 4800)::int AS seconds,
               random() < 0.08 AS failed, random() < 0.05 AS deleted, i <= %(live)s AS live
        FROM generate_series(1, %(sessions)s) AS i
    ) raw
    ORDER BY at
"""
LIVE_SQL = """
    UPDATE coaching_coachingsession SET created_at = %(now)s - interval '20 minutes',
        processing_started_at = %(now)s - interval '19 minutes'
    WHERE status = 'processing'
"""
LOGS_SQL = """
    INSERT INTO coaching_usagelog (user_id, session_id, client_id, kind, seconds, minutes, provider,
        provider_cost_usd, billable, plan_code, created_at)
    SELECT s.coach_id, s.id, NULL, CASE WHEN s.status = 'failed' THEN 'retry_failed' ELSE 'original' END,
           s.duration_seconds, round(s.duration_seconds / 60.0, 2), 'google', s.provider_cost_usd,
           s.status <> 'failed', u.plan_id, s.processing_finished_at + interval '1 minute'
    FROM coaching_coachingsession s JOIN coaching_user u ON u.id = s.coach_id
    WHERE s.processing_finished_at IS NOT NULL
    ORDER BY s.processing_finished_at
"""
EXPORTS_SQL = """
    INSERT INTO coaching_exportrecord (requested_by_id, subject_id, format, period_start, period_end, status, rows,
        bytes, created_at, started_at, finished_at, error, file_path, file_expires_at, file_deleted_at)
    SELECT coach, coach, (ARRAY['csv','pdf','xlsx'])[1 + floor(random() * 3)::int], NULL, NULL,
           CASE WHEN ok THEN 'succeeded' ELSE 'failed' END, 100, CASE WHEN ok THEN 40000 ELSE 0 END, at, at,
           at + interval '2 seconds', CASE WHEN ok THEN '' ELSE 'Renderer ran out of time' END,
           CASE WHEN kept THEN 'exports/bench.pdf' ELSE '' END, CASE WHEN kept THEN at + interval '1 day' END,
           CASE WHEN kept AND at < %(now)s - interval '1 day' THEN at + interval '1 day' END
    FROM (
        SELECT md5('bench-user-' || (1 + floor(random() * %(users)s)::int))::uuid AS coach,
               %(now)s - make_interval(secs => floor(random() * 365 * 86400)::int) AS at,
               random() > 0.1 AS ok, random() < 0.2 AS kept
        FROM generate_series(1, %(exports)s)
    ) raw
    ORDER BY at
"""
API_USAGE_SQL = """
    INSERT INTO coaching_apiusage (user_id, day, count)
    SELECT u.id, (%(now)s AT TIME ZONE 'UTC')::date - d, 1 + floor(random() * 60)::int
    FROM coaching_user u CROSS JOIN generate_series(0, 179) AS d
    WHERE u.email LIKE 'bench%%' AND random() < 0.5
    ORDER BY d DESC
"""


SEED_GOAL_S, SEED_GOAL_LOGS = 900, 10_000_000  # seed_demo: 10M usage logs in under 15 minutes


def seed(args: argparse.Namespace) -> tuple[float, bool]:
    """Seconds to seed (rows, roll-ups, ``VACUUM ANALYZE``), and whether ``seed_demo`` missed its goal."""
    from django.core.management import call_command
    from django.db import connection, transaction

    started = time.perf_counter()
    missed = False
    if args.seed_with == "command":
        call_command("seed_demo", "--users", args.users, "--usage-logs", args.usage_logs)
        took = time.perf_counter() - started
        scored = args.usage_logs >= SEED_GOAL_LOGS
        missed = scored and took >= SEED_GOAL_S
        goal = f"goal < {SEED_GOAL_S} s at 10M usage logs: {'MISSED' if missed else 'met'}" if scored else ""
        print(f"seed_demo took {took:.1f} s   {goal}", flush=True)
    else:
        now = datetime.datetime.now(datetime.UTC)
        live = max(1, args.usage_logs // 100_000)  # still processing: no ledger row yet
        params = {
            "now": now,
            "users": args.users,
            "sessions": args.usage_logs + live,
            "live": live,
            "exports": args.usage_logs // 10,
        }
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT setseed(0.2026)")
            for sql in (USERS_SQL, SESSIONS_SQL, LIVE_SQL, LOGS_SQL, EXPORTS_SQL, API_USAGE_SQL):
                cursor.execute(sql, params)
        call_command("rollups_rebuild", "--chunk-days", "31", "--no-progress")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - started, missed


def write_cost(repeat: int = 200, blocks: int = 5) -> tuple[float, float]:
    """Median ms of ``usage_record`` with the roll-up hook and with it switched off, alternating blocks."""
    import statistics

    from coaching import services
    from coaching.models import User

    coach = User.objects.filter(email__startswith="bench").order_by("email").first()
    real = services.rollups.usage_logged
    times: dict[bool, list[float]] = {True: [], False: []}
    try:
        for _ in range(blocks):
            for hooked in (True, False):
                services.rollups.usage_logged = real if hooked else (lambda log, user: None)
                for _ in range(repeat):
                    started = time.perf_counter()
                    services.usage_record(coach, session=None, kind="original", seconds=60)
                    times[hooked].append((time.perf_counter() - started) * 1000)
    finally:
        services.rollups.usage_logged = real
    return statistics.median(times[True]), statistics.median(times[False])


def main() -> int:
    args = parse_args()
    prepare_database(args.database, reuse=args.reuse, env=DEBUG_OFF, defaults=DEBUG_OFF_DEFAULTS)
    needs_seed = needs_seeding(args)
    from django.db.models import Count
    from rest_framework.test import APIClient

    from analytics import rollups
    from coaching.models import ApiUsage, CoachingSession, CoachUsageDay, ExportRecord, UsageLog, User

    seed_missed = False
    if needs_seed:
        print(f"seeding {args.users:,} coaches and {args.usage_logs:,} usage logs with {args.seed_with} …", flush=True)
        took, seed_missed = seed(args)
        print(f"seeded (rows + roll-ups) in {took:.1f} s")
    staff, _ = User.objects.get_or_create(
        email="bench-staff@example.com", defaults={"name": "Bench staff", "is_staff": True}
    )
    # A typical coach: the one with the median number of ledger rows.
    counts = list(UsageLog.objects.values("user_id").annotate(n=Count("id")).order_by())
    counts.sort(key=lambda row: row["n"])
    coach = User.objects.get(pk=counts[len(counts) // 2]["user_id"])

    def endpoint(user, period: str):
        client = APIClient()
        client.force_authenticate(user=user)

        def call():
            response = client.get("/api/v1/usage/analytics", {"period": period})
            if response.status_code != 200:
                raise SystemExit(f"analytics answered {response.status_code}: {response.content[:300]!r}")

        return call

    def raw_scan(user, period: str):
        """The same request with the roll-ups switched off: every number from the raw rows (the old path)."""
        call = endpoint(user, period)

        def raw_call():
            real = rollups.scope_of
            rollups.scope_of = lambda coaches: None
            try:
                call()
            finally:
                rollups.scope_of = real

        return raw_call

    print(
        f"database {args.database}: {User.objects.count():,} users, {CoachingSession.objects.count():,} sessions, "
        f"{UsageLog.objects.count():,} usage logs, {ExportRecord.objects.count():,} exports, "
        f"{ApiUsage.objects.count():,} API usage days, {CoachUsageDay.objects.count():,} coach-day roll-ups; "
        f"the coach has {counts[len(counts) // 2]['n']} ledger rows"
    )
    verdict = 1 if seed_missed else 0
    for scope, user, goal in (("one coach", coach, args.coach_goal_ms), ("platform ", staff, args.platform_goal_ms)):
        for period in PERIODS:
            took = median_ms(endpoint(user, period), args.repeat)
            base = median_ms(raw_scan(user, period), args.raw_repeat)
            met = took < goal
            verdict |= 0 if met else 1
            print(
                f"{scope} ?period={period:<4} p50 {took:8.1f} ms   raw-scan baseline {base:9.1f} ms"
                f"   {base / took:7.1f}x faster   goal < {goal:.0f} ms: {'met' if met else 'MISSED'}",
                flush=True,
            )
    hooked, bare = write_cost()
    met = hooked - bare < 1.0
    verdict |= 0 if met else 1
    print(
        f"usage_record p50 {hooked:.3f} ms with the roll-up write, {bare:.3f} ms without: "
        f"+{hooked - bare:.3f} ms   goal < 1 ms: {'met' if met else 'MISSED'}"
    )
    return verdict


if __name__ == "__main__":
    sys.exit(main())
