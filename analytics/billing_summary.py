"""The billing summary: every billing number for one period, assembled from ``analytics.billing``.

The API (``/api/v1/billing-analytics/summary``) and the staff page both call ``billing_summary`` and
only format what it returns. It reads each expensive thing once (one snapshot of the subscriptions
in force at the period's close, one grouped read of payments) and derives totals and breakdowns
from it, so a total always equals the sum of its breakdown.
"""

from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth

from analytics import billing
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
    revenue: Decimal


@dataclasses.dataclass(frozen=True)
class CountryRow:
    country: str
    new_signups: int
    paying_users: int
    churned_users: int
    mrr: Decimal
    revenue: Decimal


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


def _by(rows, key: str, value: str) -> dict[str, int]:
    return {row[key]: row[value] for row in rows}


def _revenue_by(payments: QuerySet, *, start, close, field: str, currency: str) -> dict[str, Decimal]:
    """Net revenue in ``currency`` per value of ``field`` (e.g. ``user__country``), same rule as total_revenue."""
    paid = (
        billing.payments_paid(payments, start=start, close=close)
        .filter(currency=currency)
        .values(field)
        .annotate(total=Sum("amount"))
        .order_by()
    )
    refunded = (
        billing.payments_refunded(payments, start=start, close=close)
        .filter(currency=currency)
        .values(field)
        .annotate(total=Sum("refunded_amount"))
        .order_by()
    )
    result: dict[str, Decimal] = {}
    for rows, sign in ((paid, 1), (refunded, -1)):
        for row in rows:
            key = row[field] or ""
            result[key] = result.get(key, Decimal(0)) + sign * Decimal(str(row["total"] or 0))
    return {key: billing.cents(amount) for key, amount in result.items()}


def by_plan(
    scope: billing.BillingScope, *, snapshot: billing.Snapshot, start, close, currency: str
) -> tuple[PlanRow, ...]:
    """Per paid plan at the close: paying users, subscriptions, MRR; and net revenue in the period.

    Revenue is attributed to the plan of the payment's subscription (``""``: a payment without one).
    A user paying for two plans counts once under each, so these paying users may add up to more
    than the total.
    """
    paying = _by(
        billing.paid_subscriptions(scope.subscriptions)
        .filter(billing.in_force(snapshot.at))
        .values("plan_id")
        .annotate(n=Count("user_id", distinct=True))
        .order_by(),
        "plan_id",
        "n",
    )
    revenue = _revenue_by(scope.payments, start=start, close=close, field="subscription__plan_id", currency=currency)
    plans = list(Plan.objects.filter(Q(price_monthly__gt=0) | Q(price_annual__gt=0)).order_by("sort_order"))
    rows = [
        PlanRow(
            plan=plan.code,
            name=plan.name,
            paying_users=paying.get(plan.code, 0),
            active_subscriptions=snapshot.subscriptions(plan=plan.code),
            mrr=snapshot.mrr(plan=plan.code)[currency],
            revenue=revenue.get(plan.code, Decimal("0.00")),
        )
        for plan in plans
    ]
    return tuple(rows)


def by_country(
    scope: billing.BillingScope, *, snapshot: billing.Snapshot, start, close, currency: str
) -> tuple[CountryRow, ...]:
    """Per country of the user's profile: sign-ups, paying users, churned users, MRR and net revenue.

    Each user has one country, so every column adds up to its total. Countries with nothing in any
    column are left out; rows are ordered by MRR, then paying users, then code.
    """
    signups = _by(
        scope.users.filter(date_joined__gte=start, date_joined__lt=close).values("country").annotate(n=Count("pk")),
        "country",
        "n",
    )
    paying_now = billing.paying_user_ids(scope.subscriptions, at=close).filter(user_id=OuterRef("pk"))
    paying = _by(
        scope.users.filter(Exists(paying_now)).values("country").annotate(n=Count("pk")).order_by(),
        "country",
        "n",
    )
    churned = _by(
        billing.churned_subscriptions(scope.subscriptions, start=start, closes=[close])
        .values("user__country")
        .annotate(n=Count("user_id", distinct=True))
        .order_by()
        if close > start
        else [],
        "user__country",
        "n",
    )
    revenue = _revenue_by(scope.payments, start=start, close=close, field="user__country", currency=currency)
    countries = {*signups, *paying, *churned, *revenue, *(row.country for row in snapshot.rows)}
    rows = [
        CountryRow(
            country=code,
            new_signups=signups.get(code, 0),
            paying_users=paying.get(code, 0),
            churned_users=churned.get(code, 0),
            mrr=snapshot.mrr(country=code)[currency],
            revenue=revenue.get(code, Decimal("0.00")),
        )
        for code in countries
    ]
    rows.sort(key=lambda row: (-row.mrr, -row.paying_users, row.country))
    return tuple(rows)


