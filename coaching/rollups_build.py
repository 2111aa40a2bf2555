"""Recompute the usage roll-ups of a range of days from the raw rows: rebuild them, or check them.

The same rule as the incremental hooks (``coaching.rollups``), in SQL ``GROUP BY``s: a coach's
rows per local day (one pass per time zone the coaches use), the platform's per UTC
quarter-hour (its days are the sums of their quarters). A range is done in chunks of days,
each replaced in one transaction (delete the chunk's buckets, insert the recomputed ones), so a
rebuild killed at any point leaves every chunk either old or new, and running it again gives
the same buckets as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import ExtractMinute, TruncDate, TruncHour
from django.utils import timezone

from .models import ApiUsage, CoachingSession, CoachUsageDay, ExportRecord, PlatformUsageBucket, UsageLog, User
from .models.rollups import ADDITIVE_FIELDS, STATUS_FIELDS
from .rollups import (
    DAY,
    EXPORT_FIELDS,
    FINISHED,
    QUARTER,
    UTC,
    _day_edges,
    _quarter_edges,
    bucket_peaks,
    local_midnight,
)

GRAIN = PlatformUsageBucket.Grain
CoachKey = tuple  # (user_id, day)
PlatformKey = tuple  # (grain, start)


@dataclasses.dataclass
class Buckets:
    """Recomputed buckets of a range: ``{key: {field: value}}``, zero fields left out."""

    coach: dict = dataclasses.field(default_factory=lambda: defaultdict(dict))
    coach_tz: dict = dataclasses.field(default_factory=dict)
    platform: dict = dataclasses.field(default_factory=lambda: defaultdict(dict))

    def add(self, table: dict, key, deltas: dict) -> None:
        for name, value in deltas.items():
            if value:
                table[key][name] = table[key].get(name, 0) + value


def zones() -> dict[str, list[str]]:
    """The time zones coaches' days are cut in, each with the ``User.timezone`` values that mean it."""
    found: dict[str, list[str]] = defaultdict(list)
    for name in User.objects.order_by().values_list("timezone", flat=True).distinct():
        found[str(User(timezone=name).tzinfo)].append(name)
    return found


def longest_processing() -> datetime.timedelta:
    """The longest finished processing interval: bounds the search for intervals that meet a window."""
    value = (
        CoachingSession.objects.filter(processing_started_at__isnull=False, processing_finished_at__isnull=False)
        .annotate(length=ExpressionWrapper(F("processing_finished_at") - F("processing_started_at"), DurationField()))
        .aggregate(m=Max("length"))["m"]
    )
    return max(value or datetime.timedelta(0), datetime.timedelta(0))


