"""Usage metrics from the daily roll-ups: whole buckets from ``CoachUsageDay`` / ``PlatformUsageBucket``,
the pieces of a period no bucket fits from the raw rows, by the same rule.

A period ``[start, end)`` is cut in the viewer's time zone. For one coach the buckets are the
coach's local days: the days lying wholly inside the period come from the roll-up, the hours
left at either edge (a viewer in another zone) from the coach's raw rows. For the platform the
buckets are UTC days, and the edges are UTC quarter-hours: every zone's offset since 2000 is a
whole number of quarter-hours, so a local midnight is a quarter-hour boundary and no raw row is
read (a zone that is not gets the sliver raw). docs/usage-analytics.md has the whole scheme.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import datetime
import functools
import operator
from collections.abc import Iterable
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Exists, F, Max, Min, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncMonth

from analytics.periods import Period, local_midnight
from coaching.models import (
    ApiUsage,
    CoachingSession,
    CoachUsageDay,
    ExportRecord,
    PlatformUsageBucket,
    UsageLog,
    User,
)
from coaching.models.rollups import ADDITIVE_FIELDS, STATUS_FIELDS
from coaching.rollups import DAY, EXPORT_FIELDS, FINISHED, QUARTER, UTC, day_floor, quarter_floor

from .concurrency import concurrent_peak
from .ledger import everyone

GRAIN = PlatformUsageBucket.Grain
FAR_PAST = datetime.datetime(1970, 1, 1, tzinfo=UTC)
Segment = tuple[datetime.datetime, datetime.datetime]


@dataclasses.dataclass(frozen=True)
class Scope:
    """Whose roll-ups answer: the platform's, one coach's (with the zone the coach's days are cut in)."""

    coach: User | None
    # Reads already made for this request (``preload``): {(what, day ranges or bounds): value}.
    memo: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def platform(self) -> bool:
        return self.coach is None


def scope_of(coaches: QuerySet[User]) -> Scope | None:
    """The roll-up scope of ``coaches``; None when no roll-up fits (several coaches, or days cut in an old zone).

    Remembered on the queryset, so the metrics of one request ask once.
    """
    if everyone(coaches):
        return Scope(coach=None)
    if not hasattr(coaches, "_rollup_scope"):
        coaches._rollup_scope = _scope_of(coaches)
    return coaches._rollup_scope


def _scope_of(coaches: QuerySet[User]) -> Scope | None:
    moved = CoachUsageDay.objects.filter(user=OuterRef("pk")).exclude(tz=OuterRef("timezone"))
    found = list(coaches.order_by().annotate(moved=Exists(moved))[:2])
    if len(found) != 1 or found[0].moved or str(found[0].tzinfo) != found[0].timezone:
        return None  # several coaches; or days cut in a zone the coach left (rollups_rebuild recuts them)
    return Scope(coach=found[0])


@dataclasses.dataclass
class Cover:
    """How ``[start, end)`` is answered: bucket ranges (half-open) and raw segments."""

    days: list[Segment] = dataclasses.field(default_factory=list)
    quarters: list[Segment] = dataclasses.field(default_factory=list)
    raw: list[Segment] = dataclasses.field(default_factory=list)


def _ceil(at: datetime.datetime, floor, step: datetime.timedelta) -> datetime.datetime:
    low = floor(at)
    return low if low == at else low + step


def cover(scope: Scope, start: datetime.datetime, end: datetime.datetime) -> Cover:
    out = Cover()
    if start >= end:
        return out
    if scope.platform:
        first, last = _ceil(start, day_floor, DAY), day_floor(end)
        rest = [(start, end)]
        if first < last:
            out.days.append((first, last))
            rest = [(start, first), (last, end)]
        for a, b in rest:
            if a >= b:
                continue
            qa, qb = _ceil(a, quarter_floor, QUARTER), quarter_floor(b)
            if qa < qb:
                out.quarters.append((qa, qb))
                out.raw += [(x, y) for x, y in ((a, qa), (qb, b)) if x < y]
            else:
                out.raw.append((a, b))
        return out
    tz = scope.coach.tzinfo
    first = start.astimezone(tz).date()
    if local_midnight(first, tz) < start:
        first += DAY
    last = end.astimezone(tz).date()  # the first day not wholly inside
    if first < last:
        out.days.append((local_midnight(first, tz), local_midnight(last, tz)))
        out.raw += [(x, y) for x, y in ((start, local_midnight(first, tz)), (local_midnight(last, tz), end)) if x < y]
    else:
        out.raw.append((start, end))
    return out


def _has_rows(scope: Scope, part: Cover) -> bool:
    """Whether the cover has whole buckets (``_rows`` is not None), without building the query."""
    return bool(part.days or (scope.platform and part.quarters))


def _rows(scope: Scope, part: Cover) -> QuerySet | None:
    """The roll-up rows of the cover's buckets."""
    if scope.platform:
        q = Q()
        for a, b in part.days:
            q |= Q(grain=GRAIN.DAY, start__gte=a, start__lt=b)
        for a, b in part.quarters:
            q |= Q(grain=GRAIN.QUARTER, start__gte=a, start__lt=b)
        return PlatformUsageBucket.objects.filter(q) if q else None
    if not part.days:
        return None
    tz = scope.coach.tzinfo
    q = Q()
    for a, b in part.days:
        q |= Q(day__gte=a.astimezone(tz).date(), day__lt=b.astimezone(tz).date())
    return CoachUsageDay.objects.filter(q, user=scope.coach)


def _day_key(scope: Scope, part: Cover) -> tuple:
    """The coach's local day ranges of a cover, as the memo's key."""
    tz = scope.coach.tzinfo
    return tuple((a.astimezone(tz).date(), b.astimezone(tz).date()) for a, b in part.days)


def _remembered(scope: Scope, key: tuple, read):
    """``read()``, unless ``preload`` already read it for this request."""
    if key in scope.memo:
        return scope.memo[key]
    return read()


SERIES_FIELDS = (
    "billable_minutes", "sessions", "transcriptions", "failed", "exports_csv", "exports_pdf", "exports_xlsx"
)
SERIES_COLUMNS = ("day", *SERIES_FIELDS)
INTEGER_FIELDS = [name for name in ADDITIVE_FIELDS if name not in ("minutes", "billable_minutes", "provider_cost_usd")]


def preload(scope: Scope, periods: list[tuple[Period, datetime.datetime]], *, now: datetime.datetime) -> None:
    """One coach's roll-up reads for several ``(period, balance cutoff)`` pairs, in one query.

    The same reads ``additive``, ``storage_bytes``, ``api_calls`` and ``processing_peak`` make
    (their day ranges, their bounds), folded into the ``FILTER`` clauses of one pass over the
    coach's day rows, with the API counters and the first still-processing session as scalar
    subqueries: the functions then find each value in ``scope.memo`` instead of asking.
    A request's numbers are what they would be without it; ``batched`` clears the memo after.
    """
    if scope.platform or connection.vendor != "postgresql":
        return  # SQLite: the functions ask one by one (its sums of decimals are floats in raw SQL)
    tz = scope.coach.tzinfo
    columns, params, keys = [], [], []
    ranges: dict[tuple, str] = {}  # day ranges → the flag column marking the coach's days inside them

    def inside(bounds: tuple) -> str:
        if bounds not in ranges:
            ranges[bounds] = f"in{len(ranges)}"
            flags.append(" OR ".join("(day >= %s AND day < %s)" for _ in bounds) + f" AS {ranges[bounds]}")
            flag_params.extend(value for pair in bounds for value in pair)
        return ranges[bounds]

    flags, flag_params = [], []
    for period, cutoff in periods:
        part = cover(scope, period.start, period.end)
        storage = cover(scope, local_midnight(FAR_PAST.date() + DAY, tz), cutoff)
        wanted = []
        if part.days:
            wanted += [("sums", _day_key(scope, part)), ("peak", _day_key(scope, part))]
        if storage.days:
            wanted.append(("storage", _day_key(scope, storage)))
        if storage.raw:
            wanted.append(("raw_storage", tuple(storage.raw)))
        wanted.append(("api", (period.first_day, period.last_day)))
        if period is periods[0][0]:  # the chart's days (of the first period only)
            wanted.append(("series", (period.first_day, period.last_day + DAY)))
        if now > period.start:
            wanted.append(("open", min(period.end, now)))
        for key in wanted:
            if key in keys:
                continue
            kind, bounds = key
            if kind == "sums":
                flag = inside(bounds)
                columns += [f"SUM({name}) FILTER (WHERE {flag})" for name in ADDITIVE_FIELDS]
            elif kind == "peak":
                columns.append(f"MAX(processing_peak) FILTER (WHERE {inside(bounds)})")
            elif kind == "storage":
                columns.append(f"SUM(storage_delta_bytes) FILTER (WHERE {inside(bounds)})")
            elif kind == "series":
                flag = inside((bounds,))
                columns += [f"array_agg({name} ORDER BY day) FILTER (WHERE {flag})" for name in SERIES_COLUMNS]
            elif kind == "raw_storage":  # raw_additive(storage_only=True), as SQL
                sql, values = _raw_storage_sql(scope, bounds)
                columns.append(sql)
                params += values
            elif kind == "api":
                columns.append(
                    "(SELECT SUM(count) FROM coaching_apiusage WHERE user_id = %s AND day >= %s AND day <= %s)"
                )
                params += [scope.coach.pk, *bounds]
            else:
                columns.append(
                    "(SELECT MIN(processing_started_at) FROM coaching_coachingsession WHERE coach_id = %s"
                    " AND status = %s AND processing_finished_at IS NULL AND processing_started_at < %s)"
                )
                params += [scope.coach.pk, CoachingSession.Status.PROCESSING, bounds]
            keys.append(key)
    sql = (
        f"SELECT {', '.join(columns)} FROM (SELECT *, {', '.join(flags) or 'TRUE AS none'}"
        " FROM coaching_coachusageday WHERE user_id = %s) d"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *flag_params, scope.coach.pk])
        row = list(cursor.fetchone())
    memo = {}
    for key in keys:
        if key[0] == "series":
            values = [row.pop(0) or [] for _ in SERIES_COLUMNS]
            memo[key] = [dict(zip(SERIES_COLUMNS, got, strict=True)) for got in zip(*values, strict=True)]
        elif key[0] == "raw_storage":
            memo[key] = int(row.pop(0))
        elif key[0] == "sums":
            values = [row.pop(0) for _ in ADDITIVE_FIELDS]
            memo[key] = {
                name: (None if value is None else int(value) if name in INTEGER_FIELDS else value)
                for name, value in zip(ADDITIVE_FIELDS, values, strict=True)
            }
        else:
            value = row.pop(0)
            memo[key] = int(value) if value is not None and key[0] != "open" else value
    scope.memo.update(memo)


