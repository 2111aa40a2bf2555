"""API-call counter overhead: the same authenticated API request with and without the middleware.

Creates its own PostgreSQL database (``bench_api_middleware`` by default; never the dev database),
migrates it, then sends the same authenticated GET to a tiny DRF endpoint defined here (so the
view's own cost does not drown the difference: one ``SELECT 1``) through the whole Django stack, in alternating
blocks with ``coaching.middleware.ApiCallCounterMiddleware`` in MIDDLEWARE and without it. Prints
both medians, the overhead per request (the difference) and the counter's own median time
(``api_call_count`` called directly: one UPDATE that commits). Goal: overhead under 1 ms.

    .venv/bin/python benchmarks/api_middleware.py              # 10 rounds x 300 requests each way
    .venv/bin/python benchmarks/api_middleware.py --quick      # 4 rounds x 100
Environment: DATABASE_URL names the server (its database name is replaced); default
postgres://postgres@127.0.0.1:5432/.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time

from _common import DEBUG_OFF, DEBUG_OFF_DEFAULTS, prepare_database

COUNTER = "coaching.middleware.ApiCallCounterMiddleware"
PING = "/api/v1/bench/ping"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="Alternating rounds (default 10).")
    parser.add_argument("--requests", type=int, default=300, help="Requests per round and variant (default 300).")
    parser.add_argument("--quick", action="store_true", help="4 rounds of 100 requests.")
    parser.add_argument("--database", default="bench_api_middleware", help="Database (default bench_api_middleware).")
    parser.add_argument("--goal-ms", type=float, default=1.0, help="Goal for the overhead per request (default 1).")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.requests = 4, 100
    if args.rounds < 1 or args.requests < 1:
        parser.error("--rounds and --requests must be at least 1.")
    return args


def ping_urls() -> list:
    """A DRF endpoint with one trivial query, like any real endpoint that reads the database.

    So both variants pay the per-request connection costs (Django's health check on first use);
    what differs is the stack with or without the counter.
    """
    from django.db import connection
    from django.urls import path
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class PingApi(APIView):
        def get(self, request):
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                return Response({"ok": cursor.fetchone()[0] == 1})

    return [path(PING.lstrip("/"), PingApi.as_view())]


urlpatterns: list = []


def timed_block(client, requests: int) -> list[float]:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(PING)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"ping answered {response.status_code}")
    return times


def main() -> int:
    args = parse_args()
    prepare_database(args.database, reuse=False, env=DEBUG_OFF, defaults=DEBUG_OFF_DEFAULTS)
    urlpatterns.extend(ping_urls())
    from django.conf import settings
    from django.test import override_settings
    from rest_framework.test import APIClient

    from coaching.middleware import api_call_count
    from coaching.models import ApiUsage, User

    user = User.objects.create_user("bench-api@example.com", "bench-password-123", name="Bench API")
    with_counter = list(settings.MIDDLEWARE)
    without_counter = [m for m in with_counter if m != COUNTER]
    if COUNTER not in with_counter:
        raise SystemExit(f"{COUNTER} is not in MIDDLEWARE: nothing to measure.")

    clients = {}
    for name, middleware in (("with", with_counter), ("without", without_counter)):
        with override_settings(MIDDLEWARE=middleware, ROOT_URLCONF=__name__):
            client = APIClient()
            client.force_authenticate(user=user)
            timed_block(client, 20)  # loads this variant's middleware chain and warms up
            clients[name] = client

    times: dict[str, list[float]] = {"with": [], "without": []}
    for round_number in range(args.rounds):
        order = ("with", "without") if round_number % 2 == 0 else ("without", "with")
        for name in order:
            with override_settings(ROOT_URLCONF=__name__):
                times[name].extend(timed_block(clients[name], args.requests))

    day = datetime.datetime.now(datetime.UTC).date()
    direct = []
    for _ in range(args.rounds * args.requests):
        started = time.perf_counter()
        api_call_count(user.pk, day=day)
        direct.append((time.perf_counter() - started) * 1000)

    counted = ApiUsage.objects.get(user=user, day=day).count
    expected = 20 + args.rounds * args.requests * 2
    with_ms, without_ms = statistics.median(times["with"]), statistics.median(times["without"])
    overhead = with_ms - without_ms
    print(f"database {args.database}: {args.rounds} rounds x {args.requests} requests each way")
    print(f"request without the counter   median {without_ms:7.3f} ms   (baseline)")
    print(f"request with the counter      median {with_ms:7.3f} ms   {with_ms / without_ms:5.2f}x baseline")
    print(f"api_call_count() alone        median {statistics.median(direct):7.3f} ms   (one UPDATE, its own commit)")
    met = overhead < args.goal_ms
    verdict = "met" if met else "MISSED"
    print(f"overhead per request                 {overhead:7.3f} ms   goal < {args.goal_ms:g} ms: {verdict}")
    print(f"rows counted {counted:,} (expected {expected:,} = warm-up + timed requests + direct calls)")
    return 0 if met and counted == expected else 1


if __name__ == "__main__":
    sys.exit(main())
