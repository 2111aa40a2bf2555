"""Counts authenticated API requests per user per UTC day (``ApiUsage``), for ``api_calls_made``.

Cheap by design: one ``UPDATE … SET count = count + 1`` per request in the common case (committed
without waiting for the disk on PostgreSQL, see ``api_call_count``); the
first request of a user's day inserts the row instead (the unique ``(user, day)`` constraint
makes two first requests racing each other safe: the loser updates). Counting never fails a
request: an error is logged (once per outage, ``LogOnce``) and the response goes out unchanged.
"""

from __future__ import annotations

import datetime
import logging

from django.db import IntegrityError, connection, transaction
from django.db.models import F

from .models import ApiUsage

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
# The usage page refreshes its own numbers from the API every 30 s; those polls are the page's,
# not calls the coach made, so it marks them and they are not counted.
REFRESH_HEADER = "HTTP_X_DASHBOARD_REFRESH"


# PostgreSQL: the increment and "commit this transaction without waiting for the disk" in one
# statement (one round trip). set_config(..., true) lasts only for the statement's own transaction.
PG_INCREMENT = """
    UPDATE {table} SET count = count + 1
    WHERE user_id = %s AND day = %s AND set_config('synchronous_commit', 'off', true) IS NOT NULL
"""


def _increment(user_id, day: datetime.date) -> int:
    """``count = count + 1`` on the user's row for ``day``; the number of rows updated (0 or 1)."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(PG_INCREMENT.format(table=ApiUsage._meta.db_table), [user_id, day])
            return cursor.rowcount
    return ApiUsage.objects.filter(user_id=user_id, day=day).update(count=F("count") + 1)


def api_call_count(user_id, *, day: datetime.date) -> None:
    """Add one to the user's count for ``day`` (a UTC date), creating the row if it is the first.

    On PostgreSQL the increment commits asynchronously (``synchronous_commit`` off for its own
    transaction only): the request does not wait for the disk (~4 ms a commit here), and the
    worst a database crash can cost is the last fraction of a second of counts. Inside someone
    else's transaction (tests, ATOMIC_REQUESTS) it is a plain UPDATE: their durability is not
    ours to weaken.
    """
    if _increment(user_id, day):
        return
    try:
        # A savepoint: losing the race for the day's first row must not break a caller's transaction.
        with transaction.atomic():
            ApiUsage.objects.create(user_id=user_id, day=day, count=1)
    except IntegrityError:
        _increment(user_id, day)


class ApiCallCounterMiddleware:
    """After the response is made, count it if it was under ``/api/`` and its user authenticated.

    It reads ``request.user`` after the view ran, so users that DRF authenticated inside the view
    (Basic auth, tokens) are counted too: DRF copies its user onto the Django request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(API_PREFIX) and not request.META.get(REFRESH_HEADER):
            user_id = None
            try:
                # Resolving the user may itself need the database (the session): inside the guard too.
                user = getattr(request, "user", None)
                if user is not None and user.is_authenticated:
                    user_id = user.pk
                    api_call_count(user_id, day=datetime.datetime.now(datetime.UTC).date())
            except Exception:  # counting must never fail the request: log it (once) and move on
                COUNTING.failed("Could not count an API call for user %s", user_id)
            else:
                if user_id is not None:
                    COUNTING.worked("Counting API calls again")
        return response


class LogOnce:
    """Logs the first failure of something optional (with its traceback), then stays quiet until it works again.

    A dependency that is down fails every request: one log line per outage, not one per request.
    Per process; ``failures`` counts what was not logged.
    """

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.failing = False
        self.failures = 0

    def failed(self, message: str, *args) -> None:
        self.failures += 1
        if not self.failing:
            self.failing = True
            self.log.exception(message + " (further failures are not logged until it works again)", *args)

    def worked(self, message: str) -> None:
        if self.failing:
            self.failing = False
            self.log.warning("%s after %s failure(s)", message, self.failures)
            self.failures = 0


COUNTING = LogOnce(logger)
