"""Numbers at an instant, from the history: MRR (and its past-due part), paying subscriptions,
paying users, ARPU; and the two single-pass readers the summary builds its breakdowns from.

Each number is the sum of its changes before the instant (``history`` explains why). The
readers ``snapshot`` and ``customers`` compute the same sums for many instants and breakdowns in
one pass over the events; the one-number functions below are those readers asked one question,
so the page, the API and the tests all run the same SQL.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from decimal import Decimal

from django.db import connection
from django.db.models import IntegerField, Q, QuerySet, Sum

from coaching.models import Plan, Subscription, User

from . import history
from .history import PAYING_CHANGE, count_change, dec, mrr_change, summed

PAST_DUE = Subscription.Status.PAST_DUE


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Sums of changes before ``at``, per currency (amounts unrounded; read them through the methods)."""

    at: datetime.datetime
    mrr_raw: dict[str, Decimal]
    past_due_raw: dict[str, Decimal]
    subscriptions: int
    paying_users: int
    plan_mrr_raw: dict[str, dict[str, Decimal]] | None  # currency -> plan -> amount (None: not read)
    plan_subscriptions: dict[str, int] | None

    def mrr(self) -> dict[str, Decimal]:
        return history.money(self.mrr_raw)

    def mrr_past_due(self, currency: str) -> Decimal:
        return history.cents(self.past_due_raw.get(currency))

    def plan_mrr(self, plan: str, currency: str) -> Decimal:
        if self.plan_mrr_raw is None:
            raise ValueError("This snapshot was read without the breakdown by plan (by_plan=True).")
        return history.cents(self.plan_mrr_raw.get(currency, {}).get(plan))


def paid_plan_codes() -> list[str]:
    return list(
        Plan.objects.filter(Q(price_monthly__gt=0) | Q(price_annual__gt=0))
        .order_by("sort_order")
        .values_list("code", flat=True)
    )


def snapshot(events: QuerySet, *, at: datetime.datetime, by_plan: bool = False) -> Snapshot:
    """The balances at ``at`` from one pass over the events before it (see ``snapshots``)."""
    return snapshots(events, at=[at], by_plan_at=at if by_plan else None)[at]


def snapshots(
    events: QuerySet, *, at: Sequence[datetime.datetime], by_plan_at: datetime.datetime | None = None
) -> dict[datetime.datetime, Snapshot]:
    """Balances at each instant of ``at``, in one pass over the events before the latest, per currency.

    MRR, its past-due part, paying subscriptions and paying users; at ``by_plan_at`` also MRR and
    subscriptions per paid plan. Each is ``SUM(change) FILTER (WHERE at < t)``. Remembered for the
    rest of a ``history.one_reading()`` block, so asking for several instants at once, then one at
    a time, reads the table once.
    """
    key = str(events.query)
    found = {t: history.recall(("snapshot", key, t)) for t in at}
    missing = [t for t, snap in found.items() if snap is None or (t == by_plan_at and snap.plan_mrr_raw is None)]
    if missing:
        for t, snap in _snapshots(events, at=missing, by_plan_at=by_plan_at).items():
            history.remember(("snapshot", key, t), snap)
            found[t] = snap
    return found


def _snapshots(
    events: QuerySet, *, at: Sequence[datetime.datetime], by_plan_at: datetime.datetime | None
) -> dict[datetime.datetime, Snapshot]:
    plans = paid_plan_codes() if by_plan_at in at else []
    past_due = mrr_change(Q(status_after=PAST_DUE), Q(status_before=PAST_DUE))
    sums = {}
    for k, t in enumerate(at):
        sums[f"mrr_{k}"] = summed(mrr_change(), before=t)
        sums[f"past_due_{k}"] = summed(past_due, before=t)
        sums[f"subs_{k}"] = summed(PAYING_CHANGE, before=t, output_field=IntegerField())
        sums[f"users_{k}"] = summed("paying_users_delta", before=t, output_field=IntegerField())
    for i, code in enumerate(plans):
        on_plan = mrr_change(Q(plan_after=code), Q(plan_before=code))
        paying_on_plan = count_change(Q(paying_after=True, plan_after=code), Q(paying_before=True, plan_before=code))
        sums[f"plan_mrr{i}"] = summed(on_plan, before=by_plan_at)
        sums[f"plan_subs{i}"] = summed(paying_on_plan, before=by_plan_at, output_field=IntegerField())
    rows = list(events.filter(at__lt=max(at)).values("currency").annotate(**sums).order_by())
    return {
        t: Snapshot(
            at=t,
            mrr_raw={row["currency"]: dec(row[f"mrr_{k}"]) for row in rows},
            past_due_raw={row["currency"]: dec(row[f"past_due_{k}"]) for row in rows},
            subscriptions=sum(row[f"subs_{k}"] or 0 for row in rows),
            paying_users=sum(row[f"users_{k}"] or 0 for row in rows),
            plan_mrr_raw=None
            if t != by_plan_at
            else {row["currency"]: {code: dec(row[f"plan_mrr{i}"]) for i, code in enumerate(plans)} for row in rows},
            plan_subscriptions=None
            if t != by_plan_at
            else {code: sum(row[f"plan_subs{i}"] or 0 for row in rows) for i, code in enumerate(plans)},
        )
        for k, t in enumerate(at)
    }


