"""The billing summary: every billing number for one period, assembled from ``analytics.billing``.

The API (``/api/v1/billing-analytics/summary``) and the staff page both call ``billing_summary`` and
only format what it returns. It reads each table once through ``analytics.billing_queries`` (a
snapshot of the subscriptions in force, a per-customer pass, grouped sums of payments, sign-ups
and churn) and derives the totals, breakdowns and monthly series from those groups, so a count
always equals the sum of its breakdown.
"""

from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal

from django.db.models import Q

from analytics import billing
from analytics import billing_queries as queries
from analytics.periods import Bucket, Period
from coaching.models import Plan, Subscription, User

# One line per metric: what a finance person checks the numbers against.
DEFINITIONS = {
    "new_signups": "Users whose date joined is in [start, close).",
    "paying_users": "Users with a paid subscription (active or past_due, paid plan) in force at the close: "
    "started_at < close <= ended_at.",
    "paying_users_at_start": "The same count at the period's start: the churn rate's denominator.",
    "churned_users": "Users with a paid subscription that ended in [start, close) and no paid subscription "
    "in force at the close (logo churn).",
    "churn_rate": "churned_users / paying_users_at_start, four places; null when nobody paid at the start.",
    "total_revenue": "Amounts of payments paid in [start, close) (succeeded, refunded or partially refunded) "
    "minus refunded amounts refunded in [start, close), in the default currency.",
    "revenue_by_currency": "total_revenue for every currency, not converted.",
    "mrr": "Sum of monthly prices (annual price / 12) of paid subscriptions in force at the close, "
    "past_due included; default currency.",
    "mrr_past_due": "The part of mrr from past_due subscriptions (at risk while the card is retried).",
    "arpu": "mrr / paying_users at the close; null when nobody pays.",
    "active_subscriptions": "Paid subscriptions (active or past_due) in force at the close.",
    "close": "min(period end, now): nothing later than now is counted.",
    "scope": "Staff, superusers and test or internal accounts never count.",
}


@dataclasses.dataclass(frozen=True)
class PlanRow:
    plan: str
    name: str
    paying_users: int
    active_subscriptions: int
    mrr: Decimal


@dataclasses.dataclass(frozen=True)
class CountryRow:
    country: str
    new_signups: int
    paying_users: int
    churned_users: int
    mrr: Decimal


@dataclasses.dataclass(frozen=True)
class SeriesPoint:
    """One month of the chart series, in the period's time zone (money in the default currency)."""

    label: str
    start: datetime.datetime
    end: datetime.datetime
    new_signups: int
    churned_users: int
    revenue: Decimal
    mrr: Decimal | None  # at the bucket's close; None for a month that has not begun


@dataclasses.dataclass(frozen=True)
class BillingSummary:
    period: Period
    close: datetime.datetime
    currency: str
    new_signups: int
    churned_users: int
    churn_rate: Decimal | None
    paying_users_at_start: int
    paying_users: int
    active_subscriptions: int
    revenue_by_currency: dict[str, Decimal]
    mrr_by_currency: dict[str, Decimal]
    mrr_past_due: Decimal
    arpu: Decimal | None
    by_plan: tuple[PlanRow, ...]
    by_country: tuple[CountryRow, ...]
    series: tuple[SeriesPoint, ...]

    @property
    def total_revenue(self) -> Decimal:
        return self.revenue_by_currency[self.currency]

    @property
    def mrr(self) -> Decimal:
        return self.mrr_by_currency[self.currency]

    @property
    def is_empty(self) -> bool:
        """Nothing to show: no sign-ups, no paying users, no money moved, nobody left."""
        return not (
            self.new_signups
            or self.paying_users
            or self.paying_users_at_start
            or self.churned_users
            or any(self.revenue_by_currency.values())
        )


def _plans() -> list[Plan]:
    return list(Plan.objects.filter(Q(price_monthly__gt=0) | Q(price_annual__gt=0)).order_by("sort_order"))


def _add(totals: dict, key, amount) -> None:
    totals[key] = totals.get(key, 0) + amount


def by_plan(
    plans: list[Plan],
    *,
    snapshot: queries.Snapshot,
    customers: queries.Customers,
    currency: str,
) -> tuple[PlanRow, ...]:
    """Per paid plan at the close: paying users, subscriptions and MRR (the recurring view of a plan).

    A user paying for two plans counts once under each, so these paying users may add up to more
    than the total. Revenue is not split by plan: it would cost a join of every payment to its
    subscription (measured in benchmarks/billing_summary.py), and MRR already says what each plan brings.
    """
    return tuple(
        PlanRow(
            plan=plan.code,
            name=plan.name,
            paying_users=customers.by_plan.get(plan.code, 0),
            active_subscriptions=snapshot.subscriptions(plan=plan.code),
            mrr=snapshot.mrr(plan=plan.code)[currency],
        )
        for plan in plans
    )


def by_country(
    *,
    customers: queries.Customers,
    signups: list[tuple[str, str, int]],
    churned: dict[str, int],
) -> tuple[CountryRow, ...]:
    """Per country of the user's profile: sign-ups, paying users, churned users and MRR at the close.

    Each user has one country, so every count adds up to its total (MRR per country is rounded per
    country, so it may differ from the total by a cent per country). Countries with nothing in any
    column are left out; rows are ordered by MRR, then paying users, then code.
    """
    joined: dict[str, int] = {}
    for country, _month, n in signups:
        _add(joined, country, n)
    nobody = queries.CountryCustomers(paying_users=0, mrr=Decimal("0.00"))
    codes = {*joined, *churned, *(code for code, c in customers.by_country.items() if c.paying_users or c.mrr)}
    rows = [
        CountryRow(
            country=code,
            new_signups=joined.get(code, 0),
            paying_users=customers.by_country.get(code, nobody).paying_users,
            churned_users=churned.get(code, 0),
            mrr=customers.by_country.get(code, nobody).mrr,
        )
        for code in codes
    ]
    rows.sort(key=lambda row: (-row.mrr, -row.paying_users, row.country))
    return tuple(rows)


