"""Writes: a session's life writes the ledger and the month's counters; the month rolls over on its own."""

import datetime
import zoneinfo
from decimal import Decimal

import pytest
import time_machine

from coaching import services
from coaching.models import CoachingSession, MonthlyUsage, MonthlyUsageArchive, UsageLog
from tests.factories import ClientFactory

pytestmark = pytest.mark.django_db
TAIPEI = zoneinfo.ZoneInfo("Asia/Taipei")


def at(*args):
    return datetime.datetime(*args, tzinfo=TAIPEI)


def run_session(coach, *, seconds, start, end, error="", kind=UsageLog.Kind.ORIGINAL):
    session = services.session_create(
        coach=coach,
        title="Weekly",
        session_date=start.date(),
        client=ClientFactory(coach=coach),
        duration_seconds=seconds,
        audio_size_bytes=seconds * 16000,
        at=start,
    )
    services.session_processing_start(session, at=start)
    services.session_processing_finish(session, error=error, kind=kind, at=end)
    session.refresh_from_db()
    return session


def test_a_completed_session_writes_the_ledger_and_the_counters(coach):
    session = run_session(coach, seconds=3601, start=at(2026, 4, 10, 9), end=at(2026, 4, 10, 9, 12))
    assert session.status == CoachingSession.Status.COMPLETED
    assert (session.processing_started_at, session.processing_finished_at) == (
        at(2026, 4, 10, 9),
        at(2026, 4, 10, 9, 12),
    )
    log = UsageLog.objects.get(session=session)
    assert (log.kind, log.minutes, log.billable, log.plan_code, log.client) == (
        "original",
        Decimal("60.02"),
        True,
        "pro",
        session.client,
    )
    counter = MonthlyUsage.objects.get(user=coach)
    assert (counter.period, counter.minutes, counter.sessions, counter.transcriptions) == (
        datetime.date(2026, 4, 1),
        Decimal("60.02"),
        1,
        1,
    )


def test_a_failure_is_recorded_when_it_happens_and_uses_nothing(coach):
    session = run_session(
        coach, seconds=600, start=at(2026, 4, 10, 9), end=at(2026, 4, 10, 9, 3), error="Provider timeout"
    )
    assert (session.status, session.error_message, session.processing_finished_at) == (
        "failed",
        "Provider timeout",
        at(2026, 4, 10, 9, 3),
    )
    assert not UsageLog.objects.filter(session=session).exists()


def test_a_free_retry_after_failure_is_logged_but_not_counted(coach):
    run_session(
        coach, seconds=600, start=at(2026, 4, 10, 9), end=at(2026, 4, 10, 9, 3), kind=UsageLog.Kind.RETRY_FAILED
    )
    counter = MonthlyUsage.objects.get(user=coach)
    assert (counter.minutes, counter.sessions, counter.transcriptions) == (Decimal("0"), 0, 1)
    assert UsageLog.objects.get(user=coach).billable is False


def test_month_boundary_is_the_coachs_local_month(coach):
    # 2026-03-31 23:30 UTC is 1 April 07:30 in Taipei: April's counter.
    end = datetime.datetime(2026, 3, 31, 23, 30, tzinfo=datetime.UTC)
    run_session(coach, seconds=120, start=end - datetime.timedelta(minutes=5), end=end)
    assert MonthlyUsage.objects.get(user=coach).period == datetime.date(2026, 4, 1)


def test_the_month_rolls_over_without_a_reset_and_nothing_is_lost(coach):
    run_session(coach, seconds=600, start=at(2026, 3, 20, 9), end=at(2026, 3, 20, 9, 5))
    counter = MonthlyUsage.objects.get(user=coach)
    with time_machine.travel(at(2026, 4, 2, 8), tick=False):
        assert counter.current()["minutes"] == Decimal("0.00")  # March's counter reads as zero in April
    run_session(coach, seconds=300, start=at(2026, 4, 2, 9), end=at(2026, 4, 2, 9, 5))
    counter.refresh_from_db()
    assert (counter.period, counter.minutes) == (datetime.date(2026, 4, 1), Decimal("5.00"))
    march = MonthlyUsageArchive.objects.get(user=coach)
    assert (march.period, march.minutes, march.sessions, march.bulk_operation) == (
        datetime.date(2026, 3, 1),
        Decimal("10.00"),
        1,
        None,
    )


def test_counters_are_per_coach(coach, other_coach):
    run_session(coach, seconds=600, start=at(2026, 4, 1, 9), end=at(2026, 4, 1, 9, 5))
    assert not MonthlyUsage.objects.filter(user=other_coach).exists()
    assert not other_coach.usage_logs.exists()
    assert MonthlyUsage.objects.get(user=coach).minutes == Decimal("10.00")
