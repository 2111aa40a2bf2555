"""A lost database connection is a clean 503 with a message, not a 500 with a traceback."""

import logging

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpResponse, JsonResponse

log = logging.getLogger(__name__)
MESSAGE = "The database is unavailable right now. Nothing was changed; please try again in a moment."


class DatabaseUnavailableMiddleware:
    """Answers 503 (with Retry-After) when a request fails because the database went away.

    Only connection-level errors (OperationalError, InterfaceError) are turned into 503s;
    an IntegrityError or a programming error is a bug and still surfaces as one.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)) or not isinstance(exception, DatabaseError):
            return None
        log.warning("Database unavailable during %s %s: %s", request.method, request.path, exception)
        for conn in connections.all(initialized_only=True):
            # Drop the broken connection so the next request opens a fresh one.
            conn.close_if_unusable_or_obsolete()
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": MESSAGE}, status=503)
        else:
            response = HttpResponse(
                f"<!doctype html><title>Service unavailable</title><h1>Service unavailable</h1><p>{MESSAGE}</p>",
                status=503,
            )
        response["Retry-After"] = "5"
        return response
