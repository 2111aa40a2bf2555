"""Every billing metric pinned on the hand-made history in ``billing_world`` (March 2026, Asia/Taipei)."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from analytics import billing
from analytics.billing.summary import billing_period, billing_summary, user_profile
from coaching.models import User
from tests.analytics import billing_world as world
from tests.analytics.billing_world import APRIL, FEB_AND_MARCH, FEBRUARY, MARCH, NOW, tpe
from tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return world.build()


@pytest.fixture
def scope(people):
    return billing.billing_scope()


def test_scope_leaves_out_staff_superusers_and_test_accounts(people, scope):
    emails = set(scope.users.values_list("email", flat=True))
    assert emails == {f"{letter}@example.com" for letter in "abcdehij"}
    assert set(User.objects.filter(billing.billable(prefix="")).values_list("email", flat=True)) == emails
    assert scope.events.filter(user__email__in=["f@example.com", "g@example.com", "k@example.com"]).count() == 0


def test_new_signups_counts_local_days_in_taipei(scope):
    # A (3 Mar) and I (31 Mar 23:59:59); H joined 23:59:59 on 28 Feb Taipei time: February.
    assert billing.new_signups(scope.users, period=MARCH, now=NOW) == 2
    assert billing.new_signups(scope.users, period=FEBRUARY, now=NOW) == 2  # C and H


def test_paying_users_at_the_start_and_the_close(scope):
    # At 1 Mar 00:00: B, C (ends exactly then, still counted), D, E (past due), H.
    assert billing.paying_users(scope.events, at=MARCH.start) == 5
    # At 1 Apr 00:00: B (kept one of two), D, E, H (ends exactly then); not A or C; J only trials.
    assert billing.paying_users(scope.events, at=MARCH.end) == 4


def test_churn_counts_a_user_whose_last_paid_subscription_ended(scope):
    # A signed up and left in March; C's subscription ended at March's first instant.
    # B cancelled one of two subscriptions: not churn. H ends at April's first instant: April's churn.
    assert billing.churned_users(scope.events, period=MARCH, now=NOW) == 2
    assert billing.churned_users(scope.events, period=FEBRUARY, now=NOW) == 0
    assert billing.churned_users(scope.events, period=APRIL, now=NOW) == 1  # H, gone at 1 Apr 00:00


def test_churn_rate_is_churned_over_the_opening_base(scope):
    assert billing.customer_churn(scope.events, period=MARCH, now=NOW).rate == Decimal("0.4000")
    assert billing.churn_rate_of(3, 0) is None


def test_revenue_counts_refunds_when_they_happen(scope):
    # March: A 899 + B 899 + H 299 (1 Mar 00:30 Taipei) - C's refund of 299 on 5 Mar.
    assert billing.total_revenue(scope.payments, period=MARCH, now=NOW) == {"TWD": Decimal("1798.00")}
    # February keeps C's payment although it was refunded later: B 299 + C 299.
    assert billing.total_revenue(scope.payments, period=FEBRUARY, now=NOW) == {"TWD": Decimal("598.00")}
    # April so far: H's renewal at 1 Apr 00:00 Taipei.
    assert billing.total_revenue(scope.payments, period=APRIL, now=NOW) == {"TWD": Decimal("299.00")}


def test_a_refund_in_a_later_period_can_make_it_negative(people, scope):
    world.pay(
        people["b"], "899.00", at=tpe(2026, 1, 15), status="partially_refunded", refunded=("500.00", tpe(2026, 4, 2))
    )
    assert billing.total_revenue(scope.payments, period=APRIL, now=NOW) == {"TWD": Decimal("-201.00")}


def test_revenue_is_per_currency(people, scope):
    world.pay(people["b"], "30.00", at=tpe(2026, 3, 12), currency="USD")
    assert billing.total_revenue(scope.payments, period=MARCH, now=NOW) == {
        "TWD": Decimal("1798.00"),
        "USD": Decimal("30.00"),
    }


def test_mrr_counts_annual_plans_as_a_twelfth_and_past_due(scope):
    # B 899 + D 7641.50 / 12 (636.7916…) + E 899 (past due counts) + H 299 = 2733.79
    assert billing.mrr(scope.events, at=MARCH.end) == {"TWD": Decimal("2733.79")}
    assert billing.active_subscriptions(scope.events, at=MARCH.end) == 4
    assert billing.arpu(scope.events, at=MARCH.end) == Decimal("683.45")  # 2733.79 / 4


def test_mrr_of_annual_plans_is_rounded_once():
    buyer = world.user("annual@example.com", joined=tpe(2025, 12, 1))
    for _ in range(3):
        world.sub(buyer, "pro", cycle="annual", start=tpe(2026, 1, 1))
    # 3 x 7641.50 / 12 = 1910.375 -> 1910.38 (rounding each twelfth first would give 1910.37)
    assert billing.mrr(billing.billing_scope().events, at=NOW) == {"TWD": Decimal("1910.38")}
    assert billing.paying_users(billing.billing_scope().events, at=NOW) == 1


def test_windows_stop_at_now(scope):
    # Seen on 10 March: A's end on 20 March is not churn yet, and H's payment at 1 Apr not revenue.
    early = tpe(2026, 3, 10, 12)
    assert billing.churned_users(scope.events, period=MARCH, now=early) == 1  # C only
    assert billing.total_revenue(scope.payments, period=MARCH, now=early) == {"TWD": Decimal("1798.00")}
    assert billing.mrr(scope.events, at=early) == {"TWD": Decimal("3632.79")}  # + A 899


def test_summary_agrees_with_each_one_number_function(scope):
    summary = billing_summary(scope, period=MARCH, now=NOW)
    assert summary.new_signups == billing.new_signups(scope.users, period=MARCH, now=NOW) == 2
    assert summary.churned_users == billing.churned_users(scope.events, period=MARCH, now=NOW) == 2
    assert summary.paying_users_at_start == billing.paying_users(scope.events, at=MARCH.start) == 5
    assert summary.paying_users == billing.paying_users(scope.events, at=MARCH.end) == 4
    assert summary.churn_rate == Decimal("0.4000")
    assert summary.revenue_by_currency == billing.total_revenue(scope.payments, period=MARCH, now=NOW)
    assert summary.total_revenue == Decimal("1798.00")
    assert summary.mrr_by_currency == billing.mrr(scope.events, at=MARCH.end)
    assert summary.mrr == Decimal("2733.79")
    assert summary.mrr_past_due == Decimal("899.00")
    assert summary.arpu == Decimal("683.45")
    assert summary.active_subscriptions == 4
    assert summary.close == MARCH.end


def test_breakdown_by_plan(scope):
    rows = {row.plan: row for row in billing_summary(scope, period=MARCH, now=NOW).by_plan}
    assert list(rows) == ["student", "pro", "coaching_school"]
    # Pro: B, D (annual), E (past due); 899 + 636.79… + 899.
    assert (rows["pro"].paying_users, rows["pro"].active_subscriptions, rows["pro"].mrr) == (3, 3, Decimal("2434.79"))
    # Student: H, whose subscription ends exactly at the close.
    assert (rows["student"].paying_users, rows["student"].active_subscriptions, rows["student"].mrr) == (
        1,
        1,
        Decimal("299.00"),
    )
    assert (rows["coaching_school"].paying_users, rows["coaching_school"].mrr) == (0, Decimal("0.00"))


def test_breakdown_by_country_adds_up(scope):
    summary = billing_summary(scope, period=MARCH, now=NOW)
    rows = [(r.country, r.new_signups, r.paying_users, r.churned_users, r.mrr) for r in summary.by_country]
    assert rows == [
        ("TW", 2, 2, 2, Decimal("1198.00")),
        ("HK", 0, 1, 0, Decimal("899.00")),
        ("JP", 0, 1, 0, Decimal("636.79")),
    ]
    assert sum(r.paying_users for r in summary.by_country) == summary.paying_users
    assert sum(r.churned_users for r in summary.by_country) == summary.churned_users
    assert sum(r.new_signups for r in summary.by_country) == summary.new_signups


def test_monthly_series_in_taipei(scope):
    series = billing_summary(scope, period=FEB_AND_MARCH, now=NOW).series
    assert [p.label for p in series] == ["2026-02", "2026-03"]
    february, march = series
    assert (february.new_signups, february.churned_users, february.revenue) == (2, 0, Decimal("598.00"))
    # MRR at 1 Mar 00:00: B 899 + 299, C 299, D 636.79…, E 899, H 299
    assert february.mrr == Decimal("3331.79")
    assert (march.new_signups, march.churned_users, march.revenue, march.mrr) == (
        2,
        2,
        Decimal("1798.00"),
        Decimal("2733.79"),
    )
    assert march.start == MARCH.start and march.end == MARCH.end


def test_series_months_not_begun_have_no_mrr(scope):
    later = world.month(datetime.date(2026, 4, 1), datetime.date(2026, 6, 30))
    series = billing_summary(scope, period=later, now=NOW).series
    assert [(p.label, p.mrr) for p in series] == [
        ("2026-04", Decimal("2434.79")),  # as of 15 April: B, D, E
        ("2026-05", None),
        ("2026-06", None),
    ]
    assert series[0].churned_users == 1  # H left at 1 Apr 00:00


def test_user_profile(people):
    b = user_profile(people["b"], now=NOW)
    assert (b.timezone, b.country, b.plan, b.subscription_status, b.paying) == (
        "Asia/Taipei",
        "TW",
        "pro",
        "active",
        True,
    )
    assert b.lifetime_revenue == {"TWD": Decimal("1198.00")}
    c = user_profile(people["c"], now=NOW)
    assert (c.subscription_status, c.paying, c.lifetime_revenue) == ("cancelled", False, {"TWD": Decimal("0.00")})
    e = user_profile(people["e"], now=NOW)
    assert (e.country, e.timezone, e.subscription_status, e.paying) == ("HK", "Asia/Hong_Kong", "past_due", True)
    j = user_profile(people["j"], now=NOW)
    assert (j.plan, j.subscription_status, j.paying) == ("free", "trialing", False)
    i = user_profile(people["i"], now=NOW)
    assert (i.subscription_status, i.lifetime_revenue) == ("none", {"TWD": Decimal("0.00")})


def test_empty_world_has_zeros_and_no_rates():
    world.user("lonely@example.com", joined=tpe(2024, 1, 1))
    summary = billing_summary(billing.billing_scope(), period=MARCH, now=NOW)
    assert summary.is_empty
    assert (summary.churn_rate, summary.arpu, summary.mrr, summary.total_revenue) == (
        None,
        None,
        Decimal("0.00"),
        Decimal("0.00"),
    )
    assert summary.by_country == ()


def test_mrr_in_another_currency_is_kept_apart(people, scope):
    SubscriptionFactory(user=people["i"], started_at=tpe(2026, 3, 15), currency="USD", price=Decimal("29.00"))
    summary = billing_summary(scope, period=MARCH, now=NOW)
    assert summary.mrr_by_currency == {"TWD": Decimal("2733.79"), "USD": Decimal("29.00")}
    assert summary.mrr == Decimal("2733.79")  # the default currency, not a sum of currencies
    assert summary.paying_users == 5  # I now pays, in dollars
    tw = next(row for row in summary.by_country if row.country == "TW")
    assert (tw.paying_users, tw.mrr) == (3, Decimal("1198.00"))  # country MRR in the default currency


def test_a_year_of_months_puts_each_record_in_its_month(scope):
    year = world.month(datetime.date(2025, 5, 1), datetime.date(2026, 4, 30))
    series = {p.label: p for p in billing_summary(scope, period=year, now=NOW).series}
    assert list(series) == [f"2025-{m:02d}" for m in range(5, 13)] + [f"2026-{m:02d}" for m in range(1, 5)]
    revenue = {label: p.revenue for label, p in series.items() if p.revenue}
    assert revenue == {
        "2025-06": Decimal("7641.50"),  # D's year of Pro
        "2026-01": Decimal("899.00"),  # E
        "2026-02": Decimal("598.00"),  # B 299 + C 299
        "2026-03": Decimal("1798.00"),
        "2026-04": Decimal("299.00"),  # H's renewal at 1 Apr 00:00 Taipei
    }
    signups = {label: p.new_signups for label, p in series.items() if p.new_signups}
    assert signups == {"2025-05": 1, "2025-10": 1, "2025-12": 1, "2026-02": 2, "2026-03": 2}
    churn = {label: p.churned_users for label, p in series.items() if p.churned_users}
    assert churn == {"2026-03": 2, "2026-04": 1}
    assert series["2025-05"].mrr == Decimal("0.00")  # D starts on 1 June
    assert series["2025-06"].mrr == Decimal("636.79")


def test_churn_is_judged_at_the_close_not_at_the_end_of_a_subscription():
    """Back within the period: not churn. Back only after the close, or on a trial: churn."""
    back = world.user("back@example.com", joined=tpe(2025, 12, 1))
    world.sub(back, "pro", start=tpe(2026, 1, 1), end=tpe(2026, 3, 5))
    world.sub(back, "student", start=tpe(2026, 3, 20))
    later = world.user("later@example.com", joined=tpe(2025, 12, 1))
    world.sub(later, "pro", start=tpe(2026, 1, 1), end=tpe(2026, 3, 5))
    world.sub(later, "pro", start=tpe(2026, 4, 2))
    trial = world.user("trial@example.com", joined=tpe(2025, 12, 1))
    world.sub(trial, "pro", start=tpe(2026, 1, 1), end=tpe(2026, 3, 5))
    world.sub(trial, "pro", start=tpe(2026, 3, 6), status="trialing")
    scope = billing.billing_scope()
    assert billing.churned_users(scope.events, period=MARCH, now=NOW) == 2  # later and trial
    assert billing.paying_users(scope.events, at=MARCH.start) == 3
    assert billing.customer_churn(scope.events, period=MARCH, now=NOW).rate == Decimal("0.6667")
    assert billing.churned_users(scope.events, period=APRIL, now=NOW) == 0  # later is back in April
    summary = billing_summary(scope, period=MARCH, now=NOW)
    assert (summary.churned_users, summary.paying_users_at_start, summary.paying_users) == (2, 3, 1)
    assert summary.churn_rate == Decimal("0.6667")


@pytest.mark.parametrize(
    ("today", "first", "last"),
    [
        ((2026, 12, 3), "2025-12-04", "2026-12-03"),  # not the year to date
        ((2026, 4, 15), "2025-04-16", "2026-04-15"),
        ((2026, 2, 28), "2025-03-01", "2026-02-28"),
        ((2024, 2, 29), "2023-03-01", "2024-02-29"),  # a leap day
    ],
)
def test_last_12_months_is_the_12_months_ending_today(today, first, last):
    period = billing_period({"period": "12m"}, tz=world.TAIPEI, now=tpe(*today, 12))
    assert (period.first_day.isoformat(), period.last_day.isoformat()) == (first, last)
    assert period.previous().last_day.isoformat() < first  # compared with the 12 months before
