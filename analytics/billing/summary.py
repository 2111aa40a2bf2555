"""The billing summary: every billing number for one period, assembled from the one-number modules.

The API (``/api/v1/billing-analytics/summary``), the movements CSV and the staff page all call
``billing_summary`` (or the functions it calls) and only format what it returns. Balances come
from ``at_instant`` (sums of the history's changes before an instant), movements, churn and
retention from ``movements`` (the events in the period), money paid from ``revenue``.
"""

from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal

from django.db.models import Q

from analytics.periods import Bucket, Period, months_ending_today, parse_period
from coaching.models import Plan, Subscription, User

from . import at_instant, history, movements, revenue
from .history import BillingScope

# What each number means, in plain words (the page shows these; the API returns them).
DEFINITIONS = {
    "new_signups": "People who created an account in the period.",
    "paying_users": "People with at least one paid plan that is active or waiting for a card retry "
    "(past due) at the end of the period. Trials and free plans do not count.",
    "paying_users_at_start": "The same count at the start of the period: the base churn is measured against.",
    "churned_users": "Paying customers who stopped paying during the period and were not paying again by its end. "
    "Cancelling one of two plans is not churn; signing up and leaving within the period is.",
    "churn_rate": "Customers lost in the period divided by customers paying at its start. "
    "Not shown as a trend when fewer than 20 customers were paying at the start.",
    "total_revenue": "Money received in the period minus money refunded in the period "
    "(a refund counts when it is made, so a period can be negative).",
    "revenue_by_currency": "The same for every currency, not converted.",
    "mrr": "Monthly recurring revenue at the end of the period: the monthly price of every paid plan that "
    "is active or past due, annual plans counted as a twelfth of their price.",
    "mrr_past_due": "The part of MRR from customers whose card is being retried (at risk).",
    "arpu": "MRR divided by paying users at the end of the period.",
    "active_subscriptions": "Paid plans active or past due at the end of the period (a customer may have two).",
    "net_revenue_retention": "What the customers paying at the start pay per month at the end, divided by what "
    "they paid at the start: upgrades add, downgrades and departures subtract, new customers are left out.",
    "mrr_movements": "How MRR got from the start to the end: new customers, expansion (upgrades), contraction "
    "(downgrades), churned (customers who stopped paying) and reactivation (former customers back). "
    "MRR at the start plus the movements is MRR at the end, to the cent.",
    "changes": "Each headline is compared with the period of the same length just before it.",
    "close": "Numbers are read up to the end of the period, or now if the period has not ended.",
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
class Headline:
    """The headline numbers of one period (the summary's, or the previous period's for comparison)."""

    new_signups: int
    churned_users: int
    churn_rate: Decimal | None
    paying_users: int
    active_subscriptions: int
    total_revenue: Decimal
    mrr: Decimal
    mrr_past_due: Decimal
    arpu: Decimal | None
    net_revenue_retention: Decimal | None

    def changes(self, previous: Headline) -> dict[str, Decimal | int | None]:
        """This minus ``previous`` per number; ``None`` where either side has no value."""
        out = {}
        for field in dataclasses.fields(self):
            now, before = getattr(self, field.name), getattr(previous, field.name)
            out[field.name] = None if now is None or before is None else now - before
        return out


@dataclasses.dataclass(frozen=True)
class BillingSummary:
    period: Period
    close: datetime.datetime
    currency: str
    new_signups: int
    churn: movements.CustomerChurn
    paying_users: int
    active_subscriptions: int
    revenue_by_currency: dict[str, Decimal]
    mrr_by_currency: dict[str, Decimal]
    mrr_past_due: Decimal
    arpu: Decimal | None
    retention: movements.Retention
    movements: movements.Movements
    movement_series: tuple[movements.Movements, ...]
    by_plan: tuple[PlanRow, ...]
    by_country: tuple[CountryRow, ...]
    series: tuple[SeriesPoint, ...]
    previous_period: Period
    previous: Headline

    @property
    def churned_users(self) -> int:
        return self.churn.lost

    @property
    def churn_rate(self) -> Decimal | None:
        return self.churn.rate

    @property
    def paying_users_at_start(self) -> int:
        return self.churn.base

    @property
    def total_revenue(self) -> Decimal:
        return self.revenue_by_currency[self.currency]

    @property
    def mrr(self) -> Decimal:
        return self.mrr_by_currency[self.currency]

    @property
    def headline(self) -> Headline:
        return Headline(
            new_signups=self.new_signups,
            churned_users=self.churned_users,
            churn_rate=self.churn_rate,
            paying_users=self.paying_users,
            active_subscriptions=self.active_subscriptions,
            total_revenue=self.total_revenue,
            mrr=self.mrr,
            mrr_past_due=self.mrr_past_due,
            arpu=self.arpu,
            net_revenue_retention=self.retention.rate,
        )

    @property
    def changes(self) -> dict:
        return self.headline.changes(self.previous)

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


def paid_plans() -> list[Plan]:
    return list(Plan.objects.filter(Q(price_monthly__gt=0) | Q(price_annual__gt=0)).order_by("sort_order"))


def _add(totals: dict, key, amount) -> None:
    totals[key] = totals.get(key, 0) + amount


def headline(scope: BillingScope, *, period: Period, now: datetime.datetime, currency: str) -> Headline:
    """The headline numbers of ``period``, each from its own one-number function (for the previous period)."""
    _start, close = history.window(period, now)
    churn = movements.customer_churn(scope.events, period=period, now=now)
    snap = at_instant.snapshot(scope.events, at=close)
    paying = at_instant.paying_users(scope.events, at=close)
    mrr = snap.mrr()[currency]
    return Headline(
        new_signups=revenue.new_signups(scope.users, period=period, now=now),
        churned_users=churn.lost,
        churn_rate=churn.rate,
        paying_users=paying,
        active_subscriptions=snap.subscriptions,
        total_revenue=revenue.total_revenue(scope.payments, period=period, now=now)[currency],
        mrr=mrr,
        mrr_past_due=snap.mrr_past_due(currency),
        arpu=at_instant.arpu_of(mrr, paying),
        net_revenue_retention=movements.net_revenue_retention(
            scope.events, period=period, now=now, currency=currency
        ).rate,
    )


def by_country(
    *, countries: dict[str, at_instant.CountryCustomers], signups: list[tuple[str, str, int]], churned: dict[str, int]
) -> tuple[CountryRow, ...]:
    """Per country of the user's profile: sign-ups, paying users, churned users and MRR at the close.

    Each user has one country, so every count adds up to its total. Countries with nothing in any
    column are left out; rows are ordered by MRR, then paying users, then code.
    """
    joined: dict[str, int] = {}
    for country, _month, n in signups:
        _add(joined, country, n)
    nobody = at_instant.CountryCustomers(paying_users=0, mrr=Decimal("0.00"))
    codes = {*joined, *churned, *(code for code, c in countries.items() if c.paying_users or c.mrr)}
    rows = [
        CountryRow(
            country=code,
            new_signups=joined.get(code, 0),
            paying_users=countries.get(code, nobody).paying_users,
            churned_users=churned.get(code, 0),
            mrr=countries.get(code, nobody).mrr,
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
    money_rows: list[revenue.MoneyRow],
    mrr: dict[datetime.datetime, Decimal],
    currency: str,
) -> tuple[SeriesPoint, ...]:
    """Per local month: sign-ups, churned users, net revenue, and MRR at the month's close."""
    joined: dict[str, int] = {}
    for _country, month, n in signups:
        _add(joined, month, n)
    net: dict[str, Decimal] = {}
    for row in money_rows:
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
                revenue=history.cents(net.get(bucket.label, 0)),
                mrr=mrr.get(at) if begun else None,
            )
        )
    return tuple(points)


