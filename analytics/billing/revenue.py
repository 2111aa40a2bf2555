"""Money actually paid (payments and refunds) and sign-ups in a period: flows, not balances."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Sequence
from decimal import Decimal

from django.db.models import CharField, Count, QuerySet, Sum

from analytics.periods import Bucket, Period
from coaching.models import Payment

from . import history, rollup
from .history import dec

PAID_PAYMENT_STATUSES = (
    Payment.Status.SUCCEEDED,
    # A refunded payment was paid first: its amount is revenue when paid, its refund when refunded.
    Payment.Status.REFUNDED,
    Payment.Status.PARTIALLY_REFUNDED,
)


def new_signups(users: QuerySet, *, period: Period, now: datetime.datetime) -> int:
    """Users whose ``date_joined`` is in ``[period.start, min(period.end, now))``.

    The sum of ``signup_rows`` over the period's months (so the page's total, its months and its
    countries are one query).
    """
    start, close = history.window(period, now)
    return sum(
        n for _country, _month, n in signup_rows(users, start=start, close=close, buckets=period.buckets("month"))
    )


def _sum_by_currency(rows: Iterable[dict], field: str) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row["currency"]] = totals.get(row["currency"], Decimal(0)) + dec(row[field])
    return totals


def payments_paid(payments: QuerySet, *, start: datetime.datetime, close: datetime.datetime) -> QuerySet:
    """Payments that were paid in ``[start, close)``, whatever became of them later."""
    return payments.filter(status__in=PAID_PAYMENT_STATUSES, paid_at__gte=start, paid_at__lt=close)


def payments_refunded(payments: QuerySet, *, start: datetime.datetime, close: datetime.datetime) -> QuerySet:
    """Payments with a refund dated in ``[start, close)``."""
    return payments.filter(refunded_amount__gt=0, refunded_at__gte=start, refunded_at__lt=close)


def net_revenue(payments: QuerySet, *, start: datetime.datetime | None, close: datetime.datetime) -> dict[str, Decimal]:
    """Paid in ``[start, close)`` minus refunded in ``[start, close)``, per currency (``start`` None: ever)."""
    since = start or datetime.datetime.min.replace(tzinfo=datetime.UTC)
    paid = payments_paid(payments, start=since, close=close).values("currency").annotate(total=Sum("amount"))
    refunded = (
        payments_refunded(payments, start=since, close=close).values("currency").annotate(total=Sum("refunded_amount"))
    )
    paid_by, refunded_by = _sum_by_currency(paid, "total"), _sum_by_currency(refunded, "total")
    return history.money({code: paid_by.get(code, 0) - refunded_by.get(code, 0) for code in {*paid_by, *refunded_by}})


def total_revenue(payments: QuerySet, *, period: Period, now: datetime.datetime) -> dict[str, Decimal]:
    """Net revenue per currency: payments paid in the period minus refunds made in the period.

    ``sum(amount where start <= paid_at < close and status in (succeeded, refunded, partially_refunded))
    - sum(refunded_amount where start <= refunded_at < close)`` per currency, ``close = min(end, now)``.
    A refund counts when it happens, not moved back to its payment's period, so a period can be negative.
    """
    start, close = history.window(period, now)
    totals: dict[str, Decimal] = {}
    for row in revenue_rows(payments, start=start, close=close, buckets=period.buckets("month")):
        totals[row.currency] = totals.get(row.currency, Decimal(0)) + row.amount
    return history.money(totals)


def lifetime_revenue(payments: QuerySet, *, now: datetime.datetime) -> dict[str, Decimal]:
    """Everything paid up to ``now`` minus everything refunded up to ``now``, per currency."""
    return net_revenue(payments, start=None, close=now)


@dataclasses.dataclass(frozen=True)
class MoneyRow:
    """Net revenue of one currency in one bucket: paid minus refunded (``month`` local, ``YYYY-MM``)."""

    currency: str
    month: str
    amount: Decimal


def bucket_label(field: str, buckets: Sequence[Bucket]):
    """The label of the bucket ``field`` falls in, for rows inside the buckets' span (cut in the viewer's zone)."""
    return history.ranked(
        field,
        bounds=[bucket.start for bucket in buckets[1:]],
        values=[bucket.label for bucket in buckets],
        output_field=CharField(),
    )


def revenue_rows(
    payments: QuerySet, *, start: datetime.datetime, close: datetime.datetime, buckets: Sequence[Bucket]
) -> list[MoneyRow]:
    """``total_revenue``'s two sums, grouped by currency and bucket (local month).

    Amounts paid are counted in the bucket of ``paid_at``, refunds (negative) in the bucket of
    ``refunded_at``; summing every row of a currency gives that currency's total revenue. Read from
    the payments alone (the covering index on ``paid_at``): no join to users or subscriptions.
    Remembered within ``history.one_reading()``.
    """
    key = ("revenue_rows", str(payments.query), start, close, tuple((b.label, b.start) for b in buckets))
    return history.remembered(key, lambda: _revenue_rows(payments, start=start, close=close, buckets=buckets))


def _revenue_rows(payments: QuerySet, *, start, close, buckets: Sequence[Bucket]) -> list[MoneyRow]:
    if close <= start:
        return []
    if rollup.answers(payments):
        bounds, labels = rollup.label_spans(start, close, [b.start for b in buckets], [b.label for b in buckets])
        out = []
        for month, rows in zip(labels, rollup.sums(bounds), strict=True):
            paid = rollup.by(rows, "currency", "paid", present="payments")
            refunded = rollup.by(rows, "currency", "refunded", present="refunds")
            out += [MoneyRow(currency=code, month=month, amount=dec(amount)) for code, amount in paid.items()]
            out += [MoneyRow(currency=code, month=month, amount=-dec(amount)) for code, amount in refunded.items()]
        return out
    rows = []
    reads = (
        (payments_paid(payments, start=start, close=close), "paid_at", "amount", 1),
        (payments_refunded(payments, start=start, close=close), "refunded_at", "refunded_amount", -1),
    )
    for queryset, when, amount, sign in reads:
        grouped = (
            queryset.annotate(month=bucket_label(when, buckets))
            .values("currency", "month")
            .annotate(total=Sum(amount))
            .order_by()
        )
        rows.extend(
            MoneyRow(currency=row["currency"], month=row["month"], amount=sign * dec(row["total"])) for row in grouped
        )
    return rows


def signup_rows(
    users: QuerySet, *, start: datetime.datetime, close: datetime.datetime, buckets: Sequence[Bucket]
) -> list[tuple[str, str, int]]:
    """``new_signups`` grouped by country and bucket (local month): ``[(country, "YYYY-MM", count)]``."""
    key = ("signup_rows", str(users.query), start, close, tuple((b.label, b.start) for b in buckets))
    return history.remembered(key, lambda: _signup_rows(users, start=start, close=close, buckets=buckets))


def _signup_rows(users: QuerySet, *, start, close, buckets: Sequence[Bucket]) -> list[tuple[str, str, int]]:
    if close <= start:
        return []
    if rollup.answers(users):
        bounds, labels = rollup.label_spans(start, close, [b.start for b in buckets], [b.label for b in buckets])
        found: dict[tuple[str, str], int] = {}
        for month, rows in zip(labels, rollup.sums(bounds), strict=True):
            for country, n in rollup.by(rows, "country", "signups", present="signups").items():
                found[(country, month)] = found.get((country, month), 0) + int(n)
        return [(country, month, n) for (country, month), n in found.items()]
    grouped = (
        users.filter(date_joined__gte=start, date_joined__lt=close)
        .annotate(month=bucket_label("date_joined", buckets))
        .values("country", "month")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return [(row["country"], row["month"], row["n"]) for row in grouped]
