"""GET /api/v1/usage/analytics: scope, periods, the previous period, errors and freshness."""

import datetime
import uuid

import pytest
import time_machine

from coaching import services
from tests.factories import (
    ApiUsageFactory,
    CoachingSessionFactory,
    ExportRecordFactory,
    UsageLogFactory,
    UserFactory,
)

URL = "/api/v1/usage/analytics"
UTC = datetime.UTC
NOW = datetime.datetime(2026, 4, 16, 4, 0, tzinfo=UTC)  # 16 April 12:00 in Taipei


def utc(month, day, hour=12, minute=0):
    return datetime.datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def activity(coach, other_coach):
    """April (Taipei) activity for the coach, some in March, and the other coach's."""
    UsageLogFactory(user=coach, seconds=600, created_at=utc(4, 2))
    UsageLogFactory(user=coach, seconds=1200, created_at=utc(3, 31, 23, 30))  # 1 April in Taipei
    UsageLogFactory(user=coach, seconds=300, created_at=utc(3, 20))
    ExportRecordFactory(requested_by=coach, format="pdf", created_at=utc(4, 3))
    ExportRecordFactory(requested_by=coach, format="csv", created_at=utc(3, 25))
    ApiUsageFactory(user=coach, day=datetime.date(2026, 4, 5), count=40)
    for minute in (0, 10):
        CoachingSessionFactory(
            coach=coach,
            created_at=utc(4, 6),
            audio_size_bytes=1_048_576,
            processing_started_at=utc(4, 6, 10, minute),
            processing_finished_at=utc(4, 6, 10, minute + 30),
        )
    CoachingSessionFactory(
        coach=coach,
        created_at=utc(4, 7),
        audio_size_bytes=0,
        status="failed",
        processing_started_at=utc(4, 7),
        processing_finished_at=utc(4, 7, 13),
    )
    UsageLogFactory(user=other_coach, seconds=6000, created_at=utc(4, 2))
    ExportRecordFactory(requested_by=other_coach, format="xlsx", created_at=utc(4, 3))
    ApiUsageFactory(user=other_coach, day=datetime.date(2026, 4, 5), count=2)


