"""Single-pass readers behind the billing summary.

``analytics.billing`` states each number as its own function. A summary needs some twenty numbers
and their breakdowns; asking each function in turn would read the subscriptions table a dozen
times. These readers read each table once, grouped, and the summary derives every total and
breakdown from the groups. They are built from the same pieces as the one-number functions
(``paid_subscriptions``, ``in_force``, ``payments_paid``, ``payments_refunded``,
``ended_subscriptions``), and the tests hold each total equal to its one-number function.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from decimal import Decimal

from django.db import connection
from django.db.models import CharField, Count, IntegerField, Max, Q, QuerySet, Sum, Value

from analytics import billing
from analytics.periods import Bucket
from coaching.models import Subscription, User


@dataclasses.dataclass(frozen=True)
class SnapshotRow:
    """Paid subscriptions sharing plan, currency, billing cycle and status.

    ``subscriptions`` and ``price_total`` count those in force at the snapshot's instant;
    ``price_totals_at`` the price sums at each of the snapshot's ``series_at`` instants.
    Prices are per billing cycle, not yet normalised to a month.
    """

    plan: str
    currency: str
    cycle: str
    status: str
    subscriptions: int
    price_total: Decimal
    price_totals_at: tuple[Decimal, ...] = ()

    def monthly(self, price_total: Decimal) -> Decimal:
        """A price sum as a monthly amount, unrounded: itself, or a twelfth for annual subscriptions."""
        return price_total / 12 if self.cycle == Subscription.Cycle.ANNUAL else price_total


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Paid subscriptions in force at ``at`` (and MRR at ``series_at``), grouped."""

    at: datetime.datetime
    rows: tuple[SnapshotRow, ...]
    series_at: tuple[datetime.datetime, ...] = ()

    def select(self, **match) -> list[SnapshotRow]:
        return [row for row in self.rows if all(getattr(row, key) == value for key, value in match.items())]

    def mrr(self, **match) -> dict[str, Decimal]:
        """``billing.mrr`` at ``at`` over the matching rows, per currency."""
        totals: dict[str, Decimal] = {}
        for row in self.select(**match):
            totals[row.currency] = totals.get(row.currency, Decimal(0)) + row.monthly(row.price_total)
        return billing.money(totals)

    def mrr_series(self, currency: str) -> dict[datetime.datetime, Decimal]:
        """``billing.mrr`` in ``currency`` at each ``series_at`` instant."""
        rows = self.select(currency=currency)
        return {
            at: billing.cents(sum((row.monthly(row.price_totals_at[i]) for row in rows), Decimal(0)))
            for i, at in enumerate(self.series_at)
        }

    def subscriptions(self, **match) -> int:
        return sum(row.subscriptions for row in self.select(**match))


def _dec(value) -> Decimal:
    return Decimal(str(value or 0))


def subscription_snapshot(
    subscriptions: QuerySet, *, at: datetime.datetime, series_at: Sequence[datetime.datetime] = ()
) -> Snapshot:
    """One pass over paid subscriptions: counts and price sums in force at ``at`` and at ``series_at``.

    Grouped by plan, currency, billing cycle and status (no join to users: the country breakdown
    comes from ``customers_pass``); each instant is a conditional sum,
    ``SUM(price) FILTER (WHERE started_at < t AND (ended_at IS NULL OR ended_at >= t))``.
    """
    instants = [at, *series_at]
    sums = {f"at{i}": Sum("price", filter=billing.in_force(t)) for i, t in enumerate(series_at)}
    rows = (
        billing.paid_subscriptions(subscriptions)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gte=min(instants)), started_at__lt=max(instants))
        .values("plan_id", "currency", "billing_cycle", "status")
        .annotate(n=Count("id", filter=billing.in_force(at)), total=Sum("price", filter=billing.in_force(at)), **sums)
        .order_by()
    )
    return Snapshot(
        at=at,
        series_at=tuple(series_at),
        rows=tuple(
            SnapshotRow(
                plan=row["plan_id"],
                currency=row["currency"],
                cycle=row["billing_cycle"],
                status=row["status"],
                subscriptions=row["n"],
                price_total=_dec(row["total"]),
                price_totals_at=tuple(_dec(row[f"at{i}"]) for i in range(len(series_at))),
            )
            for row in rows
        ),
    )


@dataclasses.dataclass(frozen=True)
class CountryCustomers:
    paying_users: int  # at the close
    mrr: Decimal  # at the close, in the pass's currency


@dataclasses.dataclass(frozen=True)
class Customers:
    """``billing.paying_users`` at the opening and the close; at the close by country (with MRR) and by plan."""

    at_opening: int
    at_close: int
    by_country: dict[str, CountryCustomers]
    by_plan: dict[str, int]


def _flag(condition: Q) -> Max:
    """1 for a user with at least one subscription meeting ``condition``, else null (per user group)."""
    return Max(Value(1, output_field=IntegerField()), filter=condition)


