"""Running one chunk of a bulk operation: lock, apply set-based, isolate failures, record; then maybe finish.

A chunk is one transaction. Idempotency comes from the data, not from the broker: users that
already have a result for the operation are skipped (``bulk_result_once_per_user`` guarantees
one result per user), so a chunk that is retried or redelivered after a crash changes nothing
twice. A crash before the commit leaves nothing behind; a crash after it leaves every result.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Sequence

from django.contrib.admin.models import CHANGE, LogEntry
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from coaching.models import BulkOperation, BulkOperationResult, User

from . import adminlog, progress, reset_sql, sql
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


def chunk_run(operation_id: uuid.UUID | str, user_ids: Sequence[str], *, now: datetime.datetime | None = None) -> int:
    """Process one chunk of an operation in one transaction; returns how many users got a result now."""
    ids = [uuid.UUID(str(i)) for i in user_ids]
    now = now or timezone.now()
    with transaction.atomic():
        # Not the selection itself: at 100,000 ids it is megabytes of JSON, and the chunk brings its own ids.
        operation = BulkOperation.objects.defer("user_ids").filter(pk=operation_id).first()
        if operation is None or operation.status not in ACTIVE:
            return 0  # a late redelivery after the operation finished, failed or was undone
        fast = None
        if connection.vendor == "postgresql":
            reset_sql.chunk_lock(operation.id, ids)
            if operation.kind == BulkOperation.Kind.RESET_USAGE:
                fast = _reset_in_one_statement(operation, ids, now)
        if fast is None:
            targets, missing = _lock_targets(operation, ids)
            outcomes = _apply_isolated(operation, targets, now=now)
            _record(operation, outcomes, now=now)
            done = len(outcomes)
        else:
            done, missing = fast
        progress.note_missing(operation.id, missing)
    # Committed. Also after a redelivery that found nothing left: a crash may have come before this.
    progress.finish_if_complete(operation.id, now=now)
    return done


def _reset_in_one_statement(
    operation: BulkOperation, ids: list[uuid.UUID], now: datetime.datetime
) -> tuple[int, set[uuid.UUID]] | None:
    """PostgreSQL's fast path for a reset chunk: (users given a result, ids of users gone), or None if it
    failed and the chunk must go user by user."""
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
    return counts.succeeded + counts.skipped, missing