def _raw_storage_sql(scope: Scope, segments: tuple[Segment, ...]) -> tuple[str, list]:
    """``raw_additive(scope, segments, storage_only=True)["storage_delta_bytes"]`` as one scalar subquery:
    audio uploaded, minus audio deleted (when deleted, or at the upload if stamped before it), plus
    export files kept, minus those deleted (the same way), of the coach's rows in ``segments``."""
    params: list = []

    def within(column: str) -> str:
        params.extend(value for pair in segments for value in pair)
        return "(" + " OR ".join(f"({column} >= %s AND {column} < %s)" for _ in segments) + ")"

    parts = [
        "(SELECT COALESCE(SUM(audio_size_bytes) FILTER (WHERE {up}), 0)"
        " - COALESCE(SUM(audio_size_bytes) FILTER (WHERE ({gone} AND deleted_at >= created_at)"
        " OR ({up2} AND deleted_at < created_at)), 0)"
        " FROM coaching_coachingsession WHERE coach_id = %s AND ({up3} OR {gone2}))",
        "(SELECT COALESCE(SUM(bytes) FILTER (WHERE {up} AND file_path <> ''), 0)"
        " - COALESCE(SUM(bytes) FILTER (WHERE file_path <> '' AND (({gone} AND file_deleted_at >= created_at)"
        " OR ({up2} AND file_deleted_at < created_at))), 0)"
        " FROM coaching_exportrecord WHERE subject_id = %s AND ({up3} OR {gone2}))",
    ]
    out = []
    for template, removed in zip(parts, ("deleted_at", "file_deleted_at"), strict=True):
        # Placeholders in the order they appear in the text.
        filled = template.format(
            up=within("created_at"), gone=within(removed), up2=within("created_at"),
            up3="{up3}", gone2="{gone2}",
        )
        params.append(scope.coach.pk)
        filled = filled.format(up3=within("created_at"), gone2=within(removed))
        out.append(filled)
    return f"({out[0]} + {out[1]})", params


