"""Billing analytics from users, subscriptions and payments: one function per number.

The definitions are the contract in DOMAIN.md "Billing metrics" (they follow ChartMogul and Stripe).
Rules shared by every function here:

* **Scope.** Callers pass querysets already scoped to the accounts that count: ``billing_scope()``
  starts from ``User.objects.billable()`` (never staff, superusers or test/internal accounts) and
  takes their subscriptions and payments. Nothing here reads a request.
* **Paid subscription.** On a paid plan (``Plan.is_paid``: a monthly or annual price above zero)
  and paying or having paid: ``active`` or ``past_due`` now, or ``cancelled``/``expired`` with an
  ``ended_at``. Trials never count (nobody has paid yet); a cancelled or expired row without
  ``ended_at`` cannot be placed in time and is left out.
* **In force at instant t.** A paid subscription is in force at ``t`` when
  ``started_at < t <= ended_at`` (``ended_at`` null: still running). A subscription that ends exactly
  at ``t`` still counts at ``t``, so a period's closing base and the next period's opening base are
  the same customers, and a customer who leaves on the 1st is churn of that month, counted in its
  opening base (as ChartMogul reports it).
* **past_due counts** toward paying users *and* MRR: the subscription is intact while the gateway
  retries the card (ChartMogul's default; Stripe keeps it until it is cancelled). The summary shows
  the past-due part of MRR on its own (``mrr_past_due``) so finance can see what is at risk.
* **Now caps every window.** A period is read as of ``min(period.end, now)``: a scheduled end in
  the future is not churn yet and MRR is not guessed ahead.
* **Money** is ``Decimal`` per currency code, rounded half up to cents once, at the end.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Case, Count, DateTimeField, Exists, F, Field, OuterRef, Q, QuerySet, Sum, Value, When

from analytics.periods import Period
from coaching.models import Payment, Plan, Subscription, User

CENT = Decimal("0.01")
PAID_PAYMENT_STATUSES = (
    Payment.Status.SUCCEEDED,
    # A refunded payment was paid first: its amount is revenue when paid, its refund when refunded.
    Payment.Status.REFUNDED,
    Payment.Status.PARTIALLY_REFUNDED,
)
ENDED_STATUSES = (Subscription.Status.CANCELLED, Subscription.Status.EXPIRED)


def default_currency() -> str:
    return settings.DEFAULT_CURRENCY


def cents(amount: Decimal | float | int | None) -> Decimal:
    """A money amount rounded half up to cents (``None``: zero)."""
    return Decimal(str(amount or 0)).quantize(CENT, rounding=ROUND_HALF_UP)


def money(amounts: dict[str, Decimal]) -> dict[str, Decimal]:
    """Per-currency amounts in cents, the default currency always present, sorted by code."""
    merged = {default_currency(): Decimal(0), **amounts}
    return {code: cents(merged[code]) for code in sorted(merged)}


@dataclasses.dataclass(frozen=True)
class BillingScope:
    """The users that count and their subscriptions and payments."""

    users: QuerySet
    subscriptions: QuerySet
    payments: QuerySet


def billable(prefix: str = "user__") -> Q:
    """``User.objects.billable()`` as a filter through a relation: not staff, not superuser, not a test account."""
    return Q(**{f"{prefix}is_staff": False, f"{prefix}is_superuser": False, f"{prefix}is_test_account": False})


def billing_scope(users: QuerySet | None = None) -> BillingScope:
    """Billable users (not staff, superusers or test accounts) unless narrowed, with their records.

    The default scope is written for PostgreSQL's benefit: subscriptions and payments leave out
    the few excluded accounts (``NOT IN``, a small hashed set) instead of joining every row to its
    user (measured: the join costs more than the sums themselves at 1M payments).
    """
    if users is None:
        excluded = User.objects.exclude(billable(prefix="")).values("pk")
        return BillingScope(
            users=User.objects.billable(),
            subscriptions=Subscription.objects.exclude(user__in=excluded),
            payments=Payment.objects.exclude(user__in=excluded),
        )
    return BillingScope(
        users=users,
        subscriptions=Subscription.objects.filter(user__in=users),
        payments=Payment.objects.filter(user__in=users),
    )


def paid_subscriptions(subscriptions: QuerySet) -> QuerySet:
    """The paid subscriptions among ``subscriptions`` (see the module docstring)."""
    paid_plans = Plan.objects.filter(Q(price_monthly__gt=0) | Q(price_annual__gt=0)).values("code")
    return subscriptions.filter(plan_id__in=paid_plans).filter(
        Q(status__in=Subscription.PAYING_STATUSES) | Q(status__in=ENDED_STATUSES, ended_at__isnull=False)
    )


def in_force(at) -> Q:
    """Subscriptions in force at ``at`` (a datetime or an ``OuterRef``): ``started_at < at <= ended_at``."""
    return Q(started_at__lt=at) & (Q(ended_at__isnull=True) | Q(ended_at__gte=at))


def ranked(field: str, *, bounds: Sequence, values: Sequence, output_field: Field):
    """``values[i]`` for rows with ``bounds[i-1] <= field < bounds[i]`` (ascending ``bounds``, one value more).

    A balanced tree of ``CASE`` expressions: log2(n) comparisons a row, so 80 monthly buckets cost
    seven comparisons rather than forty on average.
    """
    if not bounds:
        return Value(values[0], output_field=output_field)
    mid = len(bounds) // 2
    return Case(
        When(
            **{f"{field}__lt": bounds[mid]},
            then=ranked(field, bounds=bounds[:mid], values=values[: mid + 1], output_field=output_field),
        ),
        default=ranked(field, bounds=bounds[mid + 1 :], values=values[mid + 1 :], output_field=output_field),
        output_field=output_field,
    )


def window(period: Period, now: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
    """The period's ``[start, close)`` as of ``now``: ``close = min(end, now)``, never before ``start``."""
    return period.start, max(period.start, min(period.end, now))


