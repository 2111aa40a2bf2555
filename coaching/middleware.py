"""Counts authenticated API requests per user per UTC day (``ApiUsage``), for ``api_calls_made``.

Cheap by design: one ``UPDATE … SET count = count + 1`` per request in the common case; the
first request of a user's day inserts the row instead (the unique ``(user, day)`` constraint
makes two first requests racing each other safe: the loser updates). Counting never fails a
request: any error is logged and the response goes out unchanged.
"""

from __future__ import annotations

import datetime
import logging

from django.db import IntegrityError, transaction
from django.db.models import F

from .models import ApiUsage

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


def api_call_count(user_id, *, day: datetime.date) -> None:
    """Add one to the user's count for ``day`` (a UTC date), creating the row if it is the first."""
    rows = ApiUsage.objects.filter(user_id=user_id, day=day)
    if rows.update(count=F("count") + 1):
        return
    try:
        # A savepoint: a lost race must not break a transaction the caller may be in.
        with transaction.atomic():
            ApiUsage.objects.create(user_id=user_id, day=day, count=1)
    except IntegrityError:
        rows.update(count=F("count") + 1)


class ApiCallCounterMiddleware:
    """After the response is made, count it if it was under ``/api/`` and its user authenticated.

    It reads ``request.user`` after the view ran, so users that DRF authenticated inside the view
    (Basic auth, tokens) are counted too: DRF copies its user onto the Django request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(API_PREFIX):
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                try:
                    api_call_count(user.pk, day=datetime.datetime.now(datetime.UTC).date())
                except Exception:  # counting must never fail the request: log it and move on
                    logger.exception("Could not count an API call for user %s", user.pk)
        return response