def mrr_at(subscriptions: QuerySet, *, instants: list[datetime.datetime], currency: str) -> dict:
    """``billing.mrr`` at several instants in one pass: ``{instant: Decimal}`` in ``currency``.

    Same formula (monthly prices, annual / 12, paid subscriptions in force at the instant), read with
    one conditional sum per instant and billing cycle instead of one query per instant.
    """
    if not instants:
        return {}
    sums = {}
    for i, at in enumerate(instants):
        force = billing.in_force(at)
        sums[f"m{i}"] = Sum("price", filter=force & Q(billing_cycle=Subscription.Cycle.MONTHLY))
        sums[f"a{i}"] = Sum("price", filter=force & Q(billing_cycle=Subscription.Cycle.ANNUAL))
    totals = (
        billing.paid_subscriptions(subscriptions)
        .filter(currency=currency, started_at__lt=max(instants))
        .aggregate(**sums)
    )
    return {
        at: billing.cents(Decimal(str(totals[f"m{i}"] or 0)) + Decimal(str(totals[f"a{i}"] or 0)) / 12)
        for i, at in enumerate(instants)
    }


def _month(moment: datetime.datetime, period: Period) -> str:
    return moment.astimezone(period.tz).strftime("%Y-%m")


def monthly_series(
    scope: billing.BillingScope, *, period: Period, now: datetime.datetime, currency: str
) -> tuple[SeriesPoint, ...]:
    """Per local month of the period: sign-ups, churned users, net revenue, and MRR at the month's close.

    Each bucket applies the period definitions to ``[bucket.start, min(bucket.end, now))``; months
    that have not begun get zeros and no MRR. Sign-ups and revenue add up to the period's totals;
    churned users may not (someone who leaves twice is churn in two months, once in the period).
    """
    buckets: list[Bucket] = period.buckets("month")
    started = [b for b in buckets if b.start < now]
    closes = [min(b.end, now) for b in started]
    start, close = billing.window(period, now)
    tz = period.tz
    signups = _by(
        scope.users.filter(date_joined__gte=start, date_joined__lt=close)
        .annotate(month=TruncMonth("date_joined", tzinfo=tz))
        .values("month")
        .annotate(n=Count("pk"))
        .order_by(),
        "month",
        "n",
    )
    signups = {_month(month, period): n for month, n in signups.items()}
    revenue: dict[str, Decimal] = {}
    paid = billing.payments_paid(scope.payments, start=start, close=close).filter(currency=currency)
    refunded = billing.payments_refunded(scope.payments, start=start, close=close).filter(currency=currency)
    for rows, field, sign in ((paid, "paid_at", 1), (refunded, "refunded_at", -1)):
        amount = "amount" if sign > 0 else "refunded_amount"
        grouped = rows.annotate(month=TruncMonth(field, tzinfo=tz)).values("month").annotate(total=Sum(amount))
        for row in grouped.order_by():
            label = _month(row["month"], period)
            revenue[label] = revenue.get(label, Decimal(0)) + sign * Decimal(str(row["total"] or 0))
    churned: dict = {}
    if closes and closes[-1] > start:
        churned = _by(
            billing.churned_subscriptions(scope.subscriptions, start=start, closes=closes)
            .values("bucket_close")
            .annotate(n=Count("user_id", distinct=True))
            .order_by(),
            "bucket_close",
            "n",
        )
    mrr = mrr_at(scope.subscriptions, instants=closes, currency=currency)
    points = []
    for bucket in buckets:
        at = min(bucket.end, now)
        begun = bucket.start < now
        points.append(
            SeriesPoint(
                label=bucket.label,
                start=bucket.start,
                end=bucket.end,
                new_signups=signups.get(bucket.label, 0),
                churned_users=churned.get(at, 0) if begun else 0,
                revenue=billing.cents(revenue.get(bucket.label, 0)),
                mrr=mrr.get(at) if begun else None,
            )
        )
    return tuple(points)


def billing_summary(scope: billing.BillingScope, *, period: Period, now: datetime.datetime) -> BillingSummary:
    """Every billing number for ``period`` as of ``now`` (see DEFINITIONS and ``analytics.billing``)."""
    currency = billing.default_currency()
    start, close = billing.window(period, now)
    snapshot = billing.subscription_snapshot(scope.subscriptions, at=close)
    countries = by_country(scope, snapshot=snapshot, start=start, close=close, currency=currency)
    paying_at_start = billing.paying_users(scope.subscriptions, at=billing.opening(period, now))
    paying = sum(row.paying_users for row in countries)
    churned = sum(row.churned_users for row in countries)
    mrr_by_currency = snapshot.mrr()
    return BillingSummary(
        period=period,
        close=close,
        currency=currency,
        new_signups=sum(row.new_signups for row in countries),
        churned_users=churned,
        churn_rate=billing.churn_rate_of(churned, paying_at_start),
        paying_users_at_start=paying_at_start,
        paying_users=paying,
        active_subscriptions=snapshot.subscriptions(),
        revenue_by_currency=billing.total_revenue(scope.payments, period=period, now=now),
        mrr_by_currency=mrr_by_currency,
        mrr_past_due=snapshot.mrr(status=Subscription.Status.PAST_DUE)[currency],
        arpu=billing.arpu_of(mrr_by_currency[currency], paying),
        by_plan=by_plan(scope, snapshot=snapshot, start=start, close=close, currency=currency),
        by_country=countries,
        series=monthly_series(scope, period=period, now=now, currency=currency),
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
