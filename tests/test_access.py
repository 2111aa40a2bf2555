"""Access probes: every URL of the product, every role, who gets what.

A coach reaching another coach's numbers, history, export or operation by any parameter or
id is a failure: besides the status codes, every response a coach gets is searched for the
other coach's client name and email.
"""

import datetime
import uuid

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from coaching.models import BulkOperation, ExportRecord
from tests.factories import (
    ClientFactory,
    CoachingSessionFactory,
    ExportRecordFactory,
    UsageLogFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SECRET_CLIENT = "祕密客戶 Secret-Client-7f3a"
ROLES = ("anonymous", "coach", "staff", "admin")
DENIED = {401, 403}
LOGIN = {302}  # pages send the anonymous to log in


@pytest.fixture
def world():
    coach = UserFactory(email="alice@example.com", name="Alice 王")
    other = UserFactory(email="bob-private@example.com", name="Bob 林")
    staff = UserFactory(email="charlie@example.com", is_staff=True)
    admin = UserFactory(email="dana@example.com", is_staff=True, is_superuser=True)
    now = timezone.now()
    for user, client_name in ((coach, "Alice's client"), (other, SECRET_CLIENT)):
        client = ClientFactory(coach=user, name=client_name)
        session = CoachingSessionFactory(
            coach=user, client=client, processing_started_at=now - datetime.timedelta(hours=2)
        )
        UsageLogFactory(user=user, session=session, client=client, created_at=now - datetime.timedelta(hours=1))
        ExportRecordFactory(requested_by=user, subject=user)
    operation = BulkOperation.objects.create(
        kind=BulkOperation.Kind.RESET_USAGE,
        parameters={"reset_type": "monthly"},
        requested_by=admin,
        status=BulkOperation.Status.SUCCEEDED,
        total=1,
        processed=1,
        succeeded=1,
        user_ids=[str(other.pk)],
    )
    return {"coach": coach, "other": other, "staff": staff, "admin": admin, "operation": operation}


def client_as(role, world):
    client = APIClient()
    if role != "anonymous":
        client.force_login(world[role])
    return client


def probes(world):
    """(method, url, body, {role: allowed statuses}). Ids are filled from the world."""
    other, op = world["other"].pk, world["operation"].pk
    page = {"anonymous": LOGIN, "coach": {200}, "staff": {200}, "admin": {200}}
    staff_page = {"anonymous": LOGIN, "coach": {302, 403}, "staff": {200}, "admin": {200}}
    own_api = {"anonymous": DENIED, "coach": {200}, "staff": {200}, "admin": {200}}
    others_api = {"anonymous": DENIED, "coach": {403, 404}, "staff": {200}, "admin": {200}}
    staff_api = {"anonymous": DENIED, "coach": {403}, "staff": {200}, "admin": {200}}
    admin_api = {"anonymous": DENIED, "coach": {403}, "staff": {403}, "admin": {200}}
    admin_write = {"anonymous": DENIED, "coach": {403}, "staff": {403}, "admin": {202}}
    admin_site = {"anonymous": LOGIN, "coach": LOGIN, "staff": {200}, "admin": {200}}
    admin_only_site = {"anonymous": LOGIN, "coach": LOGIN, "staff": {403}, "admin": {200}}
    return [
        ("get", "/dashboard/usage", None, page),
        ("get", "/dashboard/usage?period=90d", None, page),
        ("get", f"/dashboard/usage?user={other}", None, page),  # a parameter never switches whose page it is
        ("get", "/dashboard/billing", None, staff_page),
        ("get", "/api/v1/usage/analytics", None, own_api),
        ("get", f"/api/v1/usage/analytics?user={other}", None, others_api),
        ("get", f"/api/v1/usage/analytics?user_id={other}&coach={other}", None, own_api),
        ("get", "/api/v1/billing-analytics/summary", None, staff_api),
        ("get", f"/api/v1/billing-analytics/summary?user={other}", None, staff_api),
        ("get", "/api/v1/usage-history/export?format=csv", None, own_api),
        ("get", f"/api/v1/usage-history/export?format=csv&user={other}", None, others_api),
        ("get", f"/api/v1/usage-history/export?format=pdf&user={other}", None, others_api),
        ("get", f"/api/v1/usage-history/export?format=xlsx&user={other}", None, others_api),
        ("post", "/api/v1/admin/bulk/reset-usage", {"user_ids": [str(other)], "reset_type": "monthly"}, admin_write),
        ("get", f"/api/v1/admin/bulk/operations/{op}", None, admin_api),
        (
            "get",
            f"/api/v1/admin/bulk/operations/{uuid.uuid4()}",
            None,
            {"anonymous": DENIED, "coach": {403}, "staff": {403}, "admin": {404}},
        ),
        ("get", "/api/schema/", None, staff_api),
        ("get", "/api/schema/swagger-ui/", None, staff_api),
        ("get", "/admin/", None, admin_site),
        ("get", "/admin/coaching/usagelog/", None, admin_only_site),
        ("get", "/admin/coaching/user/", None, admin_only_site),
        ("get", f"/admin/coaching/bulkoperation/{op}/change/", None, admin_only_site),
    ]


@pytest.mark.parametrize("role", ROLES)
def test_every_url_answers_each_role_as_it_should(world, role):
    client = client_as(role, world)
    failures, tried = [], 0
    for method, url, body, allowed in probes(world):
        tried += 1
        if method == "post":
            response = client.post(url, body, format="json")
        else:
            response = client.get(url)
        if response.status_code not in allowed[role]:
            failures.append(
                f"{method.upper()} {url} as {role}: {response.status_code}, expected {sorted(allowed[role])}"
            )
        if role == "coach":
            content = b"".join(response.streaming_content) if response.streaming else response.content
            for secret in (SECRET_CLIENT, "bob-private@example.com"):
                assert secret.encode() not in content, f"{url} showed the other coach's data to a coach"
    assert tried == len(probes(world))
    assert not failures, "\n".join(failures)


def test_a_coach_cannot_see_another_coachs_export_records_or_operation(world):
    client = client_as("coach", world)
    record = ExportRecord.objects.get(subject=world["other"])
    assert client.get(f"/admin/coaching/exportrecord/{record.pk}/change/").status_code == 302
    assert client.get(f"/api/v1/admin/bulk/operations/{world['operation'].pk}").status_code == 403
    assert client.post(f"/api/v1/admin/bulk/operations/{world['operation'].pk}/undo").status_code == 403


def test_session_authenticated_writes_need_a_csrf_token(world):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world["admin"])
    response = client.post(
        "/api/v1/admin/bulk/reset-usage", {"user_ids": [str(world["other"].pk)], "reset_type": "monthly"}, format="json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert BulkOperation.objects.count() == 1  # only the world's own


def test_repeated_failed_logins_are_locked_out(world, client):
    for _ in range(10):
        client.post("/accounts/login/", {"username": "alice@example.com", "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "alice@example.com", "password": "pw-for-tests-123"})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("credentials", [b"a\x00b@example.com:secret", b"alice@example.com:pw\x00x"])
def test_credentials_with_a_nul_byte_are_refused_not_a_server_error(world, client, credentials):
    import base64

    token = base64.b64encode(credentials).decode()
    response = client.get("/api/v1/usage/analytics", HTTP_AUTHORIZATION=f"Basic {token}")
    assert response.status_code in DENIED  # 403: session authentication comes first, so DRF sends no challenge
    assert response.json()["detail"] == "Invalid username/password."
