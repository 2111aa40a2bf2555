"""Faults: a database that goes away mid-request gives a clean answer, and the next request recovers."""

import pytest
from django.db import OperationalError, connection
from django.db.backends import utils

pytestmark = pytest.mark.django_db

LOST = "server closed the connection unexpectedly"


@pytest.fixture
def database_goes_away(monkeypatch):
    def broken(self, *args, **kwargs):
        raise OperationalError(LOST)

    def apply():
        monkeypatch.setattr(utils.CursorWrapper, "execute", broken)
        monkeypatch.setattr(utils.CursorWrapper, "executemany", broken)

    return apply


def test_a_page_answers_503_with_a_message(client, coach, database_goes_away):
    client.force_login(coach)
    database_goes_away()
    response = client.get("/dashboard/usage")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"database is unavailable" in response.content


def test_an_api_call_answers_503_json(api_for, coach, database_goes_away):
    api = api_for(coach)
    database_goes_away()
    response = api.get("/api/v1/usage/analytics")
    assert response.status_code == 503
    assert "database is unavailable" in response.json()["detail"]


@pytest.mark.real_worker
@pytest.mark.django_db(transaction=True)
def test_postgres_connection_killed_between_requests_recovers(client, coach):
    """A real lost connection (the server ends our backend): health checks reconnect, nothing fails."""
    import psycopg

    client.force_login(coach)
    assert client.get("/dashboard/usage").status_code == 200
    pid = connection.cursor().connection.info.backend_pid
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    response = client.get("/dashboard/usage")
    assert response.status_code in (200, 503)
    # Whatever that one request met, the connection is healthy for the next.
    assert client.get("/dashboard/usage").status_code == 200
