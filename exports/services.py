"""The usage-history export use case: who may export what, for which period, in which format.

``usage_export`` is the one entry point (the API view and the admin action both call it). It
checks permission (a coach exports their own history; staff anyone's), the subject's plan
(``Plan.export_formats``), parses the period in the subject's time zone, renders, and writes an
``ExportRecord`` for every attempt, refused ones included. A refused attempt raises an
``ExportError`` whose message says what to do instead.

Nothing half-written is left behind: PDF and XLSX are rendered into anonymous temporary files
(``tempfile.TemporaryFile``: no name on disk, gone when closed or when the process dies) and a
failure closes them; a streamed CSV is finalised when its stream ends, fails or is closed, and
``stale_exports_fail`` (the exports sweep) fails one whose server process died mid-stream.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import BinaryIO

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from analytics.periods import FIRST_DATE, Period, PeriodError, local_midnight, parse_period
from coaching import rollups
from coaching.models import ExportRecord, Plan, User

from .registry import FORMATS, REGISTRY, ExportJob, formats_allowed
from .rows import header as rows_header
from .rows import history_first_day

logger = logging.getLogger(__name__)

CONTENT_TYPES = {name: f.content_type for name, f in REGISTRY.items()}
DEFAULT_PERIOD = "month"


class ExportError(Exception):
    """An export refused before any file was produced; ``status`` is the HTTP status it maps to."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ExportForbidden(ExportError):
    status = 403


class ExportNotFound(ExportError):
    status = 404


class ExportNoSpace(ExportError):
    """The disk filled up (or a file-size limit was hit) while the file was written: 507, nothing kept."""

    status = 507


# ENOSPC: the file system is full; EFBIG: a file-size limit (RLIMIT_FSIZE); EDQUOT: the user's quota.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def _out_of_space(exc: BaseException) -> OSError | None:
    """The "disk full" error behind ``exc``, if any (libraries may wrap it in an error of their own)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@dataclasses.dataclass
class ExportFile:
    """A produced export: ``content`` is an iterator of bytes (CSV, streamed) or an open file (PDF, XLSX)."""

    record_id: int
    format: str
    content: Iterable[bytes] | BinaryIO
    content_type: str
    filename: str
    ascii_filename: str
    size: int | None  # None while streaming: the size is known when the stream ends


def export_filenames(subject: User, period: Period, fmt: str) -> tuple[str, str]:
    """``usage-history_<name>_<first day>_<last day>.<extension>``: as the user reads it, and an ASCII fallback."""
    ascii_slug = slugify(subject.name) or slugify(subject.email.split("@")[0]) or str(subject.pk)[:8]
    slug = slugify(subject.name, allow_unicode=True) or ascii_slug
    dates = f"{period.first_day.isoformat()}_{period.last_day.isoformat()}"
    extension = REGISTRY[fmt].extension
    return f"usage-history_{slug}_{dates}.{extension}", f"usage-history_{ascii_slug}_{dates}.{extension}"


def export_rejected(
    requester: User, *, fmt: str, error: str, subject: User | None = None, period: Period | None = None
) -> ExportRecord:
    """Record a refused attempt (failed, no rows, no bytes); before the subject is known, as the requester's.

    ``fmt`` and ``error`` may carry the raw request: a NUL byte is recorded as the text ``\\x00``
    (PostgreSQL text cannot hold NUL, and a refusal must not become a 500).
    """
    now = timezone.now()
    return ExportRecord.objects.create(
        requested_by=requester,
        subject=subject or requester,
        format=_nul_escaped(fmt or "")[: ExportRecord._meta.get_field("format").max_length],
        period_start=period.first_day if period else None,
        period_end=period.last_day if period else None,
        status=ExportRecord.Status.FAILED,
        started_at=now,
        finished_at=now,
        error=_nul_escaped(error),
    )


def _nul_escaped(text: str) -> str:
    return text.replace("\x00", "\\x00")


def _refuse(error: ExportError, requester: User, *, fmt: str, subject=None, period=None) -> ExportError:
    export_rejected(requester, fmt=fmt, error=error.message, subject=subject, period=period)
    return error


def export_subject(requester: User, user_id: uuid.UUID | str | None, *, fmt: str = "") -> User:
    """Whose history: the requester's own, or (staff only) the user ``user_id``."""
    if user_id is None or str(user_id) == str(requester.pk):
        return User.objects.select_related("plan").get(pk=requester.pk)
    if not requester.is_staff:
        raise _refuse(
            ExportForbidden("You can export only your own usage history: only staff can export another user's."),
            requester,
            fmt=fmt,
        )
    subject = User.objects.select_related("plan").filter(pk=user_id).first()
    if subject is None:
        raise _refuse(ExportNotFound(f"No user with id {user_id}."), requester, fmt=fmt)
    return subject


