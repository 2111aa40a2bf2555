"""Health endpoints and the quiet degrade paths, on either database (no processes of their own).

The same endpoints are called on a real server with Redis and PostgreSQL stopped in
``test_redis_down`` and ``test_postgres_restart``.
"""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError
from django.db.backends import utils

from coaching import bulk, middleware
from coaching.models import BulkOperation, User
from tests.coaching.bulk_support import eager_celery

pytestmark = pytest.mark.django_db


@pytest.fixture
def database_goes_away(monkeypatch):
    def broken(self, *args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    def apply():
        monkeypatch.setattr(utils.CursorWrapper, "execute", broken)

    return apply


def test_healthz_answers_without_any_dependency(client, database_goes_away, django_assert_num_queries):
    database_goes_away()
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert "no-cache" in response["Cache-Control"]


def test_readyz_is_200_when_the_database_and_broker_answer(client, settings):
    settings.CELERY_BROKER_URL = ""  # the embedded default: tasks run in-process, there is no broker to check
    response = client.get("/readyz")
    body = response.json()
    assert (response.status_code, body["status"], body["failed"]) == (200, "ok", [])
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]


def test_readyz_names_the_database_when_it_is_gone(client, settings, database_goes_away):
    settings.CELERY_BROKER_URL = ""
    database_goes_away()
    response = client.get("/readyz")
    body = response.json()
    assert (response.status_code, response["Retry-After"], body["failed"]) == (503, "5", ["database"])
    assert body["detail"] == "Not ready: the database cannot be reached."
    assert "server closed the connection unexpectedly" in body["checks"]["database"]["error"]


def test_readyz_names_the_broker_when_it_is_gone(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:31168/0"  # nothing listens there
    response = client.get("/readyz")
    body = response.json()
    assert (response.status_code, body["failed"]) == (503, ["broker"])
    assert body["detail"] == "Not ready: the broker cannot be reached."
    assert body["checks"]["database"]["ok"] is True


def test_a_failing_api_counter_is_logged_once_per_outage(api_for, coach, monkeypatch, caplog):
    monkeypatch.setattr(middleware, "COUNTING", middleware.LogOnce(middleware.logger))

    def broken(user_id, *, day):
        raise OperationalError("could not connect to server")

    real = middleware.api_call_count
    monkeypatch.setattr(middleware, "api_call_count", broken)
    api = api_for(coach)
    with caplog.at_level(logging.WARNING, logger="coaching.middleware"):
        statuses = [api.get("/api/v1/usage/analytics").status_code for _ in range(4)]
        monkeypatch.setattr(middleware, "api_call_count", real)
        statuses.append(api.get("/api/v1/usage/analytics").status_code)
    assert statuses == [200] * 5
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"Could not count an API call for user {coach.pk} (further failures are not logged until it works again)",
        "Counting API calls again after 4 failure(s)",
    ]


def test_an_operation_never_queued_runs_when_the_same_key_is_sent_again(
    admin_user, coach, monkeypatch, django_capture_on_commit_callbacks
):
    from coaching import tasks

    real_delay = tasks.bulk_operation_start.delay

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setattr(tasks.bulk_operation_start, "delay", broker_down)
    ask = dict(kind="deactivate", user_ids=[coach.pk], parameters={}, requested_by=admin_user, idempotency_key="k1")
    with django_capture_on_commit_callbacks(execute=True):
        op, created = bulk.operation_create(**ask)
    op.refresh_from_db()
    assert (created, op.status, bulk.not_queued(op)) == (True, "failed", True)
    assert op.summary == {
        "not_queued": {"reason": "ConnectionRefusedError: Error 111 connecting to 127.0.0.1:6379", "retryable": True}
    }
    assert User.objects.get(pk=coach.pk).is_active

    monkeypatch.setattr(tasks.bulk_operation_start, "delay", real_delay)
    with eager_celery(), django_capture_on_commit_callbacks(execute=True):
        again, created = bulk.operation_create(**ask)
    again.refresh_from_db()
    assert (again.pk, created, again.status, again.error) == (op.pk, True, "succeeded", "")
    assert again.summary == {"done": {"users_changed": 1}}
    assert BulkOperation.objects.count() == 1
    assert not User.objects.get(pk=coach.pk).is_active

    # A third time: an ordinary replay of a finished operation, nothing runs again.
    third, created = bulk.operation_create(**ask)
    assert (third.pk, created) == (op.pk, False)


@pytest.mark.django_db(transaction=True)  # committed for real, as in production: the enqueue runs inside the request
def test_the_bulk_api_answers_503_with_retry_after_when_the_broker_is_down(admin_user, coach, api_for, monkeypatch):
    from coaching import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setattr(tasks.bulk_operation_start, "delay", broker_down)
    api = api_for(admin_user)
    response = api.post(
        "/api/v1/admin/bulk/reset-usage", {"user_ids": [str(coach.pk)], "reset_type": "all"}, format="json"
    )
    assert (response.status_code, response["Retry-After"]) == (503, "30")
    assert response.json()["detail"] == (
        "The task queue is unavailable right now, so the reset was not started and nothing was changed. "
        "Send the same request again in a minute to run it."
    )
    assert response.json()["operation"]["status"] == "failed"


@pytest.mark.django_db(transaction=True)  # autocommit, as served: inside a test transaction a reconnect is refused
def test_readyz_logs_when_readiness_changes_not_on_every_probe(
    client, settings, database_goes_away, monkeypatch, caplog
):
    from coaching import health

    settings.CELERY_BROKER_URL = ""
    monkeypatch.setattr(health, "_last_failed", [])
    with caplog.at_level(logging.WARNING, logger="coaching.health"):
        database_goes_away()
        assert [client.get("/readyz").status_code for _ in range(3)] == [503] * 3
        monkeypatch.undo()  # the database is back
        again = client.get("/readyz")
        assert again.status_code == 200, again.json()
    messages = [r.getMessage() for r in caplog.records]  # django.request's "Service Unavailable" too, if it logged
    assert len(messages) == 2
    assert messages[0].startswith("Not ready: database (OperationalError: server closed the connection")
    assert messages[1] == "Ready again: database and broker answer"
