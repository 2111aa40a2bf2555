"""The API-call counter (coaching/middleware.py): per user per UTC day, cheap, never fails a request."""

import base64
import datetime
import logging
import threading

import pytest
import time_machine
from django.db import DatabaseError, connection
from django.db.models import QuerySet

from coaching import middleware
from coaching.models import ApiUsage
from tests.factories import ApiUsageFactory, UserFactory

API = "/api/v1/usage/analytics"
UTC = datetime.UTC


def count(user, day):
    row = ApiUsage.objects.filter(user=user, day=day).first()
    return row.count if row else 0


def test_counts_each_authenticated_api_request(api_for, coach):
    with time_machine.travel(datetime.datetime(2026, 4, 2, 3, 0, tzinfo=UTC), tick=False):
        client = api_for(coach)
        for _ in range(3):
            assert client.get(API).status_code == 200
        assert client.get(API, {"period": "nonsense"}).status_code == 400  # an answered request is a call
    assert count(coach, datetime.date(2026, 4, 2)) == 4
    assert ApiUsage.objects.count() == 1


def test_the_usage_pages_own_refresh_polls_are_not_counted(api_for, coach):
    with time_machine.travel(datetime.datetime(2026, 4, 2, 3, 0, tzinfo=UTC), tick=False):
        client = api_for(coach)
        assert client.get(API, HTTP_X_DASHBOARD_REFRESH="1").status_code == 200
        assert client.get(API).status_code == 200
    assert count(coach, datetime.date(2026, 4, 2)) == 1


def test_the_day_is_the_utc_day_not_the_users(api_for, coach):
    # 31 March 23:30 UTC is 1 April in Taipei; the counter's day is UTC's.
    with time_machine.travel(datetime.datetime(2026, 3, 31, 23, 30, tzinfo=UTC), tick=False):
        api_for(coach).get(API)
    with time_machine.travel(datetime.datetime(2026, 4, 1, 0, 30, tzinfo=UTC), tick=False):
        api_for(coach).get(API)
    assert count(coach, datetime.date(2026, 3, 31)) == 1
    assert count(coach, datetime.date(2026, 4, 1)) == 1


def test_users_authenticated_by_drf_inside_the_view_are_counted(client, db):
    user = UserFactory(email="basic@example.com", password="pw-for-tests-123")
    token = base64.b64encode(b"basic@example.com:pw-for-tests-123").decode()
    response = client.get(API, HTTP_AUTHORIZATION=f"Basic {token}")
    assert response.status_code == 200
    assert ApiUsage.objects.get(user=user).count == 1


def test_anonymous_requests_and_pages_are_not_counted(client, api_for, coach):
    assert client.get(API).status_code in (401, 403)
    api_for(coach).get("/dashboard/usage")
    api_for(coach).get("/no/such/page")
    assert ApiUsage.objects.count() == 0


def test_a_failing_counter_never_fails_the_request(api_for, coach, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(middleware, "api_call_count", broken)
    with caplog.at_level(logging.ERROR, logger="coaching.middleware"):
        response = api_for(coach).get(API)
    assert response.status_code == 200
    assert "minutes_used" in response.json()
    assert f"Could not count an API call for user {coach.pk}" in caplog.text


def test_losing_the_insert_race_adds_to_the_winners_row(coach, monkeypatch):
    """Two first requests of the day: the one whose INSERT hits the unique constraint updates instead."""
    day = datetime.date(2026, 4, 2)
    ApiUsageFactory(user=coach, day=day, count=5)  # the winner's row, invisible to the first UPDATE
    real_update = QuerySet.update
    calls = []

    def update_missing_once(self, **kwargs):
        calls.append(kwargs)
        return 0 if len(calls) == 1 else real_update(self, **kwargs)

    monkeypatch.setattr(QuerySet, "update", update_missing_once)
    middleware.api_call_count(coach.pk, day=day)
    assert len(calls) == 2  # UPDATE (missed), INSERT (IntegrityError), UPDATE
    assert count(coach, day) == 6


def test_one_update_per_request_once_the_row_exists(coach, django_assert_num_queries):
    day = datetime.date(2026, 4, 2)
    middleware.api_call_count(coach.pk, day=day)
    with django_assert_num_queries(1):
        middleware.api_call_count(coach.pk, day=day)
    assert count(coach, day) == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_requests_lose_no_count():
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent writers: PostgreSQL")
    user = UserFactory(email="busy@example.com")
    day = datetime.date(2026, 4, 2)
    barrier = threading.Barrier(8)
    errors = []

    def hammer():
        try:
            barrier.wait()
            for _ in range(25):
                middleware.api_call_count(user.pk, day=day)
        except Exception as error:  # collected and asserted below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count(user, day) == 200


@pytest.mark.django_db(transaction=True)
def test_the_relaxed_commit_does_not_leak_into_later_transactions():
    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")
    user = UserFactory(email="durable@example.com")
    day = datetime.date(2026, 4, 2)
    middleware.api_call_count(user.pk, day=day)  # the first: an INSERT
    middleware.api_call_count(user.pk, day=day)  # then the one-statement UPDATE, committed asynchronously
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"  # a payment written next on this connection waits for the disk
    assert count(user, day) == 2
