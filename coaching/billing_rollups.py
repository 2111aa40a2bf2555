"""The billing roll-up (``BillingBucket``): the history's and the payments' changes added up per UTC hour and day.

Every record contributes to the hour and the day its instant falls in (UTC), keyed by currency,
plan, the user's country and whether the user is billable:

* a subscription event, in two halves: its state *after* under ``plan_after`` (MRR, past-due MRR,
  one paying subscription, ``plan_after_users_delta``, the customer's ``paying_users_delta`` and
  the MRR movements) and its state *before*, negated, under ``plan_before``; summed over a span,
  the halves give exactly the ``SUM(mrr_after - mrr_before)``-style sums of ``analytics.billing``;
* a payment: its amount at ``paid_at`` when paid (succeeded, refunded, partially refunded), its
  refund at ``refunded_at`` when one was made;
* a user: one sign-up at ``date_joined``.

Kept current in the writer's transaction: the billing service re-adds a user's events around
every write (``user_events_changed``), payment and user signals re-add a payment or a user when it
is saved or deleted (a changed country or billable flag moves the user's whole contribution), and
the bulk seeders call ``users_added`` after their ``bulk_create``. ``manage.py billing_rollups_rebuild``
rebuilds the table from the records; ``rebuild(check=True)`` reports drift. The sums are grouped
in SQL (``grouped``), by the same rules for a rebuild, a user's re-add and the raw minutes a
reader adds to the buckets (``analytics.billing.rollup``).
"""

from __future__ import annotations

import contextlib
import datetime
from collections import defaultdict
from collections.abc import Iterable, Iterator
from decimal import Decimal

from django.db import transaction
from django.db.models import BooleanField, Case, Count, DecimalField, F, Q, Sum, Value, When
from django.db.models.functions import TruncHour

from .models import BillingBucket, Payment, Subscription, SubscriptionEvent, User
from .rollups import _execute, _upsert_sql

UTC = datetime.UTC
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
GRAIN = BillingBucket.Grain
PAST_DUE = Subscription.Status.PAST_DUE
PAID_STATUSES = (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED, Payment.Status.PARTIALLY_REFUNDED)
ZERO = Decimal(0)

# Key: (currency, plan, country, billable).
Key = tuple[str, str, str, bool]


def hour_floor(at: datetime.datetime) -> datetime.datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_floor(at: datetime.datetime) -> datetime.datetime:
    return hour_floor(at).replace(hour=0)


# -- contributions, grouped in SQL --------------------------------------------------------------

BILLABLE = Q(user__is_staff=False, user__is_superuser=False, user__is_test_account=False)
MONEY = DecimalField(max_digits=20, decimal_places=6)


def _when(condition: Q, field: str):
    return Case(When(condition, then=F(field)), default=Value(ZERO), output_field=MONEY)


def _billable_flag(prefix: str = "user__"):
    flags = {f"{prefix}{name}": False for name in ("is_staff", "is_superuser", "is_test_account")}
    return Case(When(Q(**flags), then=Value(True)), default=Value(False), output_field=BooleanField())


# Each kind of record: (queryset, instant field, key columns, sums, sign of each sum).
def _reads(*, events, payments, users, hourly: bool) -> list:
    def key(queryset, instant: str, plan, currency="currency", country="user__country", prefix="user__"):
        columns = {
            "k_currency": F(currency) if currency else Value(""),
            "k_plan": F(plan) if plan else Value(""),
            "k_country": F(country),
            "k_billable": _billable_flag(prefix),
        }
        if hourly:
            columns["k_hour"] = TruncHour(instant, tzinfo=UTC)
        return queryset.order_by().values(**columns)

    reads = []
    if events is not None:
        movements = {name: Sum(name) for name in SubscriptionEvent.MOVEMENTS}
        reads.append(
            (
                key(events, "at", "plan_after"),
                {
                    "mrr": Sum("mrr_after"),
                    "past_due_mrr": Sum(_when(Q(status_after=PAST_DUE), "mrr_after")),
                    "subscriptions": Count("pk", filter=Q(paying_after=True)),
                    "plan_users": Sum("plan_after_users_delta"),
                    "paying_users": Sum("paying_users_delta"),
                    "events": Count("pk"),
                    **movements,
                },
                1,
            )
        )
        reads.append(
            (
                key(events, "at", "plan_before"),
                {
                    "mrr": Sum("mrr_before"),
                    "past_due_mrr": Sum(_when(Q(status_before=PAST_DUE), "mrr_before")),
                    "subscriptions": Count("pk", filter=Q(paying_before=True)),
                    "plan_users": Sum("plan_before_users_delta"),
                },
                -1,  # plan_users excepted (a signed delta already): see _signed
            )
        )
    if payments is not None:
        paid, refunded = payments
        if paid is not None:
            reads.append((key(paid, "paid_at", None), {"paid": Sum("amount"), "payments": Count("pk")}, 1))
        if refunded is not None:
            reads.append(
                (key(refunded, "refunded_at", None), {"refunded": Sum("refunded_amount"), "refunds": Count("pk")}, 1)
            )
    if users is not None:
        reads.append(
            (key(users, "date_joined", None, currency=None, country="country", prefix=""), {"signups": Count("pk")}, 1)
        )
    return reads


