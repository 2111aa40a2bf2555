"""plan_usage: this calendar month (in the user's zone) against the plan's limit, with a projection."""

import datetime
from decimal import Decimal

import time_machine

from analytics.usage import plan_usage
from coaching.models import Plan
from tests.factories import UsageLogFactory

UTC = datetime.UTC
# 16 April 00:00 in Taipei: exactly half of April's 30 days have passed.
MID_APRIL = datetime.datetime(2026, 4, 15, 16, 0, tzinfo=UTC)


def utc(month, day, hour=12, minute=0):
    return datetime.datetime(2026, month, day, hour, minute, tzinfo=UTC)


def test_used_percent_and_projection_on_a_limited_plan(coach):
    UsageLogFactory(user=coach, seconds=1200 * 60, created_at=utc(4, 3))  # 1,200 min
    UsageLogFactory(user=coach, seconds=60 * 60, created_at=utc(3, 31, 23, 30))  # 1 April in Taipei: 60 min
    UsageLogFactory(user=coach, kind="retry_failed", seconds=600 * 60, created_at=utc(4, 4))  # free: not quota
    UsageLogFactory(user=coach, seconds=999 * 60, created_at=utc(3, 31, 15, 0))  # 31 March in Taipei
    usage = plan_usage(coach, now=MID_APRIL)
    assert (usage.plan_code, usage.limit_minutes) == ("pro", 3000)
    assert usage.used_minutes == Decimal("1260.00")
    assert usage.remaining_minutes == Decimal("1740.00")
    assert usage.percent == Decimal("42.0")
    assert usage.projected_minutes == Decimal("2520.00")  # used / 0.5
    assert usage.projected_percent == Decimal("84.0")
    assert (usage.month_first_day, usage.month_last_day) == (datetime.date(2026, 4, 1), datetime.date(2026, 4, 30))
    assert usage.level == "ok"


def test_warning_at_80_percent_and_over_at_100(coach):
    UsageLogFactory(user=coach, seconds=2400 * 60, created_at=utc(4, 3))
    assert plan_usage(coach, now=MID_APRIL).level == "warning"
    UsageLogFactory(user=coach, seconds=600 * 60, created_at=utc(4, 4))
    usage = plan_usage(coach, now=MID_APRIL)
    assert (usage.percent, usage.level, usage.remaining_minutes) == (Decimal("100.0"), "over", Decimal("0.00"))


def test_unlimited_plan_has_no_limit_and_no_percentages(coach):
    coach.plan = Plan.objects.get(code="coaching_school")
    coach.save()
    UsageLogFactory(user=coach, seconds=90_000 * 60, created_at=utc(4, 3))
    usage = plan_usage(coach, now=MID_APRIL)
    assert usage.limit_minutes is None
    assert (usage.percent, usage.projected_percent, usage.remaining_minutes) == (None, None, None)
    assert usage.level == "unlimited"
    assert usage.projected_minutes == Decimal("180000.00")
    assert usage.as_dict()["limit_minutes"] is None


def test_the_month_is_the_users_own_calendar_month(coach):
    # 30 April 17:00 UTC is already 1 May in Taipei: April's minutes no longer count.
    UsageLogFactory(user=coach, seconds=600, created_at=utc(4, 20))
    usage = plan_usage(coach, now=utc(4, 30, 17, 0))
    assert usage.month_first_day == datetime.date(2026, 5, 1)
    assert usage.used_minutes == Decimal("0.00")
    coach.timezone = "America/Los_Angeles"
    coach.save()
    usage = plan_usage(coach, now=utc(4, 30, 17, 0))
    assert usage.month_first_day == datetime.date(2026, 4, 1)
    assert usage.used_minutes == Decimal("10.00")


def test_an_admins_reset_restarts_the_months_quota_and_undo_brings_it_back(
    coach, admin_user, django_capture_on_commit_callbacks
):
    from coaching import bulk, services
    from coaching.models import BulkOperation, MonthlyUsage, UsageLog
    from tests.coaching.bulk_support import eager_celery

    def log(seconds, at):
        services.usage_record(coach, session=None, kind=UsageLog.Kind.ORIGINAL, seconds=seconds, at=at)

    log(6000, utc(4, 3))  # 100 minutes early in April
    with time_machine.travel(utc(4, 10), tick=False), eager_celery(), django_capture_on_commit_callbacks(execute=True):
        op, _ = bulk.operation_create(
            kind=BulkOperation.Kind.RESET_USAGE,
            user_ids=[coach.pk],
            parameters={"reset_type": "monthly"},
            requested_by=admin_user,
        )
    assert plan_usage(coach, now=utc(4, 10, 13)).used_minutes == Decimal("0.00")
    log(600, utc(4, 12))  # 10 minutes after the reset count again
    after = plan_usage(coach, now=utc(4, 15))
    assert after.used_minutes == Decimal("10.00")
    assert after.used_minutes == MonthlyUsage.objects.get(user=coach).minutes  # the quota agrees with the counters
    op.refresh_from_db()
    bulk.operation_undo(op, by=admin_user, now=utc(4, 16))
    restored = MonthlyUsage.objects.get(user=coach).minutes
    assert plan_usage(coach, now=utc(4, 17)).used_minutes == Decimal("110.00") == restored
    # The ledger never forgot: usage analytics for April still show all 110 minutes.
    assert UsageLog.objects.filter(user=coach).count() == 2
