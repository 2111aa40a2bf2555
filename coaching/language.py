"""The language switch: a user's chosen language beats the browser's Accept-Language.

``language_set`` (a POST from the small form on every page) saves ``User.language`` for a
logged-in user and sets Django's language cookie either way, so the login page follows the
choice too. ``UserLanguageMiddleware`` then activates the saved language on every request of
that user, on any device; a user who never chose follows the browser (``LocaleMiddleware``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from coaching.errors import DatabaseUnavailableMiddleware

LANGUAGE_CODES = [code for code, _name in settings.LANGUAGES]


class UserLanguageMiddleware:
    """After ``AuthenticationMiddleware``: the profile's language, when the user chose one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        try:
            language = getattr(user, "language", "") if user is not None and user.is_authenticated else ""
        except DatabaseError as exc:
            # Reading the session's user is this request's first query: a lost database is a 503 here too.
            response = DatabaseUnavailableMiddleware(self.get_response).process_exception(request, exc)
            if response is None:
                raise
            return response
        if language in LANGUAGE_CODES:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)


@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    language = request.POST.get("language", "")
    if language not in LANGUAGE_CODES:
        return HttpResponseBadRequest(
            f"Unknown language {language!r}: choose one of {', '.join(LANGUAGE_CODES)}.", content_type="text/plain"
        )
    if request.user.is_authenticated and request.user.language != language:
        request.user.language = language
        request.user.save(update_fields=["language"])
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "/"
    response = HttpResponseRedirect(target)
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=365 * 24 * 3600,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )
    return response
