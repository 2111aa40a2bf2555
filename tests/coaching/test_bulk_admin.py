"""Admin: bulk actions on the user list (confirm with a dry run, then start) and the operation page."""

from __future__ import annotations

from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from coaching import bulk
from coaching.admin import UserAdmin
from coaching.models import BulkOperation, MonthlyUsage, User
from coaching.tasks import bulk_operation_undo
from tests.coaching.bulk_support import FEBRUARY, MARCH, NOW, eager_celery, give_usage, make_users

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/coaching/user/"


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False), eager_celery():
        yield


@pytest.fixture
def admin_client_(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def users():
    users = make_users(3)
    give_usage(users[:2])  # 10.25 and 11.25 minutes; the third has no counters
    return users


def action(client, name, ids, url=CHANGELIST, **extra):
    return client.post(url, {"action": name, "_selected_action": [str(i) for i in ids], "index": 0, **extra})


def test_confirmation_shows_the_dry_run_and_changes_nothing(admin_client_, users):
    response = action(admin_client_, "reset_monthly_usage", [u.pk for u in users])

    assert response.status_code == 200
    assert response.templates[0].name == "admin/coaching/user/bulk_confirm.html"
    preview = response.context["preview"]
    assert (preview.users_selected, preview.users_affected, preview.users_skipped) == (3, 2, 1)
    assert preview.minutes == Decimal("21.50")
    html = response.content.decode()
    assert '<td id="dry-run-affected">2</td>' in html
    assert '<td id="dry-run-minutes">21.50</td>' in html
    assert not BulkOperation.objects.exists()
    assert MonthlyUsage.objects.get(user=users[0]).minutes == Decimal("10.25")


def test_confirming_starts_the_operation_and_shows_its_page(
    admin_client_, admin_user, users, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = action(admin_client_, "reset_monthly_usage", [u.pk for u in users], post="yes")

    op = BulkOperation.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:coaching_bulkoperation_change", args=[op.pk])
    assert (op.kind, op.parameters, op.requested_by, op.total) == (
        "reset_usage",
        {"reset_type": "monthly"},
        admin_user,
        3,
    )
    op.refresh_from_db()
    assert (op.status, op.succeeded, op.skipped) == ("succeeded", 2, 1)
    assert MonthlyUsage.objects.get(user=users[0]).minutes == Decimal("0.00")

    page = admin_client_.get(response.url)
    html = page.content.decode()
    assert page.status_code == 200
    assert f'data-status-url="/api/v1/admin/bulk/operations/{op.pk}"' in html
    assert 'aria-valuenow="100"' in html
    assert '<strong id="bulk-succeeded">2</strong>' in html
    assert "no usage counters yet: nothing to reset" in html
    assert 'id="bulk-undo"' in html
    assert "js/bulk_progress.js" in html


def test_select_all_matching_honours_the_filters(admin_client_, django_capture_on_commit_callbacks):
    free = make_users(4, prefix="free", plan="free")
    make_users(2, prefix="pro", plan="pro")
    give_usage(free)
    url = f"{CHANGELIST}?plan__code__exact=free"
    confirm = action(admin_client_, "reset_all_usage", [free[0].pk], url=url, select_across=1)
    assert confirm.context["preview"].users_selected == 4
    assert 'name="select_across" value="1"' in confirm.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        action(admin_client_, "reset_all_usage", [free[0].pk], url=url, select_across=1, post="yes")
    op = BulkOperation.objects.get()
    assert sorted(op.user_ids) == sorted(str(u.pk) for u in free)
    op.refresh_from_db()
    assert (op.status, op.succeeded) == ("succeeded", 4)


def test_change_plan_asks_for_the_plan(admin_client_, users, django_capture_on_commit_callbacks):
    ids = [u.pk for u in users]
    confirm = action(admin_client_, "change_plan", ids)
    assert confirm.context["preview"].by_current_plan == {"pro": 3}
    assert '<select name="plan" id="bulk-plan" required>' in confirm.content.decode()

    missing = action(admin_client_, "change_plan", ids, post="yes")
    assert missing.status_code == 200
    assert "plan: unknown plan None" in missing.content.decode()
    assert not BulkOperation.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        done = action(admin_client_, "change_plan", ids, post="yes", plan="student")
    assert done.status_code == 302
    assert set(User.objects.filter(pk__in=ids).values_list("plan_id", flat=True)) == {"student"}


def test_deactivate_from_the_list(admin_client_, users, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        action(admin_client_, "deactivate_users", [users[0].pk], post="yes")
    assert list(User.objects.filter(is_active=False)) == [users[0]]


def test_only_users_with_the_bulk_permission_see_the_actions(admin_client_, staff, users):
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    client = Client()
    client.force_login(staff)

    staff_page = client.get(CHANGELIST).content.decode()
    admin_page = admin_client_.get(CHANGELIST).content.decode()
    for name in ["reset_monthly_usage", "reset_all_usage", "change_plan", "deactivate_users", "reactivate_users"]:
        assert f'value="{name}"' in admin_page
        assert f'value="{name}"' not in staff_page
    response = action(client, "reset_all_usage", [u.pk for u in users], post="yes")
    assert (response.status_code, response.url) == (302, CHANGELIST)  # back to the list: "No action selected."
    assert not BulkOperation.objects.exists()


def test_results_are_paginated_and_undo_works_once(admin_client_, django_capture_on_commit_callbacks):
    many = make_users(60)
    give_usage(many)
    with django_capture_on_commit_callbacks(execute=True):
        response = action(admin_client_, "reset_monthly_usage", [u.pk for u in many], post="yes")
    page = admin_client_.get(response.url)
    assert page.context["page_obj"].paginator.num_pages == 2
    assert len(page.context["page_obj"]) == 50
    assert "page 1 of 2 (60 results)" in page.content.decode()

    op = BulkOperation.objects.get()
    undo_url = reverse("admin:coaching_bulkoperation_undo", args=[op.pk])
    asked = admin_client_.post(undo_url)  # not confirmed yet: the confirmation page, nothing restored
    assert asked.status_code == 200
    assert MonthlyUsage.objects.get(user=many[59]).minutes == Decimal("0.00")
    with django_capture_on_commit_callbacks(execute=True):
        asked = admin_client_.post(undo_url, {"post": "yes"})
    undone = admin_client_.get(asked.url)
    assert "Undo started: restoring 60 users&#x27; counters." in undone.content.decode()
    assert MonthlyUsage.objects.get(user=many[59]).minutes == Decimal("69.25")
    assert 'id="bulk-undo"' not in undone.content.decode()
    assert (
        "Undo</th><td>users restored: 60 · users left alone (moved on to a later month): 0" in undone.content.decode()
    )

    twice = admin_client_.post(undo_url, {"post": "yes"}, follow=True)
    assert "it cannot be undone twice." in twice.content.decode()
    assert admin_client_.put(undo_url).status_code == 405


def test_undo_asks_first_saying_what_it_restores_and_for_how_many(
    admin_client_, users, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = action(admin_client_, "reset_monthly_usage", [u.pk for u in users], post="yes")
    op_page = admin_client_.get(response.url).content.decode()
    op = BulkOperation.objects.get()
    undo_url = reverse("admin:coaching_bulkoperation_undo", args=[op.pk])
    assert f'href="{undo_url}">Undo this reset…</a>' in op_page

    confirm = admin_client_.get(undo_url)
    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert '<strong id="undo-users">2 users&#x27; counters</strong> for\n  2026-03.' in html
    assert '<td id="undo-minutes">21.50</td>' in html
    assert '<td id="undo-moved-on">0</td>' in html
    assert MonthlyUsage.objects.get(user=users[0]).minutes == Decimal("0.00")


def test_operation_page_words_the_summary_and_counts(admin_client_, django_capture_on_commit_callbacks):
    one = make_users(1)
    give_usage(one)
    with django_capture_on_commit_callbacks(execute=True):
        response = action(admin_client_, "reset_all_usage", [one[0].pk], post="yes")
    html = admin_client_.get(response.url).content.decode()
    assert "users_changed" not in html and "minutes_archived" not in html
    assert "Done</th><td>users changed: 1 · minutes archived: 10.25 · sessions archived: 1" in html
    assert ".bulk-counts > span" in html  # the margin between counts no longer splits "(100 %)"
    assert "Reset usage of 1 user (succeeded)" in html
    assert "Started: reset usage of 1 user." in html


def test_undo_as_a_task_runs_exactly_once_under_redelivery(admin_user, django_capture_on_commit_callbacks):
    users = make_users(3)
    give_usage(users)
    with django_capture_on_commit_callbacks(execute=True):
        op, _ = bulk.operation_create(
            kind="reset_usage",
            user_ids=[str(u.pk) for u in users],
            parameters={"reset_type": "all"},
            requested_by=admin_user,
        )
    with django_capture_on_commit_callbacks(execute=False) as queued:
        bulk.undo_request(op, by=admin_user)
    assert len(queued) == 1
    with pytest.raises(bulk.BulkStateError, match="being undone already"):
        bulk.undo_request(op, by=admin_user)

    assert bulk_operation_undo.apply(args=[str(op.pk), str(admin_user.pk)]).get() is True
    # The broker hands the same task out again (a worker died after the commit, before the ack).
    assert bulk_operation_undo.apply(args=[str(op.pk), str(admin_user.pk)]).get() is False
    op.refresh_from_db()
    assert op.status == "reverted"
    assert op.summary["undo"] == {"users_restored": 3, "users_not_restored": 0}
    assert sorted(MonthlyUsage.objects.values_list("minutes", flat=True)) == [
        Decimal("10.25"),
        Decimal("11.25"),
        Decimal("12.25"),
    ]


def test_user_list_shows_this_months_minutes_against_the_plan_sortable_and_filtered(admin_client_):
    free = make_users(3, prefix="free", plan="free")  # 200 minutes a month
    school = make_users(1, prefix="school", plan="coaching_school")  # unlimited
    MonthlyUsage.objects.bulk_create(
        [
            MonthlyUsage(user=free[0], period=MARCH, minutes=Decimal("250.00")),  # over: 125 %
            MonthlyUsage(user=free[1], period=MARCH, minutes=Decimal("170.50")),  # near: 85.3 %
            MonthlyUsage(user=free[2], period=FEBRUARY, minutes=Decimal("90.00")),  # last month's: idle now
            MonthlyUsage(user=school[0], period=MARCH, minutes=Decimal("4000.00")),
        ]
    )

    def rows(query=""):
        page = admin_client_.get(f"{CHANGELIST}?{query}")
        assert page.status_code == 200
        return [
            (u.email, u.minutes_this_month, u.percent_of_plan)
            for u in page.context["cl"].result_list
            if u.email.startswith(("free", "school"))
        ]

    listed = admin_client_.get(CHANGELIST).content.decode()
    assert '<td class="field-minutes_this_month">250.00 / 200</td><td class="field-plan_share">125.0 %</td>' in listed
    assert '<td class="field-minutes_this_month">4,000.00 / unlimited</td><td class="field-plan_share">—</td>' in listed
    assert [r[0] for r in rows("usage=over")] == ["free000000@example.com"]
    assert [r[0] for r in rows("usage=near")] == ["free000001@example.com"]
    assert [r[0] for r in rows("usage=idle")] == ["free000002@example.com"]
    # Sorted by minutes this month, most first (the column's index in list_display, descending).
    column = UserAdmin.list_display.index("minutes_this_month") + 1  # +1: the action checkbox
    by_minutes = rows(f"o=-{column}")
    assert [(email, Decimal(minutes)) for email, minutes, _ in by_minutes] == [
        ("school000000@example.com", Decimal("4000.00")),
        ("free000000@example.com", Decimal("250.00")),
        ("free000001@example.com", Decimal("170.50")),
        ("free000002@example.com", Decimal("0.00")),
    ]


@pytest.mark.real_worker
@pytest.mark.django_db(transaction=True)
def test_undo_from_the_admin_runs_on_a_real_worker(admin_user, celery_worker_process):
    """PostgreSQL + Redis: the admin's undo is queued, a worker runs it, the page polls until "reverted"."""
    from coaching import celery_app

    eager, celery_app.conf.task_always_eager = celery_app.conf.task_always_eager, False  # this module runs eagerly
    try:
        _undo_on_a_worker(admin_user, celery_worker_process)
    finally:
        celery_app.conf.task_always_eager = eager


def _undo_on_a_worker(admin_user, celery_worker_process) -> None:
    import importlib
    import time

    from django.apps import apps as django_apps

    importlib.import_module("coaching.migrations.0002_seed_plans").seed(django_apps, None)
    many = make_users(300)
    give_usage(many, period=MARCH)
    op, _ = bulk.operation_create(
        kind="reset_usage",
        user_ids=[str(u.pk) for u in many],
        parameters={"reset_type": "all"},
        requested_by=admin_user,
    )

    def status(timeout: float = 120) -> BulkOperation:
        deadline = time.monotonic() + timeout
        while (current := BulkOperation.objects.get(pk=op.pk)).status not in ("succeeded", "reverted") or (
            bulk.undo_pending(current)
        ):
            assert time.monotonic() < deadline, celery_worker_process.log_path.read_text()[-2000:]
            time.sleep(0.2)
        return current

    assert status().status == "succeeded"
    client = Client()
    client.force_login(admin_user)
    undo_url = reverse("admin:coaching_bulkoperation_undo", args=[op.pk])
    assert client.post(undo_url, {"post": "yes"}).status_code == 302
    page = client.get(reverse("admin:coaching_bulkoperation_change", args=[op.pk])).content.decode()
    assert 'id="bulk-undoing"' in page or "Reverted" in page  # queued (polling) or already done by the worker
    done = status()
    assert (done.status, done.summary["undo"]) == ("reverted", {"users_restored": 300, "users_not_restored": 0})
    assert MonthlyUsage.objects.get(user=many[299]).minutes == Decimal("309.25")
    assert "coaching.tasks.bulk_operation_undo" in celery_worker_process.log_path.read_text()
