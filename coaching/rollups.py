"""Keep the usage roll-ups (``CoachUsageDay``, ``PlatformUsageBucket``) in step with the records.

Every record counts in the bucket its instant falls in (the rule is ``contributions``). A write
service passes the record's state before and after its change; the difference is added to the
coach's local day, the platform's UTC day and its UTC quarter-hour with one
``INSERT … ON CONFLICT DO UPDATE`` each (PostgreSQL and SQLite alike), in the caller's
transaction, so a roll-up never shows a write that rolled back. Processing peaks are not
additive: the buckets an interval touches are recounted from the intervals around them.
``coaching.rollups_build`` rebuilds and checks whole ranges from the raw rows with the same rule.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.db import connection

from .models import CoachingSession, CoachUsageDay, ExportRecord, PlatformUsageBucket, UsageLog, User
from .models.rollups import STATUS_FIELDS
from .timezones import local_midnight

UTC = datetime.UTC
QUARTER = datetime.timedelta(minutes=15)
DAY = datetime.timedelta(days=1)
FINISHED = {CoachingSession.Status.COMPLETED: "completed", CoachingSession.Status.FAILED: "failed"}
EXPORT_FIELDS = {fmt: f"exports_{fmt}" for fmt in ExportRecord.Format.values}

Deltas = dict[str, int | Decimal]


def quarter_floor(at: datetime.datetime) -> datetime.datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


def day_floor(at: datetime.datetime) -> datetime.datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# --- What each record adds, and where -------------------------------------------------------


def log_contributions(log: UsageLog) -> list[tuple[datetime.datetime, Deltas]]:
    """A ledger row at its ``created_at``: the same rule as ``analytics.ledger``."""
    return [
        (
            log.created_at,
            {
                "minutes": log.minutes,
                "billable_minutes": log.minutes if log.kind in UsageLog.QUOTA_KINDS else Decimal("0"),
                "sessions": int(log.kind == UsageLog.Kind.ORIGINAL),
                "transcriptions": int(log.kind != UsageLog.Kind.ADJUSTMENT),
                "provider_cost_usd": log.provider_cost_usd,
            },
        )
    ]


@dataclasses.dataclass(frozen=True)
class SessionState:
    """What of a session the roll-ups count (read before and after each write)."""

    created_at: datetime.datetime
    status: str
    audio_size_bytes: int
    deleted_at: datetime.datetime | None
    started: datetime.datetime | None
    finished: datetime.datetime | None

    FIELDS = (
        "created_at",
        "status",
        "audio_size_bytes",
        "deleted_at",
        "processing_started_at",
        "processing_finished_at",
    )

    @classmethod
    def of(cls, session: CoachingSession) -> SessionState:
        return cls(*(getattr(session, name) for name in cls.FIELDS))

    @classmethod
    def stored(cls, session_id: int) -> SessionState:
        """The row as committed, locked until the caller's transaction ends."""
        return cls(*CoachingSession.objects.select_for_update().values_list(*cls.FIELDS).get(pk=session_id))

    def contributions(self) -> list[tuple[datetime.datetime, Deltas]]:
        """Uploaded (by status now) and its audio at upload; the audio gone at deletion; a finish by status.

        A deletion counts at ``max(created, deleted)``: a balance never goes below what was uploaded.
        """
        out: list[tuple[datetime.datetime, Deltas]] = [
            (self.created_at, {STATUS_FIELDS[self.status]: 1, "storage_delta_bytes": self.audio_size_bytes})
        ]
        if self.deleted_at is not None:
            out.append((max(self.created_at, self.deleted_at), {"storage_delta_bytes": -self.audio_size_bytes}))
        if self.finished is not None and self.status in FINISHED:
            out.append((self.finished, {FINISHED[self.status]: 1}))
        return out

    def interval(self) -> tuple[datetime.datetime, datetime.datetime] | None:
        """The finished processing interval, if any (the peaks count only finished ones)."""
        if self.started is None or self.finished is None or self.finished <= self.started:
            return None
        return self.started, self.finished