@contextlib.contextmanager
def batched(coaches: QuerySet[User], periods: list[tuple[Period, datetime.datetime]], *, now: datetime.datetime):
    """Within: one coach's roll-up reads of ``periods`` come from one query (``preload``); after, asked again."""
    scope = scope_of(coaches)
    if scope is None or scope.platform or scope.memo:
        yield  # nothing to fold, or an outer ``batched`` already did
        return
    preload(scope, periods, now=now)
    try:
        yield
    finally:
        scope.memo.clear()


def _zero() -> dict:
    return {name: 0 for name in ADDITIVE_FIELDS}


def _within(field: str, segments: list[Segment]) -> Q:
    """Rows whose ``field`` falls in one of the (non-empty list of) segments."""
    return functools.reduce(operator.or_, (Q(**{f"{field}__gte": a, f"{field}__lt": b}) for a, b in segments))


def raw_additive(scope: Scope, segments: Iterable[Segment], *, storage_only: bool = False) -> dict:
    """The roll-up fields of the raw rows whose instants fall in ``segments``: one query a table, by the
    roll-ups' own rule (``coaching.rollups``: each record in the bucket of its instant)."""
    segments = list(segments)
    totals = _zero()
    if not segments:
        return totals

    def owned(model, field: str) -> QuerySet:
        rows = model.objects.order_by()
        return rows if scope.platform else rows.filter(**{field: scope.coach})

    if not storage_only:
        got = owned(UsageLog, "user").filter(_within("created_at", segments)).aggregate(
            m=Sum("minutes"),
            bm=Sum("minutes", filter=Q(kind__in=UsageLog.QUOTA_KINDS)),
            s=Count("id", filter=Q(kind=UsageLog.Kind.ORIGINAL)),
            t=Count("id", filter=~Q(kind=UsageLog.Kind.ADJUSTMENT)),
            c=Sum("provider_cost_usd"),
        )
        names = {"m": "minutes", "bm": "billable_minutes", "s": "sessions", "t": "transcriptions"}
        for key, value in got.items():
            totals[names.get(key, "provider_cost_usd")] += value or 0
    uploaded, deleted = _within("created_at", segments), _within("deleted_at", segments)
    finished = _within("processing_finished_at", segments)
    late = Q(deleted_at__gte=F("created_at"))  # a deletion counts when it happens, or at the upload if stamped before
    early = Q(deleted_at__lt=F("created_at"))
    aggregates = {
        "up": Sum("audio_size_bytes", filter=uploaded),
        "gone": Sum("audio_size_bytes", filter=(deleted & late) | (uploaded & early)),
    }
    if not storage_only:
        for status, name in STATUS_FIELDS.items():
            aggregates[name] = Count("id", filter=uploaded & Q(status=status))
        for status, name in FINISHED.items():
            aggregates[name] = Count("id", filter=finished & Q(status=status))
    sessions = owned(CoachingSession, "coach").filter(uploaded | deleted | (Q() if storage_only else finished))
    got = sessions.aggregate(**aggregates)
    totals["storage_delta_bytes"] += (got.pop("up") or 0) - (got.pop("gone") or 0)
    for name, value in got.items():
        totals[name] += value or 0
    made, removed = _within("created_at", segments), _within("file_deleted_at", segments)
    kept = ~Q(file_path="")
    aggregates = {
        "up": Sum("bytes", filter=made & kept),
        "gone": Sum(
            "bytes",
            filter=kept
            & ((removed & Q(file_deleted_at__gte=F("created_at"))) | (made & Q(file_deleted_at__lt=F("created_at")))),
        ),
    }
    if not storage_only:
        for fmt, name in EXPORT_FIELDS.items():
            aggregates[name] = Count("id", filter=made & Q(status=ExportRecord.Status.SUCCEEDED, format=fmt))
    got = owned(ExportRecord, "subject").filter(made | removed).aggregate(**aggregates)
    totals["storage_delta_bytes"] += (got.pop("up") or 0) - (got.pop("gone") or 0)
    for name, value in got.items():
        totals[name] += value or 0
    return totals


