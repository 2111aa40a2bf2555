"""Live updates: "something changed for this topic", published when usage is recorded, streamed as SSE.

Two interchangeable channels, chosen by the settings:

- **Redis pub/sub** when ``LIVE_REDIS_URL`` (by default the Redis ``CELERY_BROKER_URL``) is set:
  the web process that streams and the worker or process that records usage may be different
  processes or machines. Channel names carry ``LIVE_CHANNEL_PREFIX``.
- **An in-process channel** on the embedded default (eager Celery, one process): ``publish`` may be
  called from any thread (Django's sync views and services run in a thread pool under ASGI); it
  hands the message to each subscriber's event loop with ``call_soon_threadsafe``.

A message carries no numbers, only the topic: the page then reads the same analytics API it
polls, so the live path and the polling fallback can never disagree. Publishing never fails the
caller: a broken Redis logs one warning and the pages fall back to polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import weakref
from collections.abc import AsyncIterator

from django.conf import settings

log = logging.getLogger(__name__)

BILLING = "billing"
CLOSED = ""  # put on a subscriber's queue when its channel broke: the stream ends, the page reconnects


class ChannelDown(Exception):
    """The live channel (Redis) cannot be subscribed to right now; the pages poll meanwhile."""


def usage_topic(user_id) -> str:
    return f"usage:{user_id}"


def _redis_url() -> str:
    return getattr(settings, "LIVE_REDIS_URL", "")


def _channel(topic: str) -> str:
    return f"{getattr(settings, 'LIVE_CHANNEL_PREFIX', 'live:')}{topic}"


# --- in-process -------------------------------------------------------------------------------


class _LocalHub:
    """Subscribers of this process: topic -> {queue: its loop}."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, dict[asyncio.Queue, asyncio.AbstractEventLoop]] = {}

    def add(self, topic: str, queue: asyncio.Queue, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._subscribers.setdefault(topic, {})[queue] = loop

    def remove(self, topic: str, queue: asyncio.Queue) -> None:
        with self._lock:
            queues = self._subscribers.get(topic, {})
            queues.pop(queue, None)
            if not queues:
                self._subscribers.pop(topic, None)

    def publish(self, topic: str, message: str) -> int:
        with self._lock:
            targets = list(self._subscribers.get(topic, {}).items())
        for queue, loop in targets:
            with contextlib.suppress(RuntimeError):  # that loop has closed: its stream is gone
                loop.call_soon_threadsafe(_offer, queue, message)
        return len(targets)

    def count(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._subscribers.values())


def _offer(queue: asyncio.Queue, message: str) -> None:
    # A slow reader needs only the latest news ("changed"): drop rather than grow without bound.
    if not queue.full():
        queue.put_nowait(message)


HUB = _LocalHub()
_sync_redis = None
_sync_redis_lock = threading.Lock()


def _redis_client():
    global _sync_redis
    with _sync_redis_lock:
        if _sync_redis is None:
            import redis

            _sync_redis = redis.Redis.from_url(_redis_url(), socket_timeout=2, socket_connect_timeout=2)
        return _sync_redis


def publish(topic: str, **data) -> None:
    """Tell the subscribers of ``topic`` that it changed. Never raises: the pages also poll."""
    message = json.dumps({"topic": topic, **data}, default=str)
    if not _redis_url():
        HUB.publish(topic, message)
        return
    try:
        _redis_client().publish(_channel(topic), message)
    except Exception as exc:  # noqa: BLE001 - a live update is a nicety; recording usage must not fail
        log.warning("Live update for %s not published: %s: %s", topic, type(exc).__name__, exc)


def usage_recorded(user_id) -> None:
    """The hook ``coaching.services`` calls (on commit) after writing a user's usage."""
    publish(usage_topic(user_id))
    publish(BILLING)


@contextlib.asynccontextmanager
async def subscribe(*topics: str) -> AsyncIterator[asyncio.Queue]:
    """A queue of the messages published to ``topics`` while the block runs.

    Raises ``ChannelDown`` when Redis cannot be subscribed to.
    """
    queue: asyncio.Queue = asyncio.Queue(maxsize=16)
    if not _redis_url():
        loop = asyncio.get_running_loop()
        for topic in topics:
            HUB.add(topic, queue, loop)
        try:
            yield queue
        finally:
            for topic in topics:
                HUB.remove(topic, queue)
        return
    fanout = _fanout()
    await fanout.add(topics, queue)
    try:
        yield queue
    finally:
        await fanout.remove(topics, queue)


_fanouts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fanout() -> _RedisFanout:
    loop = asyncio.get_running_loop()
    if loop not in _fanouts:
        _fanouts[loop] = _RedisFanout()
    return _fanouts[loop]


class _RedisFanout:
    """One Redis pub/sub connection per event loop (one per server process), shared by all its streams.

    A channel is subscribed while at least one stream of this process follows its topic. If the
    connection breaks, every stream gets ``CLOSED`` (and ends; the pages reconnect), and the next
    stream to open connects again.
    """

    def __init__(self) -> None:
        self.queues: dict[str, set[asyncio.Queue]] = {}
        self.client = None
        self.pubsub = None
        self.task: asyncio.Task | None = None
        self.lock = asyncio.Lock()

    async def add(self, topics: tuple[str, ...], queue: asyncio.Queue) -> None:
        async with self.lock:
            new = [t for t in topics if t not in self.queues]
            try:
                if self.pubsub is None:
                    await self._reset()  # what is left of a connection that broke
                    await self._connect()
                if new:
                    await self.pubsub.subscribe(*(_channel(t) for t in new))
            except Exception as exc:
                await self._reset()
                raise ChannelDown(f"{type(exc).__name__}: {exc}") from exc
            for topic in topics:
                self.queues.setdefault(topic, set()).add(queue)

    async def remove(self, topics: tuple[str, ...], queue: asyncio.Queue) -> None:
        async with self.lock:
            gone = []
            for topic in topics:
                followers = self.queues.get(topic)
                if followers is None:
                    continue
                followers.discard(queue)
                if not followers:
                    del self.queues[topic]
                    gone.append(topic)
            if gone and self.pubsub is not None:
                with contextlib.suppress(Exception):
                    await self.pubsub.unsubscribe(*(_channel(t) for t in gone))

    async def _connect(self) -> None:
        import redis.asyncio as aioredis

        # Named, so an operator (or a test) can tell these connections from Celery's in CLIENT LIST.
        name = f"{_channel('')}subscriber".replace(" ", "_")
        self.client = aioredis.Redis.from_url(_redis_url(), socket_connect_timeout=2, client_name=name)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        await self.pubsub.ping()  # connects now, so a Redis that is down is known at once
        self.task = asyncio.create_task(self._pump(self.pubsub))

    async def _pump(self, pubsub) -> None:
        prefix = _channel("")
        try:
            while True:
                item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if not item or item.get("type") != "message":
                    continue
                channel, data = item["channel"], item["data"]
                topic = (channel.decode() if isinstance(channel, bytes) else channel).removeprefix(prefix)
                message = data.decode() if isinstance(data, bytes) else str(data)
                for queue in list(self.queues.get(topic, ())):
                    _offer(queue, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - Redis went away: end the streams, the pages reconnect
            log.warning("Live channel closed: %s: %s", type(exc).__name__, exc)
            followers = {q for queues in self.queues.values() for q in queues}
            self.queues.clear()
            self.pubsub = None  # the next stream to open connects again
            for queue in followers:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(CLOSED)

    async def _reset(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        with contextlib.suppress(Exception):
            if self.pubsub is not None:
                await self.pubsub.aclose()
            if self.client is not None:
                await self.client.aclose()
        self.client = self.pubsub = self.task = None