def sources(owner_q: Callable[[str], Q]) -> list[tuple[QuerySet, str, str, tuple, dict, Callable]]:
    """Every raw source: (rows, owner field, time field, extra group fields, aggregates, row → deltas)."""
    sessions, exports = CoachingSession.objects.order_by(), ExportRecord.objects.order_by()
    return [
        (
            UsageLog.objects.order_by().filter(owner_q("user")),
            "user_id",
            "created_at",
            (),
            {
                "m": Sum("minutes"),
                "bm": Sum("minutes", filter=Q(kind__in=UsageLog.QUOTA_KINDS)),
                "s": Count("id", filter=Q(kind=UsageLog.Kind.ORIGINAL)),
                "t": Count("id", filter=~Q(kind=UsageLog.Kind.ADJUSTMENT)),
                "c": Sum("provider_cost_usd"),
            },
            lambda row: {
                "minutes": row["m"] or 0,
                "billable_minutes": row["bm"] or 0,
                "sessions": row["s"],
                "transcriptions": row["t"],
                "provider_cost_usd": row["c"] or 0,
            },
        ),
        (
            sessions.filter(owner_q("coach")),
            "coach_id",
            "created_at",
            ("status",),
            {"n": Count("id"), "size": Sum("audio_size_bytes")},
            lambda row: {STATUS_FIELDS[row["status"]]: row["n"], "storage_delta_bytes": row["size"] or 0},
        ),
        (  # audio deleted (normally after upload: counted when deleted) ...
            sessions.filter(owner_q("coach"), deleted_at__isnull=False, deleted_at__gte=F("created_at")),
            "coach_id",
            "deleted_at",
            (),
            {"size": Sum("audio_size_bytes")},
            lambda row: {"storage_delta_bytes": -(row["size"] or 0)},
        ),
        (  # ... or, stamped before its upload, at the upload: never below zero
            sessions.filter(owner_q("coach"), deleted_at__isnull=False, deleted_at__lt=F("created_at")),
            "coach_id",
            "created_at",
            (),
            {"size": Sum("audio_size_bytes")},
            lambda row: {"storage_delta_bytes": -(row["size"] or 0)},
        ),
        (
            sessions.filter(owner_q("coach"), status__in=list(FINISHED)),
            "coach_id",
            "processing_finished_at",
            ("status",),
            {"n": Count("id")},
            lambda row: {FINISHED[row["status"]]: row["n"]},
        ),
        (
            exports.filter(owner_q("subject"), status=ExportRecord.Status.SUCCEEDED),
            "subject_id",
            "created_at",
            ("format",),
            {"n": Count("id")},
            lambda row: {EXPORT_FIELDS[row["format"]]: row["n"]} if row["format"] in EXPORT_FIELDS else {},
        ),
        (
            exports.filter(owner_q("subject")).exclude(file_path=""),
            "subject_id",
            "created_at",
            (),
            {"size": Sum("bytes")},
            lambda row: {"storage_delta_bytes": row["size"] or 0},
        ),
        (
            exports.filter(owner_q("subject"), file_deleted_at__isnull=False, file_deleted_at__gte=F("created_at"))
            .exclude(file_path=""),
            "subject_id",
            "file_deleted_at",
            (),
            {"size": Sum("bytes")},
            lambda row: {"storage_delta_bytes": -(row["size"] or 0)},
        ),
        (
            exports.filter(owner_q("subject"), file_deleted_at__isnull=False, file_deleted_at__lt=F("created_at"))
            .exclude(file_path=""),
            "subject_id",
            "created_at",
            (),
            {"size": Sum("bytes")},
            lambda row: {"storage_delta_bytes": -(row["size"] or 0)},
        ),
    ]


def compute(
    first: datetime.date,
    last: datetime.date,
    *,
    longest: datetime.timedelta | None = None,
    coaches: bool = True,
    in_database: bool = False,
) -> Buckets:
    """The buckets of the local days ``first``…``last`` (coaches) and UTC days (platform), from raw rows."""
    longest = longest_processing() if longest is None else longest
    out = Buckets()
    for tz_name, names in (zones() if coaches else {}).items():
        tz = User(timezone=tz_name).tzinfo
        start, end = local_midnight(first, tz), local_midnight(last + DAY, tz)
        for rows, owner, field, extra, aggregates, deltas in sources(_in_zone(names)):
            grouped = (
                rows.filter(**{f"{field}__gte": start, f"{field}__lt": end})
                .annotate(_day=TruncDate(field, tzinfo=tz))
                .values(owner, "_day", *extra)
                .annotate(**aggregates)
            )
            for row in grouped:
                key = (row[owner], row["_day"])
                out.add(out.coach, key, deltas(row))
                out.coach_tz[key] = tz_name
        _coach_peaks(out, tz_name, names, first, last, longest)
    _platform(out, first, last, longest, in_database=in_database)
    return out


def _in_zone(names: list[str]) -> Callable[[str], Q]:
    return lambda field: Q(**{f"{field}__timezone__in": names})


