"""MRR movements, churn and retention on hand-made histories (March 2026 in Asia/Taipei), and the
property that makes them trustworthy: a closed period never moves."""

from __future__ import annotations

import datetime
import random
from decimal import Decimal

import pytest

from analytics import billing
from analytics.billing.movements import PARTS
from analytics.billing.summary import billing_summary
from coaching import billing_services as service
from coaching.models import Plan, Subscription
from tests.analytics import billing_world as world
from tests.analytics.billing_world import APRIL, FEB_AND_MARCH, FEBRUARY, MARCH, NOW, tpe
from tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


def plan(code: str) -> Plan:
    return Plan.objects.get(code=code)


def customer(name: str, *, joined=None):
    return world.user(f"{name}@example.com", joined=joined or tpe(2025, 12, 1))


def bridge(period=MARCH, currency="TWD") -> dict:
    moves = billing.mrr_movements(billing.billing_scope().events, period=period, now=NOW, currency=currency)
    assert moves.reconciles  # MRR(start) + movements = MRR(end), in cents, always
    return {
        "start": moves.mrr_start,
        **{p: getattr(moves, p) for p in PARTS},
        "end": moves.mrr_end,
    }


def D(value) -> Decimal:
    return Decimal(value)


def zeros(**given) -> dict:
    return {
        "start": D("0.00"),
        **{p: D("0.00") for p in PARTS},
        "end": D("0.00"),
        **{k: D(v) for k, v in given.items()},
    }


def test_upgrade_mid_month_is_expansion():
    sub = service.subscription_start(customer("up"), plan=plan("student"), at=tpe(2026, 2, 1))
    service.subscription_change_plan(sub, plan=plan("pro"), at=tpe(2026, 3, 15, 10))
    assert bridge() == zeros(start="299.00", expansion="600.00", end="899.00")
    assert billing.mrr(billing.billing_scope().events, at=tpe(2026, 3, 15, 10)) == {"TWD": D("299.00")}  # not yet
    assert billing.mrr(billing.billing_scope().events, at=tpe(2026, 3, 15, 11)) == {"TWD": D("899.00")}


def test_downgrade_is_contraction():
    sub = service.subscription_start(customer("down"), plan=plan("pro"), at=tpe(2026, 1, 1))
    service.subscription_change_plan(sub, plan=plan("student"), at=tpe(2026, 3, 20))
    assert bridge() == zeros(start="899.00", contraction="-600.00", end="299.00")


def test_past_due_then_recovered_moves_nothing_but_shows_at_risk():
    sub = service.subscription_start(customer("card"), plan=plan("pro"), at=tpe(2026, 1, 1))
    service.subscription_set_status(sub, status="past_due", at=tpe(2026, 3, 5))
    service.subscription_set_status(sub, status="active", at=tpe(2026, 3, 12))
    events = billing.billing_scope().events
    assert bridge() == zeros(start="899.00", end="899.00")
    assert billing.mrr_past_due(events, at=tpe(2026, 3, 10), currency="TWD") == D("899.00")
    assert billing.mrr_past_due(events, at=MARCH.end, currency="TWD") == D("0.00")
    assert billing.churned_users(events, period=MARCH, now=NOW) == 0


def test_cancel_then_reactivate_within_the_period_is_churn_and_reactivation_but_no_lost_customer():
    sub = service.subscription_start(customer("back"), plan=plan("pro"), at=tpe(2026, 1, 1))
    service.subscription_end(sub, at=tpe(2026, 3, 10))
    service.subscription_reactivate(sub, at=tpe(2026, 3, 20))
    assert bridge() == zeros(start="899.00", churned="-899.00", reactivation="899.00", end="899.00")
    churn = billing.customer_churn(billing.billing_scope().events, period=MARCH, now=NOW)
    assert (churn.lost, churn.base, churn.rate) == (0, 1, D("0.0000"))


def test_cancel_then_reactivate_after_the_period():
    sub = service.subscription_start(customer("later"), plan=plan("pro"), at=tpe(2026, 1, 1))
    service.subscription_cancel(sub, at=tpe(2026, 3, 1))  # asked; still paying until the end
    service.subscription_end(sub, at=tpe(2026, 3, 31))
    service.subscription_reactivate(sub, at=tpe(2026, 4, 2))
    events = billing.billing_scope().events
    assert bridge() == zeros(start="899.00", churned="-899.00", end="0.00")
    assert bridge(APRIL) == zeros(reactivation="899.00", end="899.00")
    assert billing.churned_users(events, period=MARCH, now=NOW) == 1
    assert billing.churned_users(events, period=APRIL, now=NOW) == 0


