"""What changed in a period, from the events in it: MRR movements, customer churn, net revenue retention.

**MRR movements** (as ChartMogul reports them), per customer and instant (``coaching.billing_services.
derive`` nets the changes of one customer at one instant, so ending one plan and starting another
is one expansion or contraction):

* ``new`` — a customer's first MRR; ``reactivation`` — MRR again after having had none;
* ``expansion`` / ``contraction`` — a paying customer's MRR going up / down (contraction negative);
* ``churned`` — a customer's MRR going to zero (negative).

``MRR(start) + new + expansion + contraction + churned + reactivation = MRR(end)`` holds exactly on
the stored amounts. Shown in cents, each movement is the difference of the rounded running totals
(``bridge``), so the rounded figures add up exactly too; each is within a cent of its own rounding.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import CharField, Count, DateTimeField, F, OuterRef, Q, QuerySet, Subquery, Sum

from analytics.periods import Bucket, Period
from coaching.models import SubscriptionEvent, User

from . import at_instant, history, rollup
from .history import ZERO, dec, mrr_change

PARTS = ("new", "expansion", "contraction", "churned", "reactivation")
# Below this many customers at the start, a churn rate says more about chance than about customers.
SMALL_BASE = 20


@dataclasses.dataclass(frozen=True)
class Movements:
    """The MRR bridge of one window in one currency, in cents: ``mrr_start + sum(parts) == mrr_end``."""

    label: str
    start: datetime.datetime
    end: datetime.datetime
    currency: str
    mrr_start: Decimal
    new: Decimal
    expansion: Decimal
    contraction: Decimal
    churned: Decimal
    reactivation: Decimal
    mrr_end: Decimal

    @property
    def net(self) -> Decimal:
        return self.mrr_end - self.mrr_start

    @property
    def reconciles(self) -> bool:
        return self.mrr_start + sum(getattr(self, part) for part in PARTS) == self.mrr_end


def bridge(start_raw: Decimal, parts_raw: dict[str, Decimal]) -> tuple[Decimal, dict[str, Decimal], Decimal]:
    """Round a bridge to cents so it still adds up: each part is ``cents(running total) - cents(previous)``."""
    running, shown = start_raw, {}
    for part in PARTS:
        after = running + parts_raw.get(part, ZERO)
        shown[part] = history.cents(after) - history.cents(running)
        running = after
    return history.cents(start_raw), shown, history.cents(running)


def _parts() -> dict:
    return {part: Sum(f"{part}_mrr") for part in PARTS}


def movements_series(
    events: QuerySet, *, buckets: Sequence[Bucket], now: datetime.datetime, currency: str
) -> tuple[Movements, ...]:
    """``mrr_movements`` for each bucket ``[bucket.start, min(bucket.end, now))`` that has begun.

    One query for every bucket's movements (events grouped by the bucket their instant falls in)
    and one for MRR at the first bucket's start; each later start is the previous end.
    """
    begun = [bucket for bucket in buckets if bucket.start < now]
    if not begun:
        return ()
    close = min(begun[-1].end, now)
    if rollup.answers(events):
        spans = rollup.sums([bucket.start for bucket in begun] + [close])
        by_bucket = {
            bucket.label: {part: dec(rollup.total(rows, f"{part}_mrr", currency=currency)) for part in PARTS}
            for bucket, rows in zip(begun, spans, strict=True)
        }
        return _series(events, begun, by_bucket, now=now, currency=currency)
    label = history.ranked(
        "at",
        bounds=[bucket.start for bucket in begun[1:]],
        values=[bucket.label for bucket in begun],
        output_field=CharField(),
    )
    rows = (
        events.filter(at__gte=begun[0].start, at__lt=close, currency=currency)
        .annotate(bucket=label)
        .values("bucket")
        .annotate(**_parts())
        .order_by()
    )
    by_bucket = {row["bucket"]: {part: dec(row[part]) for part in PARTS} for row in rows}
    return _series(events, begun, by_bucket, now=now, currency=currency)


def _series(
    events: QuerySet, begun: Sequence[Bucket], by_bucket: dict, *, now: datetime.datetime, currency: str
) -> tuple[Movements, ...]:
    running = at_instant.snapshot(events, at=begun[0].start).mrr_raw.get(currency, ZERO)
    series = []
    for bucket in begun:
        parts = by_bucket.get(bucket.label, {})
        mrr_start, shown, mrr_end = bridge(running, parts)
        running += sum(parts.values(), ZERO)
        end = min(bucket.end, now)
        series.append(Movements(bucket.label, bucket.start, end, currency, mrr_start, **shown, mrr_end=mrr_end))
    return tuple(series)


def mrr_movements(events: QuerySet, *, period: Period, now: datetime.datetime, currency: str) -> Movements:
    """The period's MRR bridge in ``currency``: MRR at its start, each movement in it, MRR at its close.

    Movements are the sums of the events' movement columns over ``start <= at < close``.
    """
    start, close = history.window(period, now)
    whole = Bucket(label=period.key, start=start, end=close)
    if close <= start:
        mrr_start = history.cents(at_instant.snapshot(events, at=start).mrr_raw.get(currency))
        return Movements(period.key, start, close, currency, mrr_start, *(ZERO,) * len(PARTS), mrr_start)
    return movements_series(events, buckets=[whole], now=now, currency=currency)[0]


# -- customers lost -------------------------------------------------------------------------------


def _lost(events: QuerySet, *, start: datetime.datetime, closes: Sequence[datetime.datetime]) -> QuerySet:
    """Events in ``[start, closes[-1])`` where a customer stopped paying and had not paid again by the
    close of the window the event falls in (``bucket_close``, windows ending at ``closes``).

    The loss carries when the customer next paid (``customer_paying_again_at``, see
    ``billing_services.derive``): not back by the close means that is null or not before it. Only a
    customer's last loss before a close can qualify, so each row is one customer lost in its window.
    From the partial index of losses alone.
    """
    bucket_close = history.ranked("at", bounds=closes[:-1], values=closes, output_field=DateTimeField())
    return (
        events.filter(paying_users_delta__lt=0, at__gte=start, at__lt=closes[-1])
        .annotate(bucket_close=bucket_close)
        .filter(Q(customer_paying_again_at__isnull=True) | Q(customer_paying_again_at__gte=F("bucket_close")))
    )


# Distinct users lost and not back by their window's close.
LOST = Count("user_id", distinct=True)


def churned_users(events: QuerySet, *, period: Period, now: datetime.datetime) -> int:
    """Logo churn: customers who stopped paying in the period and do not pay at its close.

    ``count(distinct user)`` with an instant in ``[start, close)`` where the user went from paying
    to not paying (``paying_users_delta = -1``) and no later return to paying before ``close =
    min(period.end, now)``. Cancelling one of two subscriptions is not churn; signing up and
    leaving within the period is.
    """
    start, close = history.window(period, now)
    # Each user has one country: the countries' counts add up to the distinct total.
    return sum(churned_by_country(events, start=start, close=close).values())


def churned_by_country(events: QuerySet, *, start: datetime.datetime, close: datetime.datetime) -> dict[str, int]:
    """``churned_users`` for ``[start, close)`` by the user's country (remembered within ``one_reading``)."""
    if close <= start:
        return {}

    def read() -> dict[str, int]:
        # The country by a lookup per lost customer, not a join: the losses are few, the users many.
        country = Subquery(User.objects.filter(pk=OuterRef("user_id")).values("country")[:1])
        grouped = _lost(events, start=start, closes=[close]).values(country=country).annotate(n=LOST).order_by()
        return {row["country"]: row["n"] for row in grouped if row["n"]}

    return history.remembered(("churned_by_country", str(events.query), start, close), read)