@dataclasses.dataclass(frozen=True)
class ExportState:
    created_at: datetime.datetime
    status: str
    format: str
    file_path: str
    bytes: int
    file_deleted_at: datetime.datetime | None

    FIELDS = ("created_at", "status", "format", "file_path", "bytes", "file_deleted_at")

    @classmethod
    def of(cls, record: ExportRecord) -> ExportState:
        return cls(*(getattr(record, name) for name in cls.FIELDS))

    @classmethod
    def stored(cls, record_id: int) -> ExportState:
        return cls(*ExportRecord.objects.select_for_update().values_list(*cls.FIELDS).get(pk=record_id))

    def contributions(self) -> list[tuple[datetime.datetime, Deltas]]:
        """A succeeded export by format at creation; a kept file's bytes from creation to its deletion."""
        out: list[tuple[datetime.datetime, Deltas]] = []
        if self.status == ExportRecord.Status.SUCCEEDED and self.format in EXPORT_FIELDS:
            out.append((self.created_at, {EXPORT_FIELDS[self.format]: 1}))
        if self.file_path:
            out.append((self.created_at, {"storage_delta_bytes": self.bytes}))
            if self.file_deleted_at is not None:
                out.append((max(self.created_at, self.file_deleted_at), {"storage_delta_bytes": -self.bytes}))
        return out


# --- The hooks the write services call -------------------------------------------------------


def usage_logged(log: UsageLog, user: User) -> None:
    """A ledger row was appended (rows are never changed afterwards)."""
    _apply(user, log_contributions(log), sign=1)


def session_changed(session: CoachingSession, before: SessionState | None, coach: User | None = None) -> None:
    """``session`` was saved; ``before`` is its stored state before the write (None: just created)."""
    coach = coach or session.coach
    after = SessionState.of(session)
    if before is not None:
        _apply(coach, before.contributions(), sign=-1)
    _apply(coach, after.contributions(), sign=1)
    changed = {before.interval() if before else None, after.interval()} - {None}
    if before is None or before.interval() != after.interval():
        refresh_peaks(coach, changed)


def export_changed(record: ExportRecord, before: ExportState | None, subject: User | None = None) -> None:
    subject = subject or record.subject
    if before is not None:
        _apply(subject, before.contributions(), sign=-1)
    _apply(subject, ExportState.of(record).contributions(), sign=1)


# --- Writing the buckets ----------------------------------------------------------------------


def coach_zone(user: User) -> zoneinfo.ZoneInfo:
    return user.tzinfo


def _apply(user: User, contributions: Iterable[tuple[datetime.datetime, Deltas]], *, sign: int) -> None:
    tz = coach_zone(user)
    coach: dict[datetime.date, Deltas] = defaultdict(dict)
    platform: dict[tuple[str, datetime.datetime], Deltas] = defaultdict(dict)
    for at, deltas in contributions:
        keys = (
            (coach, at.astimezone(tz).date()),
            (platform, (PlatformUsageBucket.Grain.DAY, day_floor(at))),
            (platform, (PlatformUsageBucket.Grain.QUARTER, quarter_floor(at))),
        )
        for name, value in deltas.items():
            for table, key in keys:
                table[key][name] = table[key].get(name, 0) + sign * value
    statements = [_coach_sql(user.pk, day, str(tz), deltas) for day, deltas in coach.items()]
    statements += [_platform_sql(grain, start, deltas) for (grain, start), deltas in platform.items()]
    _execute([statement for statement in statements if statement], prepare=True)


def _prep(model, name: str, value):
    return model._meta.get_field(name).get_db_prep_value(value, connection)