def _coach_peaks(out: Buckets, tz_name: str, names: list[str], first, last, longest) -> None:
    tz = User(timezone=tz_name).tzinfo
    edges = _day_edges(first, last, tz)
    by_coach: dict = defaultdict(list)
    intervals = _meeting(CoachingSession.objects.filter(coach__timezone__in=names), edges[0], edges[-1], longest)
    for coach_id, s, f in intervals.values_list("coach_id", "processing_started_at", "processing_finished_at"):
        by_coach[coach_id].append((s, f))
    for coach_id, spans in by_coach.items():
        for a, peak in zip(edges, bucket_peaks(spans, edges), strict=False):
            if peak:
                key = (coach_id, a.date())
                out.coach[key]["processing_peak"] = peak
                out.coach_tz[key] = tz_name


def _meeting(sessions: QuerySet, start, end, longest) -> QuerySet:
    """Finished intervals meeting ``[start, end)``: finished in ``(start, end + longest]`` (an index
    range), started before ``end``."""
    return sessions.order_by().filter(
        processing_finished_at__gt=start,
        processing_finished_at__lte=end + longest,
        processing_started_at__lt=end,
        processing_started_at__isnull=False,
    )


def _platform(out: Buckets, first, last, longest, *, in_database: bool = False) -> None:
    start, end = local_midnight(first, UTC), local_midnight(last + DAY, UTC)
    if in_database:
        platform_sql(first, last, longest, out)
    else:
        _platform_python(out, start, end, longest)
    _platform_api(out, first, last)


def _platform_python(out: Buckets, start, end, longest) -> None:
    for rows, _owner, field, extra, aggregates, deltas in sources(lambda f: Q()):
        grouped = (
            rows.filter(**{f"{field}__gte": start, f"{field}__lt": end})
            .annotate(_hour=TruncHour(field, tzinfo=UTC), _q=ExtractMinute(field, tzinfo=UTC) / 15)
            .values("_hour", "_q", *extra)
            .annotate(**aggregates)
        )
        for row in grouped:
            quarter = row["_hour"].astimezone(UTC) + row["_q"] * QUARTER
            values = deltas(row)
            out.add(out.platform, (GRAIN.QUARTER, quarter), values)
            out.add(out.platform, (GRAIN.DAY, quarter.replace(hour=0, minute=0)), values)
    edges = _quarter_edges(start, end)
    spans = _meeting(CoachingSession.objects.all(), start, end, longest).values_list(
        "processing_started_at", "processing_finished_at"
    )
    for a, peak in zip(edges, bucket_peaks(spans, edges), strict=False):
        if peak:
            out.platform[(GRAIN.QUARTER, a)]["processing_peak"] = peak
            day = out.platform[(GRAIN.DAY, a.replace(hour=0, minute=0))]
            day["processing_peak"] = max(day.get("processing_peak", 0), peak)


def _platform_api(out: Buckets, first, last) -> None:
    sealed_before = timezone.now().astimezone(UTC).date() - DAY
    api = (
        ApiUsage.objects.order_by()
        .filter(day__gte=first, day__lte=min(last, sealed_before - DAY))
        .values("day")
        .annotate(n=Sum("count"))
    )
    for row in api:
        key = (GRAIN.DAY, local_midnight(row["day"], UTC))
        out.platform[key]["api_calls"] = row["n"]
    for day in _days(first, min(last, sealed_before - DAY)):
        out.platform[(GRAIN.DAY, local_midnight(day, UTC))]["api_sealed"] = True


def _days(first: datetime.date, last: datetime.date) -> Iterator[datetime.date]:
    day = first
    while day <= last:
        yield day
        day += DAY


def _coach_row(key, fields: dict, tz: str) -> CoachUsageDay:
    return CoachUsageDay(user_id=key[0], day=key[1], tz=tz, **fields)


def _platform_row(key, fields: dict) -> PlatformUsageBucket:
    return PlatformUsageBucket(grain=key[0], start=key[1], day=key[1].date(), **fields)


