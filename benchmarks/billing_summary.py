"""Billing summary: median time of GET /api/v1/billing-analytics/summary at 100k users and 1M payments.

Creates its own PostgreSQL database (``bench_billing`` by default; never the dev database),
migrates it, seeds it, then times the summary API (the APIView called in-process, staff user,
serialization included) for 30d, 12m and all, and the MRR movements of the 12 months ending today
per month (``movements_series``, what the CSV export and the chart read), next to a baseline
measured in the same run: one bare ``SELECT SUM(amount) FROM coaching_payment``. Goal: every
median under 300 ms. Seeding writes the subscription history as the billing service would
(started and ended events) and derives its customer columns with ``customer_history_rebuild``.

Seeding (``--seed-with``):
  sql      (default) bulk ``INSERT … SELECT generate_series``, deterministic (``setseed``). Users:
           1 % staff and 1 % test accounts (never counted), 20 % in Hong Kong. Subscriptions on random
           users: 20 % ended after 30-400 days, 10 % annual, 3 % of the running ones past due.
           ``--shape renewals`` (default): a payment at the start of every billing cycle, so 1M
           payments come from about 105k subscriptions, as in a real billing history;
           ``--shape crowd``: seed_demo's crowd, one payment per subscription (1M subscriptions,
           about eight running at once per user: the worst case for the subscription scans).
           3 % of payments are half refunded three days later (if those days have passed).
  command  ``call_command("seed_demo", "--users", N, "--payments", M)``: the seeder itself (slower).

    .venv/bin/python benchmarks/billing_summary.py                  # 100k users, 1M payments
    .venv/bin/python benchmarks/billing_summary.py --quick          # 5k users, 50k payments
    .venv/bin/python benchmarks/billing_summary.py --shape crowd    # one subscription per payment
    .venv/bin/python benchmarks/billing_summary.py --reuse          # keep an already seeded database
Environment: DATABASE_URL names the server (its database name is replaced); default
postgres://postgres@127.0.0.1:5432/.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from _common import median_ms, prepare_database

PERIODS = ("30d", "12m", "all")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000, help="Users (default 100000).")
    parser.add_argument("--payments", type=int, default=1_000_000, help="Payments (default 1000000).")
    parser.add_argument("--quick", action="store_true", help="5,000 users and 50,000 payments.")
    parser.add_argument("--repeat", type=int, default=15, help="Timed runs per figure (default 15).")
    parser.add_argument("--database", default="bench_billing", help="Database to create (default bench_billing).")
    parser.add_argument("--seed-with", choices=("sql", "command"), default="sql", help="See above (default sql).")
    parser.add_argument(
        "--shape",
        choices=("renewals", "crowd"),
        default="renewals",
        help="sql seeding: a payment per billing cycle of fewer subscriptions (default), or seed_demo's crowd.",
    )
    parser.add_argument("--reuse", action="store_true", help="Keep the database and its rows if already seeded.")
    parser.add_argument("--goal-ms", type=float, default=300.0, help="Goal for every median (default 300).")
    args = parser.parse_args()
    if args.quick:
        args.users, args.payments = 5_000, 50_000
    if args.users < 10 or args.payments < 0 or args.repeat < 1:
        parser.error("--users must be at least 10, --payments zero or more, --repeat at least 1.")
    return args


def needs_seeding(args: argparse.Namespace) -> bool:
    """True unless reusing a database already seeded."""
    from coaching.models import User

    # Reusing: whatever was seeded before stays (its sizes are printed); seeding twice would collide.
    return not (args.reuse and User.objects.filter(email__startswith="bench").exclude(is_staff=True).exists())


USERS_SQL = """
    INSERT INTO coaching_user (id, password, is_superuser, email, name, plan_id, timezone, country, language,
                               date_joined, is_active, is_staff, is_test_account)
    SELECT md5('bench-user-' || i)::uuid, 'bench-no-login', false, 'bench' || i || '@example.com',
           'Bench coach ' || i, (ARRAY['free','student','pro','coaching_school'])[1 + mod(i, 4)],
           CASE WHEN mod(i, 5) = 0 THEN 'Asia/Hong_Kong' ELSE 'Asia/Taipei' END,
           CASE WHEN mod(i, 5) = 0 THEN 'HK' ELSE 'TW' END, 'zh-hant',
           %(now)s - make_interval(secs => floor(random() * 730 * 86400)::int), true,
           mod(i, 100) = 1, mod(i, 100) = 2
    FROM generate_series(1, %(users)s) AS i
