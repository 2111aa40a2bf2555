"""Server-Sent Events for the usage page and the billing page: "your numbers changed, read them again".

An async view returning a ``StreamingHttpResponse`` over an async generator, served under ASGI
(uvicorn, ``make run``): an open stream costs a small coroutine and a queue, not a thread. The
events carry no figures; the page re-reads the analytics API it would otherwise poll, so live
and polled numbers are the same numbers.

Under WSGI (the development server, the test client) a stream would hold a worker thread for
ever, so the view answers ``204 No Content`` there: ``EventSource`` stops, and the page polls.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from coaching import live

log = logging.getLogger(__name__)
RETRY_MS = 3000  # how soon EventSource reconnects after the stream drops
DOWN_RETRY_MS = 30000  # …and when the channel itself is down (the page polls meanwhile)


async def usage_stream(request: HttpRequest) -> HttpResponse:
    """The logged-in user's own usage topic: an event each time usage is recorded for them."""
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"detail": "Log in to follow your usage."}, status=401)
    return _stream(request, live.usage_topic(user.pk), event="usage")


async def billing_stream(request: HttpRequest) -> HttpResponse:
    """Staff only: an event whenever usage or billing changes anywhere (the billing page re-reads its summary)."""
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"detail": "Log in to follow the billing overview."}, status=401)
    if not user.is_staff:
        return JsonResponse({"detail": "The billing overview is for staff."}, status=403)
    return _stream(request, live.BILLING, event="billing")


def _stream(request: HttpRequest, topic: str, *, event: str) -> HttpResponse:
    if not isinstance(request, ASGIRequest):
        return HttpResponse(status=204)  # no long-lived streams under WSGI: the page polls instead
    response = StreamingHttpResponse(_events(topic, event=event), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


async def _events(topic: str, *, event: str):
    # The request's database connection (it read the session and the user) would otherwise stay open
    # for as long as the stream does: one idle PostgreSQL connection per open page. A stream needs none.
    await sync_to_async(connections.close_all)()
    keepalive = settings.LIVE_KEEPALIVE_SECONDS
    try:
        async with live.subscribe(topic) as queue:
            yield f"retry: {RETRY_MS}\nevent: ready\ndata: {{}}\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=keepalive)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if message == live.CLOSED:
                    return  # the channel broke: end the stream, EventSource reconnects
                yield f"event: {event}\ndata: {message}\n\n"
    except live.ChannelDown as exc:
        log.warning("Live stream %s not opened: %s", topic, exc)
        yield f"retry: {DOWN_RETRY_MS}\nevent: unavailable\ndata: {{}}\n\n"  # ends: the page polls, retries later
