"""Periods are [start, end) in the viewer's time zone, with buckets at local midnight."""

import datetime
import zoneinfo

import pytest

from analytics.periods import PeriodError, parse_period, period_for, range_period

TAIPEI = zoneinfo.ZoneInfo("Asia/Taipei")
LA = zoneinfo.ZoneInfo("America/Los_Angeles")
# 2026-03-31 23:30 UTC is already 1 April in Taipei.
NOW = datetime.datetime(2026, 3, 31, 23, 30, tzinfo=datetime.UTC)


def test_this_month_in_taipei_starts_at_local_midnight():
    period = period_for("month", tz=TAIPEI, now=NOW)
    assert period.start == datetime.datetime(2026, 4, 1, tzinfo=TAIPEI)
    assert period.start.astimezone(datetime.UTC) == datetime.datetime(2026, 3, 31, 16, tzinfo=datetime.UTC)
    assert period.end == datetime.datetime(2026, 4, 2, tzinfo=TAIPEI)
    assert (period.first_day, period.last_day, period.days) == (datetime.date(2026, 4, 1), datetime.date(2026, 4, 1), 1)


@pytest.mark.parametrize(
    ("key", "first"),
    [
        ("7d", "2026-03-26"),
        ("30d", "2026-03-03"),
        ("90d", "2026-01-02"),
        ("3m", "2026-02-01"),
        ("12m", "2025-05-01"),
        ("year", "2026-01-01"),
    ],
)
def test_named_periods_end_today_inclusive(key, first):
    period = period_for(key, tz=TAIPEI, now=NOW)
    assert period.first_day == datetime.date.fromisoformat(first)
    assert period.last_day == datetime.date(2026, 4, 1)


def test_from_to_are_inclusive_local_dates():
    period = parse_period({"from": "2026-03-01", "to": "2026-03-31"}, tz=TAIPEI, now=NOW)
    assert period.start == datetime.datetime(2026, 3, 1, tzinfo=TAIPEI)
    assert period.end == datetime.datetime(2026, 4, 1, tzinfo=TAIPEI)
    assert period.days == 31 and period.granularity == "day"


def test_previous_period_has_equal_length_and_ends_where_this_starts():
    period = range_period(datetime.date(2026, 3, 1), datetime.date(2026, 3, 31), tz=TAIPEI)
    previous = period.previous()
    assert previous.end == period.start
    assert (previous.first_day, previous.last_day) == (datetime.date(2026, 1, 29), datetime.date(2026, 2, 28))


def test_daily_buckets_follow_local_days_across_a_dst_change():
    # Los Angeles springs forward on 2026-03-08: that local day is 23 hours long.
    period = range_period(datetime.date(2026, 3, 7), datetime.date(2026, 3, 9), tz=LA)
    buckets = period.buckets("day")
    assert [b.label for b in buckets] == ["2026-03-07", "2026-03-08", "2026-03-09"]
    # Same-zone subtraction in Python is wall-clock arithmetic: compare instants in UTC.
    utc = datetime.UTC
    hours = [(b.end.astimezone(utc) - b.start.astimezone(utc)).total_seconds() / 3600 for b in buckets]
    assert hours == [24, 23, 24]


def test_monthly_buckets_are_clipped_to_the_period():
    period = range_period(datetime.date(2026, 1, 15), datetime.date(2026, 3, 10), tz=TAIPEI)
    buckets = period.buckets("month")
    assert [b.label for b in buckets] == ["2026-01", "2026-02", "2026-03"]
    assert buckets[0].start == datetime.datetime(2026, 1, 15, tzinfo=TAIPEI)
    assert buckets[-1].end == datetime.datetime(2026, 3, 11, tzinfo=TAIPEI)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"period": "fortnight"}, "Unknown period 'fortnight'"),
        ({"from": "2026-13-01"}, "'from' must be a date as YYYY-MM-DD"),
        ({"from": "2026-04-02", "to": "2026-04-01"}, "is before 'from'"),
        ({"from": "0001-01-01"}, "'from' must be between 2000-01-01 and 2100-12-31"),
        ({"to": "9999-12-31"}, "'to' must be between"),
        ({"period": "7d", "from": "2026-01-01"}, "not both"),
    ],
)
def test_bad_periods_say_what_to_fix(params, message):
    with pytest.raises(PeriodError, match=message):
        parse_period(params, tz=TAIPEI, now=NOW)
