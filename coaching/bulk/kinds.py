"""What each kind of bulk operation does to one chunk of users, and what its dry run counts.

Every ``*_apply`` function takes the users of one chunk (already locked, none of them with a
result for the operation yet) and changes them with set-based statements: one multi-row
``INSERT`` for archives, one ``UPDATE … WHERE id IN (…)`` for the change. It returns one
``Outcome`` per user; the caller records results, admin log entries and totals.
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Count, DateTimeField, Q, Sum, UUIDField, Value

from coaching.models import BulkOperation, BulkOperationResult, MonthlyUsage, MonthlyUsageArchive, User
from coaching.models.usage import month_start

from . import sql

Kind = BulkOperation.Kind
RESET_TYPES = ("monthly", "all")
# Ids per ``IN (…)`` list when a dry run reads the selection: below every backend's parameter limit.
ID_BATCH = 5000


@dataclasses.dataclass(frozen=True)
class Target:
    """One user of a chunk, as read (and locked) at the start of the chunk."""

    id: uuid.UUID
    email: str
    timezone: str
    plan_id: str
    is_active: bool


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What happened to one user. ``message`` is the admin-log line when something changed."""

    target: Target
    status: str
    reason: str = ""
    before: dict = dataclasses.field(default_factory=dict)
    message: str = ""


@dataclasses.dataclass(frozen=True)
class DryRun:
    """What an operation would do, before anything changes.

    ``users_affected`` + ``users_skipped`` = ``users_selected``; ``minutes``, ``sessions`` and
    ``transcriptions`` are the counter values a reset would archive and zero (0 for other kinds).
    """

    users_selected: int
    users_affected: int
    minutes: Decimal = Decimal("0.00")
    sessions: int = 0
    transcriptions: int = 0
    by_current_plan: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def users_skipped(self) -> int:
        return self.users_selected - self.users_affected

    def as_dict(self) -> dict:
        return {
            "users_selected": self.users_selected,
            "users_affected": self.users_affected,
            "users_skipped": self.users_skipped,
            "minutes": str(self.minutes.quantize(Decimal("0.01"))),
            "sessions": self.sessions,
            "transcriptions": self.transcriptions,
            "by_current_plan": self.by_current_plan,
        }