def customers_pass(
    subscriptions: QuerySet,
    *,
    opening: datetime.datetime,
    close: datetime.datetime,
    plans: Sequence[str],
    currency: str,
) -> Customers:
    """Distinct paying users in one pass: one row per user with a flag per question, summed by country.

    The per-user rows (paying at the opening, at the close, on each plan at the close, and the
    user's monthly and annual price sums at the close in ``currency``) are computed without touching
    the users table; only those rows, one per customer, are then joined to their user for the country.
    """
    at_close = billing.in_force(close)
    in_currency = at_close & Q(currency=currency)
    per_user = {
        "at_opening": _flag(billing.in_force(opening)),
        "at_close": _flag(at_close),
        **{f"plan{i}": _flag(at_close & Q(plan_id=code)) for i, code in enumerate(plans)},
        "monthly": Sum("price", filter=in_currency & Q(billing_cycle=Subscription.Cycle.MONTHLY)),
        "annual": Sum("price", filter=in_currency & Q(billing_cycle=Subscription.Cycle.ANNUAL)),
    }
    early, late = min(opening, close), max(opening, close)
    inner = (
        billing.paid_subscriptions(subscriptions)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gte=early), started_at__lt=late)
        .values("user_id")
        .annotate(**per_user)
        .order_by()
    )
    inner_sql, params = inner.query.sql_with_params()
    quote = connection.ops.quote_name
    # A flag is 1 or null: COUNT counts the users who have it; money is summed.
    sums = ", ".join(f"{'SUM' if name in ('monthly', 'annual') else 'COUNT'}(f.{quote(name)})" for name in per_user)
    users = f"{quote(User._meta.db_table)} u ON u.{quote(User._meta.pk.column)} = f.{quote('user_id')}"
    with connection.cursor() as cursor:
        # ORM conditions inside; outside, only "add the per-user rows up by the user's country",
        # which the ORM cannot say (a join to an aggregated subquery).
        cursor.execute(f"SELECT u.{quote('country')}, {sums} FROM ({inner_sql}) f JOIN {users} GROUP BY 1", params)
        rows = cursor.fetchall()
    by_country, by_plan = {}, dict.fromkeys(plans, 0)
    at_opening = at_close_total = 0
    for country, opened, closed, *rest in rows:
        plan_flags, (monthly, annual) = rest[: len(plans)], rest[len(plans) :]
        at_opening += int(opened or 0)
        at_close_total += int(closed or 0)
        for code, n in zip(plans, plan_flags, strict=True):
            by_plan[code] += int(n or 0)
        by_country[country] = CountryCustomers(
            paying_users=int(closed or 0), mrr=billing.cents(_dec(monthly) + _dec(annual) / 12)
        )
    return Customers(at_opening=at_opening, at_close=at_close_total, by_country=by_country, by_plan=by_plan)


@dataclasses.dataclass(frozen=True)
class MoneyRow:
    """Net revenue of one currency in one bucket: paid minus refunded (``month`` local, ``YYYY-MM``)."""

    currency: str
    month: str
    amount: Decimal


def bucket_label(field: str, buckets: Sequence[Bucket]):
    """The label of the bucket ``field`` falls in, for rows inside the buckets' span.

    Comparisons with the buckets' own bounds (from ``analytics.periods``, cut in the viewer's time
    zone) rather than truncating every row's timestamp in that zone: cheaper, and the months are
    exactly the series' buckets.
    """
    return billing.ranked(
        field,
        bounds=[bucket.start for bucket in buckets[1:]],
        values=[bucket.label for bucket in buckets],
        output_field=CharField(),
    )


def revenue_rows(
    payments: QuerySet, *, start: datetime.datetime, close: datetime.datetime, buckets: Sequence[Bucket]
) -> list[MoneyRow]:
    """``billing.total_revenue``'s two sums, grouped by currency and bucket (local month).

    Amounts paid are counted in the bucket of ``paid_at``, refunds (negative) in the bucket of
    ``refunded_at``; summing every row of a currency gives that currency's total revenue. Read from
    the payments alone (the covering index on ``paid_at``): no join to users or subscriptions.
    """
    rows = []
    reads = (
        (billing.payments_paid(payments, start=start, close=close), "paid_at", "amount", 1),
        (billing.payments_refunded(payments, start=start, close=close), "refunded_at", "refunded_amount", -1),
    )
    for queryset, when, amount, sign in reads:
        grouped = (
            queryset.annotate(month=bucket_label(when, buckets))
            .values("currency", "month")
            .annotate(total=Sum(amount))
            .order_by()
        )
        rows.extend(
            MoneyRow(currency=row["currency"], month=row["month"], amount=sign * _dec(row["total"])) for row in grouped
        )
    return rows


def signup_rows(
    users: QuerySet, *, start: datetime.datetime, close: datetime.datetime, buckets: Sequence[Bucket]
) -> list[tuple[str, str, int]]:
    """``billing.new_signups`` grouped by country and bucket (local month): ``[(country, "YYYY-MM", count)]``."""
    grouped = (
        users.filter(date_joined__gte=start, date_joined__lt=close)
        .annotate(month=bucket_label("date_joined", buckets))
        .values("country", "month")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return [(row["country"], row["month"], row["n"]) for row in grouped]


def churn_by_country(subscriptions: QuerySet, *, start: datetime.datetime, close: datetime.datetime) -> dict[str, int]:
    """``billing.churned_users`` for ``[start, close)`` by the user's country."""
    if close <= start:
        return {}
    grouped = (
        billing.ended_subscriptions(subscriptions, start=start, closes=[close])
        .values("user__country")
        .annotate(n=billing.CHURNED)
        .order_by()
    )
    return {row["user__country"]: row["n"] for row in grouped if row["n"]}


def churn_by_window(
    subscriptions: QuerySet, *, start: datetime.datetime, closes: Sequence[datetime.datetime]
) -> dict[datetime.datetime, int]:
    """``billing.churned_users`` for consecutive windows ``[start, closes[0])``, ``[closes[0], closes[1])``, …"""
    if not closes or closes[-1] <= start:
        return {}
    grouped = (
        billing.ended_subscriptions(subscriptions, start=start, closes=list(closes))
        .values("bucket_close")
        .annotate(n=billing.CHURNED)
        .order_by()
    )
    return {row["bucket_close"]: row["n"] for row in grouped}