def additive(scope: Scope, start: datetime.datetime, end: datetime.datetime) -> dict:
    """Every additive roll-up field over ``[start, end)``."""
    part = cover(scope, start, end)
    totals = raw_additive(scope, part.raw)
    if _has_rows(scope, part):
        sums = _remembered(
            scope,
            ("sums", () if scope.platform else _day_key(scope, part)),
            lambda: _rows(scope, part).aggregate(**{name: Sum(name) for name in ADDITIVE_FIELDS}),
        )
        for name in ADDITIVE_FIELDS:
            totals[name] += sums[name] or 0
    return totals


def storage_bytes(scope: Scope, cutoff: datetime.datetime) -> int:
    """The balance at ``cutoff``: every storage change before it (whole buckets, then the raw rest)."""
    tz = UTC if scope.platform else scope.coach.tzinfo
    part = cover(scope, local_midnight(FAR_PAST.date() + DAY, tz), cutoff)  # nothing is older
    total = _remembered(
        scope,
        ("raw_storage", tuple(part.raw)),
        lambda: raw_additive(scope, part.raw, storage_only=True)["storage_delta_bytes"],
    )
    if _has_rows(scope, part):
        key = ("storage", () if scope.platform else _day_key(scope, part))
        total += _remembered(scope, key, lambda: _rows(scope, part).aggregate(n=Sum("storage_delta_bytes"))["n"]) or 0
    return int(total)


