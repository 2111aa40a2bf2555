"""Sums of the billing roll-up (``coaching.billing_rollups``) over spans of time, for the default scope.

A span ``[a, b)`` is cut into whole UTC days (day buckets), then whole UTC hours at either edge
(hour buckets), then the minutes left, read from the raw rows by the same rule the roll-up was
built with (``billing_rollups.records``). A period cut at a local midnight of a zone whose offset
is a whole number of hours (Asia/Taipei, every zone on the hour) therefore reads no raw row but
the hour in progress at ``now``; a zone on the half or quarter hour (Asia/Kolkata, Asia/Kathmandu)
gets its slivers raw. The sums are exactly the ``SUM(…)`` of the raw rows: the roll-up only
pre-adds them (the property test in tests/analytics/test_billing_rollups.py holds them equal).

Only the default scope (``history.billing_scope()`` with no users: every billable account) is
answered here; a narrowed scope reads the raw rows. ``raw_reads()`` turns the roll-up off (tests
compare the two).
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import datetime
from collections.abc import Iterator, Sequence
from decimal import Decimal

from django.db import connection
from django.db.models import BooleanField, IntegerField, Min, Q, QuerySet, Sum, Value
from django.db.models.expressions import RawSQL

from coaching import billing_rollups
from coaching.billing_rollups import DAY, HOUR, UTC, day_floor, hour_floor
from coaching.models import BillingBucket, Payment, SubscriptionEvent, User

from . import history

FAR_PAST = datetime.datetime(1970, 1, 1, tzinfo=UTC)
GRAIN = BillingBucket.Grain
SUMS = BillingBucket.SUMS
START = '"coaching_billingbucket"."start"'
Key = tuple[str, str, str]  # currency, plan, country
Sums = dict[Key, dict[str, Decimal | int]]

_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("billing_rollup_enabled", default=True)
MARK = "_billing_everyone"


def mark(queryset: QuerySet) -> QuerySet:
    """Mark a queryset as the default scope's (every billable account): the roll-up may answer for it."""
    setattr(queryset, MARK, True)
    return queryset


def answers(queryset: QuerySet) -> bool:
    """True when the roll-up answers for ``queryset`` (the default scope's, and not turned off)."""
    return _enabled.get() and getattr(queryset, MARK, False)


@contextlib.contextmanager
def raw_reads() -> Iterator[None]:
    """Read every billing number from the raw rows in this block (to compare with the roll-up)."""
    token = _enabled.set(False)
    try:
        yield
    finally:
        _enabled.reset(token)


def _ceil(at: datetime.datetime, floor, step: datetime.timedelta) -> datetime.datetime:
    low = floor(at)
    return low if low == at else low + step


def cover(a: datetime.datetime, b: datetime.datetime) -> tuple[list, list, list]:
    """``[a, b)`` as (day spans, hour spans, raw spans), half-open, disjoint, covering it exactly."""
    days: list = []
    hours: list = []
    raw: list = []
    if a >= b:
        return days, hours, raw
    rest = [(a, b)]
    first, last = _ceil(a, day_floor, DAY), day_floor(b)
    if first < last:
        days.append((first, last))
        rest = [(a, first), (last, b)]
    for x, y in rest:
        if x >= y:
            continue
        hx, hy = _ceil(x, hour_floor, HOUR), hour_floor(y)
        if hx < hy:
            hours.append((hx, hy))
            raw += [(p, q) for p, q in ((x, hx), (hy, y)) if p < q]
        else:
            raw.append((x, y))
    return days, hours, raw


def sums(bounds: Sequence[datetime.datetime]) -> list[Sums]:
    """The roll-up's sums over each span ``[bounds[i], bounds[i+1])`` (ascending), billable accounts only.

    One grouped query over the buckets of every span, plus the raw rows of the slivers no bucket fits.
    Remembered within ``history.one_reading()``.
    """
    key = ("rollup_sums", tuple(bounds))
    return history.remembered(key, lambda: _sums(list(bounds)))


def _first_day() -> datetime.datetime | None:
    """The earliest day bucket: no record lies before it (remembered within ``history.one_reading()``)."""
    return history.remembered(
        ("rollup_first_day",),
        lambda: BillingBucket.objects.filter(grain=GRAIN.DAY).aggregate(first=Min("start"))["first"],
    )


def _span_of(bounds: list[datetime.datetime]):
    """The index of the span a bucket's ``start`` falls in (``history.ranked``; on PostgreSQL one
    ``width_bucket`` over the bounds: a binary search, and a short statement to plan)."""
    inner = bounds[1:-1]
    if not inner:
        return Value(0, output_field=IntegerField())
    if connection.vendor == "postgresql":
        return RawSQL(f"width_bucket({START}, %s::timestamptz[])", (inner,), output_field=IntegerField())
    return history.ranked("start", bounds=inner, values=list(range(len(inner) + 1)), output_field=IntegerField())


def _hours_in(hours: list[datetime.datetime]):
    if connection.vendor == "postgresql":
        return Q(RawSQL(f"{START} = ANY(%s::timestamptz[])", (hours,), output_field=BooleanField()))
    return Q(start__in=hours)