def opening(period: Period, now: datetime.datetime) -> datetime.datetime:
    """The instant a period's opening base is read at: its start (or now, if it starts later)."""
    return min(period.start, now)


# -- customers ------------------------------------------------------------------------------------


def new_signups(users: QuerySet, *, period: Period, now: datetime.datetime) -> int:
    """Users whose ``date_joined`` is in ``[period.start, min(period.end, now))``."""
    start, close = window(period, now)
    return users.filter(date_joined__gte=start, date_joined__lt=close).count()


def paying_user_ids(subscriptions: QuerySet, *, at) -> QuerySet:
    """Ids of users with at least one paid subscription in force at ``at``."""
    return paid_subscriptions(subscriptions).filter(in_force(at)).values("user_id")


def paying_users(subscriptions: QuerySet, *, at: datetime.datetime) -> int:
    """Users with at least one paid subscription (active or past_due) in force at ``at``.

    ``count(distinct user)`` over paid subscriptions with ``started_at < at <= ended_at``.
    """
    return paying_user_ids(subscriptions, at=at).distinct().count()


def ended_subscriptions(subscriptions: QuerySet, *, start: datetime.datetime, closes: Sequence) -> QuerySet:
    """Paid subscriptions that ended in ``[start, closes[-1])``, each told whether it is churn.

    ``closes`` are ascending instants cutting that span into windows. Each row is annotated with
    ``bucket_close`` (the close of the window it ended in) and ``still_paying`` (another paid
    subscription of the same user is in force at that close). It is churn when it had been in force
    (``started_at < ended_at``) and ``still_paying`` is false; count it with ``CHURNED``. One query
    for any number of windows, so a monthly series costs what a single period costs.
    """
    paid = paid_subscriptions(subscriptions)
    bucket_close = ranked("ended_at", bounds=closes[:-1], values=closes, output_field=DateTimeField())
    # Same user, so the scope (which only ever selects users) need not be applied again inside.
    others = paid_subscriptions(Subscription.objects.all())
    still_paying = others.filter(in_force(OuterRef("bucket_close")), user_id=OuterRef("user_id"))
    return paid.filter(ended_at__gte=start, ended_at__lt=closes[-1], started_at__lt=F("ended_at")).annotate(
        bucket_close=bucket_close, still_paying=Exists(still_paying)
    )


# Distinct churned users among ``ended_subscriptions`` rows. The test sits in the aggregate's
# FILTER rather than in WHERE on purpose: PostgreSQL then probes the (user, started_at) index for
# each of the few ended subscriptions instead of hashing every subscription for an anti-join.
CHURNED = Count("user_id", distinct=True, filter=Q(still_paying=False))


