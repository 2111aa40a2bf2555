"""Admin: ledgers are read-only, and a hand-made action selection is a message, not a 500."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client, RequestFactory

from coaching import bulk
from coaching.models import MonthlyUsage
from tests.coaching.bulk_support import give_usage, make_users

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize("model", ["usagelog", "monthlyusage", "monthlyusagearchive", "apiusage", "exportrecord"])
def test_ledgers_cannot_be_added_changed_or_deleted_by_hand(admin_client_, admin_user, model):
    model_admin = admin.site._registry[apps.get_model("coaching", model)]
    request = RequestFactory().get("/")
    request.user = admin_user  # a superuser: every permission but what the admin itself refuses
    assert admin_client_.get(f"/admin/coaching/{model}/").status_code == 200
    assert admin_client_.get(f"/admin/coaching/{model}/add/").status_code == 403
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_a_counter_cannot_be_edited_by_hand(admin_client_):
    user = make_users(1)[0]
    give_usage([user])
    counter = MonthlyUsage.objects.get(user=user)
    url = f"/admin/coaching/monthlyusage/{counter.pk}/change/"
    page = admin_client_.get(url)
    assert page.status_code == 200 and 'name="minutes"' not in page.text  # shown, not editable
    response = admin_client_.post(url, {"user": user.pk, "period": counter.period, "minutes": "0"})
    assert response.status_code == 403
    assert MonthlyUsage.objects.get(user=user).minutes == counter.minutes


def test_bulk_operations_cannot_be_deleted(admin_client_, admin_user):
    user = make_users(1)[0]
    op, _ = bulk.operation_create(kind="deactivate", user_ids=[str(user.pk)], requested_by=admin_user, dry_run=True)
    response = admin_client_.post(f"/admin/coaching/bulkoperation/{op.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert type(op).objects.filter(pk=op.pk).exists()


@pytest.mark.parametrize(
    ("url", "selected"), [("/admin/coaching/user/", "not-a-uuid"), ("/admin/coaching/client/", "x")]
)
def test_an_action_on_a_selection_that_is_not_ids_is_a_message(admin_client_, url, selected):
    response = admin_client_.post(
        url, {"action": "delete_selected", "_selected_action": [selected], "index": "0"}, follow=True
    )
    assert response.status_code == 200
    assert "The selection is not a list of this page&#x27;s ids: select again." in response.text