def _upsert_sql(model, keys: dict, deltas: Deltas, conflict: tuple[str, ...], *, add: bool = True):
    """``(sql, params)`` of one ``INSERT … ON CONFLICT DO UPDATE`` adding (or, ``add=False``, setting)
    ``deltas`` on the row with ``keys``; None when there is nothing to add."""
    if add:
        deltas = {name: value for name, value in deltas.items() if value}
        if not deltas:
            return None
    columns = {**keys, **deltas}
    sql = _upsert_text(model, tuple(keys), tuple(deltas), conflict, add, connection.vendor)
    return sql, [_prep(model, name, value) for name, value in columns.items()]


@functools.lru_cache(maxsize=512)
def _upsert_text(model, keys: tuple, deltas: tuple, conflict: tuple, add: bool, vendor: str) -> str:
    """The statement's text: the same for every write of the same columns (so PostgreSQL can keep it
    prepared, and Python builds it once)."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    quoted = [quote(model._meta.get_field(name).column) for name in (*keys, *deltas)]
    if add:
        sets = ", ".join(f"{q} = {table}.{q} + excluded.{q}" for q in quoted[len(keys) :])
    else:
        sets = ", ".join(f"{q} = excluded.{q}" for q in quoted[len(keys) :])
    target = ", ".join(quote(model._meta.get_field(name).column) for name in conflict)
    return (
        f"INSERT INTO {table} ({', '.join(quoted)}) VALUES ({', '.join(['%s'] * len(quoted))}) "
        f"ON CONFLICT ({target}) DO UPDATE SET {sets}"
    )


def _execute(statements: list[tuple[str, list]], *, prepare: bool = False) -> None:
    """Run the upserts: on PostgreSQL in one round trip (all but the last as data-modifying CTEs).

    ``prepare``: as a statement the server keeps prepared. Planning the hook's upserts anew cost about
    as much as running them, and a record's hook sends the same few texts over and over."""
    if not statements:
        return
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)
        return
    *first, (last_sql, last_params) = statements
    ctes = ", ".join(f"u{i} AS ({sql})" for i, (sql, _) in enumerate(first))
    sql = f"WITH {ctes} {last_sql}" if first else last_sql
    params = [p for _, params in first for p in params] + last_params
    with _prepared_cursor() if prepare and settings.DB_PREPARED_ROLLUPS else connection.cursor() as cursor:
        cursor.execute(sql, params)


def _prepared_cursor():
    """A cursor of Django's connection (its execute wrappers and query log apply) whose statements the
    server keeps prepared. Django's own cursors bind on the client and never prepare (pooler safety);
    these statements' texts are few, and psycopg keeps at most ``prepared_max`` of them."""
    connection.ensure_connection()
    if connection.connection.prepare_threshold is None:  # Django's default: psycopg prepares nothing
        connection.connection.prepare_threshold = 1 << 30  # only what asks (``prepare=True``), at once
    raw = _prepared_cursor_class()(connection.connection)
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)


@functools.cache
def _prepared_cursor_class():
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparedCursor(ServerBindingCursor):
        def execute(self, query, params=None, *, prepare=None, binary=None):
            return super().execute(query, params, prepare=True, binary=binary)

    return PreparedCursor


def _coach_sql(user_id, day: datetime.date, tz: str, deltas: Deltas, *, add: bool = True):
    return _upsert_sql(CoachUsageDay, {"user": user_id, "day": day, "tz": tz}, deltas, ("user", "day"), add=add)


def _platform_sql(grain: str, start: datetime.datetime, deltas: Deltas, *, add: bool = True):
    keys = {"grain": grain, "start": start, "day": start.date()}
    return _upsert_sql(PlatformUsageBucket, keys, deltas, ("grain", "start"), add=add)


def _upsert_coach(user_id, day: datetime.date, tz: str, deltas: Deltas, *, add: bool = True) -> None:
    _execute([statement for statement in [_coach_sql(user_id, day, tz, deltas, add=add)] if statement])


def _upsert_platform(grain: str, start: datetime.datetime, deltas: Deltas, *, add: bool = True) -> None:
    _execute([statement for statement in [_platform_sql(grain, start, deltas, add=add)] if statement])


