"""The OpenAPI schema, fuzzed: schemathesis against every endpoint, as every role, on the demo world.

No response may be a 5xx, every 4xx carries a message, and each response matches the schema
(status code documented, content type, body shape).
"""

import base64
import json

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from coaching.demo import DEMO_PASSWORDS

pytestmark = pytest.mark.django_db
EXAMPLES_PER_OPERATION = 25
ROLES = {
    "anonymous": None,
    "coach": "coach@example.com",
    "staff": "staff@example.com",
    "admin": "admin@example.com",
}


@schemathesis.check
def four_xx_has_a_message(ctx, response, case):
    if 400 <= response.status_code < 500:
        body = json.loads(response.content or b"{}")
        assert isinstance(body, dict) and str(body.get("detail", "")).strip(), (
            f"{case.method} {case.formatted_path} answered {response.status_code} without a message: {body}"
        )


@pytest.fixture
def api_schema(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"exports": None, "bulk": None}}
    call_command("seed_demo", "--no-progress", verbosity=0)
    schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
    schema.app = WSGIHandler()
    # As Django's test client does: the test's transaction must outlive each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schema
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_the_schema_lists_every_api_endpoint(api_schema):
    paths = {op.ok().path for op in api_schema.get_all_operations()}
    assert {
        "/api/v1/usage/analytics",
        "/api/v1/billing-analytics/summary",
        "/api/v1/usage-history/export",
        "/api/v1/admin/bulk/reset-usage",
        "/api/v1/admin/bulk/operations/{operation_id}",
        "/api/v1/admin/bulk/operations/{operation_id}/undo",
    } <= paths


@pytest.mark.parametrize("role", ROLES)
def test_fuzzed_requests_never_fail_the_server_or_the_schema(api_schema, role):
    email = ROLES[role]
    headers = {}
    if email:
        token = base64.b64encode(f"{email}:{DEMO_PASSWORDS[email]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    tried = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            tried.append(case)
            case.call_and_validate(
                headers=headers,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                    four_xx_has_a_message,
                ],
            )

        run()
    print(f"schemathesis: {len(tried)} cases as {role}")
    assert len(tried) >= 6 * 3