def _sums(bounds: list[datetime.datetime]) -> list[Sums]:
    spans = len(bounds) - 1
    out: list[Sums] = [{} for _ in range(spans)]
    first_day = _first_day()
    if first_day is None:
        return out  # no record at all
    day_spans: list = []
    hours: list[datetime.datetime] = []
    raw: list[tuple[int, datetime.datetime, datetime.datetime]] = []
    for i in range(spans):
        # Nothing lies before the first day bucket: a span reaching back further starts there.
        days, hour_spans, slivers = cover(max(bounds[i], first_day), bounds[i + 1])
        day_spans += days
        for x, y in hour_spans:
            hours += [x + HOUR * k for k in range(int((y - x) / HOUR))]
        raw += [(i, x, y) for x, y in slivers]
    # Few terms for the planner: the days from the first to the last, but those cut into hours,
    # and the hours by value (a period of 85 months has 84 edges: about 2,000 hours).
    ranges = Q()
    if day_spans:
        first, last = day_spans[0][0], day_spans[-1][1]
        covered = {x + DAY * k for x, y in day_spans for k in range(int((y - x) / DAY))}
        gaps = [first + DAY * k for k in range(int((last - first) / DAY)) if first + DAY * k not in covered]
        days = Q(grain=GRAIN.DAY, start__gte=first, start__lt=last)
        ranges |= days & ~_hours_in(gaps) if gaps else days
    if hours:
        ranges |= Q(grain=GRAIN.HOUR) & _hours_in(hours)
    if day_spans or hours:
        rows = (
            BillingBucket.objects.filter(ranges, billable=True)
            .annotate(span=_span_of(bounds))
            .values("span", "currency", "plan", "country")
            .annotate(**{f"s_{name}": Sum(name) for name in SUMS})
            .order_by()
        )
        for row in rows:
            target = out[row["span"]].setdefault((row["currency"], row["plan"], row["country"]), {})
            for name in SUMS:
                value = row[f"s_{name}"]
                if value:
                    target[name] = target.get(name, 0) + value
    for i, x, y in raw:
        _add_raw(out[i], x, y)
    return out


def _add_raw(target: Sums, x: datetime.datetime, y: datetime.datetime) -> None:
    """Add the billable records with an instant in ``[x, y)``, grouped in SQL by the roll-up's rules."""

    def read() -> list:
        billable = billing_rollups.BILLABLE
        payments = Payment.objects.filter(billable)
        return list(
            billing_rollups.grouped(
                events=SubscriptionEvent.objects.filter(billable, at__gte=x, at__lt=y),
                payments=billing_rollups.paid(payments).filter(paid_at__gte=x, paid_at__lt=y),
                refunds=billing_rollups.refunded(payments).filter(refunded_at__gte=x, refunded_at__lt=y),
                users=User.objects.billable().filter(date_joined__gte=x, date_joined__lt=y),
                hourly=False,
            )
        )

    for _hour, (currency, plan, country, _billable), values in history.remembered(("rollup_raw", x, y), read):
        bucket = target.setdefault((currency, plan, country), {})
        for name, value in values.items():
            bucket[name] = bucket.get(name, 0) + value


def cumulative(bounds: Sequence[datetime.datetime]) -> list[Sums]:
    """Balances: the sums over ``[FAR_PAST, bounds[i])`` for each instant (ascending).

    Each balance read is remembered within ``history.one_reading()``, so asking again for an
    instant read before (the close, for the breakdown by country) costs no query.
    """
    known = [history.recall(("rollup_balance", t)) for t in bounds]
    if all(balance is not None for balance in known):
        return known
    spans = sums([FAR_PAST, *bounds])
    out, running = [], {}
    for t, span in zip(bounds, spans, strict=True):
        merged = {key: dict(values) for key, values in running.items()}
        for key, values in span.items():
            bucket = merged.setdefault(key, {})
            for name, value in values.items():
                bucket[name] = bucket.get(name, 0) + value
        out.append(merged)
        history.remember(("rollup_balance", t), merged)
        running = merged
    return out


def total(rows: Sums, name: str, **match) -> Decimal | int:
    """The sum of ``name`` over the keys matching ``currency``/``plan``/``country``."""
    index = {"currency": 0, "plan": 1, "country": 2}
    return sum(
        (values.get(name, 0) for key, values in rows.items() if all(key[index[k]] == v for k, v in match.items())),
        0,
    )


def by(rows: Sums, field: str, name: str, *, present: str | None = None, **match) -> dict:
    """``{value of field: sum of name}`` over the matching keys; a value appears when ``present`` (a count) is."""
    index = {"currency": 0, "plan": 1, "country": 2}
    out: dict = {}
    for key, values in rows.items():
        if not all(key[index[k]] == v for k, v in match.items()):
            continue
        if present is not None and not values.get(present):
            continue
        group = key[index[field]]
        out[group] = out.get(group, 0) + values.get(name, 0)
    return out


def label_spans(
    start: datetime.datetime, close: datetime.datetime, starts: Sequence[datetime.datetime], labels: Sequence[str]
) -> tuple[list[datetime.datetime], list[str]]:
    """``[start, close)`` cut at the bucket starts inside it, each span with the label ``revenue.bucket_label``
    gives its rows (the bucket whose start is the last at or before the span's, else the first)."""
    bounds = [start, *(at for at in starts[1:] if start < at < close), close]
    names = [labels[bisect.bisect_right(list(starts[1:]), at)] for at in bounds[:-1]]
    return bounds, names
