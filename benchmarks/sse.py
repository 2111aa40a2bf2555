"""Live usage page: 200 open event streams on one uvicorn process, update latency and memory per stream.

Creates its own PostgreSQL database (``bench_sse`` by default), migrates it, creates one coach per
stream with a logged-in session (rows in the session table: no password hashing), then starts
``uvicorn coaching.asgi:application`` as a subprocess on that database with Redis pub/sub as the
live channel (channel prefix of its own), exactly as ``make run`` serves it on real services.

  memory       the server's resident memory (VmRSS) with one open stream, then with all of them:
               (after - before) / (streams - 1) per stream.
  latency      usage recorded through the service (``coaching.services.usage_record``: ledger
               row + counters in one transaction, the live publish on commit) for a coach while
               every stream is open, until the event arrives on that coach's stream. ``--rounds``
               bursts of ``--burst`` coaches at once; p50 / p95 / max over all samples.
  baseline     the same measurement with a single open stream, in this run; printed as a ratio.

Goal: p95 under 2 s with 200 streams. Figures depend on the machine (a shared one reads slower).

    .venv/bin/python benchmarks/sse.py                          # 200 streams, 10 bursts of 20
    .venv/bin/python benchmarks/sse.py --streams 50 --rounds 3  # quicker
Environment: DATABASE_URL names the PostgreSQL server (its database name is replaced), LIVE_REDIS_URL
or CELERY_BROKER_URL the Redis server (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from _common import ROOT, database_url, percentile, prepare_database

GOAL_P95_MS = 2000.0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="bench_sse")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--port", type=int, default=18149)
    return parser.parse_args()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def make_coaches(n: int) -> list[tuple[str, str]]:
    """``n`` coaches with a session each: [(user id, session key)]."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from coaching.models import User

    tag = uuid.uuid4().hex[:8]
    users = [User(email=f"sse-{tag}-{i}@example.com", name=f"SSE {i}", timezone="Asia/Taipei") for i in range(n)]
    for user in users:
        user.set_unusable_password()
    User.objects.bulk_create(users)
    coaches = []
    for user in users:
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        coaches.append((str(user.pk), store.session_key))
    return coaches


