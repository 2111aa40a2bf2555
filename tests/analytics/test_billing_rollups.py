"""The billing roll-up agrees with the raw history: random histories written through the billing service,
random payments and refunds, random periods and viewer time zones (Taipei's month edges, a half-hour zone,
New York's DST), every figure of the summary both ways, to the cent.

Plus hand-made cases: what keeps the roll-up current (a refund edited in the admin, a user moving country or
becoming a test account, a deleted subscription), and the rebuild command repairing a drifted table.
"""

import datetime
import zoneinfo
from decimal import Decimal

import pytest
from django.core.management import call_command
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from analytics.billing import billing_scope, movements_series
from analytics.billing.history import one_reading
from analytics.billing.rollup import raw_reads
from analytics.billing.summary import billing_summary
from analytics.periods import range_period
from coaching import billing_rollups
from coaching import billing_services as service
from coaching.models import BillingBucket, Plan, Subscription, SubscriptionEvent, User
from tests.analytics.properties import on_a_database
from tests.factories import PaymentFactory, UserFactory

UTC = datetime.UTC
ZONES = ["Asia/Taipei", "Asia/Kolkata", "America/New_York", "UTC"]
# Taipei's 1 April 00:00 (31 March 16:00 UTC) and New York's spring-forward (8 March 2026 07:00 UTC).
ANCHORS = [datetime.datetime(2026, 3, 31, 16, 0, tzinfo=UTC), datetime.datetime(2026, 3, 8, 7, 0, tzinfo=UTC)]
PLANS = ["student", "pro", "coaching_school", "free"]
# Minutes from the anchor around which buckets end and raw minutes begin: the anchor (a Taipei
# midnight), the hour "now" falls in (anchor + 97 minutes), Kolkata's midnight (anchor + 150).
EDGES = [-1, 0, 1, 59, 60, 61, 90, 96, 97, 98, 149, 150, 151, 179, 180]


def summary_both_ways(period, now):
    """The summary from the roll-up and from the raw rows."""
    with_rollup = billing_summary(billing_scope(), period=period, now=now)
    with raw_reads():
        raw = billing_summary(billing_scope(), period=period, now=now)
    return with_rollup, raw


def replayed(period, now, currency="TWD") -> tuple[int, Decimal]:
    """Churned users and NRR's retained MRR by replaying each billable user's events, as a person would count:
    lost = paid at some instant of the period, stopped, and does not pay at its close; retained = what the
    customers with MRR at the start pay at the close."""
    start, close = period.start, max(period.start, min(period.end, now))
    lost, retained = 0, Decimal(0)
    for person in User.objects.billable():
        events = list(SubscriptionEvent.objects.filter(user=person).order_by("at", "id"))

        def state(t, events=events):
            subs = {}
            for e in events:
                if e.at < t:
                    subs[e.subscription_id] = e
            paying = any(e.paying_after for e in subs.values())
            mrr = sum((e.mrr_after for e in subs.values() if e.currency == currency), Decimal(0))
            return paying, mrr

        instants = sorted({e.at for e in events if start <= e.at < close})
        was_paying = [state(t)[0] for t in instants]
        after = [state(t + datetime.timedelta(microseconds=1))[0] for t in instants]
        stopped = any(before and not later for before, later in zip(was_paying, after, strict=True))
        if stopped and not state(close)[0]:
            lost += 1
        if state(start)[1] > 0:
            retained += state(close)[1]
    return lost, retained


def buckets() -> dict:
    return {
        tuple(row[k] for k in BillingBucket.KEYS): {k: row[k] for k in BillingBucket.SUMS if row[k]}
        for row in BillingBucket.objects.values(*BillingBucket.KEYS, *BillingBucket.SUMS)
    }


steps = st.lists(
    st.tuples(
        st.integers(0, 4),  # which user (4: a test account, never counted)
        st.sampled_from(["start", "change", "past_due", "recover", "cancel", "end", "reactivate", "pay", "refund"]),
        # Minutes from the anchor: mostly within three hours of it (the edges of the periods and of
        # "now", where buckets end and raw minutes begin), else anywhere in 40 days either side.
        st.one_of(st.sampled_from(EDGES), st.integers(-180, 180), st.integers(-40 * 24 * 60, 40 * 24 * 60)),
        st.integers(0, 3),  # plan / cycle / currency pick
    ),
    min_size=1,
    max_size=14,
)


