"""HTTP Basic authentication that refuses credentials no account could have.

PostgreSQL text cannot hold a NUL byte: looking up an e-mail address containing one would
raise a database error (a 500) instead of the 401 a wrong password deserves.
"""

from drf_spectacular.authentication import BasicScheme
from rest_framework import authentication, exceptions


class BasicAuthentication(authentication.BasicAuthentication):
    def authenticate_credentials(self, userid, password, request=None):
        if "\x00" in userid or "\x00" in password:
            raise exceptions.AuthenticationFailed("Invalid username/password.")
        return super().authenticate_credentials(userid, password, request)


class BasicAuthenticationScheme(BasicScheme):
    """Documents the class above in the OpenAPI schema as plain HTTP Basic."""

    target_class = BasicAuthentication
