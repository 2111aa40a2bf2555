"""Running one chunk of a bulk operation: lock, apply set-based, isolate failures, record, tally.

A chunk is one transaction. Idempotency comes from the data, not from the broker: users that
already have a result for the operation are skipped (``bulk_result_once_per_user`` guarantees
one result per user), so a chunk that is retried or redelivered after a crash changes nothing
twice. A crash before the commit leaves nothing behind; a crash after it leaves every result.
"""

from __future__ import annotations

import collections
import datetime
import logging
import uuid
from collections.abc import Sequence
from decimal import Decimal

from django.contrib.admin.models import CHANGE, LogEntry
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from coaching.models import BulkOperation, BulkOperationResult, MonthlyUsageArchive, User

from . import adminlog, reset_sql, sql
from .kinds import KINDS, Outcome, Target

logger = logging.getLogger(__name__)
Status = BulkOperation.Status
# Transient database trouble: the whole chunk is retried by its task rather than blamed on one user.
TRANSIENT = (OperationalError, InterfaceError)
ACTIVE = (Status.PENDING, Status.RUNNING)


def _lock_targets(operation: BulkOperation, user_ids: Sequence[uuid.UUID]) -> tuple[list[Target], set[uuid.UUID]]:
    """Lock the chunk's users (in id order, so chunks never deadlock) and keep those without a result yet.

    Returns the users to process and the ids that no longer exist. A second delivery of the same
    chunk running at the same time waits here, then finds every user done.
    """
    rows = list(
        User.objects.select_for_update(no_key=True)
        .filter(sql.ids_in(User, "id", user_ids))
        .order_by("id")
        .values_list("id", "email", "timezone", "plan_id", "is_active")
    )
    done = set(
        BulkOperationResult.objects.filter(
            sql.ids_in(BulkOperationResult, "user_id", user_ids), operation=operation
        ).values_list("user_id", flat=True)
    )
    missing = set(user_ids) - {row[0] for row in rows}
    return [Target(*row) for row in rows if row[0] not in done], missing


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'no message'}"


def _apply_isolated(operation: BulkOperation, targets: list[Target], *, now: datetime.datetime) -> list[Outcome]:
    """Apply to the whole chunk at once; if that fails, to each user in its own savepoint.

    One user whose write fails ends ``failed`` with the error; the others still succeed.
    """
    apply = KINDS[operation.kind].apply
    if not targets:
        return []
    try:
        with transaction.atomic():
            return apply(operation, targets, now=now)
    except TRANSIENT:
        raise
    except Exception as exc:  # any error of the set-based write falls back to per-user writes
        logger.warning("bulk %s: chunk write failed (%s); retrying user by user", operation.id, _describe(exc))
    outcomes: list[Outcome] = []
    for target in targets:
        try:
            with transaction.atomic():
                outcomes.extend(apply(operation, [target], now=now))
        except TRANSIENT:
            raise
        except Exception as exc:  # the user's own failure, recorded on its result
            outcomes.append(Outcome(target, BulkOperationResult.Status.FAILED, reason=_describe(exc)))
    return outcomes


def _record(operation: BulkOperation, outcomes: list[Outcome], *, now: datetime.datetime) -> None:
    """One result per user, and an admin log entry on each user something was done to."""
    sql.insert_rows(
        BulkOperationResult,
        ["operation_id", "user_id", "status", "reason", "before", "created_at"],
        [(operation.id, o.target.id, o.status, o.reason, o.before, now) for o in outcomes],
    )
    if operation.requested_by_id is None:
        return
    type_id = adminlog.user_type_id()
    sql.insert_rows(
        LogEntry,
        adminlog.ENTRY_FIELDS,
        [
            adminlog.entry_row(
                by_id=operation.requested_by_id,
                type_id=type_id,
                object_id=o.target.id,
                object_repr=o.target.email,
                flag=CHANGE,
                message=f"Bulk operation {operation.id}: {o.message}",
                at=now,
            )
            for o in outcomes
            if o.status == BulkOperationResult.Status.SUCCEEDED
        ],
    )