def test_a_new_annual_customer_is_new_mrr_of_a_twelfth_rounded_once():
    for name in ("y1", "y2", "y3"):
        service.subscription_start(customer(name), plan=plan("pro"), cycle="annual", at=tpe(2026, 3, 3))
    # 3 x 7641.50 / 12 = 1910.375 -> 1910.38 (rounding each twelfth first would give 1910.37)
    assert bridge() == zeros(new="1910.38", end="1910.38")


def test_rounded_movements_still_add_up():
    """Each movement in cents is within a cent of its own rounding, and the bridge adds up exactly."""
    a = service.subscription_start(customer("r1"), plan=plan("pro"), cycle="annual", at=tpe(2026, 2, 1))
    service.subscription_start(customer("r2"), plan=plan("student"), cycle="annual", at=tpe(2026, 3, 2))
    service.subscription_change_plan(a, plan=plan("coaching_school"), at=tpe(2026, 3, 9))
    moved = bridge()
    # start 636.791667; new 2990/12 = 249.166667; expansion 42500/12 - 636.791667 = 2904.875
    assert moved == zeros(start="636.79", new="249.17", expansion="2904.87", end="3790.83")
    assert D("636.791667") + D("249.166667") + D("2904.875000") == D("3790.833334")


def test_two_currencies_are_two_bridges():
    service.subscription_start(customer("twd"), plan=plan("pro"), at=tpe(2026, 3, 5))
    usd = customer("usd")
    SubscriptionFactory(user=usd, started_at=tpe(2026, 3, 6), currency="USD", price=D("29.00"))
    assert bridge(currency="TWD") == zeros(new="899.00", end="899.00")
    assert bridge(currency="USD") == zeros(new="29.00", end="29.00")


def test_month_edges_are_taipei_midnight():
    # 1 Mar 00:00 Taipei is 28 Feb 16:00 UTC: March. One second earlier: February.
    service.subscription_start(
        customer("edge1"), plan=plan("pro"), at=datetime.datetime(2026, 2, 28, 16, tzinfo=datetime.UTC)
    )
    service.subscription_start(
        customer("edge2"), plan=plan("student"), at=datetime.datetime(2026, 2, 28, 15, 59, 59, tzinfo=datetime.UTC)
    )
    assert bridge(FEBRUARY) == zeros(new="299.00", end="299.00")
    assert bridge() == zeros(start="299.00", new="899.00", end="1198.00")
    months = billing.movements_series(
        billing.billing_scope().events, buckets=FEB_AND_MARCH.buckets("month"), now=NOW, currency="TWD"
    )
    assert [(m.label, m.mrr_start, m.new, m.mrr_end) for m in months] == [
        ("2026-02", D("0.00"), D("299.00"), D("299.00")),
        ("2026-03", D("299.00"), D("899.00"), D("1198.00")),
    ]


def test_the_hand_made_world_reconciles_month_by_month():
    world.build()
    months = billing.movements_series(
        billing.billing_scope().events, buckets=FEB_AND_MARCH.buckets("month"), now=NOW, currency="TWD"
    )
    february, march = months
    # February: B's student (new? no: B already paid pro), C and H new. March: A new then churned,
    # B's student ended (contraction), C and A churned.
    assert [(p, getattr(february, p)) for p in PARTS if getattr(february, p)] == [
        ("new", D("598.00")),  # C 299, H 299 (H joined one second before March)
        ("expansion", D("299.00")),  # B adds student to pro
    ]
    assert [(p, getattr(march, p)) for p in PARTS if getattr(march, p)] == [
        ("new", D("899.00")),  # A
        ("contraction", D("-299.00")),  # B ends student
        ("churned", D("-1198.00")),  # A 899, C 299
    ]
    assert february.mrr_end == march.mrr_start == D("3331.79")
    assert march.mrr_end == D("2733.79")
    assert all(month.reconciles for month in months)


def test_net_revenue_retention_follows_the_customers_of_the_start():
    stays = service.subscription_start(customer("n1"), plan=plan("student"), at=tpe(2026, 1, 1))
    leaves = service.subscription_start(customer("n2"), plan=plan("pro"), at=tpe(2026, 1, 1))
    service.subscription_change_plan(stays, plan=plan("pro"), at=tpe(2026, 3, 10))  # +600
    service.subscription_end(leaves, at=tpe(2026, 3, 20))  # -899
    service.subscription_start(customer("n3"), plan=plan("coaching_school"), at=tpe(2026, 3, 5))  # new: left out
    retention = billing.net_revenue_retention(billing.billing_scope().events, period=MARCH, now=NOW, currency="TWD")
    # Start 299 + 899 = 1198; the same customers at the close: 899. 899 / 1198 = 0.7504
    assert (retention.mrr_start, retention.mrr_retained, retention.rate) == (D("1198.00"), D("899.00"), D("0.7504"))


