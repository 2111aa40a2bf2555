"""Celery tasks for exports: thin wrappers around ``exports.services``.

``exports_sweep`` runs every five minutes under ``celery -A coaching beat`` (``CELERY_BEAT_SCHEDULE``).
It is idempotent: a sweep enqueued twice, or redelivered after a worker died, fails nothing twice.
"""

from celery import shared_task

from .services import stale_exports_fail


@shared_task(ignore_result=True)
def exports_sweep() -> int:
    """Mark exports abandoned mid-stream (still running past ``EXPORT_STALE_MINUTES``) failed."""
    return stale_exports_fail()