def _tally(
    operation: BulkOperation, counts: collections.Counter, missing: set[uuid.UUID], *, now: datetime.datetime
) -> BulkOperation:
    """Add the chunk's counts (by result status); the chunk that completes the operation finishes it.

    The ``UPDATE`` locks the operation row until commit, so the last chunk to commit sees every
    other chunk's counts and exactly one chunk finishes the operation.
    """
    BulkOperation.objects.filter(pk=operation.pk).update(
        processed=F("processed") + counts.total(),
        succeeded=F("succeeded") + counts[BulkOperationResult.Status.SUCCEEDED],
        skipped=F("skipped") + counts[BulkOperationResult.Status.SKIPPED],
        failed=F("failed") + counts[BulkOperationResult.Status.FAILED],
    )
    op = BulkOperation.objects.select_for_update().defer("user_ids").get(pk=operation.pk)
    if missing:
        # Deleted since the request: they cannot have a result row; listed once however often the chunk runs.
        known = set(op.summary.get("missing_user_ids", []))
        op.summary = {**op.summary, "missing_user_ids": sorted(known | {str(i) for i in missing})}
        op.save(update_fields=["summary"])
    if op.status in ACTIVE and op.processed + len(op.summary.get("missing_user_ids", [])) >= op.total:
        operation_finish(op, now=now)
    return op


def operation_finish(op: BulkOperation, *, now: datetime.datetime) -> None:
    """Set the final status from the counts and store what was actually done. Caller holds the row lock."""
    if op.failed == 0:
        op.status = Status.SUCCEEDED
    elif op.failed >= op.processed:
        op.status = Status.FAILED
    else:
        op.status = Status.PARTIALLY_FAILED
    done = {"users_changed": op.succeeded}
    if op.kind == BulkOperation.Kind.RESET_USAGE:
        sums = MonthlyUsageArchive.objects.filter(bulk_operation=op).aggregate(
            users=Count("id"), minutes=Sum("minutes"), sessions=Sum("sessions"), transcriptions=Sum("transcriptions")
        )
        done.update(
            minutes_archived=str((sums["minutes"] or Decimal("0")).quantize(Decimal("0.01"))),
            sessions_archived=sums["sessions"] or 0,
            transcriptions_archived=sums["transcriptions"] or 0,
        )
    op.summary = {**op.summary, "done": done}
    op.finished_at = now
    op.save(update_fields=["status", "summary", "finished_at"])
    adminlog.log_operation(
        op,
        by_id=op.requested_by_id,
        flag=CHANGE,
        message=(
            f"Bulk operation {op.id} {op.status}: {op.succeeded} succeeded, {op.skipped} skipped, {op.failed} failed"
        ),
    )


def chunk_run(operation_id: uuid.UUID | str, user_ids: Sequence[str], *, now: datetime.datetime | None = None) -> int:
    """Process one chunk of an operation in one transaction; returns how many users got a result now."""
    ids = [uuid.UUID(str(i)) for i in user_ids]
    with transaction.atomic():
        # Not the selection itself: at 100,000 ids it is megabytes of JSON, and the chunk brings its own ids.
        operation = BulkOperation.objects.defer("user_ids").filter(pk=operation_id).first()
        if operation is None or operation.status not in ACTIVE:
            return 0  # a late redelivery after the operation finished, failed or was undone
        now = now or timezone.now()
        if connection.vendor == "postgresql":
            reset_sql.chunk_lock(operation.id, ids)
            if operation.kind == BulkOperation.Kind.RESET_USAGE:
                done = _reset_in_one_statement(operation, ids, now)
                if done is not None:
                    return done
        targets, missing = _lock_targets(operation, ids)
        outcomes = _apply_isolated(operation, targets, now=now)
        _record(operation, outcomes, now=now)
        _tally(operation, collections.Counter(o.status for o in outcomes), missing, now=now)
    return len(outcomes)


def _reset_in_one_statement(operation: BulkOperation, ids: list[uuid.UUID], now: datetime.datetime) -> int | None:
    """PostgreSQL's fast path for a reset chunk: users given a result, or None if it failed (go user by user)."""
    try:
        with transaction.atomic():
            counts = reset_sql.reset_chunk(operation, ids, user_type=adminlog.user_type_id(), now=now)
    except TRANSIENT:
        raise
    except Exception as exc:  # e.g. one user's counter refuses the write: isolate it in the slower path
        logger.warning("bulk %s: one-statement reset failed (%s); going user by user", operation.id, _describe(exc))
        return None
    missing: set[uuid.UUID] = set()
    if counts.users_found < len(ids):
        missing = set(ids) - set(User.objects.filter(sql.ids_in(User, "id", ids)).values_list("id", flat=True))
    statuses = collections.Counter(
        {BulkOperationResult.Status.SUCCEEDED: counts.succeeded, BulkOperationResult.Status.SKIPPED: counts.skipped}
    )
    _tally(operation, statuses, missing, now=now)
    return statuses.total()