class BillingRollupAgreesWithHistory(TestCase):
    @on_a_database
    @given(
        anchor=st.sampled_from(ANCHORS),
        history=steps,
        viewer=st.sampled_from(ZONES),
        span=st.tuples(st.integers(-45, 5), st.integers(0, 70)),
        now_offset=st.sampled_from([datetime.timedelta(minutes=m) for m in (-6 * 60, 97, 30 * 60, 60 * 24 * 60)]),
    )
    def test_every_summary_figure_from_the_rollup_equals_the_history(self, anchor, history, viewer, span, now_offset):
        people = [
            UserFactory(country="TW", date_joined=anchor - datetime.timedelta(days=50)),
            UserFactory(country="TW", date_joined=anchor - datetime.timedelta(minutes=17)),
            UserFactory(country="HK", date_joined=anchor + datetime.timedelta(hours=5, minutes=31)),
            UserFactory(country="HK", date_joined=anchor - datetime.timedelta(days=3)),
            UserFactory(country="TW", is_test_account=True, date_joined=anchor),
        ]
        plans = {code: Plan.objects.get(code=code) for code in PLANS}
        subs: dict[int, list[Subscription]] = {i: [] for i in range(len(people))}
        # Each subscription's changes must be in time order: apply the steps sorted by instant.
        for who, action, minutes, pick in sorted(history, key=lambda step: step[2]):
            at = anchor + datetime.timedelta(minutes=minutes)
            person, theirs = people[who], subs[who]
            running = [s for s in theirs if s.ended_at is None]
            try:
                if action == "start" or (action not in ("pay", "refund") and not theirs):
                    plan = plans[PLANS[pick]]
                    cycle = "annual" if pick == 1 else "monthly"
                    theirs.append(
                        service.subscription_start(
                            person,
                            plan=plan,
                            cycle=cycle,
                            at=at,
                            currency="USD" if pick == 3 else None,
                            status="trialing" if pick == 2 and minutes % 2 else "active",
                        )
                    )
                elif action == "change" and running:
                    service.subscription_change_plan(running[-1], plan=plans[PLANS[(pick + 1) % 3]], at=at)
                elif action == "past_due" and running:
                    service.subscription_set_status(running[-1], status="past_due", at=at)
                elif action == "recover" and running:
                    service.subscription_set_status(running[-1], status="active", at=at)
                elif action == "cancel" and running:
                    service.subscription_cancel(running[-1], at=at)
                elif action == "end" and running:
                    service.subscription_end(running[-1], at=at)
                elif action == "reactivate" and theirs:
                    service.subscription_reactivate(theirs[-1], at=at)
                elif action == "pay":
                    PaymentFactory(
                        user=person,
                        amount=Decimal("299.50") * (pick + 1),
                        paid_at=at,
                        currency="USD" if pick == 3 else "TWD",
                        status="failed" if pick == 2 and minutes % 3 == 0 else "succeeded",
                    )
                elif action == "refund":
                    earlier = at - datetime.timedelta(days=pick)
                    payment = PaymentFactory(user=person, amount=Decimal("899.00"), paid_at=earlier)
                    payment.refunded_amount, payment.refunded_at = Decimal("450.00"), at
                    payment.status = "partially_refunded"
                    payment.save()  # edited afterwards, as the admin does
            except service.SubscriptionError:
                pass  # a change the history refuses (e.g. cancelling twice): skipped, as a person would be told
            for s in theirs:
                s.refresh_from_db()
        tz = zoneinfo.ZoneInfo(viewer)
        first = anchor.astimezone(tz).date() + datetime.timedelta(days=span[0])
        period = range_period(first, first + datetime.timedelta(days=span[1]), tz=tz)
        now = anchor + now_offset
        for p in (period, period.previous()):
            rolled, raw = summary_both_ways(p, now)
            assert rolled == raw
            # Churn and retention come from pointers the history derives: check them against a replay.
            lost, retained = replayed(p, now)
            assert rolled.churned_users == lost
            if rolled.retention.rate is not None:
                assert rolled.retention.mrr_retained == retained.quantize(Decimal("0.01"))
            with one_reading():
                series = movements_series(billing_scope().events, buckets=p.buckets("day"), now=now, currency="TWD")
            with raw_reads(), one_reading():
                raw_series = movements_series(billing_scope().events, buckets=p.buckets("day"), now=now, currency="TWD")
            assert series == raw_series
        # A rebuild from the records gives the buckets the writers kept.
        kept = buckets()
        assert billing_rollups.rebuild(check=True) == 0
        billing_rollups.rebuild()
        assert buckets() == kept


# --- Hand-made cases --------------------------------------------------------------------------------

TAIPEI = zoneinfo.ZoneInfo("Asia/Taipei")
MARCH = range_period(datetime.date(2026, 3, 1), datetime.date(2026, 3, 31), tz=TAIPEI)
NOW = datetime.datetime(2026, 4, 15, 12, 0, tzinfo=UTC)


def tpe(*args) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=TAIPEI)


def march() -> tuple:
    rolled, raw = summary_both_ways(MARCH, NOW)
    assert rolled == raw
    return rolled


