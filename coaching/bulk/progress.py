"""How far an operation has got, and finishing it.

The per-user results are the truth: an operation's counts are read from them (one ``GROUP BY``
on an index) rather than incremented by every chunk, so chunks never queue on the operation's
row, and a count can never drift from the results however often a chunk is retried. While it
runs, readers get live counts; when the last result is in, the counts are stored with the final
status, once, under the operation's row lock.
"""

from __future__ import annotations

import collections
import datetime
import uuid
from decimal import Decimal

from django.contrib.admin.models import CHANGE
from django.db import transaction
from django.db.models import Count, Sum

from coaching.models import BulkOperation, BulkOperationResult, MonthlyUsageArchive

from . import adminlog

Status = BulkOperation.Status
Result = BulkOperationResult.Status
ACTIVE = (Status.PENDING, Status.RUNNING)


def result_counts(operation_id: uuid.UUID) -> collections.Counter:
    """Results so far, by status."""
    rows = (
        BulkOperationResult.objects.filter(operation_id=operation_id)
        .values("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return collections.Counter({row["status"]: row["n"] for row in rows})


def _set_counts(op: BulkOperation, counts: collections.Counter) -> None:
    op.processed = counts.total()
    op.succeeded, op.skipped, op.failed = counts[Result.SUCCEEDED], counts[Result.SKIPPED], counts[Result.FAILED]


def live(op: BulkOperation) -> BulkOperation:
    """The operation with its counts as of now (stored ones once it has finished). Changes nothing stored."""
    if op.status in ACTIVE:
        _set_counts(op, result_counts(op.pk))
    return op


def note_missing(operation_id: uuid.UUID, missing: set[uuid.UUID]) -> None:
    """Users deleted since the request cannot have a result: list them (once, however often a chunk runs)."""
    if not missing:
        return
    op = BulkOperation.objects.select_for_update().defer("user_ids").get(pk=operation_id)
    known = set(op.summary.get("missing_user_ids", []))
    op.summary = {**op.summary, "missing_user_ids": sorted(known | {str(i) for i in missing})}
    op.save(update_fields=["summary"])


def finish_if_complete(operation_id: uuid.UUID, *, now: datetime.datetime) -> bool:
    """After a chunk has committed: if every user has a result (or is gone), finish the operation.

    Whichever chunk commits last sees every other chunk's results; two that finish at once are
    serialised by the row lock, and the second finds the operation finished.
    """
    op = BulkOperation.objects.defer("user_ids").get(pk=operation_id)
    missing = len(op.summary.get("missing_user_ids", []))
    if op.status not in ACTIVE or BulkOperationResult.objects.filter(operation=op).count() + missing < op.total:
        return False
    with transaction.atomic():
        op = BulkOperation.objects.select_for_update().defer("user_ids").get(pk=operation_id)
        if op.status not in ACTIVE:
            return False
        operation_finish(op, now=now)
    return True


def operation_finish(op: BulkOperation, *, now: datetime.datetime) -> None:
    """Store the counts, the final status and what was actually done. Caller holds the row lock."""
    _set_counts(op, result_counts(op.pk))
    if op.failed == 0:
        op.status = Status.SUCCEEDED
    elif op.failed >= op.processed:
        op.status = Status.FAILED
    else:
        op.status = Status.PARTIALLY_FAILED
    done = {"users_changed": op.succeeded}
    if op.kind == BulkOperation.Kind.RESET_USAGE:
        sums = MonthlyUsageArchive.objects.filter(bulk_operation=op).aggregate(
            minutes=Sum("minutes"), sessions=Sum("sessions"), transcriptions=Sum("transcriptions")
        )
        done.update(
            minutes_archived=str((sums["minutes"] or Decimal("0")).quantize(Decimal("0.01"))),
            sessions_archived=sums["sessions"] or 0,
            transcriptions_archived=sums["transcriptions"] or 0,
        )
    op.summary = {**op.summary, "done": done}
    op.finished_at = now
    op.save(update_fields=["status", "processed", "succeeded", "skipped", "failed", "summary", "finished_at"])
    adminlog.log_operation(
        op,
        by_id=op.requested_by_id,
        flag=CHANGE,
        message=(
            f"Bulk operation {op.id} {op.status}: {op.succeeded} succeeded, {op.skipped} skipped, {op.failed} failed"
        ),
    )


def store_counts(op: BulkOperation) -> list[str]:
    """Fill the stored counts from the results (when an operation ends some other way); the fields to save."""
    _set_counts(op, result_counts(op.pk))
    return ["processed", "succeeded", "skipped", "failed"]
