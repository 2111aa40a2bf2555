"""The subscription history: every write goes through the billing service and leaves its event."""

from __future__ import annotations

import importlib
import io
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command

from coaching import billing_services as service
from coaching.models import Plan, Subscription, SubscriptionEvent
from tests.analytics import billing_world as world
from tests.analytics.billing_world import tpe
from tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


def plan(code: str) -> Plan:
    return Plan.objects.get(code=code)


def timeline(sub: Subscription) -> list[tuple]:
    return [
        (e.kind, e.at, e.plan_after, e.status_after, e.mrr_before, e.mrr_after) for e in sub.events.order_by("at", "id")
    ]


def test_each_write_records_its_event_with_mrr_before_and_after():
    who = world.user("s@example.com", joined=tpe(2025, 12, 1))
    sub = service.subscription_start(who, plan=plan("student"), at=tpe(2026, 1, 1))
    service.subscription_change_plan(sub, plan=plan("pro"), at=tpe(2026, 2, 1))
    service.subscription_set_status(sub, status="past_due", at=tpe(2026, 2, 10))
    service.subscription_set_status(sub, status="active", at=tpe(2026, 2, 12))
    service.subscription_cancel(sub, at=tpe(2026, 3, 1))
    service.subscription_end(sub, at=tpe(2026, 3, 31))
    service.subscription_reactivate(sub, at=tpe(2026, 4, 5))
    service.subscription_change_plan(sub, plan=plan("pro"), cycle="annual", at=tpe(2026, 4, 6))
    m = Decimal
    assert timeline(sub) == [
        ("started", tpe(2026, 1, 1), "student", "active", m(0), m("299")),
        ("plan_changed", tpe(2026, 2, 1), "pro", "active", m("299"), m("899")),
        ("status_changed", tpe(2026, 2, 10), "pro", "past_due", m("899"), m("899")),  # past due still counts
        ("status_changed", tpe(2026, 2, 12), "pro", "active", m("899"), m("899")),
        ("cancellation_requested", tpe(2026, 3, 1), "pro", "active", m("899"), m("899")),  # paid until the end
        ("ended", tpe(2026, 3, 31), "pro", "cancelled", m("899"), m(0)),
        ("reactivated", tpe(2026, 4, 5), "pro", "active", m(0), m("899")),
        ("plan_changed", tpe(2026, 4, 6), "pro", "active", m("899"), m("636.791667")),  # 7641.50 / 12
    ]
    sub.refresh_from_db()
    last = sub.events.order_by("at", "id").last()
    # The row is the history replayed.
    assert (sub.plan_id, sub.billing_cycle, sub.status, sub.price) == (
        last.plan_after,
        last.cycle_after,
        last.status_after,
        last.price_after,
    )
    assert sub.ended_at is None and sub.cancelled_at is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda sub: service.subscription_change_plan(sub, plan=plan("student"), at=tpe(2026, 2, 1)), "already has a"),
        (lambda sub: service.subscription_end(sub, at=tpe(2026, 2, 1)), "cannot end before it starts"),
        (lambda sub: service.subscription_set_status(sub, status="cancelled"), "Use subscription_end"),
        (lambda sub: service.subscription_reactivate(sub), "nothing to reactivate"),
        (lambda sub: service.subscription_end(sub, status="active"), "cancelled or expired"),
    ],
)
def test_impossible_changes_are_refused_with_a_reason(change, message):
    sub = SubscriptionFactory(started_at=tpe(2026, 3, 1))
    with pytest.raises(service.SubscriptionError, match=message):
        change(sub)
    assert sub.events.count() == 1  # nothing recorded, row unchanged
    assert Subscription.objects.get(pk=sub.pk).status == "active"


def test_a_factory_subscription_gets_a_faithful_history():
    sub = SubscriptionFactory(
        started_at=tpe(2026, 1, 1), cancelled_at=tpe(2026, 2, 20), ended_at=tpe(2026, 3, 1), status="cancelled"
    )
    assert [(kind, at, status) for kind, at, _p, status, _b, _a in timeline(sub)] == [
        ("started", tpe(2026, 1, 1), "active"),
        ("cancellation_requested", tpe(2026, 2, 20), "active"),
        ("ended", tpe(2026, 3, 1), "cancelled"),
    ]


def test_changes_at_one_instant_are_one_movement():
    """Ending student and starting pro at the same instant is an expansion, not a churn and a reactivation."""
    who = world.user("switch@example.com", joined=tpe(2025, 12, 1))
    old = service.subscription_start(who, plan=plan("student"), at=tpe(2026, 1, 1))
    service.subscription_end(old, at=tpe(2026, 3, 10))
    service.subscription_start(who, plan=plan("pro"), at=tpe(2026, 3, 10))
    at_switch = SubscriptionEvent.objects.filter(user=who, at=tpe(2026, 3, 10))
    totals = {name: sum(getattr(e, name) for e in at_switch) for name in SubscriptionEvent.MOVEMENTS}
    assert totals == {
        "new_mrr": 0,
        "expansion_mrr": Decimal("600"),
        "contraction_mrr": 0,
        "churned_mrr": 0,
        "reactivation_mrr": 0,
    }
    assert sum(e.paying_users_delta for e in at_switch) == 0