def replace(first: datetime.date, last: datetime.date, *, longest: datetime.timedelta | None = None) -> int:
    """Recompute the days ``first``…``last`` and swap them in, in one transaction. Returns the rows written.

    On PostgreSQL the coaches' days (as many as the coach-days with activity: millions at scale)
    are computed and inserted by the database itself (``coach_days_sql``), never fetched.
    """
    longest = longest_processing() if longest is None else longest
    in_database = connection.vendor == "postgresql"
    with transaction.atomic():
        if in_database:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL work_mem = '256MB'")  # a chunk's groups sorted in memory
                cursor.execute("SET LOCAL jit = off")  # compiling these long statements costs more than it saves
        buckets = compute(first, last, longest=longest, coaches=not in_database, in_database=in_database)
        CoachUsageDay.objects.filter(day__gte=first, day__lte=last).delete()
        PlatformUsageBucket.objects.filter(day__gte=first, day__lte=last).delete()
        coach = [_coach_row(key, fields, buckets.coach_tz[key]) for key, fields in buckets.coach.items()]
        platform = [_platform_row(key, fields) for key, fields in buckets.platform.items()]
        CoachUsageDay.objects.bulk_create(coach, batch_size=5000)
        PlatformUsageBucket.objects.bulk_create(platform, batch_size=5000)
        written = len(coach) + len(platform)
        if in_database:
            written += coach_days_sql(first, last, longest)
    return written


# The coaches' days on PostgreSQL: every source as rows of (coach, instant, field values), each
# instant's local date in the coach's zone, summed per coach and day; then the peaks, from every
# finished interval cut at the coach's local midnights (a piece per day it meets).
_SOURCES_SQL = [
    (
        "coaching_usagelog r",
        "r.user_id",
        "r.created_at",
        "TRUE",
        {
            "minutes": "r.minutes",
            "billable_minutes": "CASE WHEN r.kind IN ('original', 'retry_success') THEN r.minutes ELSE 0 END",
            "sessions": "(r.kind = 'original')::int",
            "transcriptions": "(r.kind <> 'adjustment')::int",
            "provider_cost_usd": "r.provider_cost_usd",
        },
    ),
    (
        "coaching_coachingsession r",
        "r.coach_id",
        "r.created_at",
        "TRUE",
        {
            **{name: f"(r.status = '{status}')::int" for status, name in STATUS_FIELDS.items()},
            "storage_delta_bytes": "r.audio_size_bytes",
        },
    ),
    (
        "coaching_coachingsession r",
        "r.coach_id",
        "GREATEST(r.created_at, r.deleted_at)",
        "r.deleted_at IS NOT NULL",
        {"storage_delta_bytes": "-r.audio_size_bytes"},
    ),
    (
        "coaching_coachingsession r",
        "r.coach_id",
        "r.processing_finished_at",
        "r.status IN ('completed', 'failed')",
        {"completed": "(r.status = 'completed')::int", "failed": "(r.status = 'failed')::int"},
    ),
    (
        "coaching_exportrecord r",
        "r.subject_id",
        "r.created_at",
        "TRUE",
        {
            **{
                name: f"(r.status = 'succeeded' AND r.format = '{fmt}')::int"
                for fmt, name in EXPORT_FIELDS.items()
            },
            "storage_delta_bytes": "CASE WHEN r.file_path <> '' THEN r.bytes ELSE 0 END",
        },
    ),
    (
        "coaching_exportrecord r",
        "r.subject_id",
        "GREATEST(r.created_at, r.file_deleted_at)",
        "r.file_deleted_at IS NOT NULL AND r.file_path <> ''",
        {"storage_delta_bytes": "-r.bytes"},
    ),
]
_COLUMNS = [name for name in ADDITIVE_FIELDS]