def mrr(events: QuerySet, *, at: datetime.datetime) -> dict[str, Decimal]:
    """Monthly recurring revenue at ``at``, per currency.

    ``sum(mrr_after - mrr_before)`` over events before ``at``: the monthly price (annual price / 12)
    of every subscription active or past due on a paid plan at ``at``, rounded once to cents.
    """
    return snapshot(events, at=at).mrr()


def mrr_past_due(events: QuerySet, *, at: datetime.datetime, currency: str) -> Decimal:
    """The part of MRR at ``at`` from past-due subscriptions (at risk while the card is retried)."""
    return snapshot(events, at=at).mrr_past_due(currency)


def active_subscriptions(events: QuerySet, *, at: datetime.datetime) -> int:
    """Paying subscriptions (active or past due, paid plan) at ``at``: ``count(*)``, not users."""
    return snapshot(events, at=at).subscriptions


@dataclasses.dataclass(frozen=True)
class CountryCustomers:
    paying_users: int  # at the close
    mrr: Decimal  # at the close, in the pass's currency


@dataclasses.dataclass(frozen=True)
class Customers:
    """Paying users at the opening and the close; at the close by country (with MRR) and by plan."""

    at_opening: int
    at_close: int
    by_country: dict[str, CountryCustomers]
    by_plan: dict[str, int]


def customers(events: QuerySet, *, opening: datetime.datetime, close: datetime.datetime, currency: str) -> Customers:
    """Distinct paying users in one pass: one row per user, then summed by the user's country.

    Per user (events before the later of opening and close): paying at the opening
    (``sum(paying_users_delta) > 0`` before it), paying at the close, paying on each paid plan at
    the close, and MRR in ``currency`` at the close. Only those per-user rows
    are joined to their user for the country. Remembered within ``history.one_reading()``.
    """
    key = ("customers", str(events.query), opening, close, currency)
    found = history.recall(key)
    if found is None:
        found = _customers(events, opening=opening, close=close, currency=currency)
        history.remember(key, found)
    return found


def _customers(events: QuerySet, *, opening: datetime.datetime, close: datetime.datetime, currency: str) -> Customers:
    plans = paid_plan_codes()
    in_currency = Q(currency=currency)
    per_user = {
        "at_opening": summed("paying_users_delta", before=opening, output_field=IntegerField()),
        "at_close": summed("paying_users_delta", before=close, output_field=IntegerField()),
        **{
            f"plan{i}": summed(
                count_change(Q(paying_after=True, plan_after=code), Q(paying_before=True, plan_before=code)),
                before=close,
                output_field=IntegerField(),
            )
            for i, code in enumerate(plans)
        },
        "mrr": Sum(mrr_change(), filter=Q(at__lt=close) & in_currency, output_field=history.MRR_FIELD),
    }
    inner = events.filter(at__lt=max(opening, close)).values("user_id").annotate(**per_user).order_by()
    inner_sql, params = inner.query.sql_with_params()
    quote = connection.ops.quote_name
    # Per user: a count above zero means "yes"; money is summed as it is.
    counts = [name for name in per_user if name != "mrr"]
    columns = ", ".join(
        [*(f"SUM(CASE WHEN f.{quote(name)} > 0 THEN 1 ELSE 0 END)" for name in counts), f"SUM(f.{quote('mrr')})"]
    )
    users = f"{quote(User._meta.db_table)} u ON u.{quote(User._meta.pk.column)} = f.{quote('user_id')}"
    with connection.cursor() as cursor:
        # ORM conditions inside; outside, only "add the per-user rows up by the user's country",
        # which the ORM cannot say (a join to an aggregated subquery).
        cursor.execute(f"SELECT u.{quote('country')}, {columns} FROM ({inner_sql}) f JOIN {users} GROUP BY 1", params)
        rows = cursor.fetchall()
    by_country, by_plan = {}, dict.fromkeys(plans, 0)
    at_opening = at_close = 0
    for country, opened, closed, *rest in rows:
        plan_flags, amount = rest[: len(plans)], rest[len(plans)]
        at_opening += int(opened or 0)
        at_close += int(closed or 0)
        for code, n in zip(plans, plan_flags, strict=True):
            by_plan[code] += int(n or 0)
        by_country[country] = CountryCustomers(paying_users=int(closed or 0), mrr=history.cents(dec(amount)))
    return Customers(
        at_opening=at_opening,
        at_close=at_close,
        by_country=by_country,
        by_plan=by_plan,
    )


def paying_users(events: QuerySet, *, at: datetime.datetime) -> int:
    """Users with at least one subscription active or past due on a paid plan at ``at``.

    ``sum(paying_users_delta)`` over events before ``at`` (read with the other balances): each
    user's change from not paying to paying is +1, back is -1 (several subscriptions count once).
    """
    return snapshot(events, at=at).paying_users


def arpu_of(mrr_amount: Decimal, paying: int) -> Decimal | None:
    """``mrr / paying users`` in cents; ``None`` when nobody pays."""
    return history.cents(mrr_amount / paying) if paying else None


def arpu(events: QuerySet, *, at: datetime.datetime) -> Decimal | None:
    """Average revenue per paying user at ``at``: MRR (default currency) / paying users at ``at``."""
    return arpu_of(mrr(events, at=at)[history.default_currency()], paying_users(events, at=at))