def _sessions(scope: Scope) -> QuerySet[CoachingSession]:
    return CoachingSession.objects.all() if scope.platform else CoachingSession.objects.filter(coach=scope.coach)


def _bucket_floor(scope: Scope, at: datetime.datetime) -> datetime.datetime:
    if scope.platform:
        return quarter_floor(at)
    tz = scope.coach.tzinfo
    return local_midnight(at.astimezone(tz).date(), tz)


def processing_peak(
    scope: Scope, coaches: QuerySet[User], start: datetime.datetime, end: datetime.datetime, *, now: datetime.datetime
) -> int:
    """The most sessions processing at one instant of ``[start, end)``, exactly.

    Buckets hold the peak of *finished* intervals (clipped to the bucket); the peak of several
    buckets is the largest of theirs, since every instant lies in exactly one bucket. A session
    still processing counts up to ``now``, which moves: from the bucket its earliest such
    session started in, the period is swept from the raw intervals instead.
    """
    if start >= end:
        return 0
    live_from = end
    if now > start:
        first_open = _remembered(
            scope,
            ("open", min(end, now)),
            lambda: _sessions(scope)
            .filter(
                status=CoachingSession.Status.PROCESSING,
                processing_finished_at__isnull=True,
                processing_started_at__lt=min(end, now),
            )
            .aggregate(m=Min("processing_started_at"))["m"],
        )
        if first_open is not None:
            live_from = max(start, _bucket_floor(scope, first_open))
    peak = 0
    if live_from < end:
        peak = concurrent_peak(coaches, start=live_from, end=end, now=now)
    part = cover(scope, start, live_from)
    for a, b in part.raw:
        peak = max(peak, concurrent_peak(coaches, start=a, end=b, now=now))
    if _has_rows(scope, part):
        key = ("peak", () if scope.platform else _day_key(scope, part))
        peak = max(
            peak, _remembered(scope, key, lambda: _rows(scope, part).aggregate(m=Max("processing_peak"))["m"]) or 0
        )
    return peak


