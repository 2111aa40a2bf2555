"""API authentication: HTTP Basic for people; a service token for the transcription pipeline.

Basic refuses credentials no account could have: PostgreSQL text cannot hold a NUL byte, and
looking up an e-mail address containing one would raise a database error (a 500) instead of the
401 a wrong password deserves.
"""

import hashlib
import hmac

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from drf_spectacular.authentication import BasicScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions


class BasicAuthentication(authentication.BasicAuthentication):
    def authenticate_credentials(self, userid, password, request=None):
        if "\x00" in userid or "\x00" in password:
            raise exceptions.AuthenticationFailed("Invalid username/password.")
        return super().authenticate_credentials(userid, password, request)


class BasicAuthenticationScheme(BasicScheme):
    """Documents the class above in the OpenAPI schema as plain HTTP Basic."""

    target_class = BasicAuthentication


class PipelineToken:
    """``request.auth`` for a call made with the pipeline's service token (there is no user)."""

    def __repr__(self) -> str:
        return "PipelineToken()"


class PipelineTokenAuthentication(authentication.BaseAuthentication):
    """The transcription pipeline's service token: ``Authorization: Bearer <PIPELINE_TOKEN>``.

    The only authentication the session API accepts: a coach's login is refused there. The token
    is compared in constant time (SHA-256 digests of equal length, ``hmac.compare_digest``), so
    response times do not reveal how much of a guess was right. The request's user stays
    anonymous: the pipeline is no account, and its calls are not a coach's API calls.
    """

    keyword = "Bearer"
    missing = "Send the pipeline's service token: 'Authorization: Bearer <PIPELINE_TOKEN>'."

    def authenticate(self, request):
        expected = settings.PIPELINE_TOKEN
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            raise exceptions.NotAuthenticated(self.missing)
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: 'Bearer <token>', one space.")
        if not expected:
            raise exceptions.PermissionDenied("The session API is off: the server has no PIPELINE_TOKEN set.")
        given = hashlib.sha256(header[1]).digest()
        if not hmac.compare_digest(given, hashlib.sha256(expected.encode()).digest()):
            raise exceptions.AuthenticationFailed("Invalid pipeline token.")
        return AnonymousUser(), PipelineToken()

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="pipeline"'


class HasPipelineToken(permissions.BasePermission):
    message = PipelineTokenAuthentication.missing

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, PipelineToken)


class PipelineTokenScheme(OpenApiAuthenticationExtension):
    """Documents the pipeline's token in the OpenAPI schema as HTTP Bearer."""

    target_class = PipelineTokenAuthentication
    name = "pipelineToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The PIPELINE_TOKEN setting."}
