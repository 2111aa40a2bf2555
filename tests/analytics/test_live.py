"""Live updates: the event streams of the usage and billing pages (Server-Sent Events under ASGI).

The stream tests run a real uvicorn in a thread on the test database. On the embedded default
the in-process channel carries the news; on PostgreSQL + Redis, Redis pub/sub does (the settings
choose, as in production).
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import pytest
import requests
from django.conf import settings
from django.test import Client

from coaching import live, services
from coaching.models import UsageLog
from tests.analytics.live_server import AsgiServer
from tests.factories import CoachingSessionFactory

STREAM = "/dashboard/usage/stream"


def session_cookie(user) -> dict:
    client = Client()
    client.force_login(user)
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


class EventReader:
    """Reads a text/event-stream in a thread; ``next(timeout)`` -> (event, data) or None."""

    def __init__(self, response):
        self.events: queue.Queue = queue.Queue()
        self.response = response
        self.ended = threading.Event()  # the server ended the stream (or the test closed it)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        event, data = "message", ""
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line == "":
                    if data or event != "message":
                        self.events.put((event, data))
                    event, data = "message", ""
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
        except Exception:  # noqa: BLE001 - the test closed the stream
            pass
        finally:
            self.ended.set()

    def next(self, timeout: float):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None


@pytest.fixture
def asgi(transactional_db, settings):
    settings.LIVE_CHANNEL_PREFIX = f"i14test:{time.monotonic_ns()}:"
    settings.LIVE_KEEPALIVE_SECONDS = 1
    with AsgiServer() as server:
        yield server


@pytest.mark.django_db(transaction=True)
def test_usage_recorded_reaches_an_open_stream_within_two_seconds(asgi, coach, other_coach):
    session = CoachingSessionFactory(coach=coach, duration_seconds=600)
    response = requests.get(asgi.url + STREAM, cookies=session_cookie(coach), stream=True, timeout=10)
    assert (response.status_code, response.headers["Content-Type"]) == (200, "text/event-stream")
    reader = EventReader(response)
    assert reader.next(timeout=5)[0] == "ready"

    services.usage_record(other_coach, session=None, kind=UsageLog.Kind.ADJUSTMENT, seconds=60)
    assert reader.next(timeout=0.5) is None  # another coach's usage is not news to this one

    started = time.monotonic()
    services.usage_record(coach, session=session, kind=UsageLog.Kind.ORIGINAL, seconds=600)
    event = reader.next(timeout=2)
    assert event is not None and event[0] == "usage", event
    assert time.monotonic() - started < 2
    assert f'"topic": "usage:{coach.pk}"' in event[1]
    response.close()


@pytest.mark.django_db(transaction=True)
def test_billing_stream_is_for_staff_and_hears_any_usage(asgi, coach, staff):
    refused = requests.get(asgi.url + "/dashboard/billing/stream", cookies=session_cookie(coach), timeout=10)
    assert (refused.status_code, refused.json()) == (403, {"detail": "The billing overview is for staff."})
    anonymous = requests.get(asgi.url + STREAM, timeout=10)
    assert anonymous.status_code == 401

    response = requests.get(
        asgi.url + "/dashboard/billing/stream", cookies=session_cookie(staff), stream=True, timeout=10
    )
    reader = EventReader(response)
    assert reader.next(timeout=5)[0] == "ready"
    services.usage_record(coach, session=None, kind=UsageLog.Kind.ADJUSTMENT, seconds=60)
    assert reader.next(timeout=2)[0] == "billing"
    response.close()


@pytest.mark.django_db
def test_under_wsgi_the_stream_says_no_content_so_the_page_polls(coach):
    client = Client()
    client.force_login(coach)
    assert client.get(STREAM).status_code == 204


@pytest.mark.django_db
def test_a_broken_redis_never_fails_recording_usage(coach, settings, caplog):
    settings.LIVE_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    live._sync_redis = None
    try:
        with caplog.at_level(logging.WARNING, logger="coaching.live"):
            live.usage_recorded(coach.pk)
    finally:
        live._sync_redis = None
    refused = "not published: ConnectionError: Error 111 connecting to 127.0.0.1:1. Connection refused."
    assert [r.getMessage() for r in caplog.records] == [
        f"Live update for usage:{coach.pk} {refused}",
        f"Live update for billing {refused}",
    ]


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_the_stream_ends_at_once_and_asks_for_a_later_retry(asgi, coach, settings, caplog):
    settings.LIVE_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="analytics.views.live"):
        response = requests.get(asgi.url + STREAM, cookies=session_cookie(coach), timeout=10)
    assert response.status_code == 200
    assert response.text == "retry: 30000\nevent: unavailable\ndata: {}\n\n"
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["Live stream usage"]


@pytest.mark.django_db(transaction=True)
def test_when_the_redis_connection_breaks_streams_end_and_the_next_one_connects_again(asgi, coach):
    if not settings.LIVE_REDIS_URL:
        pytest.skip("Redis pub/sub is the channel only with a Redis URL (PostgreSQL + Redis run)")
    import redis

    first = requests.get(asgi.url + STREAM, cookies=session_cookie(coach), stream=True, timeout=10)
    reader = EventReader(first)
    assert reader.next(timeout=5)[0] == "ready"
    admin = redis.Redis.from_url(settings.LIVE_REDIS_URL)
    name = f"{settings.LIVE_CHANNEL_PREFIX}subscriber"
    ours = [c["id"] for c in admin.client_list() if c.get("name") == name]
    assert len(ours) == 1  # one connection for every stream of the process
    admin.client_kill_filter(_id=ours[0])  # only this test's subscriber connection

    assert reader.ended.wait(timeout=5)  # the stream ended: the page's EventSource reconnects
    assert reader.next(timeout=0.2) is None

    second = requests.get(asgi.url + STREAM, cookies=session_cookie(coach), stream=True, timeout=10)
    again = EventReader(second)
    assert again.next(timeout=5)[0] == "ready"
    services.usage_record(coach, session=None, kind=UsageLog.Kind.ADJUSTMENT, seconds=60)
    assert again.next(timeout=2)[0] == "usage"
    first.close()
    second.close()