def _signed(name: str, value, sign: int):
    return value if name == "plan_users" else sign * value


def grouped(
    *,
    events=None,
    payments=None,
    refunds=None,
    users=None,
    hourly: bool = True,
) -> Iterator[tuple[datetime.datetime | None, Key, dict]]:
    """The contributions of these querysets' rows, added up per key (and per UTC hour when ``hourly``).

    ``events``: subscription events (two halves each); ``payments``: payments paid (their amount);
    ``refunds``: payments refunded (their refund); ``users``: sign-ups. Each is filtered by the caller
    (``paid`` / ``refunded`` / ``signed_up`` give the rules). Yields ``(hour or None, key, sums)``.
    """
    reads = _reads(events=events, payments=(payments, refunds), users=users, hourly=hourly)
    for queryset, sums, sign in reads:
        for row in queryset.annotate(**sums).iterator(chunk_size=10_000):
            values = {name: _signed(name, row[name], sign) for name in sums if row[name]}
            if not values:
                continue
            key = (row["k_currency"], row["k_plan"], row["k_country"], row["k_billable"])
            yield row.get("k_hour"), key, values


def paid(payments):
    """Payments counted as paid at ``paid_at`` (``analytics.billing.revenue``'s rule)."""
    return payments.filter(status__in=PAID_STATUSES, paid_at__isnull=False)


def refunded(payments):
    """Payments with a refund counted at ``refunded_at``."""
    return payments.filter(refunded_amount__gt=0, refunded_at__isnull=False)


def of_users(user_ids, *, events: bool = True, payments: bool = True, signups: bool = True) -> dict:
    """``grouped`` keyword arguments for every record of these users."""
    ids = list(user_ids)
    return {
        "events": SubscriptionEvent.objects.filter(user_id__in=ids) if events else None,
        "payments": paid(Payment.objects.filter(user_id__in=ids)) if payments else None,
        "refunds": refunded(Payment.objects.filter(user_id__in=ids)) if payments else None,
        "users": User.objects.filter(pk__in=ids) if signups else None,
    }


def accumulate(contributions, *, sign: int = 1, into: dict | None = None) -> dict:
    """``{(grain, start, *key): {sum: amount}}``: every hourly contribution added to its hour and its day."""
    buckets: dict = into if into is not None else defaultdict(dict)
    for hour, key, sums in contributions:
        hour = hour.astimezone(UTC)
        for bucket in ((GRAIN.HOUR, hour, *key), (GRAIN.DAY, hour.replace(hour=0), *key)):
            target = buckets[bucket]
            for name, value in sums.items():
                target[name] = target.get(name, 0) + sign * value
    return buckets


def write(buckets: dict) -> None:
    """Add ``buckets`` (from ``accumulate``) to the table, one upsert per bucket."""
    statements = []
    for (grain, start, currency, plan, country, billable), sums in buckets.items():
        keys = {"grain": grain, "start": start, "currency": currency, "plan": plan, "country": country}
        keys["billable"] = billable
        statement = _upsert_sql(BillingBucket, keys, sums, BillingBucket.KEYS)
        if statement:
            statements.append(statement)
    for first in range(0, len(statements), 200):
        _execute(statements[first : first + 200])


# -- keeping it current --------------------------------------------------------------------------


@contextlib.contextmanager
def user_events_changed(user_ids: Iterable) -> Iterator[None]:
    """Around a write to these users' subscription events: take their events out before, put them back after.

    The billing service derives a user's customer columns over all the user's events after every
    write (an event written out of order changes earlier ones), so the whole user is re-added.
    """
    ids = list(set(user_ids))
    with transaction.atomic():
        before = accumulate(grouped(**of_users(ids, payments=False, signups=False)), sign=-1)
        yield
        write(accumulate(grouped(**of_users(ids, payments=False, signups=False)), into=before))


