"""Admin log (``LogEntry``) rows for bulk operations: one per user changed, one per step of the operation.

Content types are read from the database each time rather than from Django's per-process cache:
a long-running worker must not write a stale id (after a test flush, or a content type re-created).
"""

from __future__ import annotations

import datetime
import uuid

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from coaching.models import BulkOperation, User


def content_type_id(model) -> int:
    opts = model._meta
    found = ContentType.objects.filter(app_label=opts.app_label, model=opts.model_name)
    return found.values_list("id", flat=True).get()


ENTRY_FIELDS = [
    "action_time",
    "user_id",
    "content_type_id",
    "object_id",
    "object_repr",
    "action_flag",
    "change_message",
]


def entry_row(
    *, by_id: uuid.UUID, type_id: int, object_id, object_repr: str, flag: int, message: str, at: datetime.datetime
) -> tuple:
    """One entry (on one user's history) as a row of ``ENTRY_FIELDS``, for ``sql.insert_rows``."""
    return (at, by_id, type_id, str(object_id), object_repr[:200], flag, message)


def user_type_id() -> int:
    return content_type_id(User)


def log_operation(op: BulkOperation, *, by_id: uuid.UUID | None, flag: int, message: str) -> None:
    """One entry on the operation's own history (nothing when the admin who asked no longer exists)."""
    if by_id is None:
        return
    LogEntry.objects.create(
        action_time=timezone.now(),
        user_id=by_id,
        content_type_id=content_type_id(BulkOperation),
        object_id=str(op.pk),
        object_repr=str(op)[:200],
        action_flag=flag,
        change_message=message,
    )
