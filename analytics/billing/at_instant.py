"""Numbers at an instant, from the history: MRR (and its past-due part), paying subscriptions,
paying users, ARPU; and the two single-pass readers the summary builds its breakdowns from.

Each number is the sum of its changes before the instant (``history`` explains why). The
readers ``snapshots`` and ``country_customers`` compute the same sums for many instants and breakdowns in
one pass over the events; the one-number functions below are those readers asked one question,
so the page, the API and the tests all run the same SQL.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from decimal import Decimal

from django.db.models import Case, F, IntegerField, Q, QuerySet, Sum, Value, When

from coaching.models import Plan, Subscription

from . import history, rollup
from .history import PAYING_CHANGE, count_change, dec, mrr_change

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
    plan_users: dict[str, int] | None  # distinct users paying on each plan (one on two plans counts under each)

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
    """Sum each change once per stretch between the instants (a ``CASE`` picks the stretch), then add
    the stretches up in Python: the balance at ``t`` is the sum over the stretches before ``t``.
    Cheaper than a filtered sum per instant (each row's arithmetic is done once, not once per instant).
    """
    plans = paid_plan_codes() if by_plan_at in at else []
    instants = sorted(set(at))
    if rollup.answers(events):
        return _snapshots_rolled(instants, at=at, by_plan_at=by_plan_at, plans=plans)
    stretch = history.ranked("at", bounds=instants[:-1], values=list(range(len(instants))), output_field=IntegerField())
    sums = {
        "mrr": Sum(mrr_change(), output_field=history.MRR_FIELD),
        "past_due": Sum(
            mrr_change(Q(status_after=PAST_DUE), Q(status_before=PAST_DUE)), output_field=history.MRR_FIELD
        ),
        "subs": Sum(PAYING_CHANGE, output_field=IntegerField()),
        "users": Sum("paying_users_delta"),
    }
    for i, code in enumerate(plans):
        users_on_plan = Case(
            When(plan_after=code, then=F("plan_after_users_delta")), default=Value(0), output_field=IntegerField()
        ) + Case(
            When(plan_before=code, then=F("plan_before_users_delta")), default=Value(0), output_field=IntegerField()
        )
        paying_on_plan = count_change(Q(paying_after=True, plan_after=code), Q(paying_before=True, plan_before=code))
        sums[f"plan_mrr{i}"] = Sum(mrr_change(Q(plan_after=code), Q(plan_before=code)), output_field=history.MRR_FIELD)
        sums[f"plan_subs{i}"] = Sum(paying_on_plan, output_field=IntegerField())
        sums[f"plan_users{i}"] = Sum(users_on_plan, output_field=IntegerField())
    rows = list(
        events.filter(at__lt=instants[-1])
        .annotate(stretch=stretch)
        .values("currency", "stretch")
        .annotate(**sums)
        .order_by()
    )

    def upto(t: datetime.datetime) -> list[dict]:
        # Stretch k holds the events in [instants[k-1], instants[k]): the balance at instants[j] is 0..j.
        return [row for row in rows if row["stretch"] <= instants.index(t)]

    def total(selected: list[dict], name: str, *, money: bool = True) -> dict[str, Decimal] | int:
        if not money:
            return sum(row[name] or 0 for row in selected)
        out: dict[str, Decimal] = {}
        for row in selected:
            out[row["currency"]] = out.get(row["currency"], history.ZERO) + dec(row[name])
        return out

    snaps = {}
    for t in at:
        before = upto(t)
        by_plan = t == by_plan_at
        snaps[t] = Snapshot(
            at=t,
            mrr_raw=total(before, "mrr"),
            past_due_raw=total(before, "past_due"),
            subscriptions=total(before, "subs", money=False),
            paying_users=total(before, "users", money=False),
            plan_mrr_raw=_by_currency_plan(before, plans) if by_plan else None,
            plan_subscriptions={code: total(before, f"plan_subs{i}", money=False) for i, code in enumerate(plans)}
            if by_plan
            else None,
            plan_users={code: total(before, f"plan_users{i}", money=False) for i, code in enumerate(plans)}
            if by_plan
            else None,
        )
    return snaps


def _snapshots_rolled(
    instants: list[datetime.datetime],
    *,
    at: Sequence[datetime.datetime],
    by_plan_at: datetime.datetime | None,
    plans: Sequence[str],
) -> dict[datetime.datetime, Snapshot]:
    """``_snapshots`` from the roll-up: the same sums, pre-added per hour and day (``analytics.billing.rollup``)."""
    balances = dict(zip(instants, rollup.cumulative(instants), strict=True))
    snaps = {}
    for t in at:
        rows = balances[t]
        by_plan = t == by_plan_at
        snaps[t] = Snapshot(
            at=t,
            mrr_raw=_decimals(rollup.by(rows, "currency", "mrr", present="events")),
            past_due_raw=_decimals(rollup.by(rows, "currency", "past_due_mrr", present="events")),
            subscriptions=int(rollup.total(rows, "subscriptions")),
            paying_users=int(rollup.total(rows, "paying_users")),
            plan_mrr_raw={
                currency: {code: dec(rollup.total(rows, "mrr", currency=currency, plan=code)) for code in plans}
                for currency in rollup.by(rows, "currency", "events", present="events")
            }
            if by_plan
            else None,
            plan_subscriptions={code: int(rollup.total(rows, "subscriptions", plan=code)) for code in plans}
            if by_plan
            else None,
            plan_users={code: int(rollup.total(rows, "plan_users", plan=code)) for code in plans} if by_plan else None,
        )
    return snaps


def _decimals(amounts: dict) -> dict[str, Decimal]:
    return {code: dec(amount) for code, amount in amounts.items()}


def _by_currency_plan(rows: list[dict], plans: Sequence[str]) -> dict[str, dict[str, Decimal]]:
    out: dict[str, dict[str, Decimal]] = {}
    for row in rows:
        per_plan = out.setdefault(row["currency"], dict.fromkeys(plans, history.ZERO))
        for i, code in enumerate(plans):
            per_plan[code] += dec(row[f"plan_mrr{i}"])
    return out


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


def country_customers(events: QuerySet, *, at: datetime.datetime, currency: str) -> dict[str, CountryCustomers]:
    """Paying users and MRR (in ``currency``) at ``at`` by the user's country, in one grouped sum.

    ``sum(paying_users_delta)`` and ``sum(mrr_after - mrr_before)`` over events before ``at``,
    grouped by the country on the user's profile: each user has one country, so the countries add
    up to the totals. Remembered within ``history.one_reading()``.
    """

    def read() -> dict[str, CountryCustomers]:
        if rollup.answers(events):
            (balance,) = rollup.cumulative([at])
            users = rollup.by(balance, "country", "paying_users", present="events")
            amounts = rollup.by(balance, "country", "mrr", present="events", currency=currency)
            return {
                country: CountryCustomers(paying_users=int(n), mrr=history.cents(dec(amounts.get(country))))
                for country, n in users.items()
            }
        rows = (
            events.filter(at__lt=at)
            .values("user__country")
            .annotate(
                users=Sum("paying_users_delta"),
                mrr=Sum(mrr_change(), filter=Q(currency=currency), output_field=history.MRR_FIELD),
            )
            .order_by()
        )
        return {
            row["user__country"]: CountryCustomers(paying_users=row["users"] or 0, mrr=history.cents(dec(row["mrr"])))
            for row in rows
        }

    return history.remembered(("country_customers", str(events.query), at, currency), read)


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