class Stream:
    """One open ``GET /dashboard/usage/stream`` over a raw socket; ``events`` gets (name, arrival time)."""

    def __init__(self, port: int, session_key: str):
        self.port, self.session_key = port, session_key
        self.events: asyncio.Queue = asyncio.Queue()
        self.writer = None

    async def open(self) -> None:
        reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(
            (
                "GET /dashboard/usage/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                f"Cookie: sessionid={self.session_key}\r\n\r\n"
            ).encode()
        )
        await self.writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream refused: {status!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        self.task = asyncio.create_task(self._read(reader))

    async def _read(self, reader) -> None:
        async for raw in reader:  # chunked framing lines are skipped: only "event:" lines matter
            line = raw.decode(errors="replace").strip()
            if line.startswith("event:"):
                self.events.put_nowait((line[6:].strip(), time.perf_counter()))

    async def wait(self, name: str, timeout: float) -> float:
        deadline = time.perf_counter() + timeout
        while True:
            event, at = await asyncio.wait_for(self.events.get(), timeout=max(0.01, deadline - time.perf_counter()))
            if event == name:
                return at

    def close(self) -> None:
        self.task.cancel()
        self.writer.close()


async def record_and_wait(streams: dict[str, Stream], coach_ids: list[str]) -> list[float]:
    """Record usage for each coach (in a thread, as a worker or request would) and time the events' arrival."""
    from asgiref.sync import sync_to_async

    from coaching import services
    from coaching.models import UsageLog, User

    users = {str(u.pk): u for u in await sync_to_async(list)(User.objects.filter(pk__in=coach_ids))}

    async def one(coach_id: str) -> float:
        started = time.perf_counter()
        await sync_to_async(services.usage_record, thread_sensitive=False)(
            users[coach_id], session=None, kind=UsageLog.Kind.ADJUSTMENT, seconds=60
        )
        arrived = await streams[coach_id].wait("usage", timeout=10)
        return (arrived - started) * 1000

    return await asyncio.gather(*(one(c) for c in coach_ids))


async def measure(args, coaches, server_pid: int) -> dict:
    streams: dict[str, Stream] = {}
    first_id, first_key = coaches[0]
    streams[first_id] = Stream(args.port, first_key)
    await streams[first_id].open()
    await streams[first_id].wait("ready", timeout=10)
    await record_and_wait(streams, [first_id])  # warm-up: imports, connections (not counted)
    baseline = []
    for _ in range(args.rounds):
        baseline += await record_and_wait(streams, [first_id])
    await asyncio.sleep(0.5)
    before = rss_kib(server_pid)

    opened = time.perf_counter()
    rest = [Stream(args.port, key) for _, key in coaches[1:]]
    for chunk in range(0, len(rest), 50):  # open in waves, as page loads would arrive
        await asyncio.gather(*(s.open() for s in rest[chunk : chunk + 50]))
    for (coach_id, _), stream in zip(coaches[1:], rest, strict=True):
        streams[coach_id] = stream
    await asyncio.gather(*(s.wait("ready", timeout=30) for s in rest))
    open_seconds = time.perf_counter() - opened
    await asyncio.sleep(1.0)
    after = rss_kib(server_pid)

    samples = []
    ids = [c for c, _ in coaches]
    rng = random.Random(14)
    for _ in range(args.rounds):
        samples += await record_and_wait(streams, rng.sample(ids, min(args.burst, len(ids))))
    for stream in streams.values():
        stream.close()
    return {
        "baseline": baseline,
        "samples": samples,
        "rss_before": before,
        "rss_after": after,
        "open_seconds": open_seconds,
    }


def main() -> None:
    args = arguments()
    redis_url = os.environ.get("LIVE_REDIS_URL") or os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0"
    prefix = f"i14bench:{uuid.uuid4().hex[:8]}:"
    live_env = {
        "LIVE_REDIS_URL": redis_url,
        "LIVE_CHANNEL_PREFIX": prefix,
        "CELERY_BROKER_URL": redis_url,
        # The sessions made here are signed, and their auth hash keyed, with the server's secret.
        "SECRET_KEY": "benchmark-only-secret-key-not-for-production-0123456789",
    }
    prepare_database(args.database, reuse=False, env=live_env)
    coaches = make_coaches(args.streams)

    env = {
        **os.environ,
        **live_env,
        "DATABASE_URL": database_url(args.database),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "DB_CONN_MAX_AGE": "0",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "coaching.asgi:application",
            "--host", "127.0.0.1", "--port", str(args.port), "--log-level", "warning",
        ],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                import socket

                socket.create_connection(("127.0.0.1", args.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("uvicorn did not start") from None
                time.sleep(0.2)
        result = asyncio.run(measure(args, coaches, server.pid))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    samples, baseline = result["samples"], result["baseline"]
    per_stream = (result["rss_after"] - result["rss_before"]) / max(1, args.streams - 1)
    p50, p95 = percentile(samples, 50), percentile(samples, 95)
    base50, base95 = percentile(baseline, 50), percentile(baseline, 95)
    print(f"streams open: {args.streams} (opened in {result['open_seconds']:.2f} s), channel: Redis pub/sub")
    print(
        f"server memory: {result['rss_before'] / 1024:.1f} MiB with 1 stream, "
        f"{result['rss_after'] / 1024:.1f} MiB with {args.streams}: {per_stream:.1f} KiB per stream"
    )
    print(
        f"update latency, {args.streams} streams, {len(samples)} updates in bursts of {args.burst}: "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(samples):.1f} ms"
    )
    print(f"baseline, 1 stream, {len(baseline)} updates: p50 {base50:.1f} ms, p95 {base95:.1f} ms")
    print(f"ratio p95 ({args.streams} streams / 1 stream): {p95 / base95:.2f}x")
    print(f"goal p95 < {GOAL_P95_MS:.0f} ms: {'met' if p95 < GOAL_P95_MS else 'NOT met'}")
    if p95 >= GOAL_P95_MS:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