"""
# Subscriptions over random users: 20 % ended after 30-400 days, 10 % annual, 3 % of the running ones past due.
SUBSCRIPTIONS_SQL = """
    INSERT INTO coaching_subscription (user_id, plan_id, billing_cycle, status, started_at, current_period_end,
                                       cancelled_at, ended_at, price, currency)
    SELECT md5('bench-user-' || (1 + floor(random() * %(users)s)::int))::uuid, s.plan, s.cycle,
           CASE WHEN s.ended IS NOT NULL THEN 'cancelled' WHEN random() < 0.03 THEN 'past_due' ELSE 'active' END,
           s.started, NULL, s.ended, s.ended,
           CASE WHEN s.cycle = 'annual' THEN p.price_annual ELSE p.price_monthly END, 'TWD'
    FROM (
        SELECT plan, cycle, started,
               CASE WHEN random() < 0.2 AND started + make_interval(days => d) < %(now)s
                    THEN started + make_interval(days => d) END AS ended
        FROM (
            SELECT (ARRAY['student','pro','coaching_school'])[1 + floor(random() * 3)::int] AS plan,
                   CASE WHEN random() < 0.1 THEN 'annual' ELSE 'monthly' END AS cycle,
                   %(now)s - make_interval(secs => floor(random() * 700 * 86400)::int) AS started,
                   30 + floor(random() * 370)::int AS d
            FROM generate_series(1, %(subscriptions)s)
        ) raw
    ) s JOIN coaching_plan p ON p.code = s.plan
"""
_PAYMENT_COLUMNS = """
    INSERT INTO coaching_payment (user_id, subscription_id, amount, currency, status, paid_at, refunded_amount,
                                  refunded_at, failure_reason, provider_reference, created_at)
    SELECT user_id, id, price, 'TWD', CASE WHEN refunded THEN 'partially_refunded' ELSE 'succeeded' END, paid,
           CASE WHEN refunded THEN round(price / 2, 2) ELSE 0 END,
           CASE WHEN refunded THEN paid + interval '3 days' END, '', 'BENCH' || id || '-' || k, paid
"""
# A refund three days after the payment, if those three days have passed (never dated after the seeding).
_REFUNDED = "refund AND paid + interval '3 days' <= %(now)s AS refunded"
# The history the billing service would have written for those rows (``history_facts``): a start,
# and an end for ended ones. Facts only; ``customer_history_rebuild`` then derives the customer columns.
EVENTS_SQL = """
    INSERT INTO coaching_subscriptionevent (subscription_id, user_id, kind, at, recorded_at, currency,
        plan_before, plan_after, cycle_before, cycle_after, status_before, status_after, price_before, price_after,
        paying_before, paying_after, mrr_before, mrr_after, customer_mrr_after, customer_paying_after,
        paying_users_delta, plan_after_users_delta, plan_before_users_delta,
        new_mrr, expansion_mrr, contraction_mrr, churned_mrr, reactivation_mrr)
    SELECT id, user_id, kind, at, %(now)s, currency, plan_before, plan_id, cycle_before, billing_cycle,
           status_before, status_after, price_before, price,
           mrr_before > 0, mrr_after > 0, mrr_before, mrr_after, 0, false, 0, 0, 0, 0, 0, 0, 0, 0
    FROM (
        SELECT s.*, 'started' AS kind, s.started_at AS at, '' AS plan_before, '' AS cycle_before,
               '' AS status_before, s.start_status AS status_after, NULL::numeric AS price_before,
               0 AS mrr_before,
               CASE WHEN s.start_status IN ('active', 'past_due') THEN s.monthly ELSE 0 END AS mrr_after
        FROM bench_subs s
        UNION ALL
        SELECT s.*, 'ended', s.ended_at, s.plan_id, s.billing_cycle, s.start_status, s.status, s.price,
               CASE WHEN s.start_status IN ('active', 'past_due') THEN s.monthly ELSE 0 END, 0
        FROM bench_subs s WHERE s.ended_at IS NOT NULL
    ) e
    ORDER BY at
"""
BENCH_SUBS_SQL = """
    CREATE TEMP TABLE bench_subs AS
    SELECT s.id, s.user_id, s.plan_id, s.billing_cycle, s.status, s.price, s.currency, s.started_at, s.ended_at,
           CASE WHEN s.ended_at IS NOT NULL AND s.status IN ('cancelled', 'expired') THEN 'active'
                ELSE s.status END AS start_status,
           CASE WHEN p.price_monthly > 0 OR p.price_annual > 0
                THEN round(CASE WHEN s.billing_cycle = 'annual' THEN s.price / 12 ELSE s.price END, 6)
                ELSE 0 END AS monthly
    FROM coaching_subscription s JOIN coaching_plan p ON p.code = s.plan_id
"""
# crowd: seed_demo's shape, one payment per subscription, paid within 25 days of its start (and not
# after the seeding: a started subscription's payment is spread over the days it has run).
CROWD_PAYMENTS_SQL = (
    _PAYMENT_COLUMNS
    + """
    FROM (
        SELECT *, """
    + _REFUNDED
    + """ FROM (
            SELECT id, user_id, price, 0 AS k, random() < 0.03 AS refund,
                   started_at + random() * least(interval '25 days', %(now)s - started_at) AS paid
            FROM coaching_subscription
        ) p
    ) s