def plan_format_message(plan: Plan, fmt: str, *, own: bool) -> str:
    allowed = ", ".join(f.name.upper() for f in formats_allowed(plan)) or "none"
    plans_with = [p.name for p in Plan.objects.filter(is_active=True) if REGISTRY[fmt].allowed(p)]
    whose = "Your" if own else "This user's"
    message = f"{whose} plan, {plan.name} ({plan.code}), does not include {fmt.upper()} exports: it allows {allowed}."
    if plans_with:
        message += f" {fmt.upper()} is included in {', '.join(plans_with)}."
    return message


def usage_export(
    requester: User,
    *,
    fmt: str,
    params: Mapping[str, str],
    user_id: uuid.UUID | str | None = None,
    bom: bool = True,
    headers: str = "labels",
    now: datetime.datetime | None = None,
) -> ExportFile:
    """Export the usage history of ``user_id`` (default: the requester) as ``fmt``.

    ``params`` holds ``from``/``to`` (dates, ``to`` inclusive) or ``period`` (default this
    calendar month), read in the subject's time zone. ``headers``: spreadsheet column headers as
    ``labels`` in the requester's language, or the stable English ``keys`` (for scripts). Raises
    ``ExportError`` (400/403/404) after recording the refusal.
    """
    if fmt not in FORMATS:
        raise _refuse(
            ExportError(f"Unknown format {fmt!r}: use one of {', '.join(FORMATS)}.", field="format"), requester, fmt=fmt
        )
    subject = export_subject(requester, user_id, fmt=fmt)
    export_format = REGISTRY[fmt]
    if not export_format.allowed(subject.plan):
        message = plan_format_message(subject.plan, fmt, own=subject.pk == requester.pk)
        raise _refuse(ExportForbidden(message, field="format"), requester, fmt=fmt, subject=subject)
    try:
        period = parse_period(params, tz=subject.tzinfo, now=now, default=DEFAULT_PERIOD)
    except PeriodError as exc:
        raise _refuse(ExportError(str(exc), field="period"), requester, fmt=fmt, subject=subject) from None
    period = _from_first_record(period, subject, params)
    record = ExportRecord.objects.create(
        requested_by=requester,
        subject=subject,
        format=fmt,
        period_start=period.first_day,
        period_end=period.last_day,
        status=ExportRecord.Status.RUNNING,
        started_at=timezone.now(),
    )
    filename, ascii_filename = export_filenames(subject, period, fmt)
    file = ExportFile(record.pk, fmt, b"", export_format.content_type, filename, ascii_filename, None)
    job = ExportJob(
        subject=subject,
        period=period,
        header=rows_header(headers, language=requester.language),
        bom=bom,
        # The PDF's attached CSV gets the ASCII name: WeasyPrint writes a PDF's legacy /F name as raw UTF-8.
        attachment_name=ascii_filename.removesuffix("." + export_format.extension) + ".csv",
        now=now,
        record_id=record.pk,
        language=requester.language,
    )
    try:
        write = export_format.write_function()
        if export_format.streamed:
            file.content = RecordedStream(write(job), record_id=record.pk)
            return file
        file.content, rows = write(job)
        file.size = file.content.seek(0, 2)
        file.content.seek(0)
    except Exception as exc:
        export_finish(record.pk, rows=0, size=0, error=f"{type(exc).__name__}: {exc}")
        if full := _out_of_space(exc):
            logger.error("Export %s: no space left writing the %s file: %s", record.pk, fmt.upper(), full)
            raise ExportNoSpace(
                f"The server ran out of disk space while writing your {fmt.upper()} file, so nothing was saved. "
                "Please try again later, or export a shorter period."
            ) from exc
        raise
    export_finish(record.pk, rows=rows, size=file.size)
    return file


