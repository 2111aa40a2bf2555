"""Every write to a subscription, each recording its ``SubscriptionEvent`` in the same transaction.

Admin, the demo world, ``seed_demo``, the test factories and the data migration all come here, so
the history always explains the row: replaying a subscription's events gives its current plan,
cycle, status and price. Billing analytics read the history (``analytics.billing``), never the
mutable row, so a change today never moves a closed period's numbers.

Writes take ``at`` (default: now): when the change happened. A subscription's events are in time
order (a change dated before the subscription's last event is refused); a user's events need not
be written in order (a test or an import may build one subscription, then another that started
earlier): the derived customer columns of that user are recomputed after every write.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import billing_rollups
from .models import Plan, Subscription, SubscriptionEvent, User
from .models.billing import MRR_PLACES

Kind = SubscriptionEvent.Kind
Status = Subscription.Status
PAYING = (Status.ACTIVE, Status.PAST_DUE)
ENDED = (Status.CANCELLED, Status.EXPIRED)
ZERO = Decimal(0)


class SubscriptionError(ValueError):
    """A change that cannot be made; the message says why and what to do instead."""


def paid_plan_codes(plans=Plan) -> set[str]:
    """Codes of plans with a monthly or annual price above zero (``plans``: a model class, for migrations)."""
    return set(plans.objects.filter(Q(price_monthly__gt=0) | Q(price_annual__gt=0)).values_list("code", flat=True))


def subscription_mrr(*, plan: str, status: str, cycle: str, price: Decimal, paid_plans: set[str]) -> Decimal:
    """Monthly recurring revenue of one subscription state, to six places.

    ``price`` (monthly) or ``price / 12`` (annual) while ``active`` or ``past_due`` on a paid plan;
    zero otherwise (trialing, cancelled, expired, free).
    """
    if plan not in paid_plans or status not in PAYING:
        return ZERO
    monthly = Decimal(price) / 12 if cycle == Subscription.Cycle.ANNUAL else Decimal(price)
    return monthly.quantize(MRR_PLACES, rounding=ROUND_HALF_UP)


def _state(plan: str, cycle: str, status: str, price: Decimal, paid_plans: set[str]) -> dict:
    mrr = subscription_mrr(plan=plan, status=status, cycle=cycle, price=price, paid_plans=paid_plans)
    return {"plan": plan, "cycle": cycle, "status": status, "price": Decimal(price), "mrr": mrr, "paying": mrr > 0}


def _facts(kind: str, at: datetime.datetime, currency: str, before: dict | None, after: dict) -> dict:
    """The fact fields of one event: the state before (``None`` for a start) and after."""
    before = before or {"plan": "", "cycle": "", "status": "", "price": None, "mrr": ZERO, "paying": False}
    return {
        "kind": kind,
        "at": at,
        "currency": currency,
        "plan_before": before["plan"],
        "plan_after": after["plan"],
        "cycle_before": before["cycle"],
        "cycle_after": after["cycle"],
        "status_before": before["status"],
        "status_after": after["status"],
        "price_before": before["price"],
        "price_after": after["price"],
        "paying_before": before["paying"],
        "paying_after": after["paying"],
        "mrr_before": before["mrr"],
        "mrr_after": after["mrr"],
    }


def history_facts(row, *, paid_plans: set[str]) -> list[dict]:
    """A faithful history for a subscription row that has none (data migration, bulk writers).

    Started at ``started_at`` (status as the row says, or ``active`` when the row has ended);
    a cancellation request at ``cancelled_at`` when that precedes the end; ended at ``ended_at``
    (status ``cancelled``/``expired`` as the row says, else ``cancelled``).
    """
    ended_status = row.status if row.status in ENDED else Status.CANCELLED
    start_status = Status.ACTIVE if row.ended_at and row.status in ENDED else row.status
    state = _state(row.plan_id, row.billing_cycle, start_status, row.price, paid_plans)
    facts = [_facts(Kind.STARTED, row.started_at, row.currency, None, state)]
    requested = row.cancelled_at
    if requested and requested >= row.started_at and (row.ended_at is None or requested < row.ended_at):
        facts.append(_facts(Kind.CANCELLATION_REQUESTED, requested, row.currency, state, state))
    if row.ended_at:
        ended = _state(row.plan_id, row.billing_cycle, ended_status, row.price, paid_plans)
        facts.append(_facts(Kind.ENDED, row.ended_at, row.currency, state, ended))
    return facts


# -- customer columns -----------------------------------------------------------------------------


def movement_split(before: Decimal, after: Decimal, *, paid_before: bool) -> dict[str, Decimal]:
    """One customer's MRR change at one instant, as ChartMogul names it (signed amounts).

    From zero: ``new`` (first time) or ``reactivation`` (paid before); to zero: ``churned``;
    up: ``expansion``; down: ``contraction``. The parts add up to ``after - before``.
    """
    split = dict.fromkeys(SubscriptionEvent.MOVEMENTS, ZERO)
    if after == before:
        return split
    if before == 0:
        split["reactivation_mrr" if paid_before else "new_mrr"] = after
    elif after == 0:
        split["churned_mrr"] = -before
    else:
        split["expansion_mrr" if after > before else "contraction_mrr"] = after - before
    return split


def derive(events: Sequence) -> list:
    """Set the customer columns of one user's events (sorted by ``at``, then id); return those that changed.

    Walks the instants in order keeping each subscription's latest MRR, currency and paying state.
    Every event gets the customer's MRR in its currency and paying state after its instant; the
    last event of an instant (per currency) carries the instant's net movement and change in
    paying users, the others zero, so ending one plan and starting another at one instant is one
    expansion or contraction, never a churn and a reactivation.

    Two pointers make churn and retention range scans: the event where the customer stops paying
    (``paying_users_delta = -1``) carries the instant they next pay again (``customer_paying_again_at``,
    null while they have not), and the event of a ``new`` or ``reactivation`` movement carries the
    instant the customer's MRR in that currency last went to zero (``customer_mrr_zero_since``, null
    for ``new``). A later change only ever sets the first to an instant after every closed period
    it could move, so closed periods keep their numbers.
    """
    subs: dict = {}
    paid_ever: set[str] = set()
    zero_since: dict[str, datetime.datetime] = {}
    computed: list[tuple[object, dict]] = []
    waiting_loss: dict | None = None  # the values of the latest loss not yet followed by a return
    i = 0
    while i < len(events):
        j = i
        while j < len(events) and events[j].at == events[i].at:
            j += 1
        group = events[i:j]
        at = group[0].at
        before_mrr, before_paying = _totals(subs)
        before_plans = _paying_plans(subs)
        for event in group:
            subs[event.subscription_id] = (
                Decimal(event.mrr_after),
                event.currency,
                event.paying_after,
                event.plan_after,
            )
        after_mrr, after_paying = _totals(subs)
        plan_deltas = _plan_deltas(group, before_plans, _paying_plans(subs))
        last_of_currency = {event.currency: event for event in group}
        for event in group:
            values = dict.fromkeys(SubscriptionEvent.MOVEMENTS, ZERO)
            values["customer_mrr_zero_since"] = None
            if last_of_currency[event.currency] is event:
                b, a = before_mrr.get(event.currency, ZERO), after_mrr.get(event.currency, ZERO)
                values.update(movement_split(b, a, paid_before=event.currency in paid_ever))
                if b == 0 and a > 0:
                    values["customer_mrr_zero_since"] = zero_since.get(event.currency)
                elif b > 0 and a == 0:
                    zero_since[event.currency] = at
            values["customer_mrr_after"] = after_mrr.get(event.currency, ZERO)
            values["customer_paying_after"] = after_paying
            values["paying_users_delta"] = int(after_paying) - int(before_paying) if event is group[-1] else 0
            values["plan_after_users_delta"], values["plan_before_users_delta"] = plan_deltas.get(id(event), (0, 0))
            values["customer_paying_again_at"] = None
            if values["paying_users_delta"] > 0 and waiting_loss is not None:
                waiting_loss["customer_paying_again_at"] = at
                waiting_loss = None
            elif values["paying_users_delta"] < 0:
                waiting_loss = values
            computed.append((event, values))
        paid_ever |= {code for code, amount in after_mrr.items() if amount > 0}
        i = j
    changed = []
    for event, values in computed:
        if any(_differs(getattr(event, name), value) for name, value in values.items()):
            for name, value in values.items():
                setattr(event, name, value)
            changed.append(event)
    return changed


def _differs(old, new) -> bool:
    return old != new if not isinstance(new, Decimal) else Decimal(old) != new


def _totals(subs: dict) -> tuple[dict[str, Decimal], bool]:
    mrr: dict[str, Decimal] = {}
    for amount, currency, _paying, _plan in subs.values():
        mrr[currency] = mrr.get(currency, ZERO) + amount
    return mrr, any(paying for _amount, _currency, paying, _plan in subs.values())


def _paying_plans(subs: dict) -> set[str]:
    return {plan for _amount, _currency, paying, plan in subs.values() if paying}


def _plan_deltas(group: Sequence, before: set[str], after: set[str]) -> dict[int, tuple[int, int]]:
    """The instant's change in "this customer pays on plan p", per plan, put on one event of the instant.

    On the first event whose ``plan_after`` is p (as ``plan_after_users_delta``), else on the first
    whose ``plan_before`` is p (``plan_before_users_delta``): summing the first column by
    ``plan_after`` and the second by ``plan_before`` gives the distinct paying users per plan.
    """
    deltas: dict[int, list[int]] = {}
    for plan in before ^ after:
        change = 1 if plan in after else -1
        by_after = next((e for e in group if e.plan_after == plan), None)
        event, column = (by_after, 0) if by_after else (next(e for e in group if e.plan_before == plan), 1)
        deltas.setdefault(id(event), [0, 0])[column] += change
    return {key: (a, b) for key, (a, b) in deltas.items()}


def customer_history_derive(user_ids: Iterable, *, events=SubscriptionEvent) -> int:
    """Recompute the customer columns of these users' events from their facts; the number of rows changed."""
    changed = []
    ids = list(user_ids)
    for first in range(0, len(ids), 500):
        rows = list(events.objects.filter(user_id__in=ids[first : first + 500]).order_by("user_id", "at", "id"))
        start = 0
        for k in range(1, len(rows) + 1):
            if k == len(rows) or rows[k].user_id != rows[start].user_id:
                changed.extend(derive(rows[start:k]))
                start = k
    # A migration's historical model may predate some derived columns: store those it has.
    stored = {field.name for field in events._meta.get_fields()}
    fields = [name for name in SubscriptionEvent.DERIVED if name in stored]
    events.objects.bulk_update(changed, fields=fields, batch_size=2000)
    return len(changed)