def test_a_coach_gets_their_own_month(api_for, coach, activity):
    response = api_for(coach).get(URL, {"period": "month"})
    assert response.status_code == 200
    body = response.json()
    assert body["scope"] == "user"
    assert body["user"]["email"] == "alice@example.com"
    assert body["period"] | {"start": None, "end": None} == {
        "key": "month",
        "start": None,
        "end": None,
        "first_day": "2026-04-01",
        "last_day": "2026-04-16",
        "timezone": "Asia/Taipei",
        "granularity": "day",
    }
    assert body["data_through"] == "2026-04-16T04:00:00+00:00"
    assert body["minutes_used"] == 30.0  # 10 + 20; the March row is not April
    assert body["sessions"] == 2
    assert body["exports_generated"] == 1
    assert body["exports_by_format"] == {"csv": 0, "pdf": 1, "xlsx": 0}
    assert body["api_calls_made"] == 40
    assert body["concurrent_sessions_peak"] == 2
    assert body["storage_used_mb"] == 2.0  # two 1 MiB sessions; no export file kept
    assert body["failed_transcriptions"] == 1
    assert body["completed_transcriptions"] == 2
    assert body["failure_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert body["plan"]["used_minutes"] == 30.0 and body["plan"]["limit_minutes"] == 3000
    assert [row["label"] for row in body["series"]][:2] == ["2026-04-01", "2026-04-02"]
    assert body["series"][0]["minutes"] == 20.0
    assert [chart["id"] for chart in body["charts"]] == ["minutes", "sessions-by-status", "exports-by-format"]
    assert body["charts"][0]["datasets"][1]["label"].startswith("Plan limit")
    assert set(body["definitions"]) >= {"storage_used_mb", "concurrent_sessions_peak", "api_calls_made"}


def test_previous_period_and_changes(api_for, coach, activity):
    body = api_for(coach).get(URL, {"from": "2026-04-01", "to": "2026-04-10"}).json()
    previous = body["previous"]
    assert (previous["period"]["first_day"], previous["period"]["last_day"]) == ("2026-03-22", "2026-03-31")
    assert previous["minutes_used"] == 0.0  # the 20 March row is before the previous ten days
    assert previous["exports_generated"] == 1  # 25 March
    assert body["changes"]["exports_generated"] == {"delta": 0.0, "percent": 0.0}
    assert body["changes"]["minutes_used"] == {"delta": 30.0, "percent": None}  # from zero: no percentage
    assert body["changes"]["failure_rate"] == {"delta": None, "percent": None}  # no rate last period


def test_staff_get_platform_totals_by_default(api_for, staff, coach, other_coach, activity):
    body = api_for(staff).get(URL, {"period": "month"}).json()
    assert (body["scope"], body["user"], body["plan"]) == ("platform", None, None)
    assert body["minutes_used"] == 130.0
    assert body["exports_by_format"] == {"csv": 0, "pdf": 1, "xlsx": 1}
    assert body["api_calls_made"] == 42
    assert [d["label"] for d in body["charts"][0]["datasets"]] == ["Minutes used"]  # no single plan limit


def test_staff_may_look_at_one_coach(api_for, staff, coach, activity):
    body = api_for(staff).get(URL, {"period": "month", "user": str(coach.pk)}).json()
    assert (body["scope"], body["user"]["id"]) == ("user", str(coach.pk))
    assert body["minutes_used"] == 30.0
    assert body["plan"]["plan_code"] == "pro"


def test_periods_are_cut_in_the_viewers_time_zone(api_for, coach, activity):
    staff_in_la = UserFactory(email="la-staff@example.com", is_staff=True, timezone="America/Los_Angeles")
    body = api_for(staff_in_la).get(URL, {"period": "month", "user": str(coach.pk)}).json()
    assert body["period"]["timezone"] == "America/Los_Angeles"
    assert body["period"]["start"] == "2026-04-01T00:00:00-07:00"
    # 31 March 23:30 UTC is still March in Los Angeles: only the 2 April row.
    assert body["minutes_used"] == 10.0


def test_a_coach_never_sees_another_coachs_numbers(api_for, coach, other_coach, activity):
    response = api_for(coach).get(URL, {"user": str(other_coach.pk)})
    assert response.status_code == 403
    assert response.json() == {"detail": "You can only see your own usage: leave out 'user'."}
    assert api_for(coach).get(URL, {"user": str(coach.pk)}).status_code == 200


def test_anonymous_is_refused(api_for, activity):
    response = api_for(None).get(URL)
    assert response.status_code in (401, 403)
    assert "minutes_used" not in response.json()


@pytest.mark.parametrize(
    ("params", "field", "says"),
    [
        ({"period": "fortnight"}, "period", "Unknown period 'fortnight'"),
        ({"from": "2026-02-30"}, "from", "YYYY-MM-DD"),
        ({"from": "2026-04-10", "to": "2026-04-01"}, "period", "'to' (2026-04-01) is before 'from' (2026-04-10)"),
        ({"period": "30d", "from": "2026-04-01"}, "period", "not both"),
        ({"user": "not-a-uuid"}, "user", "must be a user id"),
        ({"granularity": "week"}, "granularity", "not a valid choice"),
        ({"from": "0001-01-01", "to": "0001-01-02"}, "from", "'from' must be on or after 2000-01-01"),
        ({"from": "2026-01-01", "to": "9999-12-31"}, "to", "'to' must be on or before 2100-12-31"),
    ],
)
def test_bad_queries_are_400_with_a_message(api_for, staff, params, field, says):
    response = api_for(staff).get(URL, params)
    assert response.status_code == 400
    body = response.json()
    assert says in body["detail"]
    assert field in body["errors"]


def test_a_user_that_does_not_exist_is_400(api_for, staff):
    missing = uuid.uuid4()
    response = api_for(staff).get(URL, {"user": str(missing)})
    assert response.status_code == 400
    assert response.json()["detail"] == f"user: No user has the id {missing}: check it, or leave it out."


def test_accepts_the_old_clients_3m_and_12m(api_for, coach, activity):
    for key, first_day in (("3m", "2026-02-01"), ("12m", "2025-05-01")):
        body = api_for(coach).get(URL, {"period": key}).json()
        assert (body["period"]["key"], body["period"]["first_day"]) == (key, first_day)
        assert body["minutes_used"] == 35.0


def test_a_finished_session_and_a_new_export_show_at_once(api_for, coach):
    client = api_for(coach)
    before = client.get(URL, {"period": "7d"}).json()
    session = services.session_create(
        coach=coach, title="Goal setting", session_date=NOW.date(), duration_seconds=1800, audio_size_bytes=1_048_576
    )
    services.session_processing_start(session, at=NOW - datetime.timedelta(minutes=5))
    services.session_processing_finish(session, at=NOW)
    ExportRecordFactory(requested_by=coach, format="csv", created_at=NOW)
    after = client.get(URL, {"period": "7d"}).json()
    assert after["minutes_used"] - before["minutes_used"] == 30.0
    assert after["sessions"] - before["sessions"] == 1
    assert after["exports_generated"] - before["exports_generated"] == 1
    assert after["storage_used_mb"] - before["storage_used_mb"] == 1.0
    assert after["plan"]["used_minutes"] == 30.0