def churned_by_window(
    events: QuerySet, *, start: datetime.datetime, closes: Sequence[datetime.datetime]
) -> dict[datetime.datetime, int]:
    """``churned_users`` for consecutive windows ``[start, closes[0])``, ``[closes[0], closes[1])``, …"""
    if not closes or closes[-1] <= start:
        return {}
    grouped = _lost(events, start=start, closes=list(closes)).values("bucket_close").annotate(n=LOST).order_by()
    return {row["bucket_close"]: row["n"] for row in grouped}


@dataclasses.dataclass(frozen=True)
class CustomerChurn:
    """Customer churn rate with the numbers behind it."""

    lost: int  # churned_users in the period
    base: int  # paying users at the period's start
    rate: Decimal | None  # lost / base, four places; None when base is zero

    @property
    def small_base(self) -> bool:
        """Fewer than ``SMALL_BASE`` customers at the start: the rate is not a trend."""
        return self.base < SMALL_BASE


def churn_rate_of(churned: int, paying_at_start: int) -> Decimal | None:
    """``churned / paying_at_start`` to four places; ``None`` when nobody was paying at the start."""
    if not paying_at_start:
        return None
    return (Decimal(churned) / Decimal(paying_at_start)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def customer_churn(events: QuerySet, *, period: Period, now: datetime.datetime) -> CustomerChurn:
    """Customers lost in the period / customers paying at its start (``churned_users`` / ``paying_users``)."""
    lost = churned_users(events, period=period, now=now)
    base = at_instant.paying_users(events, at=history.opening(period, now))
    return CustomerChurn(lost=lost, base=base, rate=churn_rate_of(lost, base))


# -- net revenue retention -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Retention:
    """Net revenue retention: what the customers paying at the start pay at the close, over what they paid."""

    mrr_start: Decimal  # MRR at the start (all of it is from customers paying then)
    mrr_retained: Decimal  # the same customers' MRR at the close
    rate: Decimal | None  # retained / start, four places; None when nothing was paid at the start


def net_revenue_retention(events: QuerySet, *, period: Period, now: datetime.datetime, currency: str) -> Retention:
    """NRR = the start's customers' MRR at the close / MRR at the start, in ``currency``.

    Expansion, contraction, churn and reactivation of customers who had MRR at the start count;
    new customers do not. Counted from the other side: every change in the period is the start's
    customers' or a newcomer's, and a customer with no MRR at the start (their last instant before
    it left them none) can only have MRR at the close through a gain in the period (a ``new`` or
    ``reactivation`` movement). So the start's customers' MRR at the close is MRR at the close
    minus the MRR at the close of the users with a gain in the period and no MRR at its start (the
    gain's ``customer_mrr_zero_since`` says which; the (user, at) index answers each one's MRR at
    the close). Divided by ``MRR(start)``; null when nothing was paid
    at the start.
    """
    start, close = history.window(period, now)
    at_start = at_instant.snapshot(events, at=start).mrr_raw.get(currency, ZERO)
    if not at_start:
        return Retention(mrr_start=history.cents(at_start), mrr_retained=history.cents(at_start), rate=None)
    at_close = at_instant.snapshot(events, at=close).mrr_raw.get(currency, ZERO)

    def customer_mrr(at: datetime.datetime, user: str):
        # Every event of an instant carries the customer's MRR (in its currency) after it.
        return Subquery(
            SubscriptionEvent.objects.filter(user_id=OuterRef(user), at__lt=at, currency=currency)
            .order_by("-at")
            .values("customer_mrr_after")[:1]
        )

    # A gain in the period whose customer had had no MRR since before its start (or ever): the first
    # gain of a customer not paying at the start (one per customer; later gains follow a loss inside).
    newcomers = (
        events.filter(at__gte=start, at__lt=close, currency=currency)
        .filter(~Q(new_mrr=0) | ~Q(reactivation_mrr=0))
        .filter(Q(customer_mrr_zero_since__isnull=True) | Q(customer_mrr_zero_since__lt=start))
        .order_by()
    )
    theirs = _newcomers_mrr(events, newcomers, start=start, close=close, currency=currency, lookup=customer_mrr)
    retained = at_close - dec(theirs)
    rate = (retained / at_start).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    return Retention(mrr_start=history.cents(at_start), mrr_retained=history.cents(retained), rate=rate)


def _newcomers_mrr(events: QuerySet, newcomers: QuerySet, *, start, close, currency: str, lookup) -> Decimal | None:
    """The newcomers' MRR at the close: each one's by an index lookup when they are few, else the sum of
    their changes over the period (they had none at its start) in one scan of the period's events,
    whichever reads fewer rows (the roll-up counts the period's events)."""
    if rollup.answers(events):
        before, after = rollup.cumulative([start, close])  # read already for MRR at the start and close
        in_period = rollup.total(after, "events", currency=currency) - rollup.total(before, "events", currency=currency)
        if newcomers.count() * 8 > in_period:
            return events.filter(
                at__gte=start, at__lt=close, currency=currency, user_id__in=newcomers.values("user_id")
            ).aggregate(total=Sum(mrr_change(), output_field=history.MRR_FIELD))["total"]
    return newcomers.annotate(after=lookup(close, "user_id")).aggregate(total=Sum("after"))["total"]
