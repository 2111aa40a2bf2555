"""Each usage metric on hand-made data with a known answer (analytics/usage.py, DOMAIN.md)."""

import datetime
import zoneinfo
from decimal import Decimal

import pytest

from analytics.periods import range_period
from analytics.usage import (
    api_calls_made,
    exports_by_format,
    exports_generated,
    failed_transcriptions,
    failure_rate,
    minutes_used,
    sessions_by_status,
    sessions_count,
    storage_used_mb,
    transcriptions_count,
    usage_series,
    usage_summary,
)
from coaching.models import CoachingSession, User
from coaching.services import session_soft_delete
from tests.factories import ApiUsageFactory, CoachingSessionFactory, ExportRecordFactory, UsageLogFactory

TAIPEI = zoneinfo.ZoneInfo("Asia/Taipei")
UTC = datetime.UTC
MIB = 1_048_576
# April 2026 in Taipei: [2026-03-31 16:00 UTC, 2026-04-30 16:00 UTC).
APRIL = range_period(datetime.date(2026, 4, 1), datetime.date(2026, 4, 30), tz=TAIPEI)
MARCH = range_period(datetime.date(2026, 3, 1), datetime.date(2026, 3, 31), tz=TAIPEI)
NOW = datetime.datetime(2026, 5, 10, 12, 0, tzinfo=UTC)


def utc(month, day, hour=12, minute=0, year=2026):
    return datetime.datetime(year, month, day, hour, minute, tzinfo=UTC)


def only(user):
    return User.objects.filter(pk=user.pk)


def session(coach, *, start=None, finish=None, status=CoachingSession.Status.COMPLETED, **extra):
    extra.setdefault("created_at", start or utc(4, 10))
    return CoachingSessionFactory(
        coach=coach, processing_started_at=start, processing_finished_at=finish, status=status, **extra
    )


@pytest.fixture
def ledger(coach, other_coach):
    """Ledger rows of every kind around April's edges in Taipei."""
    UsageLogFactory(user=coach, kind="original", seconds=600, created_at=utc(4, 10))  # 10.00 min
    UsageLogFactory(user=coach, kind="retry_success", seconds=90, created_at=utc(4, 11))  # 1.50 min
    UsageLogFactory(user=coach, kind="retry_failed", seconds=600, created_at=utc(4, 12))  # a free retry
    UsageLogFactory(user=coach, kind="adjustment", seconds=-60, created_at=utc(4, 13))
    # 2026-03-31 23:30 UTC is 1 April 07:30 in Taipei: April.
    UsageLogFactory(user=coach, kind="original", seconds=125, created_at=utc(3, 31, 23, 30))  # 2.08 min
    # 2026-04-30 16:00 UTC is 1 May 00:00 in Taipei: not April.
    UsageLogFactory(user=coach, kind="original", seconds=6000, created_at=utc(4, 30, 16, 0))
    UsageLogFactory(user=other_coach, kind="original", seconds=6000, created_at=utc(4, 10))


def test_ledger_metrics_count_only_quota_kinds_in_the_local_month(coach, ledger):
    assert minutes_used(only(coach), APRIL) == Decimal("13.58")  # 10.00 + 1.50 + 2.08
    assert sessions_count(only(coach), APRIL) == 2  # the two `original` rows
    assert transcriptions_count(only(coach), APRIL) == 4  # every kind but the adjustment
    assert minutes_used(only(coach), MARCH) == Decimal("0.00")


def test_platform_totals_add_every_coach(coach, other_coach, ledger):
    both = User.objects.filter(pk__in=[coach.pk, other_coach.pk])
    assert minutes_used(both, APRIL) == Decimal("113.58")
    assert sessions_count(both, APRIL) == 3


def test_exports_by_format_counts_succeeded_exports_with_every_format(coach, other_coach):
    ExportRecordFactory(requested_by=coach, format="csv", created_at=utc(4, 2))
    ExportRecordFactory(requested_by=coach, format="csv", created_at=utc(3, 31, 17, 30))  # 1 April in Taipei
    ExportRecordFactory(requested_by=coach, format="pdf", created_at=utc(4, 20))
    ExportRecordFactory(requested_by=coach, format="xlsx", status="failed", created_at=utc(4, 20))
    ExportRecordFactory(requested_by=coach, format="pdf", created_at=utc(4, 30, 16, 0))  # May in Taipei
    ExportRecordFactory(requested_by=other_coach, format="xlsx", created_at=utc(4, 20))
    # Staff exporting the coach's data: it is the coach's export (the subject's).
    ExportRecordFactory(requested_by=other_coach, subject=coach, format="pdf", created_at=utc(4, 21))

    assert exports_by_format(only(coach), APRIL) == {"csv": 2, "pdf": 2, "xlsx": 0}
    assert exports_generated(only(coach), APRIL) == 4
    assert exports_by_format(only(coach), MARCH) == {"csv": 0, "pdf": 0, "xlsx": 0}