# --- Processing peaks -------------------------------------------------------------------------


def bucket_peaks(intervals: Iterable[tuple[datetime.datetime, datetime.datetime]], edges: list) -> list[int]:
    """The most intervals ``[s, f)`` open at one instant of each bucket ``[edges[i], edges[i+1])``.

    Intervals that merely touch (one ends as the next starts) do not overlap: the count at an
    instant is taken after every event at that instant.
    """
    net: dict[datetime.datetime, int] = defaultdict(int)
    for s, f in intervals:
        if f > s:
            net[s] += 1
            net[f] -= 1
    times = sorted(net)
    i, running, peaks = 0, 0, []
    for a, b in zip(edges, edges[1:], strict=False):
        while i < len(times) and times[i] <= a:
            running += net[times[i]]
            i += 1
        peak = running
        while i < len(times) and times[i] < b:
            running += net[times[i]]
            peak = max(peak, running)
            i += 1
        peaks.append(peak)
    return peaks


def finished_intervals(sessions, start: datetime.datetime, end: datetime.datetime):
    """``(started, finished)`` of the finished intervals of ``sessions`` that meet ``[start, end)``."""
    return (
        sessions.filter(
            processing_finished_at__gt=start,
            processing_started_at__lt=end,
            processing_started_at__isnull=False,
        )
        .order_by()
        .values_list("processing_started_at", "processing_finished_at")
    )


def _day_edges(first: datetime.date, last: datetime.date, tz) -> list[datetime.datetime]:
    return [local_midnight(first + datetime.timedelta(days=i), tz) for i in range((last - first).days + 2)]


def _quarter_edges(start: datetime.datetime, end: datetime.datetime) -> list[datetime.datetime]:
    edges, at = [], start
    while at <= end:
        edges.append(at)
        at += QUARTER
    return edges


def refresh_peaks(coach: User, intervals: Iterable[tuple[datetime.datetime, datetime.datetime]]) -> None:
    """Recount the peaks of every bucket the given intervals touch: the coach's days, the platform's quarters."""
    intervals = list(intervals)
    if not intervals:
        return
    tz = coach_zone(coach)
    start, end = min(s for s, _ in intervals), max(f for _, f in intervals)
    # The coach's local days.
    first, last = start.astimezone(tz).date(), (end - datetime.timedelta(microseconds=1)).astimezone(tz).date()
    edges = _day_edges(first, last, tz)
    mine = CoachingSession.objects.filter(coach=coach)
    peaks = bucket_peaks(finished_intervals(mine, edges[0], edges[-1]), edges)
    for a, peak in zip(edges, peaks, strict=False):
        if _touched(a, a + DAY, intervals) or peak:
            _upsert_coach(coach.pk, a.date(), str(tz), {"processing_peak": peak}, add=False)
    # The platform's quarters, then the UTC days that hold them.
    edges = _quarter_edges(quarter_floor(start), quarter_floor(end - datetime.timedelta(microseconds=1)) + QUARTER)
    peaks = bucket_peaks(finished_intervals(CoachingSession.objects.all(), edges[0], edges[-1]), edges)
    days = set()
    for a, peak in zip(edges, peaks, strict=False):
        if _touched(a, a + QUARTER, intervals):
            _upsert_platform(PlatformUsageBucket.Grain.QUARTER, a, {"processing_peak": peak}, add=False)
            days.add(day_floor(a))
    for day in days:
        peak = max(
            PlatformUsageBucket.objects.filter(grain=PlatformUsageBucket.Grain.QUARTER, day=day.date()).values_list(
                "processing_peak", flat=True
            ),
            default=0,
        )
        _upsert_platform(PlatformUsageBucket.Grain.DAY, day, {"processing_peak": peak}, add=False)


def _touched(a, b, intervals) -> bool:
    return any(s < b and f > a for s, f in intervals)