def test_writing_an_earlier_subscription_later_rederives_the_customer():
    """A user's subscriptions may be written out of order (tests, imports): the customer columns follow time."""
    who = world.user("order@example.com", joined=tpe(2025, 12, 1))
    SubscriptionFactory(user=who, started_at=tpe(2026, 3, 1))  # written first, starts later
    SubscriptionFactory(user=who, started_at=tpe(2026, 1, 1), price=Decimal("299.00"), plan=plan("student"))
    events = list(SubscriptionEvent.objects.filter(user=who).order_by("at"))
    assert [(e.new_mrr, e.expansion_mrr, e.paying_users_delta) for e in events] == [
        (Decimal("299"), 0, 1),  # January: a new customer
        (0, Decimal("899"), 0),  # March: the same customer pays more
    ]


def test_the_data_migration_backfills_what_the_service_writes():
    """Rows without a history (as before migration 0007) get the events the service would have written."""
    a = world.user("m1@example.com", joined=tpe(2025, 12, 1))
    kwargs = [
        {"user": a, "plan": plan("pro"), "price": Decimal("899.00"), "started_at": tpe(2026, 1, 1)},
        {
            "user": a,
            "plan": plan("student"),
            "price": Decimal("299.00"),
            "started_at": tpe(2026, 1, 5),
            "cancelled_at": tpe(2026, 2, 1),
            "ended_at": tpe(2026, 2, 15),
            "status": "expired",
        },
        {
            "user": a,
            "plan": plan("pro"),
            "billing_cycle": "annual",
            "price": Decimal("7641.50"),
            "started_at": tpe(2026, 2, 1),
            "status": "past_due",
        },
    ]
    through_service = [SubscriptionFactory(**fields) for fields in kwargs]
    expected = [timeline(sub) for sub in through_service]
    derived = sorted(SubscriptionEvent.objects.filter(user=a).values_list("at", *SubscriptionEvent.DERIVED))
    SubscriptionEvent.objects.all().delete()
    migration = importlib.import_module("coaching.migrations.0008_subscription_events")
    migration.backfill(django_apps, None)
    assert [timeline(sub) for sub in through_service] == expected
    assert sorted(SubscriptionEvent.objects.filter(user=a).values_list("at", *SubscriptionEvent.DERIVED)) == derived


def test_admin_adds_through_the_service_and_shows_the_timeline_read_only(client, admin_user):
    who = world.user("adm@example.com", joined=tpe(2025, 12, 1))
    client.force_login(admin_user)
    response = client.post(
        "/admin/coaching/subscription/add/",
        {
            "user": str(who.pk),
            "plan": "pro",
            "billing_cycle": "monthly",
            "status": "active",
            "started_at_0": "2026-03-01",
            "started_at_1": "10:00:00",
            "price": "899.00",
            "currency": "TWD",
            "events-TOTAL_FORMS": "0",
            "events-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    sub = Subscription.objects.get(user=who)
    assert [kind for kind, *_ in timeline(sub)] == ["started"]
    page = client.get(f"/admin/coaching/subscription/{sub.pk}/change/").content.decode()
    assert "started" in page and "899.000000" in page
    assert 'name="price"' not in page and 'name="status"' not in page  # revenue fields are read-only
    assert 'name="events-0-at"' not in page  # the timeline cannot be edited


def test_the_rebuild_command_agrees_with_the_service_and_repairs_a_bulk_load():
    world.build()
    stored = sorted(SubscriptionEvent.objects.values_list("id", *SubscriptionEvent.DERIVED))
    out = io.StringIO()
    call_command("billing_history_rebuild", "--check", stdout=out)
    assert out.getvalue().strip() == "0 events differ from their facts."  # the service kept them current
    # A bulk load writes facts only (as the benchmark's SQL seeder does).
    SubscriptionEvent.objects.update(
        customer_mrr_after=0, customer_paying_after=False, paying_users_delta=0, new_mrr=0, churned_mrr=0
    )
    with pytest.raises(SystemExit):
        call_command("billing_history_rebuild", "--check", stdout=io.StringIO())
    out = io.StringIO()
    call_command("billing_history_rebuild", stdout=out)
    assert "events rewritten" in out.getvalue()
    assert sorted(SubscriptionEvent.objects.values_list("id", *SubscriptionEvent.DERIVED)) == stored
