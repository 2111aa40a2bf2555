"""concurrent_sessions_peak: the sweep over [started, finished) intervals, in the database."""

import datetime
import random
import zoneinfo

import pytest

from analytics.concurrency import sweep_in_python
from analytics.periods import range_period
from analytics.usage import concurrent_sessions_peak
from coaching.models import User
from tests.factories import CoachingSessionFactory

TAIPEI = zoneinfo.ZoneInfo("Asia/Taipei")
UTC = datetime.UTC
APRIL = range_period(datetime.date(2026, 4, 1), datetime.date(2026, 4, 30), tz=TAIPEI)
NOW = datetime.datetime(2026, 5, 10, tzinfo=UTC)


def at(day, hour, minute=0, month=4):
    return datetime.datetime(2026, month, day, hour, minute, tzinfo=UTC)


def processing(coach, start, finish=None):
    return CoachingSessionFactory(
        coach=coach,
        created_at=start,
        processing_started_at=start,
        processing_finished_at=finish,
        status="completed" if finish else "processing",
    )


def peak(coach, period=APRIL, now=NOW):
    return concurrent_sessions_peak(User.objects.filter(pk=coach.pk), period, now=now)


def test_overlapping_sessions(coach):
    processing(coach, at(10, 2, 0), at(10, 2, 30))
    processing(coach, at(10, 2, 10), at(10, 2, 40))
    processing(coach, at(10, 2, 20), at(10, 2, 25))  # inside both: three at 02:20
    processing(coach, at(10, 2, 35), at(10, 3, 0))  # two again at 02:35
    assert peak(coach) == 3


def test_back_to_back_sessions_do_not_overlap(coach):
    processing(coach, at(10, 2, 0), at(10, 2, 30))
    processing(coach, at(10, 2, 30), at(10, 3, 0))
    processing(coach, at(10, 3, 0), at(10, 3, 30))
    assert peak(coach) == 1


def test_a_chain_that_touches_and_a_real_overlap(coach):
    processing(coach, at(10, 2, 0), at(10, 2, 30))
    processing(coach, at(10, 2, 30), at(10, 3, 0))
    processing(coach, at(10, 2, 29), at(10, 2, 31))  # overlaps both ends of the hand-over
    assert peak(coach) == 2


def test_still_processing_counts_up_to_now(coach):
    processing(coach, at(10, 1))  # started, never finished
    processing(coach, at(10, 5), at(10, 6))
    assert peak(coach, now=at(10, 7)) == 2  # the first is still processing at 05:00
    assert peak(coach, now=at(10, 4)) == 1  # as of 04:00 the first runs [01:00, 04:00) only


def test_only_a_session_in_processing_is_still_processing(coach):
    # Stopped by hand without a finish time: no longer processing, whenever it stopped.
    for status in ("cancelled", "failed", "completed"):
        CoachingSessionFactory(
            coach=coach,
            created_at=at(10, 1),
            processing_started_at=at(10, 1),
            processing_finished_at=None,
            status=status,
        )
    processing(coach, at(10, 5), at(10, 6))
    assert peak(coach, now=at(10, 7)) == 1
    processing(coach, at(10, 1))  # this one is still processing: with the other, two at 05:00
    assert peak(coach, now=at(10, 7)) == 2


def test_intervals_are_clipped_to_the_period_in_its_zone(coach):
    # 31 March 10:00-10:30 UTC is 31 March evening in Taipei: March, not April.
    processing(coach, at(31, 10, 0, month=3), at(31, 10, 30, month=3))
    processing(coach, at(31, 10, 0, month=3), at(31, 10, 30, month=3))
    assert peak(coach) == 0
    # 15:50-16:10 UTC spans midnight in Taipei: processing on 1 April for ten minutes.
    processing(coach, at(31, 15, 50, month=3), at(31, 16, 10, month=3))
    assert peak(coach) == 1
    march = range_period(datetime.date(2026, 3, 1), datetime.date(2026, 3, 31), tz=TAIPEI)
    assert peak(coach, period=march) == 2  # the two at 10:00 UTC; the third starts later


def test_sessions_that_never_started_or_took_no_time_are_not_processing(coach):
    CoachingSessionFactory(coach=coach, created_at=at(10, 1), processing_started_at=None, status="pending")
    processing(coach, at(10, 2), at(10, 2))
    assert peak(coach) == 0


def test_empty_period_is_zero(coach):
    assert peak(coach) == 0


def test_each_coach_alone_and_the_platform_together(coach, other_coach):
    processing(coach, at(10, 2, 0), at(10, 2, 30))
    processing(coach, at(10, 2, 10), at(10, 2, 40))
    processing(other_coach, at(10, 2, 15), at(10, 2, 20))
    assert peak(coach) == 2
    assert peak(other_coach) == 1
    both = User.objects.filter(pk__in=[coach.pk, other_coach.pk])
    assert concurrent_sessions_peak(both, APRIL, now=NOW) == 3


def _brute_force(intervals):
    """Independent count: sessions processing at each start instant (the peak is at some start)."""
    return max((sum(1 for s, f in intervals if s <= t < f) for t, _ in intervals), default=0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_database_sweep_agrees_with_a_brute_force_count(coach, seed):
    rng = random.Random(seed)
    intervals = []
    for _ in range(60):
        start = at(10, 0) + datetime.timedelta(minutes=rng.randint(0, 600))
        finish = start + datetime.timedelta(minutes=rng.choice([0, 5, 10, 30, 60, 90]))
        processing(coach, start, finish)
        intervals.append((start, finish))
    expected = _brute_force(intervals)
    assert expected >= 3
    assert peak(coach) == expected
    assert sweep_in_python(intervals) == expected