"""
)
# renewals: a payment at the start of every billing cycle until the subscription ended (or now).
RENEWAL_PAYMENTS_SQL = (
    _PAYMENT_COLUMNS
    + """
    FROM (
        SELECT *, """
    + _REFUNDED
    + """ FROM (
        SELECT s.id, s.user_id, s.price, k, random() < 0.03 AS refund,
               s.started_at + make_interval(days => k * CASE WHEN s.billing_cycle = 'annual' THEN 365 ELSE 30 END)
                   AS paid
        FROM coaching_subscription s
        CROSS JOIN LATERAL generate_series(
            0,
            floor(extract(epoch FROM coalesce(s.ended_at, %(now)s) - s.started_at)
                  / 86400 / CASE WHEN s.billing_cycle = 'annual' THEN 365 ELSE 30 END)::int
        ) AS k
        ORDER BY s.id, k
        LIMIT %(payments)s
        ) p
    ) s
"""
)
# Renewal payments per subscription, on average, with starts spread over 700 days (about 10).
RENEWALS_PER_SUBSCRIPTION = 9.5


def seed(args: argparse.Namespace) -> float:
    import datetime

    from django.core.management import call_command
    from django.db import connection, transaction

    from coaching.billing_services import customer_history_rebuild

    started = time.perf_counter()
    if args.seed_with == "command":
        call_command("seed_demo", "--users", args.users, "--payments", args.payments, "--no-progress")
    else:
        now = datetime.datetime.now(datetime.UTC)
        crowd = args.shape == "crowd"
        subscriptions = args.payments if crowd else math.ceil(args.payments / RENEWALS_PER_SUBSCRIPTION)
        params = {"now": now, "users": args.users, "payments": args.payments, "subscriptions": subscriptions}
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT setseed(0.2026)")
            for sql in (USERS_SQL, SUBSCRIPTIONS_SQL, CROWD_PAYMENTS_SQL if crowd else RENEWAL_PAYMENTS_SQL):
                cursor.execute(sql, params)
            cursor.execute(BENCH_SUBS_SQL)
            cursor.execute(EVENTS_SQL, params)
            cursor.execute("DROP TABLE bench_subs")
        history = time.perf_counter()
        with transaction.atomic():
            customer_history_rebuild()
        print(f"derived the history's customer columns in {time.perf_counter() - history:.1f} s")
        rolled = time.perf_counter()
        call_command("billing_rollups_rebuild", "--no-progress")
        print(f"rebuilt the billing roll-up in {time.perf_counter() - rolled:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def main() -> int:
    args = parse_args()
    prepare_database(args.database, reuse=args.reuse, defaults={"DB_CONN_MAX_AGE": "0"})
    needs_seed = needs_seeding(args)
    from django.db import connection
    from django.utils import timezone
    from rest_framework.test import APIRequestFactory, force_authenticate

    from analytics.api.billing import BillingSummaryApi
    from analytics.billing import billing_scope, default_currency, movements_series
    from analytics.billing.history import one_reading
    from analytics.billing.summary import billing_period
    from coaching.models import Payment, Subscription, SubscriptionEvent, User

    if needs_seed:
        print(f"seeding {args.users:,} users and {args.payments:,} payments with {args.seed_with} …", flush=True)
        print(f"seeded in {seed(args):.1f} s")
    staff, _ = User.objects.get_or_create(
        email="bench-staff@example.com", defaults={"name": "Bench staff", "is_staff": True}
    )
    view = BillingSummaryApi.as_view()
    factory = APIRequestFactory()

    def summary(period: str):
        def call():
            request = factory.get("/api/v1/billing-analytics/summary", {"period": period})
            force_authenticate(request, user=staff)
            response = view(request)
            if response.status_code != 200:
                raise SystemExit(f"summary answered {response.status_code}: {response.data}")
            response.render()

        return call

    def baseline():
        with connection.cursor() as cursor:
            cursor.execute("SELECT SUM(amount) FROM coaching_payment")
            cursor.fetchone()

    print(
        f"database {args.database}: {User.objects.count():,} users, {Subscription.objects.count():,} subscriptions, "
        f"{Payment.objects.count():,} payments, {SubscriptionEvent.objects.count():,} subscription events"
    )
    base = median_ms(baseline, args.repeat)
    print(f"baseline  SELECT SUM(amount) FROM coaching_payment   median {base:8.1f} ms")
    verdict = 0
    for period in PERIODS:
        took = median_ms(summary(period), args.repeat)
        ok = took < args.goal_ms
        verdict |= 0 if ok else 1
        goal = f"  goal < {args.goal_ms:.0f} ms: {'met' if ok else 'MISSED'}"
        print(f"summary   ?period={period:<4}  median {took:8.1f} ms   {took / base:5.1f}x baseline{goal}")
    events, currency = billing_scope().events, default_currency()

    def movements_12m():
        period = billing_period({"period": "12m"}, tz=staff.tzinfo, now=timezone.now())
        with one_reading():
            movements_series(events, buckets=period.buckets("month"), now=timezone.now(), currency=currency)

    took = median_ms(movements_12m, args.repeat)
    ok = took < args.goal_ms
    verdict |= 0 if ok else 1
    goal = f"  goal < {args.goal_ms:.0f} ms: {'met' if ok else 'MISSED'}"
    print(f"movements 12 months per month  median {took:8.1f} ms   {took / base:5.1f}x baseline{goal}")
    return verdict


if __name__ == "__main__":
    sys.exit(main())