def _from_first_record(period: Period, subject: User, params: Mapping[str, str]) -> Period:
    """Period ``all`` (or ``to`` without ``from``) starts on the subject's first record's day, not a fixed date."""
    if period.key != "all" and (params.get("from") or not params.get("to")):
        return period
    first = history_first_day(subject, period.tz) or period.last_day
    first = min(max(first, FIRST_DATE), period.last_day)
    return dataclasses.replace(period, start=local_midnight(first, period.tz))


# When the database went away mid-export, how long to keep trying to record the outcome (seconds between tries).
FINISH_RETRY_PAUSES = (0.5, 1.0, 2.0, 4.0)


def export_finish(record_id: int, *, rows: int, size: int, error: str = "") -> None:
    """Mark an export succeeded (no error) or failed, with what it produced."""
    status = ExportRecord.Status.FAILED if error else ExportRecord.Status.SUCCEEDED
    for pause in (*FINISH_RETRY_PAUSES, None):
        try:
            with transaction.atomic():
                before = rollups.ExportState.stored(record_id)
                ExportRecord.objects.filter(pk=record_id).update(
                    status=status, rows=rows, bytes=size, error=error, finished_at=timezone.now()
                )
                rollups.export_changed(ExportRecord.objects.select_related("subject").get(pk=record_id), before)
            break
        except (OperationalError, InterfaceError):
            conn = connections[ExportRecord.objects.db]
            if pause is None or conn.in_atomic_block:
                raise  # still down: the exports sweep fails the record once it is stale
            # The connection died under the export (database restarting): record the outcome on a fresh one.
            conn.close()
            time.sleep(pause)
    if error:
        logger.warning("Export %s failed: %s", record_id, error)


STALE_ERROR = "Interrupted: the export did not finish (server stopped mid-stream)"


def stale_exports_fail(*, older_than: datetime.timedelta | None = None, now: datetime.datetime | None = None) -> int:
    """Mark abandoned exports failed; return how many.

    Abandoned: still ``running`` (or ``pending``) and started (or, never started, created)
    strictly before ``now - older_than`` (default ``EXPORT_STALE_MINUTES``). A stream's record
    is finished when the stream ends or is closed, so one left running this long belonged to a
    server process that was killed mid-download. A download that somehow does finish later
    still records its own outcome over this one.
    """
    now = now or timezone.now()
    cutoff = now - (older_than if older_than is not None else datetime.timedelta(minutes=settings.EXPORT_STALE_MINUTES))
    stale = ExportRecord.objects.filter(
        Q(started_at__lt=cutoff) | Q(started_at__isnull=True, created_at__lt=cutoff),
        status__in=(ExportRecord.Status.RUNNING, ExportRecord.Status.PENDING),
    )
    count = stale.update(status=ExportRecord.Status.FAILED, error=STALE_ERROR, finished_at=now)
    if count:
        logger.warning("Marked %s abandoned export(s) failed (started before %s)", count, cutoff.isoformat())
    return count


class RecordedStream:
    """Wraps a CSV chunk stream (``csv_export``) and finalises its export record when the stream ends.

    Exhausted: succeeded, with the rows and bytes actually produced. An error while producing:
    failed with the error. Closed before the end (the client went away, the server stopped):
    failed, "interrupted". The server calls ``close()`` on every response, so one of the three
    always happens, even for a stream never started.
    """

    def __init__(self, chunks, *, record_id: int) -> None:
        self._chunks = chunks
        self.record_id = record_id
        self.finished = False

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            self._finish()
            raise
        except Exception as exc:
            self._finish(error=f"{type(exc).__name__}: {exc}")
            raise

    def _finish(self, error: str = "") -> None:
        if not self.finished:
            self.finished = True
            export_finish(self.record_id, rows=self._chunks.rows, size=self._chunks.bytes, error=error)

    def close(self) -> None:
        # Stop producing first: on PostgreSQL this ends the COPY, which holds the connection that
        # the record is written through.
        try:
            self._chunks.close()
        finally:
            self._finish(
                error=f"Interrupted: the download stopped after {self._chunks.bytes} bytes "
                f"({self._chunks.rows} rows); the file is incomplete."
            )
