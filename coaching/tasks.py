"""Celery tasks: thin wrappers that take ids and call a service. Rules live in the services.

Bulk operations: ``bulk_operation_start`` marks the operation running and fans out one
``bulk_operation_chunk`` per chunk of users. Tasks are acknowledged late and requeued when a
worker dies (settings), and every chunk is idempotent, so a redelivered task finishes the job
without touching anyone twice. Transient database errors are retried with backoff; any other
error, or a transient one that outlasts the retries, ends the operation ``failed`` with the error.
"""

import contextlib

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from django.db import InterfaceError, OperationalError

from coaching import bulk

TRANSIENT = (OperationalError, InterfaceError)
RETRY = {
    # Progress and results live on the operation; a stored task result would be one more write per chunk.
    "ignore_result": True,
    "autoretry_for": TRANSIENT,
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 5,
}


def _failure(task_name: str, exc: BaseException) -> str:
    return f"{task_name} failed: {type(exc).__name__}: {exc}"


class BulkTask(DjangoTask):
    """On a worker, a task whose retries ran out fails its operation instead of leaving it running."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        operation_id = args[0] if args else kwargs.get("operation_id")
        if operation_id:
            bulk.operation_fail(operation_id, error=_failure(self.name, exc))


@contextlib.contextmanager
def _failing_the_operation(task, operation_id: str):
    """A non-transient error fails the operation at once (also when tasks run eagerly, without on_failure)."""
    try:
        yield
    except TRANSIENT:
        raise
    except Exception as exc:
        bulk.operation_fail(operation_id, error=_failure(task.name, exc))
        raise


@shared_task(bind=True, base=BulkTask, **RETRY)
def bulk_operation_start(self, operation_id: str, chunk_size: int | None = None) -> int:
    with _failing_the_operation(self, operation_id):
        chunks = bulk.operation_start(operation_id, task_id=self.request.id or "", chunk_size=chunk_size)
        for user_ids in chunks:
            bulk_operation_chunk.delay(operation_id, user_ids)
    return len(chunks)


@shared_task(bind=True, base=BulkTask, **RETRY)
def bulk_operation_chunk(self, operation_id: str, user_ids: list[str]) -> int:
    with _failing_the_operation(self, operation_id):
        return bulk.chunk_run(operation_id, user_ids)


class BulkUndoTask(DjangoTask):
    """On a worker, an undo whose retries ran out says so on its operation (which stays undoable)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        operation_id = args[0] if args else kwargs.get("operation_id")
        if operation_id:
            bulk.undo_fail(operation_id, error=_failure(self.name, exc))


@shared_task(bind=True, base=BulkUndoTask, **RETRY)
def bulk_operation_undo(self, operation_id: str, by_id: str) -> bool:
    """Undo a reset; a redelivered task finds it undone and does nothing (the undo is one transaction)."""
    try:
        return bulk.undo_run(operation_id, by_id=by_id)
    except TRANSIENT:
        raise
    except Exception as exc:
        bulk.undo_fail(operation_id, error=_failure(self.name, exc))
        raise
