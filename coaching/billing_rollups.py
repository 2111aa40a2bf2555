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
the bulk seeders call ``users_changed`` after their ``bulk_create``. ``manage.py billing_rollups_rebuild``
rebuilds the table from the records; ``rebuild(check=True)`` reports drift.
"""

from __future__ import annotations

import contextlib
import datetime
from collections import defaultdict
from collections.abc import Iterable, Iterator
from decimal import Decimal

from django.db import transaction

from .models import BillingBucket, Payment, Subscription, SubscriptionEvent, User
from .rollups import _execute, _upsert_sql

UTC = datetime.UTC
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
GRAIN = BillingBucket.Grain
PAST_DUE = Subscription.Status.PAST_DUE
PAID_STATUSES = (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED, Payment.Status.PARTIALLY_REFUNDED)
ZERO = Decimal(0)

EVENT_FIELDS = (
    "user_id",
    "at",
    "currency",
    "plan_before",
    "plan_after",
    "status_before",
    "status_after",
    "paying_before",
    "paying_after",
    "mrr_before",
    "mrr_after",
    "paying_users_delta",
    "plan_after_users_delta",
    "plan_before_users_delta",
    *SubscriptionEvent.MOVEMENTS,
)
PAYMENT_FIELDS = ("user_id", "currency", "status", "amount", "paid_at", "refunded_amount", "refunded_at")
USER_FIELDS = ("pk", "date_joined")
# Key: (currency, plan, country, billable); a contribution is (instant, key, {sum: amount}).
Key = tuple[str, str, str, bool]
Contribution = tuple[datetime.datetime, Key, dict]


def hour_floor(at: datetime.datetime) -> datetime.datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_floor(at: datetime.datetime) -> datetime.datetime:
    return hour_floor(at).replace(hour=0)


def billable_of(is_staff: bool, is_superuser: bool, is_test_account: bool) -> bool:
    """``User.objects.billable()`` for one user's flags."""
    return not (is_staff or is_superuser or is_test_account)


# -- contributions ------------------------------------------------------------------------------


def event_contributions(row: dict, country: str, billable: bool) -> list[Contribution]:
    """A subscription event's two halves (``row``: the ``EVENT_FIELDS`` values)."""
    at, currency = row["at"], row["currency"]
    mrr_after, mrr_before = Decimal(row["mrr_after"]), Decimal(row["mrr_before"])
    after = {
        "mrr": mrr_after,
        "past_due_mrr": mrr_after if row["status_after"] == PAST_DUE else ZERO,
        "subscriptions": 1 if row["paying_after"] else 0,
        "plan_users": row["plan_after_users_delta"],
        "paying_users": row["paying_users_delta"],
        "events": 1,
        **{name: Decimal(row[name]) for name in SubscriptionEvent.MOVEMENTS},
    }
    before = {
        "mrr": -mrr_before,
        "past_due_mrr": -mrr_before if row["status_before"] == PAST_DUE else ZERO,
        "subscriptions": -1 if row["paying_before"] else 0,
        "plan_users": row["plan_before_users_delta"],
    }
    return [
        (at, (currency, row["plan_after"], country, billable), after),
        (at, (currency, row["plan_before"], country, billable), before),
    ]


def payment_contributions(row: dict, country: str, billable: bool) -> list[Contribution]:
    """A payment's amount when paid and its refund when refunded (the rules of ``analytics.billing.revenue``)."""
    out = []
    key = (row["currency"], "", country, billable)
    if row["status"] in PAID_STATUSES and row["paid_at"] is not None:
        out.append((row["paid_at"], key, {"paid": Decimal(row["amount"]), "payments": 1}))
    if row["refunded_amount"] and row["refunded_amount"] > 0 and row["refunded_at"] is not None:
        out.append((row["refunded_at"], key, {"refunded": Decimal(row["refunded_amount"]), "refunds": 1}))
    return out


def signup_contributions(row: dict, country: str, billable: bool) -> list[Contribution]:
    return [(row["date_joined"], ("", "", country, billable), {"signups": 1})]


def accumulate(contributions: Iterable[Contribution], *, sign: int = 1, into: dict | None = None) -> dict:
    """``{(grain, start, *key): {sum: amount}}``: every contribution added to its hour and its day."""
    buckets: dict = into if into is not None else defaultdict(dict)
    for at, key, sums in contributions:
        hour = hour_floor(at)
        for bucket in ((GRAIN.HOUR, hour, *key), (GRAIN.DAY, hour.replace(hour=0), *key)):
            target = buckets[bucket]
            for name, value in sums.items():
                if value:
                    target[name] = target.get(name, 0) + sign * value
    return buckets


# -- reading the records -------------------------------------------------------------------------


def _people(user_ids: Iterable) -> dict:
    """``{user id: (country, billable)}``."""
    ids = list(user_ids)
    out = {}
    for first in range(0, len(ids), 1000):
        rows = User.objects.filter(pk__in=ids[first : first + 1000]).values_list(
            "pk", "country", "is_staff", "is_superuser", "is_test_account"
        )
        out.update({pk: (country, billable_of(*flags)) for pk, country, *flags in rows})
    return out


def records(
    *, events=None, payments=None, users=None, people: dict | None = None, chunk: int = 20_000
) -> Iterator[Contribution]:
    """The contributions of these querysets' rows (``None``: none of that kind), each user's country
    and billable flag read once (``people`` may give them, e.g. a user's state before a change)."""
    people = dict(people or {})

    def person(user_id):
        if user_id not in people:
            people.update(_people([user_id]))
        return people[user_id]

    sources = (
        (events, EVENT_FIELDS, event_contributions, "user_id"),
        (payments, PAYMENT_FIELDS, payment_contributions, "user_id"),
        (users, USER_FIELDS, signup_contributions, "pk"),
    )
    for queryset, fields, contribute, owner in sources:
        if queryset is None:
            continue
        batch: list[dict] = []
        for row in queryset.order_by().values(*fields).iterator(chunk_size=chunk):
            batch.append(row)
            if len(batch) >= chunk:
                yield from _contribute(batch, contribute, owner, people, person)
                batch = []
        yield from _contribute(batch, contribute, owner, people, person)