# -- writes ---------------------------------------------------------------------------------------


def _now(at: datetime.datetime | None) -> datetime.datetime:
    return at or timezone.now()


def _current(sub: Subscription, paid_plans: set[str]) -> dict:
    return _state(sub.plan_id, sub.billing_cycle, sub.status, sub.price, paid_plans)


def _record(sub: Subscription, kind: str, at: datetime.datetime, before: dict | None) -> SubscriptionEvent:
    paid_plans = paid_plan_codes()
    last = sub.events.order_by("-at", "-id").values_list("at", flat=True).first() if before else None
    if last and at < last:
        raise SubscriptionError(
            f"This subscription already has a change at {last.isoformat()}: a change cannot be dated before it."
        )
    sub.save()
    with billing_rollups.user_events_changed([sub.user_id]):
        event = SubscriptionEvent.objects.create(
            subscription=sub, user_id=sub.user_id, **_facts(kind, at, sub.currency, before, _current(sub, paid_plans))
        )
        customer_history_derive([sub.user_id])
    return event


def _locked(sub: Subscription) -> Subscription:
    return Subscription.objects.select_for_update().get(pk=sub.pk)


@transaction.atomic
def subscription_start(
    user: User,
    *,
    plan: Plan,
    cycle: str = Subscription.Cycle.MONTHLY,
    status: str = Status.ACTIVE,
    price: Decimal | None = None,
    currency: str | None = None,
    at: datetime.datetime | None = None,
    current_period_end: datetime.datetime | None = None,
) -> Subscription:
    """Start a subscription (``active``, ``past_due`` or ``trialing``); price defaults to the plan's for the cycle."""
    if status in ENDED:
        raise SubscriptionError("A subscription starts active, past due or trialing; end it afterwards.")
    at = _now(at)
    sub = Subscription(
        user=user,
        plan=plan,
        billing_cycle=cycle,
        status=status,
        started_at=at,
        current_period_end=current_period_end,
        price=plan.price_for(cycle) if price is None else price,
        currency=currency or plan.currency,
    )
    _record(sub, Kind.STARTED, at, None)
    return sub