def id_batches(ids: Sequence) -> Iterator[Sequence]:
    """The ids in slices small enough for one ``IN (…)``; on PostgreSQL they travel as one array, so all at once."""
    size = max(1, len(ids)) if connection.vendor == "postgresql" else ID_BATCH
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def user_month(tz_name: str, at: datetime.datetime) -> datetime.date:
    """The first day of the month containing ``at`` in the user's zone (the default zone if the name is bad)."""
    try:
        tz = zoneinfo.ZoneInfo(tz_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo(settings.DEFAULT_USER_TIME_ZONE)
    return month_start(at, tz)


# --- reset usage ---------------------------------------------------------------------------------


def _counter_dict(row: dict) -> dict:
    return {
        "period": row["period"].isoformat(),
        "minutes": str(row["minutes"]),
        "sessions": row["sessions"],
        "transcriptions": row["transcriptions"],
    }


def _reset_skip_reason(row: dict | None, *, reset_type: str, month: datetime.date) -> str:
    """Why a user's counters need no reset, or "" when they do."""
    if row is None:
        return "no usage counters yet: nothing to reset"
    if reset_type == "monthly" and row["period"] != month:
        if row["period"] < month:
            return f"counters are for {row['period']:%Y-%m}, an earlier month: they already read as zero"
        return f"counters are for {row['period']:%Y-%m}, after {month:%Y-%m}, the month this reset was asked for"
    if not (row["minutes"] or row["sessions"] or row["transcriptions"]):
        return "counters are already zero: nothing to reset"
    return ""


def reset_apply(operation: BulkOperation, targets: Sequence[Target], *, now: datetime.datetime) -> list[Outcome]:
    """Archive then zero the counters: ``monthly`` only this month's (in each user's zone), ``all`` any month.

    "This month" is the month when the operation was asked for (``operation.created_at``), so the
    dry run, the run and a redelivered chunk all mean the same month.
    """
    reset_type = operation.parameters["reset_type"]
    ids = [t.id for t in targets]
    counters = {
        row["user_id"]: row
        for row in MonthlyUsage.objects.select_for_update()
        .filter(sql.ids_in(MonthlyUsage, "user_id", ids))
        .order_by("user_id")
        .values("user_id", "period", "minutes", "sessions", "transcriptions")
    }
    months: dict[str, datetime.date] = {}
    outcomes, reset_ids = [], []
    for target in targets:
        row = counters.get(target.id)
        if target.timezone not in months:
            months[target.timezone] = user_month(target.timezone, operation.created_at)
        reason = _reset_skip_reason(row, reset_type=reset_type, month=months[target.timezone])
        before = _counter_dict(row) if row else {}
        if reason:
            outcomes.append(Outcome(target, BulkOperationResult.Status.SKIPPED, reason=reason, before=before))
            continue
        reset_ids.append(target.id)
        message = (
            f"reset {reset_type} usage: archived {row['period']:%Y-%m} ({row['minutes']} min, "
            f"{row['sessions']} sessions, {row['transcriptions']} transcriptions) and zeroed the counters"
        )
        outcomes.append(Outcome(target, BulkOperationResult.Status.SUCCEEDED, before=before, message=message))
    if reset_ids:
        # Archive then zero, inside the database, the rows locked and read above. No ON CONFLICT: a second
        # archive for (operation, user, period) would be a bug, and its unique constraint makes it fail loudly.
        to_reset = MonthlyUsage.objects.filter(sql.ids_in(MonthlyUsage, "user_id", reset_ids))
        sql.insert_select(
            MonthlyUsageArchive,
            ["user_id", "period", "minutes", "sessions", "transcriptions", "archived_at", "bulk_operation_id"],
            to_reset.order_by().values_list(
                "user_id",
                "period",
                "minutes",
                "sessions",
                "transcriptions",
                Value(now, output_field=DateTimeField()),
                Value(operation.id, output_field=UUIDField()),
            ),
        )
        to_reset.update(minutes=0, sessions=0, transcriptions=0, updated_at=now)
    return outcomes


def _nonzero() -> Q:
    return Q(minutes__gt=0) | Q(sessions__gt=0) | Q(transcriptions__gt=0)


def reset_preview(
    user_ids: Sequence[str | uuid.UUID], *, parameters: dict, requested_by: User | None, at: datetime.datetime
) -> DryRun:
    """Users whose counters a reset would archive and zero, and the sums it would archive."""
    monthly = parameters["reset_type"] == "monthly"
    users, minutes, sessions, transcriptions = 0, Decimal("0"), 0, 0
    for batch in id_batches(user_ids):
        groups = (
            MonthlyUsage.objects.filter(_nonzero(), sql.ids_in(MonthlyUsage, "user_id", batch))
            .values("user__timezone", "period")
            .annotate(n=Count("id"), m=Sum("minutes"), s=Sum("sessions"), t=Sum("transcriptions"))
            .order_by()
        )
        for g in groups:
            if monthly and g["period"] != user_month(g["user__timezone"], at):
                continue
            users += g["n"]
            minutes += g["m"] or 0
            sessions += g["s"] or 0
            transcriptions += g["t"] or 0
    minutes = Decimal(minutes).quantize(Decimal("0.01"))
    return DryRun(
        len(user_ids),
        users,
        minutes=minutes,
        sessions=sessions,
        transcriptions=transcriptions,
        by_current_plan=_plan_counts(user_ids),
    )


# --- change plan, deactivate, reactivate ----------------------------------------------------------------


def change_plan_apply(operation: BulkOperation, targets: Sequence[Target], *, now: datetime.datetime) -> list[Outcome]:
    """Move users to ``parameters["plan"]``; users already on it are skipped."""
    plan = operation.parameters["plan"]
    outcomes, changed = [], []
    for t in targets:
        if t.plan_id == plan:
            outcomes.append(Outcome(t, BulkOperationResult.Status.SKIPPED, reason=f"already on the {plan} plan"))
            continue
        changed.append(t.id)
        outcomes.append(
            Outcome(
                t,
                BulkOperationResult.Status.SUCCEEDED,
                before={"plan": t.plan_id},
                message=f"changed plan from {t.plan_id} to {plan}",
            )
        )
    User.objects.filter(sql.ids_in(User, "id", changed)).update(plan_id=plan)
    return outcomes


def _activity_apply(active: bool) -> Callable:
    verb = "reactivated" if active else "deactivated"

    def apply(operation: BulkOperation, targets: Sequence[Target], *, now: datetime.datetime) -> list[Outcome]:
        outcomes, changed = [], []
        for t in targets:
            if t.is_active == active:
                reason = "already active" if active else "already inactive"
            elif not active and t.id == operation.requested_by_id:
                reason = "you cannot deactivate your own account"
            else:
                reason = ""
            if reason:
                outcomes.append(Outcome(t, BulkOperationResult.Status.SKIPPED, reason=reason))
                continue
            changed.append(t.id)
            outcomes.append(
                Outcome(t, BulkOperationResult.Status.SUCCEEDED, before={"is_active": t.is_active}, message=verb)
            )
        User.objects.filter(sql.ids_in(User, "id", changed)).update(is_active=active)
        return outcomes

    apply.__doc__ = f"Mark users {'active' if active else 'inactive'}; users already so are skipped."
    return apply


def _plan_counts(user_ids: Iterable[str | uuid.UUID]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for batch in id_batches(list(user_ids)):
        in_batch = User.objects.filter(sql.ids_in(User, "id", batch))
        for row in in_batch.values("plan_id").annotate(n=Count("id")).order_by():
            counts[row["plan_id"]] = counts.get(row["plan_id"], 0) + row["n"]
    return dict(sorted(counts.items()))


def change_plan_preview(
    user_ids: Sequence[str | uuid.UUID], *, parameters: dict, requested_by: User | None, at: datetime.datetime
) -> DryRun:
    """Users not yet on the target plan (all of them when no plan is chosen yet), with the plans they are on."""
    by_plan = _plan_counts(user_ids)
    affected = len(user_ids) - by_plan.get(parameters.get("plan", ""), 0)
    return DryRun(len(user_ids), affected, by_current_plan=by_plan)


def _activity_preview(active: bool) -> Callable:
    def preview(
        user_ids: Sequence[str | uuid.UUID], *, parameters: dict, requested_by: User | None, at: datetime.datetime
    ) -> DryRun:
        affected = 0
        for batch in id_batches(user_ids):
            qs = User.objects.filter(sql.ids_in(User, "id", batch), is_active=not active)
            if not active and requested_by is not None:
                qs = qs.exclude(id=requested_by.id)
            affected += qs.count()
        return DryRun(len(user_ids), affected, by_current_plan=_plan_counts(user_ids))

    return preview


@dataclasses.dataclass(frozen=True)
class KindSpec:
    apply: Callable[..., list[Outcome]]
    preview: Callable[..., DryRun]
    label: str


KINDS: dict[str, KindSpec] = {
    Kind.RESET_USAGE: KindSpec(reset_apply, reset_preview, "reset usage"),
    Kind.CHANGE_PLAN: KindSpec(change_plan_apply, change_plan_preview, "change plan"),
    Kind.DEACTIVATE: KindSpec(_activity_apply(False), _activity_preview(False), "deactivate"),
    Kind.REACTIVATE: KindSpec(_activity_apply(True), _activity_preview(True), "reactivate"),
}
