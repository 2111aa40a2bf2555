"""The demo world's invariants: what the other tests and the README rely on."""

import pytest
from django.core.management import call_command
from django.db.models import F, Q, Sum

from coaching.demo import DEMO_PASSWORDS
from coaching.models import (
    ApiUsage,
    Client,
    CoachingSession,
    ExportRecord,
    MonthlyUsage,
    Payment,
    Subscription,
    UsageLog,
    User,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo():
    call_command("seed_demo", "--no-progress", verbosity=0)


def test_demo_logins_work_with_documented_passwords(demo):
    for email, password in DEMO_PASSWORDS.items():
        assert User.objects.get(email=email).check_password(password), email
    assert User.objects.get(email="coach@example.com").plan_id == "pro"
    assert User.objects.get(email="staff@example.com").is_staff
    assert User.objects.get(email="admin@example.com").is_superuser


def test_seeding_twice_does_not_duplicate(demo):
    counts = (User.objects.count(), CoachingSession.objects.count(), UsageLog.objects.count(), Payment.objects.count())
    call_command("seed_demo", "--no-progress", verbosity=0)
    assert (
        User.objects.count(),
        CoachingSession.objects.count(),
        UsageLog.objects.count(),
        Payment.objects.count(),
    ) == counts


def test_demo_coach_has_a_year_of_varied_history(demo):
    coach = User.objects.get(email="coach@example.com")
    names = set(Client.objects.filter(coach=coach).values_list("name", flat=True))
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in names)  # Traditional Chinese
    assert any(n.isascii() for n in names)  # English
    sessions = CoachingSession.objects.filter(coach=coach)
    first, last = sessions.order_by("created_at").first(), sessions.order_by("created_at").last()
    assert (last.created_at - first.created_at).days >= 365
    assert sessions.filter(status="failed").exists()
    assert UsageLog.objects.filter(user=coach, kind="retry_failed").exists()
    assert sessions.filter(deleted_at__isnull=False).exists()
    assert ExportRecord.objects.filter(subject=coach, status="succeeded").exists()
    assert ApiUsage.objects.filter(user=coach).exists()
    assert Subscription.objects.filter(user=coach, status="cancelled").exists()  # upgraded from student
    assert Subscription.objects.filter(user=coach, status="active", plan_id="pro").exists()


def test_every_completed_session_has_usage_and_no_failed_session_has_billable_usage(demo):
    completed = CoachingSession.objects.filter(status="completed")
    assert completed.exists()
    assert not completed.filter(usage_logs__isnull=True).exists()
    assert not UsageLog.objects.filter(session__status="failed", billable=True).exists()


def test_refunds_never_exceed_payments(demo):
    assert Payment.objects.filter(refunded_amount__gt=0).exists()
    assert not Payment.objects.filter(refunded_amount__gt=F("amount")).exists()
    assert Payment.objects.filter(Q(status="failed")).exists()


def test_monthly_counters_agree_with_the_ledger(demo):
    from analytics.periods import local_midnight
    from coaching.models.usage import month_start

    for counter in MonthlyUsage.objects.select_related("user"):
        since = local_midnight(month_start(counter.updated_at, counter.user.tzinfo), counter.user.tzinfo)
        minutes = (
            UsageLog.objects.filter(user=counter.user, created_at__gte=since, kind__in=UsageLog.QUOTA_KINDS).aggregate(
                m=Sum("minutes")
            )["m"]
            or 0
        )
        assert counter.minutes == minutes