def test_a_tiny_base_is_flagged():
    world.build()
    churn = billing.customer_churn(billing.billing_scope().events, period=MARCH, now=NOW)
    assert (churn.lost, churn.base, churn.rate, churn.small_base) == (2, 5, D("0.4000"), True)


def test_the_summary_compares_with_the_previous_period():
    world.build()
    summary = billing_summary(billing.billing_scope(), period=MARCH, now=NOW)
    assert summary.previous_period.first_day == datetime.date(2026, 1, 29)  # 31 days before 1 March
    previous = summary.previous
    # 29 Jan - 28 Feb: C and H signed up, B added a student plan, nobody left.
    assert (previous.new_signups, previous.churned_users, previous.total_revenue) == (2, 0, D("598.00"))
    assert previous.mrr == D("3331.79")  # at 1 March 00:00, the start of March
    assert summary.changes["mrr"] == D("2733.79") - D("3331.79")
    assert summary.changes["new_signups"] == 0 and summary.changes["churned_users"] == 2


# -- a closed period never moves -------------------------------------------------------------------


def _later_change(rng: random.Random, subs: list[Subscription], when: datetime.datetime) -> None:
    """One random change through the service, at ``when`` (after the closed period)."""
    sub = Subscription.objects.get(pk=rng.choice(subs).pk)
    running = sub.ended_at is None
    choices = ["start"]
    if running:
        choices += ["upgrade", "downgrade", "annual", "past_due", "end"]
        if sub.status == "past_due":
            choices.append("recover")
    else:
        choices.append("reactivate")
    action = rng.choice(choices)
    if action == "start":
        subs.append(service.subscription_start(sub.user, plan=plan(rng.choice(["student", "pro"])), at=when))
    elif action in ("upgrade", "downgrade"):
        service.subscription_change_plan(
            sub, plan=plan("coaching_school" if action == "upgrade" else "student"), at=when
        )
    elif action == "annual":
        service.subscription_change_plan(sub, plan=sub.plan, cycle="annual", at=when)
    elif action == "past_due":
        service.subscription_set_status(sub, status="past_due", at=when)
    elif action == "recover":
        service.subscription_set_status(sub, status="active", at=when)
    elif action == "end":
        service.subscription_end(sub, at=when)
    else:
        service.subscription_reactivate(sub, at=when)


@pytest.mark.parametrize("seed", range(4))
def test_a_closed_period_gives_the_same_figures_after_later_changes(seed):
    """Compute February and March, change subscriptions in April through the service, compute again: equal."""
    rng = random.Random(seed)
    people = world.build()
    subs = list(Subscription.objects.filter(user__in=people.values()))
    scope = billing.billing_scope()
    before = {
        period.key + str(period.start): billing_summary(scope, period=period, now=NOW) for period in (FEBRUARY, MARCH)
    }
    when = tpe(2026, 4, 1, 9)
    for _ in range(12):
        when += datetime.timedelta(hours=rng.randint(1, 30))
        _later_change(rng, subs, when)
    after = {
        period.key + str(period.start): billing_summary(scope, period=period, now=NOW) for period in (FEBRUARY, MARCH)
    }
    assert after == before  # every figure, breakdown, series, movement and comparison, to the cent
    assert before[MARCH.key + str(MARCH.start)].mrr == D("2733.79")


def test_paying_users_by_plan_count_a_customer_once_per_plan():
    both = customer("both")
    service.subscription_start(both, plan=plan("pro"), at=tpe(2026, 1, 1))
    service.subscription_start(both, plan=plan("pro"), at=tpe(2026, 1, 2))  # a second pro seat
    student = service.subscription_start(both, plan=plan("student"), at=tpe(2026, 1, 3))
    switch = customer("switch")
    old = service.subscription_start(switch, plan=plan("student"), at=tpe(2026, 1, 1))
    service.subscription_end(old, at=tpe(2026, 3, 10))
    service.subscription_start(switch, plan=plan("coaching_school"), at=tpe(2026, 3, 10))
    service.subscription_end(student, at=tpe(2026, 3, 20))
    rows = {row.plan: row for row in billing_summary(billing.billing_scope(), period=MARCH, now=NOW).by_plan}
    assert {code: (row.paying_users, row.active_subscriptions) for code, row in rows.items()} == {
        "student": (0, 0),
        "pro": (1, 2),  # two subscriptions, one customer
        "coaching_school": (1, 1),
    }
    february = {
        row.plan: row.paying_users for row in billing_summary(billing.billing_scope(), period=FEBRUARY, now=NOW).by_plan
    }
    assert february == {"student": 2, "pro": 1, "coaching_school": 0}