def api_calls(scope: Scope, period: Period, *, now: datetime.datetime) -> int:
    """API requests of the UTC days ``first_day``…``last_day``: one coach's counter rows are already
    daily; the platform's sealed days come from day buckets, the rest raw (and get sealed once over)."""
    first, last = period.first_day, period.last_day
    if not scope.platform:
        return _remembered(
            scope,
            ("api", (first, last)),
            lambda: ApiUsage.objects.filter(user=scope.coach, day__gte=first, day__lte=last).aggregate(
                n=Sum("count")
            )["n"],
        ) or 0
    sealed = dict(
        PlatformUsageBucket.objects.filter(grain=GRAIN.DAY, day__gte=first, day__lte=last, api_sealed=True)
        .values_list("day", "api_calls")
    )
    total = sum(sealed.values())
    open_ranges = _gaps(first, last, sealed)
    if not open_ranges:
        return total
    within = Q()
    for a, b in open_ranges:
        within |= Q(day__gte=a, day__lte=b)
    rows = ApiUsage.objects.filter(within).order_by().values("day").annotate(n=Sum("count"))
    by_day = {row["day"]: row["n"] for row in rows}
    total += sum(by_day.values())
    _seal(open_ranges, by_day, now=now)
    return total


def _gaps(first: datetime.date, last: datetime.date, sealed) -> list[tuple[datetime.date, datetime.date]]:
    gaps, day, begin = [], first, None
    while day <= last:
        if day in sealed:
            if begin is not None:
                gaps.append((begin, day - DAY))
                begin = None
        elif begin is None:
            begin = day
        day += DAY
    if begin is not None:
        gaps.append((begin, last))
    return gaps


def _seal(ranges, by_day: dict, *, now: datetime.datetime) -> None:
    """Store the API calls of UTC days over for more than a day (no request is counted on them again)."""
    last_final = now.astimezone(UTC).date() - 2 * DAY
    rows = []
    for a, b in ranges:
        day = a
        while day <= min(b, last_final):
            start = local_midnight(day, UTC)
            rows.append(
                PlatformUsageBucket(
                    grain=GRAIN.DAY, start=start, day=day, api_calls=by_day.get(day, 0), api_sealed=True
                )
            )
            day += DAY
    if rows:
        PlatformUsageBucket.objects.bulk_create(
            rows, batch_size=1000, update_conflicts=True, unique_fields=["grain", "start"],
            update_fields=["api_calls", "api_sealed"],
        )


def totals(scope: Scope, coaches: QuerySet[User], period: Period, *, now: datetime.datetime, cutoff) -> dict:
    """Everything a summary needs, from the roll-ups: additive fields, storage, API calls, peak."""
    out = additive(scope, period.start, period.end)
    out["storage_bytes"] = storage_bytes(scope, cutoff)
    out["api_calls"] = api_calls(scope, period, now=now)
    out["processing_peak"] = processing_peak(scope, coaches, period.start, period.end, now=now)
    return out