def monthly_series(
    buckets: list[Bucket],
    *,
    now: datetime.datetime,
    signups: list[tuple[str, str, int]],
    churned: dict[datetime.datetime, int],
    revenue: list[queries.MoneyRow],
    mrr: dict[datetime.datetime, Decimal],
    currency: str,
) -> tuple[SeriesPoint, ...]:
    """Per local month: sign-ups, churned users, net revenue, and MRR at the month's close.

    Each bucket applies the period's definitions to ``[bucket.start, min(bucket.end, now))``; a month
    that has not begun has zeros and no MRR. Sign-ups and revenue add up to the period's totals;
    churned users need not (someone who leaves twice is churn in two months, once in the period).
    """
    joined: dict[str, int] = {}
    for _country, month, n in signups:
        _add(joined, month, n)
    net: dict[str, Decimal] = {}
    for row in revenue:
        if row.currency == currency:
            _add(net, row.month, row.amount)
    points = []
    for bucket in buckets:
        at, begun = min(bucket.end, now), bucket.start < now
        points.append(
            SeriesPoint(
                label=bucket.label,
                start=bucket.start,
                end=bucket.end,
                new_signups=joined.get(bucket.label, 0),
                churned_users=churned.get(at, 0) if begun else 0,
                revenue=billing.cents(net.get(bucket.label, 0)),
                mrr=mrr.get(at) if begun else None,
            )
        )
    return tuple(points)


def billing_summary(scope: billing.BillingScope, *, period: Period, now: datetime.datetime) -> BillingSummary:
    """Every billing number for ``period`` as of ``now`` (see DEFINITIONS and ``analytics.billing``).

    Reads: one pass over subscriptions for MRR and subscriptions (at the close and each month's
    close), one for distinct paying users and their countries, one per payment sum, one for
    sign-ups, two for churn.
    """
    currency = billing.default_currency()
    start, close = billing.window(period, now)
    buckets = period.buckets("month")
    closes = [min(bucket.end, now) for bucket in buckets if bucket.start < now]
    plans = _plans()
    snapshot = queries.subscription_snapshot(scope.subscriptions, at=close, series_at=closes)
    signups = queries.signup_rows(scope.users, start=start, close=close, buckets=buckets)
    revenue = queries.revenue_rows(scope.payments, start=start, close=close, buckets=buckets)
    churned = queries.churn_by_country(scope.subscriptions, start=start, close=close)
    customers = queries.customers_pass(
        scope.subscriptions,
        opening=billing.opening(period, now),
        close=close,
        plans=[plan.code for plan in plans],
        currency=currency,
    )
    revenue_by_currency: dict[str, Decimal] = {}
    for row in revenue:
        _add(revenue_by_currency, row.currency, row.amount)
    mrr_by_currency = snapshot.mrr()
    churned_total = sum(churned.values())
    return BillingSummary(
        period=period,
        close=close,
        currency=currency,
        new_signups=sum(n for _country, _month, n in signups),
        churned_users=churned_total,
        churn_rate=billing.churn_rate_of(churned_total, customers.at_opening),
        paying_users_at_start=customers.at_opening,
        paying_users=customers.at_close,
        active_subscriptions=snapshot.subscriptions(),
        revenue_by_currency=billing.money(revenue_by_currency),
        mrr_by_currency=mrr_by_currency,
        mrr_past_due=snapshot.mrr(status=Subscription.Status.PAST_DUE)[currency],
        arpu=billing.arpu_of(mrr_by_currency[currency], customers.at_close),
        by_plan=by_plan(plans, snapshot=snapshot, customers=customers, currency=currency),
        by_country=by_country(customers=customers, signups=signups, churned=churned),
        series=monthly_series(
            buckets,
            now=now,
            signups=signups,
            churned=queries.churn_by_window(scope.subscriptions, start=start, closes=closes),
            revenue=revenue,
            mrr=snapshot.mrr_series(currency),
            currency=currency,
        ),
    )


@dataclasses.dataclass(frozen=True)
class UserProfile:
    id: str
    timezone: str
    country: str
    plan: str
    subscription_status: str  # a Subscription.Status value, or "none"
    paying: bool
    lifetime_revenue: dict[str, Decimal]


def user_profile(user: User, *, now: datetime.datetime) -> UserProfile:
    """One user's billing profile: time zone and country from the profile, plan, subscription state, lifetime revenue.

    ``subscription_status`` is that of the latest-started paid subscription in force now, else of the
    latest-started subscription of any kind, else ``"none"``. ``lifetime_revenue`` is net of refunds.
    """
    subscriptions = Subscription.objects.filter(user=user)
    current = billing.paid_subscriptions(subscriptions).filter(billing.in_force(now)).order_by("-started_at").first()
    latest = current or subscriptions.filter(started_at__lte=now).order_by("-started_at").first()
    return UserProfile(
        id=str(user.pk),
        timezone=user.timezone,
        country=user.country,
        plan=user.plan_id,
        subscription_status=latest.status if latest else "none",
        paying=current is not None,
        lifetime_revenue=billing.lifetime_revenue(user.payments.all(), now=now),
    )