def _events_sql(low: datetime.datetime, high: datetime.datetime, *, owner: bool) -> tuple[str, list]:
    """Every source's rows as events ``(uid, at, field values…)`` whose instant may fall in ``[low, high)``:
    index-friendly bounds on the instant's own column(s); the caller tests the instant exactly."""
    branches, params = [], []
    for table, who, instant, condition, values in _SOURCES_SQL:
        bounds = " OR ".join(
            f"({column} >= %s AND {column} < %s)" for column in re.findall(r"r\.\w+_at", instant)
        )
        branches.append(
            f"SELECT {who + ' AS uid, ' if owner else ''}{instant} AS at, "
            + ", ".join(f"{values.get(name, '0')} AS {name}" for name in _COLUMNS)
            + f" FROM {table} WHERE {condition} AND ({bounds})"
        )
        params += [low, high] * bounds.count("%s AND")
    return " UNION ALL ".join(branches), params


def platform_sql(first: datetime.date, last: datetime.date, longest: datetime.timedelta, out: Buckets) -> None:
    """The platform's quarter-hours of the UTC days ``first``…``last`` (PostgreSQL), summed and swept in
    the database: the same rule as ``_platform``'s Python, a few thousand rows back instead of every
    interval. Day buckets are their quarters' sums (and the largest of their peaks)."""
    start, end = local_midnight(first, UTC), local_midnight(last + DAY, UTC)
    events, params = _events_sql(start, end, owner=False)
    sums = ", ".join(f"SUM({name})" for name in _COLUMNS)
    quarters = f"""
        SELECT date_bin('15 minutes', at, TIMESTAMPTZ '2000-01-01 00:00+00') AS q, {sums}
        FROM ({events}) ev WHERE at >= %s AND at < %s GROUP BY 1
    """
    peaks = """
        WITH iv AS (
            SELECT processing_started_at AS st, processing_finished_at AS fin FROM coaching_coachingsession
            WHERE processing_finished_at > %s AND processing_finished_at <= %s
              AND processing_started_at < %s AND processing_finished_at > processing_started_at
        ),
        pieces AS (
            SELECT q, GREATEST(st, q) AS ps, LEAST(fin, q + interval '15 minutes') AS pf
            FROM iv, generate_series(date_bin('15 minutes', st, TIMESTAMPTZ '2000-01-01 00:00+00'),
                                     date_bin('15 minutes', fin - interval '1 microsecond',
                                              TIMESTAMPTZ '2000-01-01 00:00+00'),
                                     interval '15 minutes') AS q
        ),
        net AS (
            SELECT q, t, SUM(delta) AS delta FROM (
                SELECT q, ps AS t, 1 AS delta FROM pieces WHERE pf > ps
                UNION ALL SELECT q, pf AS t, -1 AS delta FROM pieces WHERE pf > ps
            ) e GROUP BY q, t
        ),
        running AS (SELECT q, SUM(delta) OVER (PARTITION BY q ORDER BY t) AS open FROM net)
        SELECT q, MAX(open) FROM running WHERE q >= %s AND q < %s GROUP BY q HAVING MAX(open) > 0
    """
    with connection.cursor() as cursor:
        cursor.execute(quarters, [*params, start, end])
        for row in cursor.fetchall():
            quarter = row[0].astimezone(UTC)
            values = {
                name: (value if name in DECIMAL_FIELDS else int(value))
                for name, value in zip(_COLUMNS, row[1:], strict=True)
            }
            out.add(out.platform, (GRAIN.QUARTER, quarter), values)
            out.add(out.platform, (GRAIN.DAY, quarter.replace(hour=0, minute=0)), values)
        cursor.execute(peaks, [start, end + longest, end, start, end])
        for q, peak in cursor.fetchall():
            quarter = q.astimezone(UTC)
            out.platform[(GRAIN.QUARTER, quarter)]["processing_peak"] = peak
            day = out.platform[(GRAIN.DAY, quarter.replace(hour=0, minute=0))]
            day["processing_peak"] = max(day.get("processing_peak", 0), peak)


DECIMAL_FIELDS = ("minutes", "billable_minutes", "provider_cost_usd")


