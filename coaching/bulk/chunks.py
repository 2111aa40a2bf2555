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
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from coaching.models import BulkOperation, BulkOperationResult, MonthlyUsageArchive, User

from . import adminlog
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
        .filter(id__in=user_ids)
        .order_by("id")
        .values_list("id", "email", "timezone", "plan_id", "is_active")
    )
    done = set(
        BulkOperationResult.objects.filter(operation=operation, user_id__in=user_ids).values_list("user_id", flat=True)
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
    BulkOperationResult.objects.bulk_create(
        [
            BulkOperationResult(
                operation_id=operation.id,
                user_id=o.target.id,
                status=o.status,
                reason=o.reason,
                before=o.before,
                created_at=now,
            )
            for o in outcomes
        ],
        batch_size=1000,
    )
    if operation.requested_by_id is None:
        return
    type_id = adminlog.user_type_id()
    LogEntry.objects.bulk_create(
        [
            adminlog.user_entry(
                by_id=operation.requested_by_id,
                type_id=type_id,
                user_id=o.target.id,
                email=o.target.email,
                flag=CHANGE,
                message=f"Bulk operation {operation.id}: {o.message}",
                at=now,
            )
            for o in outcomes
            if o.status == BulkOperationResult.Status.SUCCEEDED
        ],
        batch_size=1000,
    )


def _tally(
    operation: BulkOperation, outcomes: list[Outcome], missing: set[uuid.UUID], *, now: datetime.datetime
) -> BulkOperation:
    """Add the chunk's counts; the chunk that completes the operation finishes it.

    The ``UPDATE`` locks the operation row until commit, so the last chunk to commit sees every
    other chunk's counts and exactly one chunk finishes the operation.
    """
    counts = collections.Counter(o.status for o in outcomes)
    BulkOperation.objects.filter(pk=operation.pk).update(
        processed=F("processed") + len(outcomes),
        succeeded=F("succeeded") + counts[BulkOperationResult.Status.SUCCEEDED],
        skipped=F("skipped") + counts[BulkOperationResult.Status.SKIPPED],
        failed=F("failed") + counts[BulkOperationResult.Status.FAILED],
    )
    op = BulkOperation.objects.select_for_update().get(pk=operation.pk)
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
        operation = BulkOperation.objects.filter(pk=operation_id).first()
        if operation is None or operation.status not in ACTIVE:
            return 0  # a late redelivery after the operation finished, failed or was undone
        now = now or timezone.now()
        targets, missing = _lock_targets(operation, ids)
        outcomes = _apply_isolated(operation, targets, now=now)
        _record(operation, outcomes, now=now)
        _tally(operation, outcomes, missing, now=now)
    return len(outcomes)
