"""Undoing a reset as a background task: what it would restore, asking for it, running it, failing it.

The admin asks (``undo_request``): the operation is marked ``summary.undo.status = "queued"`` under
its row lock and a Celery task is queued once that commits. The task (``undo_run``) calls
``operation_undo``, which restores every counter in ONE transaction and marks the operation
``reverted``. A redelivered task finds it reverted and does nothing, so an undo happens exactly once
however often the task runs; a worker that dies mid-way rolled the whole transaction back.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
import uuid
from decimal import Decimal

from celery import current_app
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Sum
from django.utils import timezone

from coaching.models import BulkOperation, MonthlyUsage, MonthlyUsageArchive, User

from .operations import BulkStateError, operation_undo, undo_refusal

logger = logging.getLogger(__name__)
Status = BulkOperation.Status
QUEUED, FAILED = "queued", "failed"


@dataclasses.dataclass(frozen=True)
class UndoPreview:
    """What an undo would put back: users whose counters are still on the archived month, and their sums.

    ``users_moved_on``: archived users whose counter has moved on to a later month; undo leaves them alone.
    """

    users_restored: int
    users_moved_on: int
    minutes: Decimal
    sessions: int
    transcriptions: int
    periods: list[datetime.date]


def undo_preview(op: BulkOperation) -> UndoPreview:
    """The figures the confirmation page shows. Changes nothing."""
    archives = MonthlyUsageArchive.objects.filter(bulk_operation=op, restored_at__isnull=True)
    on_month = Exists(MonthlyUsage.objects.filter(user_id=OuterRef("user_id"), period=OuterRef("period")))
    sums = archives.filter(on_month).aggregate(
        n=Count("id"), m=Sum("minutes"), s=Sum("sessions"), t=Sum("transcriptions")
    )
    return UndoPreview(
        users_restored=sums["n"],
        users_moved_on=archives.exclude(on_month).count(),
        minutes=(sums["m"] or Decimal("0")).quantize(Decimal("0.01")),
        sessions=sums["s"] or 0,
        transcriptions=sums["t"] or 0,
        periods=sorted(set(archives.values_list("period", flat=True))),
    )


def undo_pending(op: BulkOperation) -> bool:
    return (op.summary or {}).get("undo", {}).get("status") == QUEUED


def undo_request(op: BulkOperation, *, by: User, now: datetime.datetime | None = None) -> BulkOperation:
    """Queue the undo of a finished reset (once the transaction commits). Raises ``BulkStateError`` if it cannot be."""
    now = now or timezone.now()
    with transaction.atomic():
        op = BulkOperation.objects.select_for_update().defer("user_ids").get(pk=op.pk)
        if refusal := undo_refusal(op):
            raise BulkStateError(refusal)
        if undo_pending(op):
            raise BulkStateError(f"Operation {op.id} is being undone already: wait for it to finish.")
        op.summary = {
            **op.summary,
            "undo": {"status": QUEUED, "requested_by": str(by.pk), "requested_at": now.isoformat()},
        }
        op.save(update_fields=["summary"])
        transaction.on_commit(functools.partial(_enqueue, str(op.id), str(by.pk)))
    return op


# By its Celery name, like ``operations.START_TASK``: ``coaching.tasks`` wraps this package.
UNDO_TASK = "coaching.tasks.bulk_operation_undo"


def _enqueue(operation_id: str, by_id: str) -> None:
    try:
        current_app.tasks[UNDO_TASK].delay(operation_id, by_id)
    except Exception as exc:
        logger.exception("undo of bulk %s could not be run", operation_id)
        undo_fail(operation_id, error=f"could not be run: {type(exc).__name__}: {exc}")


def undo_run(operation_id: uuid.UUID | str, *, by_id: uuid.UUID | str) -> bool:
    """The task's body: undo unless already undone (a redelivered task). True if this call undid it."""
    op = BulkOperation.objects.defer("user_ids").filter(pk=operation_id).first()
    if op is None or op.status == Status.REVERTED:
        return False
    by = User.objects.filter(pk=by_id).first() or op.requested_by
    try:
        operation_undo(op, by=by)
    except BulkStateError as exc:
        # Undone meanwhile (a redelivery racing the first run): nothing to do. Any other refusal is recorded.
        if BulkOperation.objects.filter(pk=operation_id, status=Status.REVERTED).exists():
            return False
        undo_fail(operation_id, error=str(exc))
        return False
    return True


def undo_fail(operation_id: uuid.UUID | str, *, error: str) -> None:
    """The undo could not run: say so on the operation, which stays undoable (nothing was restored)."""
    with transaction.atomic():
        op = BulkOperation.objects.select_for_update().defer("user_ids").filter(pk=operation_id).first()
        if op is None or op.status == Status.REVERTED:
            return
        op.summary = {**op.summary, "undo": {"status": FAILED, "error": error[:2000]}}
        op.save(update_fields=["summary"])
