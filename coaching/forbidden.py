"""A refused page is a friendly 403 page and one warning line in the log, not a traceback.

Django logs a ``PermissionDenied`` raised by a view through ``django.request`` with the
exception attached, so every coach who follows an old link to a staff page leaves a
traceback in the log. Nothing is wrong with the server: one line (who, what, why) is enough.
The API is untouched: DRF answers its own 403s as JSON before this middleware sees them.
"""

import logging

from django.core.exceptions import PermissionDenied
from django.views.defaults import permission_denied

log = logging.getLogger(__name__)


class FriendlyForbiddenMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, PermissionDenied):
            return None
        user = getattr(request, "user", None)
        who = getattr(user, "email", "") or "anonymous"
        log.warning("Forbidden: %s %s for %s: %s", request.method, request.path, who, exception or "no reason given")
        response = permission_denied(request, exception)
        response._has_been_logged = True  # Django's handler would add a second line ("Forbidden: /path")
        return response
