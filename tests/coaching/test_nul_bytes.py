"""A NUL character anywhere a lookup could see it is a 400 naming the part, never PostgreSQL's DataError 500."""

import pytest
from django.test import Client
from django.utils.html import escape

from coaching.models import Plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("/admin/coaching/user/?timezone=%00", "The query parameter 'timezone'"),
        ("/admin/coaching/user/?plan__code__exact=a%00b", "The query parameter 'plan__code__exact'"),
        ("/admin/coaching/user/?q=%00", "The query parameter 'q'"),
        ("/admin/coaching/user/?%00=1", "The query parameter '\\x00'"),
        ("/admin/coaching/plan/%00/change/", "The URL path"),
        (
            "/admin/autocomplete/?term=%00&app_label=coaching&model_name=client&field_name=coach",
            "The query parameter 'term'",
        ),
    ],
)
def test_admin_pages_refuse_nul(admin_client_, url, part):
    response = admin_client_.get(url)
    assert response.status_code == 400
    assert escape(f"{part} contains a NUL character (%00), which no value may hold: remove it.") in response.text


@pytest.mark.parametrize("content_type", ["multipart", "urlencoded"])
def test_admin_action_with_nul_in_the_selection_is_refused(admin_client_, content_type):
    data = {"action": "delete_selected", "_selected_action": ["free\x00"], "index": "0"}
    if content_type == "urlencoded":
        response = admin_client_.post(
            "/admin/coaching/plan/",
            "action=delete_selected&_selected_action=free%00&index=0",
            content_type="application/x-www-form-urlencoded",
        )
    else:
        response = admin_client_.post("/admin/coaching/plan/", data)
    assert response.status_code == 400
    assert escape("The form field '_selected_action' contains a NUL character") in response.text
    assert Plan.objects.filter(code="free").exists()


def test_api_answers_in_its_json_shape(api_for, coach):
    response = api_for(coach).get("/api/v1/usage/analytics", {"period": "month\x00"})
    assert response.status_code == 400
    message = "The query parameter 'period' contains a NUL character (%00), which no value may hold: remove it."
    assert response.json() == {"detail": message, "errors": {"period": [message]}}


def test_requests_without_nul_pass_through(admin_client_):
    assert admin_client_.get("/admin/coaching/user/?q=alice").status_code == 200


def test_a_nul_in_an_api_path_is_a_documented_400(api_for, admin_user):
    response = api_for(admin_user).post("/api/v1/admin/bulk/operations/%00/undo")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The URL path contains a NUL character")
