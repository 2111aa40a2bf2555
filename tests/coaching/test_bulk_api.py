"""``/api/v1/admin/bulk/…``: admins start a reset, poll it, undo it; bad input is refused whole."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.urls import reverse

from coaching.models import BulkOperation, MonthlyUsage, MonthlyUsageArchive
from tests.coaching.bulk_support import MARCH, NOW, eager_celery, give_usage, make_users
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/admin/bulk/reset-usage"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False), eager_celery():
        yield


@pytest.fixture
def users():
    users = make_users(5)
    give_usage(users)  # 10.25, 11.25, … minutes
    return users


def post(client, body, capture, **headers):
    with capture(execute=True):
        return client.post(URL, body, format="json", headers=headers)


def test_admin_resets_and_polls_the_operation(admin_user, api_for, users, django_capture_on_commit_callbacks):
    client = api_for(admin_user)
    response = post(
        client, {"user_ids": [str(u.pk) for u in users], "reset_type": "monthly"}, django_capture_on_commit_callbacks
    )

    assert response.status_code == 202, response.json()
    body = response.json()
    op = BulkOperation.objects.get()
    assert body["id"] == str(op.pk)
    assert (body["status"], body["total"], body["processed"], body["undo_url"]) == ("pending", 5, 0, None)
    assert body["status_url"] == f"http://testserver/api/v1/admin/bulk/operations/{op.pk}"

    # The tasks ran once the request's transaction committed.
    status = client.get(body["status_url"], {"page_size": 2})
    assert status.status_code == 200
    done = status.json()
    assert (done["status"], done["total"], done["succeeded"], done["progress_percent"]) == ("succeeded", 5, 5, 100)
    assert done["summary"]["done"]["minutes_archived"] == "61.25"  # 10.25 + 11.25 + 12.25 + 13.25 + 14.25
    assert done["undo_url"] == f"http://testserver/api/v1/admin/bulk/operations/{op.pk}/undo"
    page = done["results"]
    assert (page["count"], len(page["results"]), page["previous"]) == (5, 2, None)
    assert page["next"].endswith("page=2&page_size=2")
    given = {u.email: f"{10.25 + i:.2f}" for i, u in enumerate(users)}
    for result in page["results"]:
        assert (result["status"], result["before"]["minutes"]) == ("succeeded", given[result["email"]])
    second = client.get(page["next"]).json()["results"]["results"]
    third = client.get(page["next"].replace("page=2", "page=3")).json()["results"]["results"]
    assert sorted(r["email"] for r in page["results"] + second + third) == sorted(given)
    assert set(MonthlyUsage.objects.values_list("minutes", flat=True)) == {Decimal("0.00")}


def test_dry_run_answers_with_figures_and_changes_nothing(
    admin_user, api_for, users, django_capture_on_commit_callbacks
):
    response = post(
        api_for(admin_user),
        {"user_ids": [str(u.pk) for u in users], "reset_type": "all", "dry_run": True},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["dry_run"], body["status"], body["undo_url"]) == (True, "succeeded", None)
    assert body["summary"]["dry_run"] == {
        "users_selected": 5,
        "users_affected": 5,
        "users_skipped": 0,
        "minutes": "61.25",
        "sessions": 15,  # 1 + 2 + 3 + 4 + 5
        "transcriptions": 20,  # 2 + 3 + 4 + 5 + 6
        "by_current_plan": {"pro": 5},
    }
    assert MonthlyUsage.objects.get(user=users[0]).minutes == Decimal("10.25")
    assert not MonthlyUsageArchive.objects.exists()


@pytest.mark.parametrize("who", ["coach", "staff", None])
def test_only_admins_may_run_bulk_operations(who, request, api_for, users):
    user = request.getfixturevalue(who) if who else None
    response = api_for(user).post(URL, {"user_ids": [str(users[0].pk)], "reset_type": "monthly"}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"].startswith(
        "Only admins may run bulk operations" if user else "Authentication credentials were not provided"
    )
    assert not BulkOperation.objects.exists()
    assert MonthlyUsage.objects.get(user=users[0]).minutes == Decimal("10.25")


def test_staff_with_the_bulk_permission_may(staff, api_for, users, django_capture_on_commit_callbacks):
    staff.user_permissions.add(Permission.objects.get(codename="run_bulkoperation"))
    response = post(
        api_for(staff), {"user_ids": [str(users[0].pk)], "reset_type": "monthly"}, django_capture_on_commit_callbacks
    )
    assert response.status_code == 202


UNKNOWN = "00000000-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"user_ids": "all", "reset_type": "monthly"}, "user_ids: must be a list of user ids (UUIDs)"),
        ({"user_ids": [], "reset_type": "monthly"}, "user_ids: is empty: select at least one user"),
        ({"user_ids": ["abc", 7], "reset_type": "monthly"}, "user_ids: 2 are not user ids (UUIDs): 'abc', 7"),
        ({"user_ids": [UNKNOWN], "reset_type": "monthly"}, f"user_ids: no user has 1 of these ids: {UNKNOWN}"),
        ({"user_ids": "first", "reset_type": "weekly"}, "user_ids: must be a list of user ids (UUIDs)"),
        ({"user_ids": None, "reset_type": "weekly"}, "reset_type: unknown reset type 'weekly': use 'monthly' or 'all'"),
        ({"user_ids": None}, "reset_type: This field is required."),
        ({"reset_type": "all"}, "user_ids: This field is required."),
    ],
)
def test_bad_input_is_refused_naming_what_is_wrong(admin_user, api_for, users, body, detail):
    if body.get("user_ids", "") is None:
        body["user_ids"] = [str(users[0].pk)]
    response = api_for(admin_user).post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == detail
    assert not BulkOperation.objects.exists()
    assert MonthlyUsage.objects.get(user=users[0]).minutes == Decimal("10.25")


def test_unknown_ids_are_listed(admin_user, api_for, users):
    unknown = [f"00000000-0000-4000-8000-{i:012d}" for i in range(7)]
    response = api_for(admin_user).post(
        URL, {"user_ids": [str(users[0].pk), *unknown], "reset_type": "all"}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == f"user_ids: no user has 7 of these ids: {', '.join(unknown[:5])} and 2 more"
    assert body["errors"]["unknown_user_ids"] == unknown


def test_more_ids_than_the_limit_are_refused(admin_user, api_for, users, settings):
    settings.BULK_MAX_USERS = 4
    response = api_for(admin_user).post(
        URL, {"user_ids": [str(u.pk) for u in users], "reset_type": "all"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "user_ids: at most 4 user ids per operation, got 5: split them up"


def test_form_posts_are_refused(admin_user, api_for, users):
    response = api_for(admin_user).post(URL, {"user_ids": str(users[0].pk), "reset_type": "all"})
    assert response.status_code == 415


def test_resending_with_the_same_idempotency_key_returns_the_first_operation(
    admin_user, api_for, users, django_capture_on_commit_callbacks
):
    client = api_for(admin_user)
    body = {"user_ids": [str(u.pk) for u in users], "reset_type": "monthly"}
    first = post(client, body, django_capture_on_commit_callbacks, **{"Idempotency-Key": "reset-march"})
    again = post(client, body, django_capture_on_commit_callbacks, **{"Idempotency-Key": "reset-march"})
    other = post(
        client, {**body, "reset_type": "all"}, django_capture_on_commit_callbacks, **{"Idempotency-Key": "reset-march"}
    )

    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 409)
    assert again.json()["id"] == first.json()["id"]
    assert "already used for a different request" in other.json()["detail"]
    assert BulkOperation.objects.count() == 1
    assert MonthlyUsageArchive.objects.count() == 5


def test_resending_without_a_key_finds_nothing_left_to_do(
    admin_user, api_for, users, django_capture_on_commit_callbacks
):
    client = api_for(admin_user)
    body = {"user_ids": [str(u.pk) for u in users], "reset_type": "monthly"}
    post(client, body, django_capture_on_commit_callbacks)
    again = client.get(post(client, body, django_capture_on_commit_callbacks).json()["status_url"]).json()
    assert (again["succeeded"], again["skipped"], again["summary"]["done"]["minutes_archived"]) == (0, 5, "0.00")
    assert MonthlyUsageArchive.objects.count() == 5


def test_undo_restores_and_a_second_undo_is_refused(admin_user, api_for, users, django_capture_on_commit_callbacks):
    client = api_for(admin_user)
    body = {"user_ids": [str(u.pk) for u in users], "reset_type": "monthly"}
    op = client.get(post(client, body, django_capture_on_commit_callbacks).json()["status_url"]).json()

    with django_capture_on_commit_callbacks(execute=True):
        undone = client.post(op["undo_url"])
    assert undone.status_code == 202  # queued as a task, like the admin's undo
    assert undone.json()["summary"]["undo"]["status"] == "queued"
    polled = client.get(undone.json()["status_url"]).json()
    assert (polled["status"], polled["summary"]["undo"]["users_restored"]) == ("reverted", 5)
    assert MonthlyUsage.objects.get(user=users[4]).minutes == Decimal("14.25")
    assert MonthlyUsage.objects.get(user=users[4]).period == MARCH

    twice = client.post(op["undo_url"])
    assert twice.status_code == 409
    assert twice.json()["detail"].endswith("it cannot be undone twice.")
    assert MonthlyUsage.objects.get(user=users[4]).minutes == Decimal("14.25")


def test_unknown_operation_and_bad_query(admin_user, api_for):
    client = api_for(admin_user)
    missing = client.get(reverse("coaching:bulk-operation", args=[UNKNOWN]))
    assert (missing.status_code, missing.json()["detail"]) == (404, f"No bulk operation has the id {UNKNOWN}.")
    op = BulkOperation.objects.create(kind="deactivate", requested_by=admin_user, total=0)
    bad = client.get(reverse("coaching:bulk-operation", args=[op.pk]), {"status": "exploded"})
    assert bad.status_code == 400
    assert bad.json()["detail"] == 'status: "exploded" is not a valid choice.'


def test_a_coach_cannot_poll_an_operation(coach, api_for):
    op = BulkOperation.objects.create(kind="deactivate", requested_by=UserFactory(is_superuser=True), total=0)
    assert api_for(coach).get(reverse("coaching:bulk-operation", args=[op.pk])).status_code == 403
    assert api_for(coach).post(reverse("coaching:bulk-operation-undo", args=[op.pk])).status_code == 403


def test_a_request_at_the_documented_limit_is_read_whole(admin_user, api_for, users):
    # 100,000 ids are about 4 MB of JSON: more than Django's default upload limit for form bodies.
    ids = [str(u.pk) for u in users] + [f"00000000-0000-4000-8000-{i:012d}" for i in range(100_000 - len(users))]
    response = api_for(admin_user).post(URL, {"user_ids": ids, "reset_type": "all"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("user_ids: no user has 99995 of these ids: 00000000-0000-4000-8000-")
    assert len(response.json()["errors"]["unknown_user_ids"]) == 1000


def test_a_body_larger_than_the_limit_allows_is_refused(admin_user, api_for, users, settings):
    settings.BULK_MAX_USERS = 10  # room for 10 ids: 480 bytes + 4 KiB, below Django's 2.5 MB default
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(200)]
    body = {"user_ids": ids, "reset_type": "all"}
    response = api_for(admin_user).post(URL, body, format="json")
    size = len(json.dumps(body, separators=(",", ":")))  # DRF's test client sends compact JSON
    assert response.status_code == 413
    assert response.json()["detail"] == f"The request body is {size:,} bytes; at most 4,576 (10 ids)."


def test_an_idempotency_key_with_a_nul_character_is_refused(admin_user, api_for, users):
    response = api_for(admin_user).post(
        URL, {"user_ids": [str(users[0].pk)], "reset_type": "all"}, format="json", headers={"Idempotency-Key": "k\x00"}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "Idempotency-Key: contains a NUL character: use printable characters only"
    assert not BulkOperation.objects.exists()


@pytest.mark.parametrize(
    ("length", "detail"),
    [
        ("many", "user_ids: This field is required."),
        ("-5", "JSON parse error - Expecting value: line 1 column 1 (char 0)"),
    ],
)
def test_a_malformed_content_length_reads_as_an_empty_body(admin_user, api_for, users, length, detail):
    body = json.dumps({"user_ids": [str(users[0].pk)], "reset_type": "all"})
    response = api_for(admin_user).post(URL, body, content_type="application/json", CONTENT_LENGTH=length)
    assert response.status_code == 400  # as Django and DRF read such a length: no body
    assert response.json()["detail"] == detail
    assert not BulkOperation.objects.exists()
