"""A NUL character in the URL path, a query parameter or a form field is a clean 400, not a 500.

PostgreSQL text cannot hold NUL (0x00): any lookup with one (an admin list filter such as
``?timezone=%00``, a text primary key in an admin URL, an autocomplete term, an admin action's
selection) raises ``DataError`` deep inside a view. No valid value contains one, so the request is
refused up front, on every backend alike, naming the part that holds it.

JSON bodies are left to the API's serializers, which already refuse NUL in text with a field message.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import escape

NUL = "\x00"
API_PREFIX = "/api/"
# Form bodies (admin and page forms) are parsed here, as Django's CSRF check would parse them anyway.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _holding_nul(pairs) -> str | None:
    for key, values in pairs:
        if NUL in key or any(NUL in value for value in values):
            return key
    return None


def nul_found(request: HttpRequest) -> tuple[str, str] | None:
    """``(field, where)`` for the first part of the request holding a NUL character, or None."""
    if NUL in request.path:
        return "path", "the URL path"
    if (key := _holding_nul(request.GET.lists())) is not None:
        return key, f"the query parameter {key!r}"
    if request.method == "POST" and request.content_type in FORM_TYPES and not request.path.startswith(API_PREFIX):
        if (key := _holding_nul(request.POST.lists())) is not None:
            return key, f"the form field {key!r}"
    return None


class RejectNulMiddleware:
    """Answers 400 with a message (JSON under ``/api/``) when ``nul_found`` finds a NUL character."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        found = nul_found(request)
        if found is None:
            return self.get_response(request)
        field, where = found
        message = f"{where[0].upper()}{where[1:]} contains a NUL character (%00), which no value may hold: remove it."
        if request.path.startswith(API_PREFIX):
            return JsonResponse({"detail": message, "errors": {field.replace(NUL, "\\x00"): [message]}}, status=400)
        return HttpResponse(
            f"<!doctype html><title>Bad request</title><h1>Bad request</h1><p>{escape(message)}</p>", status=400
        )