@pytest.mark.django_db
def test_a_refund_edited_later_counts_in_its_own_month_and_leaves_the_payments_month():
    coach = UserFactory(country="TW", date_joined=tpe(2026, 1, 5))
    payment = PaymentFactory(user=coach, amount=Decimal("899.00"), paid_at=tpe(2026, 3, 1, 0, 0))  # Taipei's 1 March
    assert march().total_revenue == Decimal("899.00")
    payment.refunded_amount, payment.refunded_at, payment.status = Decimal("899.00"), tpe(2026, 4, 1), "refunded"
    payment.save()
    assert march().total_revenue == Decimal("899.00")
    payment.refunded_at = tpe(2026, 3, 31, 23, 59)  # the last minute of March in Taipei
    payment.save()
    assert march().total_revenue == Decimal("0.00")
    payment.delete()
    assert march().total_revenue == Decimal("0.00")
    assert billing_rollups.rebuild(check=True) == 0


@pytest.mark.django_db
def test_a_user_moving_country_or_becoming_a_test_account_moves_their_whole_history():
    coach = UserFactory(country="TW", date_joined=tpe(2026, 3, 2))
    sub = service.subscription_start(coach, plan=Plan.objects.get(code="pro"), at=tpe(2026, 3, 3))
    PaymentFactory(user=coach, subscription=sub, amount=Decimal("899.00"), paid_at=tpe(2026, 3, 3))
    assert [(row.country, row.paying_users, row.mrr) for row in march().by_country] == [("TW", 1, Decimal("899.00"))]
    coach.country = "HK"
    coach.save()
    assert [(row.country, row.new_signups, row.mrr) for row in march().by_country] == [("HK", 1, Decimal("899.00"))]
    coach.is_test_account = True
    coach.save(update_fields=["is_test_account"])
    summary = march()
    assert (summary.new_signups, summary.paying_users, summary.mrr, summary.total_revenue) == (
        0,
        0,
        Decimal("0.00"),
        Decimal("0.00"),
    )
    coach.delete()
    assert billing_rollups.rebuild(check=True) == 0
    assert not any(any(v for k, v in sums.items()) for sums in buckets().values())


@pytest.mark.django_db
def test_a_deleted_subscription_leaves_the_rollup_with_what_the_history_still_holds():
    coach = UserFactory(country="TW", date_joined=tpe(2026, 1, 5))
    kept = service.subscription_start(coach, plan=Plan.objects.get(code="student"), at=tpe(2026, 2, 3))
    gone = service.subscription_start(coach, plan=Plan.objects.get(code="pro"), at=tpe(2026, 3, 3))
    assert march().mrr == Decimal("1198.00")
    gone.delete()
    kept.refresh_from_db()
    assert march().mrr == Decimal("299.00")
    assert billing_rollups.rebuild(check=True) == 0


@pytest.mark.django_db
def test_the_rebuild_command_reports_and_repairs_drift(capsys):
    coach = UserFactory(country="TW", date_joined=tpe(2026, 1, 5))
    service.subscription_start(coach, plan=Plan.objects.get(code="pro"), at=tpe(2026, 3, 3))
    PaymentFactory(user=coach, amount=Decimal("899.00"), paid_at=tpe(2026, 3, 3))
    call_command("billing_rollups_rebuild", "--check", "--no-progress")
    assert "0 billing buckets differ" in capsys.readouterr().out
    BillingBucket.objects.filter(grain="day").update(paid=Decimal("1.00"))
    with pytest.raises(SystemExit):
        call_command("billing_rollups_rebuild", "--check", "--no-progress")
    rolled, raw = summary_both_ways(MARCH, NOW)
    assert raw.total_revenue == Decimal("899.00") and rolled.total_revenue != raw.total_revenue  # the drift shows
    call_command("billing_rollups_rebuild", "--no-progress")
    call_command("billing_rollups_rebuild", "--check", "--no-progress")
    assert march().total_revenue == Decimal("899.00")


@pytest.mark.django_db
def test_retention_keeps_a_customer_of_the_start_who_leaves_and_returns_and_not_one_who_returns():
    pro, student = Plan.objects.get(code="pro"), Plan.objects.get(code="student")
    a, b, c = (UserFactory(country="TW", date_joined=tpe(2026, 1, 2)) for _ in range(3))
    kept = service.subscription_start(a, plan=pro, at=tpe(2026, 2, 1))  # paying at the start
    service.subscription_end(kept, at=tpe(2026, 3, 5))
    service.subscription_start(a, plan=student, at=tpe(2026, 3, 20))  # back within March: retained
    service.subscription_start(b, plan=pro, at=tpe(2026, 3, 10))  # new in March: not the start's
    gone = service.subscription_start(c, plan=pro, at=tpe(2026, 1, 3))
    service.subscription_end(gone, at=tpe(2026, 2, 10))  # left before March…
    service.subscription_reactivate(gone, at=tpe(2026, 3, 3))  # …and back in it: not the start's either
    summary = march()
    assert (summary.retention.mrr_start, summary.retention.mrr_retained, summary.retention.rate) == (
        Decimal("899.00"),
        Decimal("299.00"),
        Decimal("0.3326"),
    )
    assert replayed(MARCH, NOW) == (0, Decimal("299.00"))
    assert summary.churned_users == 0  # a left and came back before the close