def series(scope: Scope, period: Period, granularity: str) -> list[dict] | None:
    """The chart buckets from roll-ups, or None where a raw series is as cheap (a coach seen from another zone)."""
    buckets = period.buckets(granularity)
    parts = [cover(scope, b.start, b.end) for b in buckets]
    if any(part.raw for part in parts):
        return None
    fields = SERIES_FIELDS
    if scope.platform:
        # Summed in the database, per local bucket of each row's start: a whole UTC day inside one
        # bucket from its day row, the UTC days a bucket boundary cuts from their quarter-hours.
        edge_days = set()
        for part in parts:
            for a, b in part.quarters:
                edge_days.update(_utc_days(a, b))
        trunc = TruncDate if granularity == "day" else TruncMonth
        sums = {name: Sum(name) for name in fields}
        whole = PlatformUsageBucket.objects.filter(
            # In UTC before subtracting: an aware local end minus a day is wall-clock arithmetic, an hour
            # off across a DST change (London's 25-hour 25 October would lose its day row).
            grain=GRAIN.DAY, start__gte=period.start, start__lte=period.end.astimezone(UTC) - DAY
        ).exclude(day__in=sorted(edge_days))
        cut = PlatformUsageBucket.objects.filter(
            grain=GRAIN.QUARTER, day__in=sorted(edge_days), start__gte=period.start, start__lt=period.end
        )
        by_label: dict = {}
        for rows in (whole, cut):
            grouped = rows.annotate(bucket=trunc("start", tzinfo=period.tz)).values("bucket").annotate(**sums)
            for row in grouped.order_by():
                label = _label(row.pop("bucket"), granularity)
                got = by_label.setdefault(label, dict.fromkeys(fields, 0))
                for name in fields:
                    got[name] += row[name] or 0
        return [_series_row(bucket.label, by_label.get(bucket.label, dict.fromkeys(fields, 0))) for bucket in buckets]
    tz = scope.coach.tzinfo
    rows = _remembered(
        scope,
        ("series", (period.first_day, period.last_day + DAY)),
        lambda: CoachUsageDay.objects.filter(
            user=scope.coach, day__gte=period.first_day, day__lte=period.last_day
        ).values("day", *fields),
    )
    days = {local_midnight(row["day"], tz).astimezone(UTC): row for row in rows}
    tables = [(sorted(days), days)]
    out = []
    for bucket, part in zip(buckets, parts, strict=True):
        sums = dict.fromkeys(fields, 0)
        for (keys, table), ranges in zip(tables, (part.days,), strict=True):
            for a, b in ranges:
                for start in keys[bisect.bisect_left(keys, a) : bisect.bisect_left(keys, b)]:
                    for name in fields:
                        sums[name] += table[start][name] or 0
        out.append(_series_row(bucket.label, sums))
    return out


def _label(value, granularity: str) -> str:
    if isinstance(value, datetime.datetime):
        value = value.date()
    return value.isoformat() if granularity == "day" else value.strftime("%Y-%m")


def _series_row(label: str, sums: dict) -> dict:
    return {
        "label": label,
        "minutes": float(Decimal(sums["billable_minutes"]).quantize(Decimal("0.01"))),
        "sessions": sums["sessions"],
        "transcriptions": sums["transcriptions"],
        "failed": sums["failed"],
        "exports": sums["exports_csv"] + sums["exports_pdf"] + sums["exports_xlsx"],
    }


def _utc_days(a: datetime.datetime, b: datetime.datetime) -> list[datetime.date]:
    first, last = a.astimezone(UTC).date(), (b.astimezone(UTC) - datetime.timedelta(microseconds=1)).date()
    return [first + datetime.timedelta(days=i) for i in range((last - first).days + 1)]
