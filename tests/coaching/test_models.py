"""The records' rules: constraints, money and time handling, the ledger's append-only rule."""

import datetime
import zoneinfo
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from coaching.models import MonthlyUsage, Payment, Plan, UsageLog, User, minutes_from_seconds
from tests.factories import (
    CoachingSessionFactory,
    PaymentFactory,
    SubscriptionFactory,
    UsageLogFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
TAIPEI = zoneinfo.ZoneInfo("Asia/Taipei")


@pytest.mark.parametrize(
    ("seconds", "minutes"),
    [(0, "0.00"), (60, "1.00"), (90, "1.50"), (61, "1.02"), (3, "0.05"), (1, "0.02"), (5399, "89.98")],
)
def test_minutes_are_seconds_over_sixty_rounded_half_up(seconds, minutes):
    # 3 s = 0.05 exactly; 1 s = 0.01666… -> 0.02; 5399 s = 89.9833… -> 89.98
    assert minutes_from_seconds(seconds) == Decimal(minutes)


def test_plans_are_seeded_from_the_production_table():
    plans = {p.code: p for p in Plan.objects.all()}
    assert list(plans) == ["free", "student", "pro", "coaching_school"]
    assert plans["free"].minutes_per_month == 200 and plans["free"].export_formats == ["csv"]
    assert plans["student"].minutes_per_month == 500 and plans["student"].export_formats == ["csv", "pdf"]
    assert plans["pro"].price_annual == Decimal("7641.50") and plans["pro"].allows_format("xlsx")
    assert plans["coaching_school"].minutes_per_month is None and plans["coaching_school"].is_unlimited
    assert not plans["free"].is_paid and plans["student"].is_paid


def test_new_users_default_to_taipei_and_taiwan():
    user = User.objects.create_user(email="new-default@example.com", password="x")  # neither field given
    user.refresh_from_db()
    assert (user.timezone, user.country, user.tzinfo) == ("Asia/Taipei", "TW", TAIPEI)


def test_profile_validation_rejects_bad_time_zones_and_countries():
    user = UserFactory.build(email="x@example.com", timezone="Mars/Olympus", country="tw")
    with pytest.raises(ValidationError) as err:
        user.full_clean()
    assert "timezone" in err.value.message_dict and "country" in err.value.message_dict


def test_usage_logs_are_append_only():
    log = UsageLogFactory(seconds=120)
    assert log.minutes == Decimal("2.00")
    log.seconds = 1
    with pytest.raises(ValueError, match="append-only"):
        log.save()
    assert UsageLog.objects.get(pk=log.pk).seconds == 120


def test_refund_can_never_exceed_the_payment():
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentFactory(
            amount=Decimal("100.00"), refunded_amount=Decimal("100.01"), refunded_at=datetime.datetime.now(datetime.UTC)
        )
    payment = PaymentFactory(
        amount=Decimal("100.00"), refunded_amount=Decimal("100.00"), refunded_at=datetime.datetime.now(datetime.UTC)
    )
    assert payment.refunded_amount == payment.amount


def test_a_refund_needs_its_date():
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentFactory(refunded_amount=Decimal("10.00"), refunded_at=None)


def test_provider_reference_is_unique():
    PaymentFactory(provider_reference="TXN-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentFactory(provider_reference="TXN-1")


def test_money_keeps_its_cents():
    payment = PaymentFactory(amount=Decimal("7641.50"))
    payment.refresh_from_db()
    assert payment.amount == Decimal("7641.50") and isinstance(payment.amount, Decimal)
    assert Payment.objects.get(pk=payment.pk).currency == "TWD"


def test_subscription_cannot_end_before_it_starts():
    start = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
    with pytest.raises(IntegrityError), transaction.atomic():
        SubscriptionFactory(started_at=start, ended_at=start - datetime.timedelta(days=1))


def test_processing_cannot_finish_before_it_starts():
    start = datetime.datetime(2026, 3, 1, 10, tzinfo=datetime.UTC)
    with pytest.raises(IntegrityError), transaction.atomic():
        CoachingSessionFactory(
            processing_started_at=start, processing_finished_at=start - datetime.timedelta(seconds=1)
        )


def test_times_are_stored_in_utc_and_read_back_aware():
    local = datetime.datetime(2026, 4, 1, 7, 30, tzinfo=TAIPEI)  # 2026-03-31 23:30 UTC
    log = UsageLogFactory(created_at=local)
    log.refresh_from_db()
    assert log.created_at == local
    assert log.created_at.utcoffset() == datetime.timedelta(0)  # read back in UTC, whatever zone it came in
    assert log.created_at.astimezone(datetime.UTC) == datetime.datetime(2026, 3, 31, 23, 30, tzinfo=datetime.UTC)
    with connection.cursor() as cursor:  # what the column holds, without Django's conversion
        cursor.execute("SELECT CAST(created_at AS TEXT) FROM coaching_usagelog WHERE id = %s", [log.pk])
        stored = cursor.fetchone()[0]
    assert stored.startswith("2026-03-31 23:30:00")


def test_one_counter_per_user_and_minutes_never_negative():
    user = UserFactory()
    MonthlyUsage.objects.create(user=user, period=datetime.date(2026, 4, 1))
    with pytest.raises(IntegrityError), transaction.atomic():
        MonthlyUsage.objects.create(user=user, period=datetime.date(2026, 5, 1))
    with pytest.raises(IntegrityError), transaction.atomic():
        MonthlyUsage.objects.filter(user=user).update(minutes=Decimal("-1"))
