"""The bulk-operation use case on the embedded default (eager tasks): resets, idempotency, failures, undo."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib.admin.models import LogEntry

from coaching import bulk, services
from coaching.bulk import progress
from coaching.models import BulkOperation, BulkOperationResult, MonthlyUsage, MonthlyUsageArchive, UsageLog, User
from tests.coaching.bulk_support import FEBRUARY, MARCH, NOW, counter_write_fails, eager_celery, give_usage, make_users
from tests.factories import MonthlyUsageFactory, UsageLogFactory

pytestmark = pytest.mark.django_db

RESET = BulkOperation.Kind.RESET_USAGE


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False), eager_celery():
        yield


def run(admin, user_ids, *, capture, kind=RESET, chunk_size=None, **parameters) -> BulkOperation:
    with capture(execute=True):
        op, created = bulk.operation_create(
            kind=kind, user_ids=user_ids, parameters=parameters, requested_by=admin, chunk_size=chunk_size
        )
    assert created
    op.refresh_from_db()
    return op


def counters(user) -> tuple:
    c = MonthlyUsage.objects.get(user=user)
    return c.period, c.minutes, c.sessions, c.transcriptions


@pytest.fixture
def mixed(coach, other_coach):
    """alice: March usage; bob: February usage (reads as zero); carol: no counters; dave: March, all zero."""
    MonthlyUsageFactory(user=coach, period=MARCH, minutes=Decimal("120.50"), sessions=3, transcriptions=4)
    MonthlyUsageFactory(user=other_coach, period=FEBRUARY, minutes=Decimal("50.00"), sessions=1, transcriptions=1)
    carol, dave = make_users(2, prefix="cd")
    MonthlyUsageFactory(user=dave, period=MARCH)
    UsageLogFactory(user=coach, seconds=7230, created_at=NOW)
    return coach, other_coach, carol, dave


def test_monthly_reset_archives_then_zeroes_only_this_months_counters(
    admin_user, mixed, django_capture_on_commit_callbacks
):
    alice, bob, carol, dave = mixed
    op = run(admin_user, [u.pk for u in mixed], capture=django_capture_on_commit_callbacks, reset_type="monthly")

    assert (op.status, op.total, op.processed, op.succeeded, op.skipped, op.failed) == ("succeeded", 4, 4, 1, 3, 0)
    assert counters(alice) == (MARCH, Decimal("0.00"), 0, 0)
    assert counters(bob) == (FEBRUARY, Decimal("50.00"), 1, 1)  # an earlier month already reads as zero
    archive = MonthlyUsageArchive.objects.get(bulk_operation=op)
    assert (archive.user, archive.period, archive.minutes, archive.sessions, archive.transcriptions) == (
        alice,
        MARCH,
        Decimal("120.50"),
        3,
        4,
    )
    reasons = dict(op.results.values_list("user__email", "reason"))
    assert reasons == {
        alice.email: "",
        bob.email: "counters are for 2026-02, an earlier month: they already read as zero",
        carol.email: "no usage counters yet: nothing to reset",
        dave.email: "counters are already zero: nothing to reset",
    }
    assert op.results.get(user=alice).before == {
        "period": "2026-03-01",
        "minutes": "120.50",
        "sessions": 3,
        "transcriptions": 4,
    }
    assert op.summary["done"] == {
        "users_changed": 1,
        "minutes_archived": "120.50",
        "sessions_archived": 3,
        "transcriptions_archived": 4,
    }
    # The ledger is never touched: history, analytics and exports still show what was used.
    assert list(UsageLog.objects.filter(user=alice).values_list("minutes", flat=True)) == [Decimal("120.50")]
    entry = LogEntry.objects.get(object_id=str(alice.pk))
    assert entry.user == admin_user
    assert entry.change_message == (
        f"Bulk operation {op.id}: reset monthly usage: archived 2026-03 (120.50 min, 3 sessions, 4 transcriptions) "
        "and zeroed the counters"
    )
    assert (entry.object_repr, entry.action_flag, entry.action_time) == (alice.email, 2, NOW)
    assert not LogEntry.objects.filter(object_id__in=[str(bob.pk), str(carol.pk), str(dave.pk)]).exists()


def test_all_reset_also_archives_counters_of_earlier_months(admin_user, mixed, django_capture_on_commit_callbacks):
    alice, bob, *_ = mixed
    op = run(admin_user, [u.pk for u in mixed], capture=django_capture_on_commit_callbacks, reset_type="all")

    assert (op.succeeded, op.skipped) == (2, 2)
    assert counters(bob) == (FEBRUARY, Decimal("0.00"), 0, 0)
    assert sorted(MonthlyUsageArchive.objects.filter(bulk_operation=op).values_list("period", "minutes")) == [
        (FEBRUARY, Decimal("50.00")),
        (MARCH, Decimal("120.50")),
    ]


def test_this_month_is_each_users_own_month(admin_user, django_capture_on_commit_callbacks):
    # 1 March 01:00 in Taipei is still 28 February in Los Angeles.
    (taipei,) = make_users(1, prefix="tpe")
    angeleno_feb, angeleno_mar = make_users(2, prefix="lax", tz="America/Los_Angeles")
    give_usage([taipei], period=MARCH)
    give_usage([angeleno_feb], period=FEBRUARY)
    give_usage([angeleno_mar], period=MARCH)
    with time_machine.travel(datetime.datetime(2026, 2, 28, 17, 0, tzinfo=datetime.UTC), tick=False):
        op = run(
            admin_user,
            [taipei.pk, angeleno_feb.pk, angeleno_mar.pk],
            capture=django_capture_on_commit_callbacks,
            reset_type="monthly",
        )
    statuses = dict(op.results.values_list("user__email", "status"))
    assert statuses == {taipei.email: "succeeded", angeleno_feb.email: "succeeded", angeleno_mar.email: "skipped"}
    assert op.results.get(user=angeleno_mar).reason == (
        "counters are for 2026-03, after 2026-02, the month this reset was asked for"
    )


def test_many_users_in_chunks_each_archived_once(admin_user, django_capture_on_commit_callbacks):
    users = make_users(25)
    given = give_usage(users)
    op = run(
        admin_user,
        [u.pk for u in users],
        capture=django_capture_on_commit_callbacks,
        chunk_size=10,
        reset_type="monthly",
    )

    assert (op.status, op.processed, op.succeeded) == ("succeeded", 25, 25)
    archives = {a.user_id: a for a in MonthlyUsageArchive.objects.filter(bulk_operation=op)}
    assert len(archives) == 25
    for user_id, counter in given.items():
        assert (archives[user_id].minutes, archives[user_id].sessions, archives[user_id].transcriptions) == (
            counter.minutes,
            counter.sessions,
            counter.transcriptions,
        )
    assert set(MonthlyUsage.objects.filter(user__in=users).values_list("minutes", "sessions", "transcriptions")) == {
        (Decimal("0.00"), 0, 0)
    }
    expected = sum(c.minutes for c in given.values())
    assert op.summary["done"]["minutes_archived"] == str(expected)
    on_users = LogEntry.objects.filter(content_type__model="user", change_message__startswith=f"Bulk operation {op.id}")
    assert on_users.count() == 25


def test_resending_the_same_request_changes_nothing(admin_user, django_capture_on_commit_callbacks):
    users = make_users(5)
    give_usage(users)
    ids = [u.pk for u in users]
    first = run(admin_user, ids, capture=django_capture_on_commit_callbacks, reset_type="monthly")
    second = run(admin_user, ids, capture=django_capture_on_commit_callbacks, reset_type="monthly")

    assert (first.succeeded, second.succeeded, second.skipped, second.status) == (5, 0, 5, "succeeded")
    assert MonthlyUsageArchive.objects.count() == 5
    assert set(second.results.values_list("reason", flat=True)) == {"counters are already zero: nothing to reset"}


def test_same_idempotency_key_returns_the_same_operation(admin_user, django_capture_on_commit_callbacks):
    users = make_users(3)
    give_usage(users)
    ids = [u.pk for u in users]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        op, created = bulk.operation_create(
            kind=RESET,
            user_ids=ids,
            parameters={"reset_type": "monthly"},
            requested_by=admin_user,
            idempotency_key="k1",
        )
        again, again_created = bulk.operation_create(
            kind=RESET,
            user_ids=ids[::-1],
            parameters={"reset_type": "monthly"},
            requested_by=admin_user,
            idempotency_key="k1",
        )
    assert (created, again_created, again.pk, len(callbacks)) == (True, False, op.pk, 1)
    with pytest.raises(bulk.BulkStateError, match="already used for a different request"):
        bulk.operation_create(
            kind=RESET, user_ids=ids, parameters={"reset_type": "all"}, requested_by=admin_user, idempotency_key="k1"
        )


def started(admin, ids, **parameters) -> BulkOperation:
    """An operation marked running, its chunk not yet run (as when a worker picks it up)."""
    op, _ = bulk.operation_create(kind=RESET, user_ids=ids, parameters=parameters, requested_by=admin)
    bulk.operation_start(op.pk)
    return op


def test_a_redelivered_chunk_affects_each_user_once(admin_user):
    users = make_users(4)
    give_usage(users)
    ids = [str(u.pk) for u in users]
    op = started(admin_user, ids, reset_type="monthly")

    assert bulk.chunk_run(op.pk, ids) == 4
    assert bulk.chunk_run(op.pk, ids) == 0  # the broker delivered it again after the commit
    op.refresh_from_db()
    assert (op.status, op.processed, op.succeeded) == ("succeeded", 4, 4)
    assert MonthlyUsageArchive.objects.filter(bulk_operation=op).count() == 4
    assert BulkOperationResult.objects.filter(operation=op).count() == 4


def test_a_chunk_that_crashes_before_commit_leaves_nothing_and_its_retry_finishes(admin_user, monkeypatch):
    users = make_users(3)
    given = give_usage(users)
    ids = [str(u.pk) for u in users]
    op = started(admin_user, ids, reset_type="monthly")
    real_step = progress.note_missing

    def crash(*args, **kwargs):
        raise SystemExit("worker killed")  # not an Exception: nothing in the chunk may swallow it

    # The last step inside a chunk's transaction, after every write: the process dies before the commit.
    monkeypatch.setattr(progress, "note_missing", crash)
    with pytest.raises(SystemExit):
        bulk.chunk_run(op.pk, ids)
    assert MonthlyUsageArchive.objects.count() == 0
    assert MonthlyUsage.objects.get(user=users[0]).minutes == given[users[0].pk].minutes

    monkeypatch.setattr(progress, "note_missing", real_step)
    assert bulk.chunk_run(op.pk, ids) == 3
    op.refresh_from_db()
    assert (op.status, op.succeeded) == ("succeeded", 3)
    assert MonthlyUsageArchive.objects.filter(bulk_operation=op).count() == 3


def test_one_failing_user_leaves_the_others_done(admin_user, django_capture_on_commit_callbacks):
    users = make_users(6)
    given = give_usage(users)
    bad = users[2]
    with counter_write_fails(bad):
        op = run(admin_user, [u.pk for u in users], capture=django_capture_on_commit_callbacks, reset_type="monthly")

    assert (op.status, op.succeeded, op.failed) == ("partially_failed", 5, 1)
    failed = op.results.get(status="failed")
    assert failed.user == bad
    assert "counter frozen for audit" in failed.reason
    assert MonthlyUsage.objects.get(user=bad).minutes == given[bad.pk].minutes
    assert not MonthlyUsageArchive.objects.filter(user=bad).exists()
    assert MonthlyUsageArchive.objects.filter(bulk_operation=op).count() == 5


def test_dry_run_counts_users_and_minutes_and_changes_nothing(admin_user, mixed):
    preview = bulk.operation_preview(
        kind=RESET, user_ids=[u.pk for u in mixed], parameters={"reset_type": "all"}, requested_by=admin_user
    )
    assert (preview.users_selected, preview.users_affected, preview.users_skipped) == (4, 2, 2)
    assert (preview.minutes, preview.sessions, preview.transcriptions) == (Decimal("170.50"), 4, 5)
    monthly = bulk.operation_preview(
        kind=RESET, user_ids=[u.pk for u in mixed], parameters={"reset_type": "monthly"}, requested_by=admin_user
    )
    assert (monthly.users_affected, monthly.minutes) == (1, Decimal("120.50"))
    assert MonthlyUsage.objects.get(user=mixed[0]).minutes == Decimal("120.50")
    assert not MonthlyUsageArchive.objects.exists()


def test_a_dry_run_operation_is_recorded_with_its_figures(admin_user, mixed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        op, _ = bulk.operation_create(
            kind=RESET,
            user_ids=[u.pk for u in mixed],
            parameters={"reset_type": "monthly"},
            requested_by=admin_user,
            dry_run=True,
        )
    assert callbacks == []
    assert (op.status, op.dry_run, op.summary["dry_run"]["users_affected"], op.summary["dry_run"]["minutes"]) == (
        "succeeded",
        True,
        1,
        "120.50",
    )
    assert not MonthlyUsageArchive.objects.exists()


def test_a_dry_run_counts_in_the_month_the_operation_is_asked_in(admin_user, mixed):
    # 31 March 16:30 UTC is 1 April in Taipei: alice's March counters already read as zero then.
    asked = datetime.datetime(2026, 3, 31, 16, 30, tzinfo=datetime.UTC)
    op, _ = bulk.operation_create(
        kind=RESET,
        user_ids=[u.pk for u in mixed],
        parameters={"reset_type": "monthly"},
        requested_by=admin_user,
        dry_run=True,
        now=asked,
    )
    assert (op.summary["dry_run"]["users_affected"], op.summary["dry_run"]["minutes"]) == (0, "0.00")


LAST_SECOND_OF_MARCH = datetime.datetime(2026, 3, 31, 15, 59, 59, tzinfo=datetime.UTC)  # 23:59:59 in Taipei
FIRST_SECOND_OF_APRIL = datetime.datetime(2026, 3, 31, 16, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("written", "asked", "status", "left"),
    [
        (LAST_SECOND_OF_MARCH, LAST_SECOND_OF_MARCH, "succeeded", Decimal("0.00")),
        (FIRST_SECOND_OF_APRIL, FIRST_SECOND_OF_APRIL, "succeeded", Decimal("0.00")),
        (LAST_SECOND_OF_MARCH, FIRST_SECOND_OF_APRIL, "skipped", Decimal("5.00")),  # already reads as zero
    ],
)
def test_the_counters_and_a_monthly_reset_agree_on_this_month(
    admin_user, django_capture_on_commit_callbacks, written, asked, status, left
):
    (user,) = make_users(1, prefix="edge")  # Asia/Taipei
    with time_machine.travel(written, tick=False):
        counter = services.monthly_usage_add(user, minutes=Decimal("5.00"), sessions=1, transcriptions=1)
    with time_machine.travel(asked, tick=False):
        reads_now = counter.current()["minutes"]
        op = run(admin_user, [user.pk], capture=django_capture_on_commit_callbacks, reset_type="monthly")
    assert op.results.get().status == status
    assert MonthlyUsage.objects.get(user=user).minutes == left
    assert reads_now == (Decimal("5.00") if status == "succeeded" else Decimal("0.00"))


def test_undo_restores_the_counters_once(admin_user, mixed, django_capture_on_commit_callbacks):
    alice, bob, *_ = mixed
    op = run(admin_user, [u.pk for u in mixed], capture=django_capture_on_commit_callbacks, reset_type="all")

    undone = bulk.operation_undo(op, by=admin_user)

    assert (undone.status, undone.summary["undo"]) == ("reverted", {"users_restored": 2, "users_not_restored": 0})
    assert counters(alice) == (MARCH, Decimal("120.50"), 3, 4)
    assert counters(bob) == (FEBRUARY, Decimal("50.00"), 1, 1)
    assert not MonthlyUsageArchive.objects.filter(bulk_operation=op, restored_at__isnull=True).exists()
    undo_entry = LogEntry.objects.get(object_id=str(alice.pk), change_message__startswith="Undo")
    assert (undo_entry.user, undo_entry.object_repr, undo_entry.change_message) == (
        admin_user,
        alice.email,
        f"Undo of bulk operation {op.id}: restored 2026-03 usage (120.50 min, 3 sessions, 4 transcriptions)",
    )
    with pytest.raises(bulk.BulkStateError, match="already undone .* cannot be undone twice"):
        bulk.operation_undo(op, by=admin_user)
    assert counters(alice) == (MARCH, Decimal("120.50"), 3, 4)


def test_undo_keeps_usage_counted_after_the_reset_and_leaves_moved_on_counters(
    admin_user, coach, other_coach, django_capture_on_commit_callbacks
):
    MonthlyUsageFactory(user=coach, period=MARCH, minutes=Decimal("30.00"), sessions=1, transcriptions=1)
    MonthlyUsageFactory(user=other_coach, period=MARCH, minutes=Decimal("40.00"), sessions=2, transcriptions=2)
    op = run(admin_user, [coach.pk, other_coach.pk], capture=django_capture_on_commit_callbacks, reset_type="monthly")
    from coaching.services import monthly_usage_add

    monthly_usage_add(coach, minutes=Decimal("5.00"), sessions=1, transcriptions=1)  # used again in March
    monthly_usage_add(other_coach, minutes=Decimal("7.00"), at=datetime.datetime(2026, 4, 2, tzinfo=datetime.UTC))

    undone = bulk.operation_undo(op, by=admin_user)

    assert counters(coach) == (MARCH, Decimal("35.00"), 2, 2)
    assert counters(other_coach) == (datetime.date(2026, 4, 1), Decimal("7.00"), 0, 0)
    assert undone.summary["undo"] == {"users_restored": 1, "users_not_restored": 1}


def test_undo_is_refused_for_dry_runs_and_other_kinds(admin_user, coach, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        dry, _ = bulk.operation_create(
            kind=RESET, user_ids=[coach.pk], parameters={"reset_type": "all"}, requested_by=admin_user, dry_run=True
        )
    with pytest.raises(bulk.BulkStateError, match="A dry run changed nothing"):
        bulk.operation_undo(dry, by=admin_user)
    plan = run(admin_user, [coach.pk], capture=django_capture_on_commit_callbacks, kind="change_plan", plan="free")
    with pytest.raises(bulk.BulkStateError, match="Only usage resets can be undone"):
        bulk.operation_undo(plan, by=admin_user)


def test_change_plan_deactivate_reactivate(admin_user, coach, other_coach, django_capture_on_commit_callbacks):
    User.objects.filter(pk=other_coach.pk).update(plan_id="free")
    op = run(
        admin_user,
        [coach.pk, other_coach.pk],
        capture=django_capture_on_commit_callbacks,
        kind="change_plan",
        plan="free",
    )
    assert (op.succeeded, op.skipped) == (1, 1)
    assert set(User.objects.filter(pk__in=[coach.pk, other_coach.pk]).values_list("plan_id", flat=True)) == {"free"}
    assert op.results.get(user=coach).before == {"plan": "pro"}
    assert op.results.get(user=other_coach).reason == "already on the free plan"

    op = run(admin_user, [coach.pk, admin_user.pk], capture=django_capture_on_commit_callbacks, kind="deactivate")
    assert op.results.get(user=admin_user).reason == "you cannot deactivate your own account"
    assert list(User.objects.filter(is_active=False).values_list("email", flat=True)) == [coach.email]

    op = run(admin_user, [coach.pk, other_coach.pk], capture=django_capture_on_commit_callbacks, kind="reactivate")
    assert (op.succeeded, op.skipped) == (1, 1)
    assert not User.objects.filter(is_active=False).exists()
    assert LogEntry.objects.filter(object_id=str(coach.pk), change_message__endswith=": reactivated").count() == 1


@pytest.mark.parametrize(
    ("user_ids", "parameters", "message"),
    [
        ("abc", {"reset_type": "monthly"}, "user_ids: must be a list of user ids (UUIDs)"),
        ([], {"reset_type": "monthly"}, "user_ids: is empty: select at least one user"),
        (["abc", 42], {"reset_type": "monthly"}, "user_ids: 2 are not user ids (UUIDs): 'abc', 42"),
        (
            ["00000000-0000-0000-0000-000000000001"],
            {"reset_type": "monthly"},
            "user_ids: no user has 1 of these ids: 00000000-0000-0000-0000-000000000001",
        ),
        (None, {"reset_type": "weekly"}, "reset_type: unknown reset type 'weekly': use 'monthly' or 'all'"),
    ],
)
def test_bad_requests_are_refused_and_create_nothing(admin_user, coach, user_ids, parameters, message):
    user_ids = [coach.pk] if user_ids is None else user_ids
    with pytest.raises(bulk.BulkInputError) as exc:
        bulk.operation_create(kind=RESET, user_ids=user_ids, parameters=parameters, requested_by=admin_user)
    assert str(exc.value) == message
    assert not BulkOperation.objects.exists()


def test_more_ids_than_the_limit_are_refused(admin_user, settings):
    settings.BULK_MAX_USERS = 3
    users = make_users(4)
    with pytest.raises(bulk.BulkInputError, match="at most 3 user ids per operation, got 4"):
        bulk.operation_create(
            kind=RESET, user_ids=[u.pk for u in users], parameters={"reset_type": "all"}, requested_by=admin_user
        )


def test_a_chunk_is_set_based_not_a_query_per_user(admin_user, django_assert_max_num_queries):
    users = make_users(300)
    give_usage(users)
    ids = [str(u.pk) for u in users]
    op = started(admin_user, ids, reset_type="monthly")
    with django_assert_max_num_queries(30):  # the same for 3 users or 3,000: never a query per user
        assert bulk.chunk_run(op.pk, ids) == 300
    op.refresh_from_db()
    assert (op.status, op.succeeded) == ("succeeded", 300)


def test_a_chunk_task_that_keeps_failing_fails_the_operation(
    admin_user, monkeypatch, django_capture_on_commit_callbacks
):
    users = make_users(2)
    give_usage(users)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(bulk, "chunk_run", broken)
    with django_capture_on_commit_callbacks(execute=True):  # the request that asked is not the one to fail
        op, _ = bulk.operation_create(
            kind=RESET, user_ids=[u.pk for u in users], parameters={"reset_type": "all"}, requested_by=admin_user
        )
    op = BulkOperation.objects.get()
    assert (op.status, op.error) == ("failed", "coaching.tasks.bulk_operation_chunk failed: RuntimeError: disk full")
    assert op.finished_at == NOW
    assert MonthlyUsage.objects.get(user=users[0]).minutes == Decimal("10.25")


def test_an_operation_that_cannot_be_queued_says_so(admin_user, coach, monkeypatch, django_capture_on_commit_callbacks):
    from coaching import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setattr(tasks.bulk_operation_start, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        op, _ = bulk.operation_create(kind="deactivate", user_ids=[coach.pk], parameters={}, requested_by=admin_user)
    op.refresh_from_db()
    assert (op.status, op.error) == (
        "failed",
        "could not be run: ConnectionRefusedError: Error 111 connecting to 127.0.0.1:6379",
    )
    assert User.objects.get(pk=coach.pk).is_active


def test_a_crash_after_the_commit_is_finished_by_the_redelivery(admin_user, monkeypatch):
    users = make_users(3)
    give_usage(users)
    ids = [str(u.pk) for u in users]
    op = started(admin_user, ids, reset_type="monthly")
    real_finish = progress.finish_if_complete

    def crash(*args, **kwargs):
        raise SystemExit("worker killed between the commit and the acknowledgement")

    monkeypatch.setattr(progress, "finish_if_complete", crash)
    with pytest.raises(SystemExit):
        bulk.chunk_run(op.pk, ids)
    op.refresh_from_db()
    assert (op.status, op.results.count(), bulk.live(op).processed) == ("running", 3, 3)

    monkeypatch.setattr(progress, "finish_if_complete", real_finish)
    assert bulk.chunk_run(op.pk, ids) == 0  # nothing left to do, but the operation gets finished
    op.refresh_from_db()
    assert (op.status, op.processed, op.succeeded) == ("succeeded", 3, 3)
    assert MonthlyUsageArchive.objects.filter(bulk_operation=op).count() == 3


def test_ids_are_taken_in_any_case_and_counted_once(admin_user, coach, other_coach):
    ids = [str(coach.pk).upper(), str(other_coach.pk), str(coach.pk)]
    assert bulk.clean_user_ids(ids) == [str(coach.pk), str(other_coach.pk)]
    with pytest.raises(bulk.BulkInputError, match=r"1 are not user ids \(UUIDs\): '\{"):
        bulk.clean_user_ids([f"{{{coach.pk}}}"])  # only the canonical 8-4-4-4-12 form