@transaction.atomic
def subscription_change_plan(
    sub: Subscription,
    *,
    plan: Plan,
    cycle: str | None = None,
    price: Decimal | None = None,
    at: datetime.datetime | None = None,
) -> Subscription:
    """Move a running subscription to another plan, cycle or price (an upgrade or a downgrade)."""
    sub = _locked(sub)
    if sub.ended_at is not None:
        raise SubscriptionError("This subscription has ended: reactivate it or start a new one.")
    before = _current(sub, paid_plan_codes())
    sub.plan, sub.billing_cycle = plan, cycle or sub.billing_cycle
    sub.price = plan.price_for(sub.billing_cycle) if price is None else price
    _record(sub, Kind.PLAN_CHANGED, _now(at), before)
    return sub


@transaction.atomic
def subscription_set_status(sub: Subscription, *, status: str, at: datetime.datetime | None = None) -> Subscription:
    """Between ``trialing``, ``active`` and ``past_due`` (a failed card, a recovered one, a trial converting)."""
    sub = _locked(sub)
    if status in ENDED or sub.status in ENDED:
        raise SubscriptionError("Use subscription_end to end a subscription and subscription_reactivate to restart it.")
    before = _current(sub, paid_plan_codes())
    sub.status = status
    _record(sub, Kind.STATUS_CHANGED, _now(at), before)
    return sub


