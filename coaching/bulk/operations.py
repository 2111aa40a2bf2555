"""Asking for a bulk operation, starting it, failing it, undoing it. Admin, API and tasks call these."""

from __future__ import annotations

import datetime
import functools
import logging
import re
import uuid
from collections.abc import Sequence

from celery import current_app
from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Subquery
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from coaching.models import BulkOperation, MonthlyUsage, MonthlyUsageArchive, Plan, User

from . import adminlog, progress, reset_sql, sql
from .kinds import KINDS, RESET_TYPES, DryRun, id_batches

logger = logging.getLogger(__name__)
Kind = BulkOperation.Kind
Status = BulkOperation.Status
UNDOABLE = (Status.SUCCEEDED, Status.PARTIALLY_FAILED)
CANONICAL_UUID = re.compile(r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
# How many unknown ids an error lists in full (the message itself names the first few).
LISTED_UNKNOWN = 1000
# The summary key of an operation whose task the broker never received (see ``not_queued``).
NOT_QUEUED = "not_queued"


class BulkInputError(ValueError):
    """The request cannot be honoured as asked; ``errors`` maps each field to what to fix."""

    def __init__(self, errors: dict[str, list]):
        self.errors = errors
        field, messages = next(iter(errors.items()))
        super().__init__(f"{field}: {messages[0]}")


class BulkStateError(Exception):
    """The operation is not in a state that allows this (undo twice, undo while running, …)."""


def counters_of(users: int) -> str:
    """``1`` -> "1 user's counters", ``2`` -> "2 users' counters" (with thousands separators)."""
    return f"{users:,} user's counters" if users == 1 else f"{users:,} users' counters"


def max_users() -> int:
    return settings.BULK_MAX_USERS


def clean_parameters(kind: str, parameters: dict | None) -> dict:
    """The operation's parameters, checked: ``reset_type`` for resets, an active ``plan`` for plan changes."""
    parameters = dict(parameters or {})
    if kind not in KINDS:
        raise BulkInputError({"kind": [f"unknown operation {kind!r}: use one of {', '.join(KINDS)}"]})
    if kind == Kind.RESET_USAGE:
        reset_type = parameters.get("reset_type")
        if reset_type not in RESET_TYPES:
            raise BulkInputError({"reset_type": [f"unknown reset type {reset_type!r}: use 'monthly' or 'all'"]})
        return {"reset_type": reset_type}
    if kind == Kind.CHANGE_PLAN:
        plan = parameters.get("plan")
        codes = list(Plan.objects.filter(is_active=True).values_list("code", flat=True))
        if plan not in codes:
            raise BulkInputError({"plan": [f"unknown plan {plan!r}: use one of {', '.join(codes)}"]})
        return {"plan": plan}
    return {}


def parse_user_ids(user_ids) -> list[str]:
    """The distinct ids given, in order, checked for shape only: a non-empty list of UUIDs within the limit.

    Ids are strings in the canonical form (``8-4-4-4-12`` hex digits, as JSON Schema's ``uuid``),
    returned lower-case; ``uuid.UUID`` objects are accepted too. A regular expression rather than
    ``uuid.UUID()`` per id: at 100,000 ids that is most of the request's Python time.
    """
    if not isinstance(user_ids, list | tuple):
        raise BulkInputError({"user_ids": ["must be a list of user ids (UUIDs)"]})
    if not user_ids:
        raise BulkInputError({"user_ids": ["is empty: select at least one user"]})
    if len(user_ids) > max_users():
        raise BulkInputError(
            {"user_ids": [f"at most {max_users():,} user ids per operation, got {len(user_ids):,}: split them up"]}
        )
    parsed, bad = [], []
    for value in user_ids:
        if isinstance(value, str) and CANONICAL_UUID.match(value):
            parsed.append(value.lower())
        elif isinstance(value, uuid.UUID):
            parsed.append(str(value))
        else:  # ids are strings: 42 or true is not one
            bad.append(value)
    if bad:
        shown = ", ".join(repr(v) for v in bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise BulkInputError({"user_ids": [f"{len(bad)} are not user ids (UUIDs): {shown}"]})
    return list(dict.fromkeys(parsed))


def clean_user_ids(user_ids) -> list[str]:
    """The distinct users named, in the order given; every one must be an existing user's id (a UUID)."""
    ids = parse_user_ids(user_ids)
    unknown: list[str] = []
    for batch in id_batches(ids):
        known = User.objects.filter(sql.ids_in(User, "id", batch))
        if known.count() < len(batch):  # only then fetch which ones (a count is far cheaper than the ids)
            found = {str(i) for i in known.values_list("id", flat=True)}
            unknown.extend(i for i in batch if i not in found)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise BulkInputError(
            {
                "user_ids": [f"no user has {len(unknown)} of these ids: {shown}"],
                "unknown_user_ids": unknown[:LISTED_UNKNOWN],
            }
        )
    return ids


def operation_preview(
    *,
    kind: str,
    user_ids: Sequence[str | uuid.UUID],
    parameters: dict,
    requested_by: User | None,
    at: datetime.datetime | None = None,
) -> DryRun:
    """The dry run: how many users and (for resets) minutes would be affected. Changes nothing."""
    at = at or timezone.now()
    return KINDS[kind].preview(list(user_ids), parameters=parameters, requested_by=requested_by, at=at)


def _log_operation(op: BulkOperation, *, flag: int, message: str) -> None:
    if op.requested_by_id is not None:
        adminlog.log_operation(op, by_id=op.requested_by_id, flag=flag, message=message)


def _same_request(op: BulkOperation, *, kind: str, ids: list[str], parameters: dict, dry_run: bool) -> bool:
    return (
        op.kind == kind
        and op.parameters == parameters
        and op.dry_run == dry_run
        and sorted(op.user_ids) == sorted(str(i) for i in ids)
    )


def _replay(requested_by: User, key: str, **request) -> BulkOperation | None:
    """The operation an earlier request with this Idempotency-Key created, if any; a different request is refused."""
    existing = BulkOperation.objects.filter(requested_by=requested_by, idempotency_key=key).first()
    if existing is not None and not _same_request(existing, **request):
        raise BulkStateError(
            f"Idempotency-Key {key!r} was already used for a different request (operation {existing.id}): "
            "use a new key for a new request"
        )
    return existing


def operation_create(
    *,
    kind: str,
    user_ids,
    requested_by: User,
    parameters: dict | None = None,
    dry_run: bool = False,
    idempotency_key: str = "",
    chunk_size: int | None = None,
    now: datetime.datetime | None = None,
) -> tuple[BulkOperation, bool]:
    """Record an operation and, unless it is a dry run, start it once the transaction commits.

    Returns ``(operation, created)``. With an ``idempotency_key`` already used by the same admin for
    the same request, the existing operation is returned (``created`` False) and nothing new runs.
    Without one, a re-sent request makes a new operation that finds nothing left to do.
    """
    now = now or timezone.now()
    parameters = clean_parameters(kind, parameters)
    ids = clean_user_ids(user_ids)
    request = {"kind": kind, "ids": ids, "parameters": parameters, "dry_run": dry_run}
    if idempotency_key and (existing := _replay(requested_by, idempotency_key, **request)):
        if _requeue(existing, chunk_size=chunk_size):
            return existing, True
        return existing, False
    try:
        with transaction.atomic():
            op = BulkOperation.objects.create(
                kind=kind,
                parameters=parameters,
                user_ids=[str(i) for i in ids],
                requested_by=requested_by,
                dry_run=dry_run,
                total=len(ids),
                idempotency_key=idempotency_key,
                created_at=now,
            )
            _log_operation(op, flag=ADDITION, message=_asked_message(op))
            if dry_run:
                # At the operation's own time: "this month" of a monthly reset is the month it was asked in.
                preview = operation_preview(
                    kind=kind, user_ids=ids, parameters=parameters, requested_by=requested_by, at=now
                )
                op.summary = {"dry_run": preview.as_dict()}
                op.status, op.started_at, op.finished_at = Status.SUCCEEDED, now, now
                op.save(update_fields=["summary", "status", "started_at", "finished_at"])
            else:
                transaction.on_commit(functools.partial(_enqueue, str(op.id), chunk_size=chunk_size))
    except IntegrityError:
        # The same Idempotency-Key arrived twice at once: the other request won.
        if idempotency_key and (existing := _replay(requested_by, idempotency_key, **request)):
            return existing, False
        raise
    return op, True


# The start task, by its Celery name: ``coaching.tasks`` wraps this module, so this module does not
# import it (layers import downwards only); ``CoachingConfig.ready`` registers the tasks.
START_TASK = "coaching.tasks.bulk_operation_start"


def _enqueue(operation_id: str, *, chunk_size: int | None) -> None:
    """Queue the start task (once the operation is committed). If it cannot be queued, or, with eager
    tasks, the run itself fails, the operation says so; the request that asked still gets its answer."""
    try:
        current_app.tasks[START_TASK].delay(operation_id, chunk_size=chunk_size)
    except Exception as exc:
        logger.exception("bulk %s could not be run", operation_id)
        operation_fail(operation_id, error=f"could not be run: {type(exc).__name__}: {exc}")
        if not settings.CELERY_TASK_ALWAYS_EAGER or isinstance(exc, OSError | KombuOperationalError):
            # Never queued (the broker is down): nothing ran, and re-sending the request runs it.
            BulkOperation.objects.filter(pk=operation_id, status=Status.FAILED).update(
                summary={NOT_QUEUED: {"reason": f"{type(exc).__name__}: {exc}"[:500], "retryable": True}}
            )


def not_queued(op: BulkOperation) -> bool:
    """The operation failed only because its task could not be queued (broker down): it changed nothing."""
    return op.status == Status.FAILED and NOT_QUEUED in (op.summary or {})


def _requeue(op: BulkOperation, *, chunk_size: int | None) -> bool:
    """Queue again an operation that was never queued (same Idempotency-Key re-sent once the broker is back)."""
    with transaction.atomic():
        updated = BulkOperation.objects.filter(pk=op.pk, status=Status.FAILED, summary__has_key=NOT_QUEUED).update(
            status=Status.PENDING, error="", finished_at=None, summary={}
        )
        if updated:
            transaction.on_commit(functools.partial(_enqueue, str(op.id), chunk_size=chunk_size))
    if updated:
        op.refresh_from_db()
    return bool(updated)


def _asked_message(op: BulkOperation) -> str:
    params = ", ".join(f"{k}={v}" for k, v in op.parameters.items())
    noun = "user" if op.total == 1 else "users"
    return f"Bulk operation {op.id}: {op.get_kind_display()}{f' ({params})' if params else ''} of {op.total} {noun}" + (
        " (dry run)" if op.dry_run else ""
    )


def operation_start(
    operation_id: uuid.UUID | str, *, task_id: str = "", chunk_size: int | None = None
) -> list[list[str]]:
    """Mark the operation running and return its chunks of user ids (none if it is not pending or running).

    Safe to run twice: a redelivered start hands out the same chunks, and chunks are idempotent.
    """
    size = chunk_size or settings.BULK_CHUNK_SIZE
    with transaction.atomic():
        op = BulkOperation.objects.select_for_update().filter(pk=operation_id).first()
        if op is None or op.dry_run or op.status not in (Status.PENDING, Status.RUNNING):
            return []
        if op.status == Status.PENDING:
            op.status, op.started_at, op.celery_task_id = Status.RUNNING, timezone.now(), task_id
            op.save(update_fields=["status", "started_at", "celery_task_id"])
    return [op.user_ids[i : i + size] for i in range(0, len(op.user_ids), size)]


def operation_fail(operation_id: uuid.UUID | str, *, error: str) -> None:
    """A chunk could not run even after retries: the operation ends ``failed`` with the error."""
    with transaction.atomic():
        op = BulkOperation.objects.select_for_update().defer("user_ids").filter(pk=operation_id).first()
        if op is None or op.status not in (Status.PENDING, Status.RUNNING):
            return
        op.status, op.error, op.finished_at = Status.FAILED, error[:2000], timezone.now()
        op.save(update_fields=["status", "error", "finished_at", *progress.store_counts(op)])
        _log_operation(op, flag=CHANGE, message=f"Bulk operation {op.id} failed: {error[:500]}")


def undo_refusal(op: BulkOperation) -> str:
    if op.kind != Kind.RESET_USAGE:
        return f"Only usage resets can be undone; undo a {op.get_kind_display().lower()} with the opposite operation."
    if op.dry_run:
        return "A dry run changed nothing: there is nothing to undo."
    if op.status == Status.REVERTED:
        return (
            f"Operation {op.id} was already undone at {op.reverted_at:%Y-%m-%d %H:%M UTC}: it cannot be undone twice."
        )
    if op.status not in UNDOABLE:
        return f"Operation {op.id} is {op.status}: only a finished reset (succeeded or partially failed) can be undone."
    return ""


def operation_undo(op: BulkOperation, *, by: User, now: datetime.datetime | None = None) -> BulkOperation:
    """Put a reset's archived values back into the counters that are still on the archived month.

    Values are added back (counter = archived + what was counted since the reset), so usage
    recorded after the reset is kept. A counter that has moved on to a later month is left alone:
    the archived month already reads as zero there, and its archive stays unrestored.
    Raises ``BulkStateError`` when the operation cannot be undone (e.g. undone already).
    """
    now = now or timezone.now()
    with transaction.atomic():
        op = BulkOperation.objects.select_for_update().defer("user_ids").get(pk=op.pk)
        if refusal := undo_refusal(op):
            raise BulkStateError(refusal)
        if connection.vendor == "postgresql":
            restored = reset_sql.undo_restore(op, by_id=by.pk, user_type=adminlog.user_type_id(), now=now)
        else:
            restored = _restore(op, now=now)
            _log_undo(op, by=by, now=now)
        not_restored = MonthlyUsageArchive.objects.filter(bulk_operation=op, restored_at__isnull=True).count()
        op.status, op.reverted_at = Status.REVERTED, now
        op.summary = {**op.summary, "undo": {"users_restored": restored, "users_not_restored": not_restored}}
        op.save(update_fields=["status", "reverted_at", "summary"])
        adminlog.log_operation(
            op,
            by_id=by.pk,
            flag=CHANGE,
            message=(
                f"Bulk operation {op.id} undone: {counters_of(restored)} restored, "
                f"{not_restored} left alone (their counters have moved on to a later month)"
            ),
        )
    return op


def _restore(op: BulkOperation, *, now: datetime.datetime) -> int:
    """Mark the archives whose counter is still on their month restored, and add them back. Returns how many."""
    archives = MonthlyUsageArchive.objects.filter(bulk_operation=op, restored_at__isnull=True)
    counter = MonthlyUsage.objects.filter(user_id=OuterRef("user_id"), period=OuterRef("period"))
    restored = archives.filter(Exists(counter)).update(restored_at=now)
    archive = MonthlyUsageArchive.objects.filter(
        bulk_operation=op, restored_at=now, user_id=OuterRef("user_id"), period=OuterRef("period")
    )
    MonthlyUsage.objects.filter(Exists(archive)).update(
        minutes=F("minutes") + Subquery(archive.values("minutes")[:1]),
        sessions=F("sessions") + Subquery(archive.values("sessions")[:1]),
        transcriptions=F("transcriptions") + Subquery(archive.values("transcriptions")[:1]),
        updated_at=now,
    )
    return restored


def _log_undo(op: BulkOperation, *, by: User, now: datetime.datetime) -> None:
    type_id = adminlog.user_type_id()
    rows = (
        MonthlyUsageArchive.objects.filter(bulk_operation=op, restored_at=now)
        .order_by("id")
        .values_list("user_id", "user__email", "period", "minutes", "sessions", "transcriptions")
    )
    entries = [
        adminlog.entry_row(
            by_id=by.pk,
            type_id=type_id,
            object_id=user_id,
            object_repr=email,
            flag=CHANGE,
            message=(
                f"Undo of bulk operation {op.id}: restored {period:%Y-%m} usage "
                f"({minutes} min, {sessions} sessions, {transcriptions} transcriptions)"
            ),
            at=now,
        )
        for user_id, email, period, minutes, sessions, transcriptions in rows.iterator(chunk_size=2000)
    ]
    sql.insert_rows(LogEntry, adminlog.ENTRY_FIELDS, entries)