def _contribute(batch, contribute, owner, people, person) -> Iterator[Contribution]:
    missing = {row[owner] for row in batch} - people.keys()
    if missing:
        people.update(_people(missing))
    for row in batch:
        yield from contribute(row, *person(row[owner]))


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
    events = SubscriptionEvent.objects.filter(user_id__in=ids)
    with transaction.atomic():
        before = accumulate(records(events=events), sign=-1)
        yield
        write(accumulate(records(events=events), into=before))


def users_added(user_ids: Iterable, *, events: bool = True, payments: bool = True, signups: bool = True) -> None:
    """Add these users' records (bulk seeders, after their ``bulk_create``)."""
    ids = list(set(user_ids))
    for first in range(0, len(ids), 2000):
        part = ids[first : first + 2000]
        write(
            accumulate(
                records(
                    events=SubscriptionEvent.objects.filter(user_id__in=part) if events else None,
                    payments=Payment.objects.filter(user_id__in=part) if payments else None,
                    users=User.objects.filter(pk__in=part) if signups else None,
                )
            )
        )


def payments_added(payment_ids: Iterable, *, sign: int = 1) -> None:
    write(accumulate(records(payments=Payment.objects.filter(pk__in=list(payment_ids))), sign=sign))


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
    """A saved user whose country, billable flags or join date change: take the user's records out."""
    instance._billing_rollup_moved = False
    if instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and not set(update_fields) & set(USER_KEYS):
        return
    stored = User.objects.filter(pk=instance.pk).values(*USER_KEYS).first()
    if stored is None or all(stored[key] == getattr(instance, key) for key in USER_KEYS):
        return
    person = {
        instance.pk: (
            stored["country"],
            billable_of(stored["is_staff"], stored["is_superuser"], stored["is_test_account"]),
        )
    }
    out = accumulate(_user_records(instance.pk, person), sign=-1)
    write(out)
    instance._billing_rollup_moved = True


def _user_records(user_id, people=None) -> Iterator[Contribution]:
    return records(
        events=SubscriptionEvent.objects.filter(user_id=user_id),
        payments=Payment.objects.filter(user_id=user_id),
        users=User.objects.filter(pk=user_id),
        people=people,
    )


def user_post_save(instance: User, created: bool) -> None:
    if created:
        write(accumulate(records(users=User.objects.filter(pk=instance.pk))))
    elif getattr(instance, "_billing_rollup_moved", False):
        write(accumulate(_user_records(instance.pk)))
        instance._billing_rollup_moved = False


def user_pre_delete(instance: User) -> None:
    """Deleting a user: take the sign-up out (its events and payments go by their own delete signals)."""
    write(accumulate(records(users=User.objects.filter(pk=instance.pk)), sign=-1))


def event_pre_delete(instance: SubscriptionEvent) -> None:
    """A subscription (or its user) deleted takes its events along: take each out as stored."""
    write(accumulate(records(events=SubscriptionEvent.objects.filter(pk=instance.pk)), sign=-1))


# -- rebuilding ----------------------------------------------------------------------------------


def rebuild(*, check: bool = False, progress=None, chunk: int = 20_000) -> int:
    """Recompute every bucket from the records; the number of buckets that differed.

    With ``check`` nothing is written. ``progress(n)`` is called with the records read so far.
    """
    fresh: dict = defaultdict(dict)
    read = 0
    people = {
        pk: (country, billable_of(*flags))
        for pk, country, *flags in User.objects.values_list(
            "pk", "country", "is_staff", "is_superuser", "is_test_account"
        ).iterator(chunk_size=chunk)
    }
    sources = {
        "events": SubscriptionEvent.objects.all(),
        "payments": Payment.objects.all(),
        "users": User.objects.all(),
    }
    for name, queryset in sources.items():
        for contribution in records(**{name: queryset}, people=people, chunk=chunk):
            accumulate([contribution], into=fresh)
            read += 1
            if progress and read % chunk == 0:
                progress(read)
    fresh = {key: sums for key, sums in fresh.items() if any(sums.values())}
    stored = {
        tuple(row[name] for name in BillingBucket.KEYS): {name: row[name] for name in BillingBucket.SUMS if row[name]}
        for row in BillingBucket.objects.values(*BillingBucket.KEYS, *BillingBucket.SUMS).iterator(chunk_size=chunk)
    }
    stored = {_normal(key): sums for key, sums in stored.items() if sums}
    differed = sum(1 for key in fresh.keys() | stored.keys() if not _same(fresh.get(key, {}), stored.get(key, {})))
    if not check:
        with transaction.atomic():
            BillingBucket.objects.all().delete()
            rows = [
                BillingBucket(**dict(zip(BillingBucket.KEYS, key, strict=True)), **sums) for key, sums in fresh.items()
            ]
            BillingBucket.objects.bulk_create(rows, batch_size=5000)
    return differed


def _normal(key: tuple) -> tuple:
    grain, start, *rest = key
    return (grain, start.astimezone(UTC), *rest)


def _same(a: dict, b: dict) -> bool:
    return all(Decimal(a.get(name, 0) or 0) == Decimal(b.get(name, 0) or 0) for name in BillingBucket.SUMS)