@transaction.atomic
def subscription_cancel(sub: Subscription, *, at: datetime.datetime | None = None) -> Subscription:
    """The user asked to cancel: access (and MRR) continue until ``subscription_end``."""
    sub = _locked(sub)
    if sub.ended_at is not None or sub.cancelled_at is not None:
        raise SubscriptionError("This subscription is already cancelled.")
    before = _current(sub, paid_plan_codes())
    sub.cancelled_at = _now(at)
    _record(sub, Kind.CANCELLATION_REQUESTED, sub.cancelled_at, before)
    return sub


@transaction.atomic
def subscription_end(
    sub: Subscription, *, at: datetime.datetime | None = None, status: str = Status.CANCELLED
) -> Subscription:
    """Access stops at ``at``: status ``cancelled`` or ``expired``, MRR to zero."""
    sub = _locked(sub)
    if status not in ENDED:
        raise SubscriptionError("A subscription ends as cancelled or expired.")
    if sub.ended_at is not None:
        raise SubscriptionError("This subscription has already ended.")
    at = _now(at)
    if at < sub.started_at:
        raise SubscriptionError("A subscription cannot end before it starts.")
    before = _current(sub, paid_plan_codes())
    sub.status, sub.ended_at = status, at
    sub.cancelled_at = sub.cancelled_at or at
    _record(sub, Kind.ENDED, at, before)
    return sub


@transaction.atomic
def subscription_reactivate(sub: Subscription, *, at: datetime.datetime | None = None) -> Subscription:
    """Withdraw a cancellation request, or restart an ended subscription (``active`` again)."""
    sub = _locked(sub)
    if sub.ended_at is None and sub.cancelled_at is None:
        raise SubscriptionError("This subscription is running and not cancelled: nothing to reactivate.")
    before = _current(sub, paid_plan_codes())
    sub.cancelled_at = sub.ended_at = None
    sub.status = Status.ACTIVE
    _record(sub, Kind.REACTIVATED, _now(at), before)
    return sub


