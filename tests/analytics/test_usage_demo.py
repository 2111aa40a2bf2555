"""The API on the demo world: every metric non-zero where the demo has activity, and equal to an
independent count in plain Python over the rows (no analytics code, no ORM aggregates)."""

import datetime
import zoneinfo
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from coaching.models import ApiUsage, CoachingSession, ExportRecord, UsageLog, User

URL = "/api/v1/usage/analytics"
TAIPEI = zoneinfo.ZoneInfo("Asia/Taipei")


def independent(users, *, now: datetime.datetime, days: int = 90) -> dict:
    """The usage metrics for ``users`` over the last ``days`` local days in Taipei, counted by hand."""
    today = now.astimezone(TAIPEI).date()
    first = today - datetime.timedelta(days=days - 1)
    start = datetime.datetime.combine(first, datetime.time.min, tzinfo=TAIPEI)
    end = datetime.datetime.combine(today + datetime.timedelta(days=1), datetime.time.min, tzinfo=TAIPEI)
    ids = {u.pk for u in users}

    logs = [r for r in UsageLog.objects.values() if r["user_id"] in ids and start <= r["created_at"] < end]
    sessions = [r for r in CoachingSession.objects.values() if r["coach_id"] in ids]
    exports = [
        r
        for r in ExportRecord.objects.values()
        if r["subject_id"] in ids and r["status"] == "succeeded" and start <= r["created_at"] < end
    ]
    finished = [s for s in sessions if s["processing_finished_at"] and start <= s["processing_finished_at"] < end]

    stored = sum(
        s["audio_size_bytes"]
        for s in sessions
        if s["created_at"] <= now and (s["deleted_at"] is None or s["deleted_at"] > now)
    )
    stored += sum(
        r["bytes"]
        for r in ExportRecord.objects.values()
        if r["subject_id"] in ids and r["file_path"] and r["created_at"] <= now and not r["file_deleted_at"]
    )
    intervals = []
    for s in sessions:
        if s["processing_started_at"] is None:
            continue
        if s["processing_finished_at"] is None and s["status"] != "processing":
            continue  # stopped at an unknown instant: not still processing
        a = max(s["processing_started_at"], start)
        b = min(s["processing_finished_at"] or now, end)
        if a < b:
            intervals.append((a, b))
    peak = max((sum(1 for a, b in intervals if a <= t < b) for t, _ in intervals), default=0)
    formats = Counter(r["format"] for r in exports)
    return {
        "minutes_used": float(sum(r["minutes"] for r in logs if r["kind"] in ("original", "retry_success"))),
        "sessions": sum(1 for r in logs if r["kind"] == "original"),
        "transcriptions": sum(1 for r in logs if r["kind"] != "adjustment"),
        "exports_generated": len(exports),
        "exports_by_format": {fmt: formats.get(fmt, 0) for fmt in ("csv", "pdf", "xlsx")},
        "storage_used_mb": float((Decimal(stored) / 1_048_576).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)),
        "api_calls_made": sum(
            r["count"] for r in ApiUsage.objects.values() if r["user_id"] in ids and first <= r["day"] <= today
        ),
        "concurrent_sessions_peak": peak,
        "failed_transcriptions": sum(1 for s in finished if s["status"] == "failed"),
        "completed_transcriptions": sum(1 for s in finished if s["status"] == "completed"),
    }


@pytest.fixture
def demo():
    call_command("seed_demo", "--no-progress")
    # Freeze a minute after seeding so the API and the hand count share one "now".
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=1), tick=False):
        yield timezone.now()


@pytest.mark.django_db
def test_the_demo_coachs_numbers_are_real_and_match_a_hand_count(demo, api_for):
    coach = User.objects.get(email="coach@example.com")
    expected = independent([coach], now=demo)  # before the call: the call itself is counted as an API call
    body = api_for(coach).get(URL, {"period": "90d"}).json()
    assert {key: body[key] for key in expected} == expected
    for key, value in expected.items():
        if key != "exports_by_format":
            assert value, f"{key} is zero on the demo world"
    assert sum(expected["exports_by_format"].values()) == expected["exports_generated"]
    # The demo's burst: three uploads processed side by side a few days ago.
    assert body["concurrent_sessions_peak"] >= 3
    # The plan block agrees with the month's counters the services keep.
    counters = coach.monthly_usage.current(demo)
    assert body["plan"]["used_minutes"] == float(counters["minutes"])


@pytest.mark.django_db
def test_staff_platform_totals_match_a_hand_count_over_every_user(demo, api_for):
    staff = User.objects.get(email="staff@example.com")
    expected = independent(list(User.objects.all()), now=demo)
    body = api_for(staff).get(URL, {"period": "90d"}).json()
    assert body["scope"] == "platform"
    assert {key: body[key] for key in expected} == expected
    coach_only = independent([User.objects.get(email="coach@example.com")], now=demo)
    assert expected["minutes_used"] > coach_only["minutes_used"]
    # The call was counted, for today's UTC day.
    again = api_for(staff).get(URL, {"period": "90d"}).json()
    assert again["api_calls_made"] == body["api_calls_made"] + 1
