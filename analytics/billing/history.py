"""The billing history and the rules every billing number shares.

Billing numbers are read from ``SubscriptionEvent`` (``coaching.billing_services`` writes one for
every change of a subscription, in the same transaction), never from the mutable subscription
row: the state at any instant is the sum of the changes before it, so a change made today never
moves a closed period. Rules shared by every function in ``analytics.billing``:

* **Scope.** Callers pass querysets already scoped to the accounts that count: ``billing_scope()``
  starts from ``User.objects.billable()`` (never staff, superusers or test/internal accounts) and
  takes their subscription events and payments. Nothing here reads a request.
* **Paying.** A subscription pays while ``active`` or ``past_due`` on a paid plan (a monthly or
  annual price above zero); trials never count. Its MRR is then its monthly price (annual / 12).
* **At an instant t** means after every event *before* t (``at < t``): a subscription that ends
  exactly at t still counts at t, so a period's closing base and the next period's opening base
  are the same customers, and a customer who leaves on the 1st is churn of that month.
* **past_due counts** toward paying users and MRR while the gateway retries the card (ChartMogul's
  default); its part of MRR is shown on its own.
* **Now caps every window.** A period is read as of ``min(period.end, now)``.
* **Money** is ``Decimal`` per currency code; subscription MRR is kept to six places and rounded
  half up to cents once, after summing.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime
from collections.abc import Callable, Iterator, Sequence
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, ExpressionWrapper, F, Field, Q, QuerySet, Value, When

from analytics.periods import Period
from coaching.models import Payment, SubscriptionEvent, User

CENT = Decimal("0.01")
ZERO = Decimal(0)


def default_currency() -> str:
    return settings.DEFAULT_CURRENCY


def cents(amount: Decimal | float | int | None) -> Decimal:
    """A money amount rounded half up to cents (``None``: zero)."""
    return Decimal(str(amount or 0)).quantize(CENT, rounding=ROUND_HALF_UP)


def money(amounts: dict[str, Decimal]) -> dict[str, Decimal]:
    """Per-currency amounts in cents, the default currency always present, sorted by code."""
    merged = {default_currency(): ZERO, **amounts}
    return {code: cents(merged[code]) for code in sorted(merged)}


def dec(value) -> Decimal:
    return Decimal(str(value or 0))


@dataclasses.dataclass(frozen=True)
class BillingScope:
    """The users that count and their subscription events and payments."""

    users: QuerySet
    events: QuerySet
    payments: QuerySet


def billable(prefix: str = "user__") -> Q:
    """``User.objects.billable()`` as a filter through a relation: not staff, not superuser, not a test account."""
    return Q(**{f"{prefix}is_staff": False, f"{prefix}is_superuser": False, f"{prefix}is_test_account": False})


def billing_scope(users: QuerySet | None = None) -> BillingScope:
    """Billable users (not staff, superusers or test accounts) unless narrowed, with their records.

    The default scope leaves out the few excluded accounts (``NOT IN``, a small hashed set from the
    ``user_not_billable`` partial index) instead of joining every row to its user.
    """
    if users is None:
        from . import rollup  # the roll-up answers for this scope (every billable account)

        excluded = User.objects.exclude(billable(prefix="")).values("pk")
        return BillingScope(
            users=rollup.mark(User.objects.billable()),
            events=rollup.mark(SubscriptionEvent.objects.exclude(user__in=excluded)),
            payments=rollup.mark(Payment.objects.exclude(user__in=excluded)),
        )
    return BillingScope(
        users=users,
        events=SubscriptionEvent.objects.filter(user__in=users),
        payments=Payment.objects.filter(user__in=users),
    )


def window(period: Period, now: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
    """The period's ``[start, close)`` as of ``now``: ``close = min(end, now)``, never before ``start``."""
    return period.start, max(period.start, min(period.end, now))


def opening(period: Period, now: datetime.datetime) -> datetime.datetime:
    """The instant a period's opening base is read at: its start (or now, if it starts later)."""
    return min(period.start, now)


def ranked(field: str, *, bounds: Sequence, values: Sequence, output_field: Field):
    """``values[i]`` for rows with ``bounds[i-1] <= field < bounds[i]`` (ascending ``bounds``, one value more).

    A balanced tree of ``CASE`` expressions: log2(n) comparisons a row.
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


# -- changes, summed --------------------------------------------------------------------------------
# A quantity at an instant is the sum of its changes before it: MRR is the sum of
# ``mrr_after - mrr_before``, a count of paying subscriptions the sum of ``paying_after - paying_before``.

MRR_FIELD = SubscriptionEvent._meta.get_field("mrr_after")


def mrr_change(condition_after: Q | None = None, condition_before: Q | None = None):
    """``mrr_after - mrr_before``, each side counted only where its condition holds (e.g. past due)."""

    def side(field: str, condition: Q | None):
        if condition is None:
            return F(field)
        return Case(When(condition, then=F(field)), default=Value(ZERO), output_field=MRR_FIELD)

    return ExpressionWrapper(side("mrr_after", condition_after) - side("mrr_before", condition_before), MRR_FIELD)


def count_change(condition_after: Q, condition_before: Q):
    """+1 where the state after meets the condition, -1 where the state before did."""
    return Case(When(condition_after, then=1), default=0) - Case(When(condition_before, then=1), default=0)


PAYING_CHANGE = count_change(Q(paying_after=True), Q(paying_before=True))


# -- one reading ------------------------------------------------------------------------------------
# A summary asks for MRR at its start several times (the bridge, the series, retention, the previous
# period's close). Inside ``one_reading()`` a balance read once is remembered, so each is one query.

_remembered: contextvars.ContextVar[dict | None] = contextvars.ContextVar("billing_remembered", default=None)


@contextlib.contextmanager
def one_reading() -> Iterator[None]:
    """Remember balances for the block; on PostgreSQL, read in one transaction without JIT.

    The billing queries are index scans and grouped sums that run in tens of milliseconds, but
    their cost estimates pass ``jit_above_cost``: PostgreSQL then spends longer compiling them
    than running them (measured at 100k users: 1.0 s of JIT in a 2.2 s query). ``SET LOCAL``
    keeps the setting to this transaction.
    """
    token = _remembered.set({})
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL jit = off")
            yield
    finally:
        _remembered.reset(token)


def remembered(key, compute: Callable):
    """``compute()``, or what it returned for ``key`` earlier in this ``one_reading()`` block."""
    memo = _remembered.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def recall(key):
    """What was remembered for ``key`` in this ``one_reading()`` block, else ``None``."""
    memo = _remembered.get()
    return None if memo is None else memo.get(key)


def remember(key, value) -> None:
    memo = _remembered.get()
    if memo is not None:
        memo[key] = value