@transaction.atomic
def subscription_import(**fields) -> Subscription:
    """Create a subscription row as given (``started_at``, ``cancelled_at``, ``ended_at``, ``status`` …)
    with the history ``history_facts`` tells: for factories, fixtures and imports of past records."""
    sub = Subscription(**fields)
    subscriptions_bulk_create([sub])
    return sub


def subscriptions_bulk_create(
    rows: list[Subscription], *, batch_size: int = 5000, derive: bool = True
) -> list[Subscription]:
    """``bulk_create`` subscription rows with their histories (``history_facts``), customer columns derived.

    For the demo world and ``seed_demo``: the same events ``subscription_import`` writes one by one.
    ``derive=False`` leaves the customer columns to one ``customer_history_derive`` call after the
    last batch (a bulk seeder writing the same users' subscriptions in many batches), and the
    billing roll-up to ``billing_rollups.users_added`` after that.
    """
    paid_plans = paid_plan_codes()
    # The roll-up follows here when the customer columns are derived; else the caller adds the users after.
    rollup = billing_rollups.user_events_changed({row.user_id for row in rows}) if derive else nullcontext()
    with transaction.atomic(), rollup:
        Subscription.objects.bulk_create(rows, batch_size=batch_size)
        events = [
            SubscriptionEvent(subscription=row, user_id=row.user_id, **facts)
            for row in rows
            for facts in history_facts(row, paid_plans=paid_plans)
        ]
        SubscriptionEvent.objects.bulk_create(events, batch_size=batch_size)
        if derive:
            customer_history_derive({row.user_id for row in rows})
    return rows


def customer_history_rebuild(*, users=None, check: bool = False, chunk: int = 20_000) -> int:
    """Recompute every event's customer columns from the facts, streaming; the number of rows that differed.

    For ``billing_history_rebuild`` (after a bulk load, or to prove the stored columns are what the
    facts say): one ordered pass over the events; only rows that differ are written (with
    ``check``, none are: they are only counted). ``users``: a queryset or ids to limit the pass.
    """
    from types import SimpleNamespace

    fields = [
        "id",
        "user_id",
        "subscription_id",
        "at",
        "currency",
        "mrr_after",
        "paying_after",
        "plan_before",
        "plan_after",
        *SubscriptionEvent.DERIVED,
    ]
    rows = SubscriptionEvent.objects.order_by("user_id", "at", "id")
    if users is not None:
        rows = rows.filter(user_id__in=users)
    changed: list = []
    differed = 0
    current: list = []

    def flush_user() -> None:
        nonlocal differed
        found = derive(current)
        differed += len(found)
        if not check:
            changed.extend(found)
        current.clear()

    for values in rows.values_list(*fields).iterator(chunk_size=chunk):
        event = SimpleNamespace(**dict(zip(fields, values, strict=True)))
        if current and current[-1].user_id != event.user_id:
            flush_user()
        current.append(event)
        if len(changed) >= chunk:
            _write_derived(changed)
            changed = []
    if current:
        flush_user()
    _write_derived(changed)
    return differed


def _write_derived(events: list) -> None:
    """Store the customer columns of ``events`` (PostgreSQL: one COPY and one UPDATE; elsewhere bulk_update)."""
    if not events:
        return
    from django.db import connection

    columns = SubscriptionEvent.DERIVED
    if connection.vendor != "postgresql":
        objects = [SubscriptionEvent(id=e.id, **{name: getattr(e, name) for name in columns}) for e in events]
        SubscriptionEvent.objects.bulk_update(objects, fields=list(columns), batch_size=2000)
        return
    table = SubscriptionEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS derived_tmp")
        cursor.execute(f"CREATE TEMP TABLE derived_tmp AS SELECT id, {', '.join(columns)} FROM {table} WITH NO DATA")
        with cursor.cursor.copy(f"COPY derived_tmp (id, {', '.join(columns)}) FROM STDIN") as copy:
            for e in events:
                copy.write_row([e.id, *(getattr(e, name) for name in columns)])
        assignments = ", ".join(f"{name} = d.{name}" for name in columns)
        cursor.execute(f"UPDATE {table} e SET {assignments} FROM derived_tmp d WHERE e.id = d.id")