def test_storage_is_a_balance_at_the_period_end(coach, other_coach):
    kept = session(coach, audio_size_bytes=1 * MIB, created_at=utc(3, 5))
    session(coach, audio_size_bytes=2 * MIB, created_at=utc(3, 6), deleted_at=utc(4, 15))  # deleted in April
    session(coach, audio_size_bytes=3 * MIB, created_at=utc(4, 7), deleted_at=utc(5, 2))  # deleted after April
    session(coach, audio_size_bytes=5 * MIB, created_at=utc(5, 1))  # uploaded after April
    session(other_coach, audio_size_bytes=7 * MIB, created_at=utc(4, 1))
    ExportRecordFactory(requested_by=coach, bytes=MIB // 2, file_path="exports/a.pdf", created_at=utc(4, 3))
    ExportRecordFactory(
        requested_by=coach, bytes=MIB, file_path="exports/b.pdf", created_at=utc(4, 3), file_deleted_at=utc(4, 4)
    )
    ExportRecordFactory(requested_by=coach, bytes=9 * MIB, file_path="", created_at=utc(4, 3))  # streamed, not kept

    # April's end: 1 + 3 MiB of audio + 0.5 MiB of kept file.
    assert storage_used_mb(only(coach), APRIL, now=NOW) == Decimal("4.5")
    # March's end: the two sessions uploaded in March, neither deleted yet.
    assert storage_used_mb(only(coach), MARCH, now=NOW) == Decimal("3.0")
    # Deleting the kept session today lowers the balance of a period that ends after today only.
    session_soft_delete(kept, at=utc(4, 20))
    assert storage_used_mb(only(coach), APRIL, now=NOW) == Decimal("3.5")
    assert storage_used_mb(only(coach), MARCH, now=NOW) == Decimal("3.0")


def test_storage_rounds_to_one_decimal_half_up(coach, other_coach):
    session(coach, audio_size_bytes=1_101_004, created_at=utc(4, 2))  # 1.0499992 MiB
    assert storage_used_mb(only(coach), APRIL, now=NOW) == Decimal("1.0")
    session(other_coach, audio_size_bytes=1_101_005, created_at=utc(4, 2))  # 1.0500002 MiB
    assert storage_used_mb(only(other_coach), APRIL, now=NOW) == Decimal("1.1")


def test_storage_of_a_period_still_running_is_the_balance_now(coach):
    session(coach, audio_size_bytes=2 * MIB, created_at=utc(4, 2), deleted_at=utc(4, 20))
    # Seen on 10 April, the session is not deleted yet; on 25 April it is.
    assert storage_used_mb(only(coach), APRIL, now=utc(4, 10)) == Decimal("2.0")
    assert storage_used_mb(only(coach), APRIL, now=utc(4, 25)) == Decimal("0.0")


def test_api_calls_sum_the_days_of_the_period(coach, other_coach):
    ApiUsageFactory(user=coach, day=datetime.date(2026, 3, 31), count=100)
    ApiUsageFactory(user=coach, day=datetime.date(2026, 4, 1), count=7)
    ApiUsageFactory(user=coach, day=datetime.date(2026, 4, 30), count=5)
    ApiUsageFactory(user=coach, day=datetime.date(2026, 5, 1), count=100)
    ApiUsageFactory(user=other_coach, day=datetime.date(2026, 4, 10), count=1000)
    assert api_calls_made(only(coach), APRIL) == 12
    assert api_calls_made(only(coach), MARCH) == 100


def test_failures_and_failure_rate(coach, other_coach):
    for day in (2, 3):
        session(coach, start=utc(4, day), finish=utc(4, day, 13), status="failed", error_message="Provider timeout")
    for day in (4, 5, 6):
        session(coach, start=utc(4, day), finish=utc(4, day, 13))
    # Started in March in Taipei, failed on 1 April 00:10 in Taipei: an April failure.
    session(coach, start=utc(3, 31, 15, 50), finish=utc(3, 31, 16, 10), status="failed")
    session(coach, start=utc(3, 10), finish=utc(3, 10, 13), status="failed")  # March
    session(coach, start=utc(4, 7), status="processing")  # not finished: neither
    session(other_coach, start=utc(4, 8), finish=utc(4, 8, 13), status="failed")

    assert failed_transcriptions(only(coach), APRIL) == 3
    summary = usage_summary(only(coach), APRIL, now=NOW)
    assert (summary.failed_transcriptions, summary.completed_transcriptions) == (3, 3)
    assert summary.failure_rate == Decimal("0.5000")
    assert failure_rate(1, 2) == Decimal("0.3333")


def test_sessions_by_status_has_every_status(coach):
    session(coach, created_at=utc(4, 2))
    session(coach, created_at=utc(4, 3), status="failed")
    session(coach, created_at=utc(4, 4), status="processing", start=utc(4, 4))
    session(coach, created_at=utc(3, 4))
    assert sessions_by_status(only(coach), APRIL) == {
        "uploading": 0,
        "pending": 0,
        "processing": 1,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
    }


def test_an_empty_period_is_all_zeros_with_every_key(coach):
    summary = usage_summary(only(coach), APRIL, now=NOW)
    assert summary.as_dict() | {"period": None, "data_through": None} == {
        "period": None,
        "data_through": None,
        "minutes_used": 0.0,
        "sessions": 0,
        "transcriptions": 0,
        "exports_generated": 0,
        "exports_by_format": {"csv": 0, "pdf": 0, "xlsx": 0},
        "storage_used_mb": 0.0,
        "api_calls_made": 0,
        "concurrent_sessions_peak": 0,
        "failed_transcriptions": 0,
        "completed_transcriptions": 0,
        "failure_rate": None,
        "provider_cost_usd": "0.0000",
    }
    series = usage_series(only(coach), APRIL)
    assert len(series) == 30
    assert {row["minutes"] for row in series} == {0.0}


def test_summary_as_dict_keeps_the_clients_shape(coach, ledger):
    ExportRecordFactory(requested_by=coach, format="pdf", created_at=utc(4, 2))
    body = usage_summary(only(coach), APRIL, now=NOW).as_dict()
    assert body["minutes_used"] == 13.58
    assert body["exports_by_format"] == {"csv": 0, "pdf": 1, "xlsx": 0}
    assert body["period"]["timezone"] == "Asia/Taipei"
    assert body["period"]["first_day"] == "2026-04-01"
    assert body["data_through"] == NOW.isoformat()
    assert body["provider_cost_usd"] == "0.8000"  # five ledger rows of 0.16 USD in Taipei's April


def test_series_buckets_are_local_days_and_add_up_to_the_totals(coach, ledger):
    ExportRecordFactory(requested_by=coach, format="csv", created_at=utc(3, 31, 17, 30))
    session(coach, start=utc(4, 2), finish=utc(4, 2, 13), status="failed")
    series = usage_series(only(coach), APRIL)
    by_day = {row["label"]: row for row in series}
    assert series[0]["label"] == "2026-04-01" and series[-1]["label"] == "2026-04-30"
    # 2026-03-31 23:30 UTC (the 2.08-minute row) and 17:30 UTC (the export) fall on 1 April in Taipei.
    assert by_day["2026-04-01"] == {
        "label": "2026-04-01",
        "minutes": 2.08,
        "sessions": 1,
        "transcriptions": 1,
        "failed": 0,
        "exports": 1,
    }
    assert by_day["2026-04-02"]["failed"] == 1
    assert sum(Decimal(str(row["minutes"])) for row in series) == Decimal("13.58")
    assert sum(row["transcriptions"] for row in series) == 4


def test_series_by_month_in_the_viewers_zone(coach):
    UsageLogFactory(user=coach, seconds=60, created_at=utc(3, 31, 17, 30))  # April in Taipei, March in UTC
    year = range_period(datetime.date(2026, 1, 1), datetime.date(2026, 12, 31), tz=TAIPEI)
    months = {row["label"]: row["minutes"] for row in usage_series(only(coach), year, granularity="month")}
    assert len(months) == 12
    assert months["2026-04"] == 1.0 and months["2026-03"] == 0.0
    utc_year = range_period(datetime.date(2026, 1, 1), datetime.date(2026, 12, 31), tz=zoneinfo.ZoneInfo("UTC"))
    months = {row["label"]: row["minutes"] for row in usage_series(only(coach), utc_year, granularity="month")}
    assert months["2026-03"] == 1.0 and months["2026-04"] == 0.0


def test_storage_counts_what_is_deleted_exactly_at_the_end_and_what_arrives_now(coach):
    # Deleted at 1 May 00:00 in Taipei: still there throughout April.
    session(coach, audio_size_bytes=MIB, created_at=utc(4, 2), deleted_at=utc(4, 30, 16, 0))
    assert storage_used_mb(only(coach), APRIL, now=NOW) == Decimal("1.0")
    # A period still running: an upload at this very instant is in the balance.
    session(coach, audio_size_bytes=MIB, created_at=utc(4, 20))
    assert storage_used_mb(only(coach), APRIL, now=utc(4, 20)) == Decimal("2.0")