def billing_summary(scope: BillingScope, *, period: Period, now: datetime.datetime) -> BillingSummary:
    """Every billing number for ``period`` as of ``now`` (see DEFINITIONS), and the previous period's headline.

    MRR at each month's close is the end of that month's MRR bridge (``movements_series``): the
    same number the movements chart and the CSV show. Balances read twice are read once
    (``history.one_reading``).
    """
    with history.one_reading():
        return _billing_summary(scope, period=period, now=now)


def _billing_summary(scope: BillingScope, *, period: Period, now: datetime.datetime) -> BillingSummary:
    currency = history.default_currency()
    start, close = history.window(period, now)
    buckets = period.buckets("month")
    closes = [min(bucket.end, now) for bucket in buckets if bucket.start < now]
    plans = paid_plans()
    previous = period.previous()
    events = scope.events
    # Every balance the summary and its comparison read, in one pass; the one-number functions
    # below then find them (and the grouped rows their breakdowns come from) already read.
    snap = at_instant.snapshots(events, at=[close, start, previous.start], by_plan_at=close)[close]
    signups = revenue.signup_rows(scope.users, start=start, close=close, buckets=buckets)
    money_rows = revenue.revenue_rows(scope.payments, start=start, close=close, buckets=buckets)
    churned = movements.churned_by_country(events, start=start, close=close)
    countries = at_instant.country_customers(events, at=close, currency=currency)
    movement_series = movements.movements_series(events, buckets=buckets, now=now, currency=currency)
    return BillingSummary(
        period=period,
        close=close,
        currency=currency,
        new_signups=revenue.new_signups(scope.users, period=period, now=now),
        churn=movements.customer_churn(events, period=period, now=now),
        paying_users=at_instant.paying_users(events, at=close),
        active_subscriptions=at_instant.active_subscriptions(events, at=close),
        revenue_by_currency=revenue.total_revenue(scope.payments, period=period, now=now),
        mrr_by_currency=at_instant.mrr(events, at=close),
        mrr_past_due=at_instant.mrr_past_due(events, at=close, currency=currency),
        arpu=at_instant.arpu(events, at=close),
        retention=movements.net_revenue_retention(events, period=period, now=now, currency=currency),
        movements=movements.mrr_movements(events, period=period, now=now, currency=currency),
        movement_series=movement_series,
        by_plan=tuple(
            PlanRow(
                plan=plan.code,
                name=plan.name,
                paying_users=snap.plan_users.get(plan.code, 0),
                active_subscriptions=snap.plan_subscriptions.get(plan.code, 0),
                mrr=snap.plan_mrr(plan.code, currency),
            )
            for plan in plans
        ),
        by_country=by_country(countries=countries, signups=signups, churned=churned),
        series=monthly_series(
            buckets,
            now=now,
            signups=signups,
            churned=movements.churned_by_window(events, start=start, closes=closes),
            money_rows=money_rows,
            mrr={month.end: month.mrr_end for month in movement_series},
            currency=currency,
        ),
        previous_period=previous,
        previous=headline(scope, period=previous, now=now, currency=currency),
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
    """One user's billing profile: time zone and country, plan, subscription state, lifetime revenue.

    From the history at ``now``: ``subscription_status`` is that of the latest-started subscription
    paying now, else of the latest-started subscription of any kind, else ``"none"``.
    """
    states = {}
    for event in user.subscription_events.filter(at__lt=now).order_by("at", "id"):
        states[event.subscription_id] = event  # each subscription's latest state
    started = dict(
        Subscription.objects.filter(pk__in=states).values_list("pk", "started_at")
    )  # the row's start never changes
    latest = sorted(states.values(), key=lambda event: started[event.subscription_id], reverse=True)
    current = next((event for event in latest if event.paying_after), None)
    shown = current or (latest[0] if latest else None)
    return UserProfile(
        id=str(user.pk),
        timezone=user.timezone,
        country=user.country,
        plan=user.plan_id,
        subscription_status=shown.status_after if shown else "none",
        paying=current is not None,
        lifetime_revenue=revenue.lifetime_revenue(user.payments.all(), now=now),
    )


TRAILING_MONTHS = {"3m": 3, "12m": 12}


def billing_period(params, *, tz, now: datetime.datetime, default: str = "30d") -> Period:
    """``analytics.periods.parse_period``, except that "3m" and "12m" are the 3 or 12 months ending today.

    (Billing compares a period with the one before it; calendar-month windows that grow through
    the month would compare a partial year with a whole one.) Raises ``PeriodError``.
    """
    key = params.get("period")
    if key in TRAILING_MONTHS and not (params.get("from") or params.get("to")):
        return months_ending_today(TRAILING_MONTHS[key], tz=tz, now=now, key=key)
    return parse_period(params, tz=tz, now=now, default=default)