def churned_users(subscriptions: QuerySet, *, period: Period, now: datetime.datetime) -> int:
    """Logo churn: users whose last paid subscription ended in the period, not paying at its close.

    ``count(distinct user)`` with a paid subscription where ``start <= ended_at < close`` and
    ``started_at < ended_at``, and no paid subscription in force at ``close = min(period.end, now)``.
    Cancelling one of two subscriptions is not churn; signing up and leaving within the period is.
    """
    start, close = window(period, now)
    if close <= start:
        return 0
    return ended_subscriptions(subscriptions, start=start, closes=[close]).aggregate(n=CHURNED)["n"]


def churn_rate_of(churned: int, paying_at_start: int) -> Decimal | None:
    """``churned / paying_at_start`` to four places; ``None`` when nobody was paying at the start."""
    if not paying_at_start:
        return None
    return (Decimal(churned) / Decimal(paying_at_start)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def churn_rate(subscriptions: QuerySet, *, period: Period, now: datetime.datetime) -> Decimal | None:
    """Churned users in the period / paying users at the period's start; ``None`` when that is zero."""
    return churn_rate_of(
        churned_users(subscriptions, period=period, now=now),
        paying_users(subscriptions, at=opening(period, now)),
    )


# -- money ----------------------------------------------------------------------------------------


def _sum_by_currency(rows: Iterable[dict], field: str) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row["currency"]] = totals.get(row["currency"], Decimal(0)) + Decimal(str(row[field] or 0))
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
    return money({code: paid_by.get(code, 0) - refunded_by.get(code, 0) for code in {*paid_by, *refunded_by}})


def total_revenue(payments: QuerySet, *, period: Period, now: datetime.datetime) -> dict[str, Decimal]:
    """Net revenue per currency: payments paid in the period minus refunds made in the period.

    ``sum(amount where start <= paid_at < close and status in (succeeded, refunded, partially_refunded))
    - sum(refunded_amount where start <= refunded_at < close)`` per currency, ``close = min(end, now)``.
    A refund counts when it happens, not moved back to its payment's period, so a period can be negative.
    """
    start, close = window(period, now)
    return net_revenue(payments, start=start, close=close)


def lifetime_revenue(payments: QuerySet, *, now: datetime.datetime) -> dict[str, Decimal]:
    """Everything paid up to ``now`` minus everything refunded up to ``now``, per currency."""
    return net_revenue(payments, start=None, close=now)


# -- recurring revenue ----------------------------------------------------------------------------


def mrr(subscriptions: QuerySet, *, at: datetime.datetime) -> dict[str, Decimal]:
    """Monthly recurring revenue at ``at``, per currency.

    ``sum(price where monthly) + sum(price where annual) / 12`` over paid subscriptions in force at
    ``at`` (active and past_due alike), rounded once to cents.
    """
    rows = (
        paid_subscriptions(subscriptions)
        .filter(in_force(at))
        .values("currency", "billing_cycle")
        .annotate(total=Sum("price"))
        .order_by()
    )
    totals: dict[str, Decimal] = {}
    for row in rows:
        amount = Decimal(str(row["total"] or 0))
        monthly = amount / 12 if row["billing_cycle"] == Subscription.Cycle.ANNUAL else amount
        totals[row["currency"]] = totals.get(row["currency"], Decimal(0)) + monthly
    return money(totals)


def active_subscriptions(subscriptions: QuerySet, *, at: datetime.datetime) -> int:
    """Paid subscriptions in force at ``at`` (active or past_due): ``count(*)``, not users."""
    return paid_subscriptions(subscriptions).filter(in_force(at)).count()


def arpu_of(mrr_amount: Decimal, paying: int) -> Decimal | None:
    """``mrr / paying users`` in cents; ``None`` when nobody pays."""
    return cents(mrr_amount / paying) if paying else None


def arpu(subscriptions: QuerySet, *, at: datetime.datetime) -> Decimal | None:
    """Average revenue per paying user at ``at``: MRR (default currency) / paying users at ``at``."""
    return arpu_of(mrr(subscriptions, at=at)[default_currency()], paying_users(subscriptions, at=at))