def coach_days_sql(first: datetime.date, last: datetime.date, longest: datetime.timedelta) -> int:
    """Insert the coaches' days ``first``…``last`` (PostgreSQL), computed in the database. Returns rows."""
    names = zones()
    if not names:
        return 0
    zone_rows = ", ".join(["(%s, %s)"] * sum(len(v) for v in names.values()))
    zone_params = [value for zone, found in names.items() for name in found for value in (name, zone)]
    low = local_midnight(first, UTC) - datetime.timedelta(days=2)  # every zone's local day lies in here
    high = local_midnight(last + DAY, UTC) + datetime.timedelta(days=2)
    events, params = _events_sql(low, high, owner=True)
    columns = ", ".join(_COLUMNS)
    sums = ", ".join(f"SUM({name})" for name in _COLUMNS)
    # The coaches (and the zone their days are cut in) are joined once, over every source's events; the
    # day's processing peak comes in as one more row per coach-day, so each day row is written once.
    # A peak is reached as some interval starts: the most pieces open then (started at or before it,
    # finishing after it). Nearly every coach-day holds one piece (peak 1): only the others compare.
    sql = f"""
        WITH z(name, zone) AS (VALUES {zone_rows}),
        pieces AS (
            SELECT uid, zone, d::date AS day,
                   GREATEST(st, d::timestamp AT TIME ZONE zone) AS ps,
                   LEAST(fin, (d + interval '1 day')::timestamp AT TIME ZONE zone) AS pf
            FROM (
                SELECT s.coach_id AS uid, z.zone, s.processing_started_at AS st, s.processing_finished_at AS fin
                FROM coaching_coachingsession s JOIN coaching_user u ON u.id = s.coach_id
                JOIN z ON z.name = u.timezone
                WHERE s.processing_finished_at > %s AND s.processing_finished_at <= %s
                  AND s.processing_started_at < %s AND s.processing_finished_at > s.processing_started_at
            ) iv,
            generate_series((st AT TIME ZONE zone)::date::timestamp,
                            ((fin - interval '1 microsecond') AT TIME ZONE zone)::date::timestamp,
                            interval '1 day') AS d
        ),
        grouped AS (
            SELECT uid, zone, day, count(*) AS n, array_agg(ps) AS starts, array_agg(pf) AS ends
            FROM pieces WHERE pf > ps AND day >= %s AND day <= %s GROUP BY uid, zone, day
        ),
        peak AS (
            SELECT uid, zone, day, CASE WHEN n = 1 THEN 1 ELSE (
                SELECT max((SELECT count(*) FROM unnest(starts, ends) AS o(s, f) WHERE o.s <= a.s AND o.f > a.s))
                FROM unnest(starts) AS a(s)
            ) END AS processing_peak FROM grouped
        )
        INSERT INTO coaching_coachusageday (user_id, day, tz, {columns}, processing_peak)
        SELECT uid, day, zone, {sums}, MAX(processing_peak) FROM (
            SELECT local.*, 0 AS processing_peak FROM (
                SELECT ev.*, z.zone, (ev.at AT TIME ZONE z.zone)::date AS day
                FROM ({events}) ev JOIN coaching_user u ON u.id = ev.uid JOIN z ON z.name = u.timezone
            ) local
            WHERE day >= %s AND day <= %s
            UNION ALL
            SELECT uid, NULL, {", ".join("0" for _ in _COLUMNS)}, zone, day, processing_peak FROM peak
        ) rows
        GROUP BY uid, day, zone
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [*zone_params, low, high + longest, high, first, last, *params, first, last])
        written = cursor.rowcount
    return written


def record_span() -> tuple[datetime.date, datetime.date] | None:
    """The days any record falls on, widened by a day each side (a coach's date can differ from UTC's by one)."""
    instants = [
        UsageLog.objects.aggregate(a=Min("created_at"), b=Max("created_at")),
        CoachingSession.objects.aggregate(
            a=Min("created_at"), b=Max("created_at"), c=Max("deleted_at"), d=Max("processing_finished_at")
        ),
        ExportRecord.objects.aggregate(a=Min("created_at"), b=Max("created_at"), c=Max("file_deleted_at")),
    ]
    found = [value.astimezone(UTC).date() for row in instants for value in row.values() if value is not None]
    days = ApiUsage.objects.aggregate(a=Min("day"), b=Max("day"))
    found += [value for value in days.values() if value is not None]
    if not found:
        return None
    return min(found) - DAY, max(found) + DAY


def chunks(first: datetime.date, last: datetime.date, size: int) -> list[tuple[datetime.date, datetime.date]]:
    out, day = [], first
    while day <= last:
        end = min(last, day + datetime.timedelta(days=size - 1))
        out.append((day, end))
        day = end + DAY
    return out


def rebuild(
    first: datetime.date | None = None,
    last: datetime.date | None = None,
    *,
    chunk_days: int = 7,
    progress: Callable[[int], None] = lambda days: None,
) -> int:
    """Rebuild the roll-ups of ``first``…``last`` (default: every day with a record), chunk by chunk."""
    if first is None or last is None:
        span = record_span()
        if span is None:
            return 0
        first, last = first or span[0], last or span[1]
    longest = longest_processing()
    written = 0
    for a, b in chunks(first, last, chunk_days):
        written += replace(a, b, longest=longest)
        progress((b - a).days + 1)
    return written


@dataclasses.dataclass(frozen=True)
class Drift:
    table: str
    key: tuple
    field: str
    stored: object
    expected: object

    def __str__(self) -> str:
        return f"{self.table} {self.key}: {self.field} is {self.stored}, the raw rows say {self.expected}"


def _normal(fields: dict) -> dict:
    return {
        name: value for name, value in fields.items()
        if value and name in ADDITIVE_FIELDS + ["processing_peak", "api_calls", "api_sealed"]
    }


def check(first: datetime.date, last: datetime.date, *, longest: datetime.timedelta | None = None) -> list[Drift]:
    """Every difference between the stored buckets of ``first``…``last`` and the raw rows."""
    expected = compute(first, last, longest=longest)
    values = ADDITIVE_FIELDS + ["processing_peak"]
    drift: list[Drift] = []
    stored_coach = {
        (row["user_id"], row["day"]): row
        for row in CoachUsageDay.objects.filter(day__gte=first, day__lte=last).values("user_id", "day", "tz", *values)
    }
    for key in set(stored_coach) | set(expected.coach):
        row = stored_coach.get(key, {})
        have, want = _normal(row), _normal(expected.coach.get(key, {}))
        drift += _diff("coach", key, have, want)
        if key in expected.coach and row and row["tz"] != expected.coach_tz[key]:
            drift.append(Drift("coach", key, "tz", row["tz"], expected.coach_tz[key]))
    stored_platform = {
        (row["grain"], row["start"].astimezone(UTC)): row
        for row in PlatformUsageBucket.objects.filter(day__gte=first, day__lte=last).values(
            "grain", "start", "api_calls", "api_sealed", *values
        )
    }
    for key in set(stored_platform) | set(expected.platform):
        have, want = _normal(stored_platform.get(key, {})), _normal(expected.platform.get(key, {}))
        if not have.get("api_sealed"):  # an unsealed day's API calls are read raw
            want.pop("api_calls", None)
            want.pop("api_sealed", None)
            have.pop("api_calls", None)
        drift += _diff("platform", key, have, want)
    return sorted(drift, key=lambda d: (d.table, str(d.key), d.field))


def _diff(table: str, key, have: dict, want: dict) -> list[Drift]:
    out = []
    for name in sorted(set(have) | set(want)):
        a, b = have.get(name, 0), want.get(name, 0)
        if isinstance(a, Decimal) or isinstance(b, Decimal):
            a, b = Decimal(a).quantize(Decimal("0.0001")), Decimal(b).quantize(Decimal("0.0001"))
        if a != b:
            out.append(Drift(table, key, name, a, b))
    return out
