"""Bulk operations over users: reset usage (archived first), change plan, deactivate, reactivate.

The use case in three parts: ``operations`` (ask, dry run, start, fail, undo), ``chunks`` (one
chunk of users in one transaction, set-based, idempotent, failures isolated per user) and
``kinds`` (what each kind does). Celery tasks in ``coaching.tasks`` are thin wrappers.
"""

from .chunks import chunk_run
from .kinds import KINDS, RESET_TYPES, DryRun
from .operations import (
    BulkInputError,
    BulkStateError,
    clean_parameters,
    clean_user_ids,
    max_users,
    not_queued,
    operation_create,
    operation_fail,
    operation_preview,
    operation_start,
    operation_undo,
    parse_user_ids,
)
from .progress import live
from .undo import UndoPreview, undo_fail, undo_pending, undo_preview, undo_request, undo_run

BULK_PERMISSION = "coaching.run_bulkoperation"

__all__ = [
    "BULK_PERMISSION",
    "KINDS",
    "RESET_TYPES",
    "BulkInputError",
    "BulkStateError",
    "DryRun",
    "UndoPreview",
    "chunk_run",
    "clean_parameters",
    "clean_user_ids",
    "live",
    "max_users",
    "not_queued",
    "operation_create",
    "operation_fail",
    "operation_preview",
    "operation_start",
    "operation_undo",
    "parse_user_ids",
    "undo_fail",
    "undo_pending",
    "undo_preview",
    "undo_request",
    "undo_run",
]
