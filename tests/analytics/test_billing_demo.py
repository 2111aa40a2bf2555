"""The summary API on the demo world equals independent raw SQL over the same tables and bounds."""

from __future__ import annotations

import datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection

from coaching.models import User

NOW = datetime.datetime(2026, 4, 15, 4, 0, tzinfo=datetime.UTC)  # 12:00 in Taipei
URL = "/api/v1/billing-analytics/summary"

# The accounts that count, and the paid subscriptions among theirs, spelled out in SQL.
BILLABLE = "NOT u.is_staff AND NOT u.is_superuser AND NOT u.is_test_account"
PAID_SUB = f"""
    coaching_subscription {{s}} JOIN coaching_user {{u}} ON {{u}}.id = {{s}}.user_id
    JOIN coaching_plan {{p}} ON {{p}}.code = {{s}}.plan_id
    WHERE {BILLABLE.replace("u.", "{u}.")} AND ({{p}}.price_monthly > 0 OR {{p}}.price_annual > 0)
      AND ({{s}}.status IN ('active', 'past_due')
           OR ({{s}}.status IN ('cancelled', 'expired') AND {{s}}.ended_at IS NOT NULL))
"""


def paid(s="s", u="u", p="p") -> str:
    return PAID_SUB.format(s=s, u=u, p=p)


def sql(query: str, *params):
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(query, [adapt(v) if isinstance(v, datetime.datetime) else v for v in params])
        return cursor.fetchall()


def cents(value) -> str:
    return str(Decimal(str(value or 0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def raw_numbers(start: datetime.datetime, close: datetime.datetime) -> dict:
    signups = sql(
        f"SELECT COUNT(*) FROM coaching_user u WHERE {BILLABLE} AND date_joined >= %s AND date_joined < %s",
        start,
        close,
    )[0][0]
    in_force = "s.started_at < %s AND (s.ended_at IS NULL OR s.ended_at >= %s)"
    paying_at = lambda at: sql(f"SELECT COUNT(DISTINCT s.user_id) FROM {paid()} AND {in_force}", at, at)[0][0]  # noqa: E731
    churned = sql(
        f"""SELECT COUNT(DISTINCT s.user_id) FROM {paid()}
            AND s.ended_at >= %s AND s.ended_at < %s AND s.started_at < s.ended_at
            AND NOT EXISTS (SELECT 1 FROM {paid("s2", "u2", "p2")} AND s2.user_id = s.user_id
                            AND s2.started_at < %s AND (s2.ended_at IS NULL OR s2.ended_at >= %s))""",
        start,
        close,
        close,
        close,
    )[0][0]
    paid_in = sql(
        f"""SELECT COALESCE(SUM(y.amount), 0) FROM coaching_payment y JOIN coaching_user u ON u.id = y.user_id
            WHERE {BILLABLE} AND y.currency = 'TWD' AND y.paid_at >= %s AND y.paid_at < %s
              AND y.status IN ('succeeded', 'refunded', 'partially_refunded')""",
        start,
        close,
    )[0][0]
    refunded_in = sql(
        f"""SELECT COALESCE(SUM(y.refunded_amount), 0) FROM coaching_payment y JOIN coaching_user u ON u.id = y.user_id
            WHERE {BILLABLE} AND y.currency = 'TWD' AND y.refunded_at >= %s AND y.refunded_at < %s""",
        start,
        close,
    )[0][0]
    by_cycle = dict(
        sql(f"SELECT s.billing_cycle, SUM(s.price) FROM {paid()} AND {in_force} GROUP BY s.billing_cycle", close, close)
    )
    mrr = Decimal(str(by_cycle.get("monthly") or 0)) + Decimal(str(by_cycle.get("annual") or 0)) / 12
    subscriptions = sql(f"SELECT COUNT(*) FROM {paid()} AND {in_force}", close, close)[0][0]
    return {
        "new_signups": signups,
        "paying_users_at_start": paying_at(start),
        "paying_users": paying_at(close),
        "churned_users": churned,
        "total_revenue": cents(Decimal(str(paid_in)) - Decimal(str(refunded_in))),
        "mrr": cents(mrr),
        "active_subscriptions": subscriptions,
    }


@pytest.fixture
def demo(db):
    with time_machine.travel(NOW, tick=False):
        call_command("seed_demo", "--no-progress")
        yield User.objects.get(email="staff@example.com")


@pytest.mark.parametrize("period", ["30d", "90d", "12m", "all"])
def test_demo_world_matches_raw_sql(api_for, demo, period):
    with time_machine.travel(NOW, tick=False):
        body = api_for(demo).get(URL, {"period": period}).json()
    start = datetime.datetime.fromisoformat(body["period"]["start"])
    close = datetime.datetime.fromisoformat(body["period"]["close"])
    assert close == NOW
    expected = raw_numbers(start, close)
    assert {key: body[key] for key in expected} == expected
    assert sum(point["new_signups"] for point in body["series"]) == body["new_signups"]
    assert sum(Decimal(point["revenue"]) for point in body["series"]) == Decimal(body["total_revenue"])
    assert body["series"][-1]["mrr"] == body["mrr"]


def test_demo_world_numbers_are_not_trivial(api_for, demo):
    """The comparison above means something: the demo world has churn, refunds, annual and past-due plans."""
    with time_machine.travel(NOW, tick=False):
        body = api_for(demo).get(URL, {"period": "12m"}).json()
    assert body["churned_users"] >= 2
    assert body["paying_users"] >= 15
    assert Decimal(body["mrr_past_due"]) > 0
    assert Decimal(body["total_revenue"]) > 0
    refunds = sql("SELECT COUNT(*) FROM coaching_payment WHERE refunded_amount > 0")[0][0]
    annual = sql("SELECT COUNT(*) FROM coaching_subscription WHERE billing_cycle = 'annual'")[0][0]
    assert refunds > 0 and annual > 0
    # The test account (coach24) is in the tables but never in the numbers.
    test_account = User.objects.get(email="coach24@example.com")
    assert test_account.is_test_account and test_account.subscriptions.exists()


@pytest.mark.parametrize("period", ["30d", "12m", "all"])
def test_demo_world_mrr_movements_reconcile(api_for, demo, period):
    """MRR(start) + movements = MRR(end), for the period and every month, against raw SQL at both ends."""
    with time_machine.travel(NOW, tick=False):
        body = api_for(demo).get(URL, {"period": period}).json()
    parts = ("new", "expansion", "contraction", "churned", "reactivation")
    bridge = body["mrr_movements"]
    start = datetime.datetime.fromisoformat(body["period"]["start"])
    assert bridge["mrr_start"] == raw_numbers(start, start)["mrr"]  # MRR at the start, from the rows
    assert bridge["mrr_end"] == body["mrr"]
    for row in [bridge, *body["mrr_movements_series"]]:
        assert Decimal(row["mrr_start"]) + sum(Decimal(row[p]) for p in parts) == Decimal(row["mrr_end"])
    months = body["mrr_movements_series"]
    assert all(a["mrr_end"] == b["mrr_start"] for a, b in zip(months, months[1:], strict=False))
    assert months[0]["mrr_start"] == bridge["mrr_start"] and months[-1]["mrr_end"] == bridge["mrr_end"]
    if period != "30d":  # a year of the demo has every kind of movement but reactivation
        assert all(Decimal(bridge[p]) != 0 for p in ("new", "expansion", "churned"))