def users_added(user_ids: Iterable, *, events: bool = True, payments: bool = True, signups: bool = True) -> None:
    """Add these users' records (bulk seeders, after their ``bulk_create``)."""
    ids = list(set(user_ids))
    for first in range(0, len(ids), 5000):
        part = ids[first : first + 5000]
        write(accumulate(grouped(**of_users(part, events=events, payments=payments, signups=signups))))


def payments_added(payment_ids: Iterable, *, sign: int = 1) -> None:
    rows = Payment.objects.filter(pk__in=list(payment_ids))
    write(accumulate(grouped(payments=paid(rows), refunds=refunded(rows)), sign=sign))


# Signals: a payment or a user saved or deleted one at a time (admin, factories, services).


def payment_pre_save(instance: Payment) -> None:
    if instance.pk is not None and not instance._state.adding:
        payments_added([instance.pk], sign=-1)  # as stored; post_save adds it back as saved


def payment_post_save(instance: Payment) -> None:
    payments_added([instance.pk])


def payment_pre_delete(instance: Payment) -> None:
    payments_added([instance.pk], sign=-1)


USER_KEYS = ("country", "is_staff", "is_superuser", "is_test_account", "date_joined")


def user_pre_save(instance: User, update_fields=None) -> None:
    """A saved user whose country, billable flags or join date change: take the user's records out
    (read as stored: the country and flags before the save), to put them back after it."""
    instance._billing_rollup_moved = False
    if instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and not set(update_fields) & set(USER_KEYS):
        return
    stored = User.objects.filter(pk=instance.pk).values(*USER_KEYS).first()
    if stored is None or all(stored[key] == getattr(instance, key) for key in USER_KEYS):
        return
    write(accumulate(grouped(**of_users([instance.pk])), sign=-1))
    instance._billing_rollup_moved = True


def user_post_save(instance: User, created: bool) -> None:
    if created:
        write(accumulate(grouped(**of_users([instance.pk], events=False, payments=False))))
    elif getattr(instance, "_billing_rollup_moved", False):
        write(accumulate(grouped(**of_users([instance.pk]))))
        instance._billing_rollup_moved = False


def user_pre_delete(instance: User) -> None:
    """Deleting a user: take the sign-up out (its events and payments go by their own delete signals)."""
    write(accumulate(grouped(**of_users([instance.pk], events=False, payments=False)), sign=-1))


def event_pre_delete(instance: SubscriptionEvent) -> None:
    """A subscription (or its user) deleted takes its events along: take each out as stored."""
    write(accumulate(grouped(events=SubscriptionEvent.objects.filter(pk=instance.pk)), sign=-1))


# -- rebuilding ----------------------------------------------------------------------------------


def rebuild(*, check: bool = False, progress=None) -> int:
    """Recompute every bucket from the records; the number of buckets that differed.

    Grouped sums per UTC hour in the database (one query per kind of record), added up into
    days here. With ``check`` nothing is written. ``progress(label)`` is called after each read.
    """
    fresh: dict = defaultdict(dict)
    everything = {
        "events": SubscriptionEvent.objects.all(),
        "payments": paid(Payment.objects.all()),
        "refunds": refunded(Payment.objects.all()),
        "users": User.objects.all(),
    }
    for name, queryset in everything.items():
        accumulate(grouped(**{name: queryset}), into=fresh)
        if progress:
            progress(name)
    fresh = {key: sums for key, sums in fresh.items() if any(sums.values())}
    stored = {}
    for row in BillingBucket.objects.values(*BillingBucket.KEYS, *BillingBucket.SUMS).iterator(chunk_size=10_000):
        sums = {name: row[name] for name in BillingBucket.SUMS if row[name]}
        if sums:
            grain, start, *rest = (row[name] for name in BillingBucket.KEYS)
            stored[(grain, start.astimezone(UTC), *rest)] = sums
    differed = sum(1 for key in fresh.keys() | stored.keys() if not _same(fresh.get(key, {}), stored.get(key, {})))
    if not check:
        with transaction.atomic():
            BillingBucket.objects.all().delete()
            rows = [
                BillingBucket(**dict(zip(BillingBucket.KEYS, key, strict=True)), **sums) for key, sums in fresh.items()
            ]
            BillingBucket.objects.bulk_create(rows, batch_size=5000)
    return differed


def _same(a: dict, b: dict) -> bool:
    return all(Decimal(a.get(name, 0) or 0) == Decimal(b.get(name, 0) or 0) for name in BillingBucket.SUMS)
