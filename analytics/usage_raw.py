"""Every usage metric straight from the raw rows: the definitions the roll-ups must agree with.

``analytics.usage`` answers from the roll-ups (``analytics.rollups``) and comes here for what
they cannot hold: a scope other than one coach or the whole platform, and the pieces of a period
no bucket fits. The property tests (``tests/analytics/test_usage_rollups.py``) compare the two.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate, TruncMonth

from analytics.periods import Period
from coaching.models import ApiUsage, CoachingSession, ExportRecord, UsageLog, User

from .concurrency import concurrent_peak
from .ledger import MINUTES_FILTER, SESSIONS_FILTER, TRANSCRIPTIONS_FILTER, TWO_DP, ZERO, scoped
from .storage import storage_bytes


def ledger(coaches: QuerySet[User], start: datetime.datetime, end: datetime.datetime) -> QuerySet[UsageLog]:
    return scoped(UsageLog.objects.filter(created_at__gte=start, created_at__lt=end), "user", coaches)


def ledger_totals(coaches: QuerySet[User], period: Period) -> dict:
    """minutes, sessions, transcriptions and provider cost in one pass over the ledger."""
    return ledger(coaches, period.start, period.end).aggregate(
        minutes=Coalesce(Sum("minutes", filter=MINUTES_FILTER), Value(ZERO)),
        sessions=Count("id", filter=SESSIONS_FILTER),
        transcriptions=Count("id", filter=TRANSCRIPTIONS_FILTER),
        cost=Coalesce(Sum("provider_cost_usd"), Value(Decimal("0.0000"))),
    )


def exports(coaches: QuerySet[User], period: Period) -> QuerySet[ExportRecord]:
    rows = ExportRecord.objects.filter(
        status=ExportRecord.Status.SUCCEEDED, created_at__gte=period.start, created_at__lt=period.end
    )
    return scoped(rows, "subject", coaches)


def exports_by_format(coaches: QuerySet[User], period: Period) -> dict[str, int]:
    counts = {fmt: 0 for fmt in ExportRecord.Format.values}
    for row in exports(coaches, period).values("format").annotate(n=Count("id")).order_by():
        counts[row["format"]] = row["n"]
    return counts


def api_calls(coaches: QuerySet[User], period: Period) -> int:
    rows = scoped(ApiUsage.objects.filter(day__gte=period.first_day, day__lte=period.last_day), "user", coaches)
    return rows.aggregate(n=Sum("count"))["n"] or 0


def finished(coaches: QuerySet[User], period: Period, status: str | None = None) -> QuerySet[CoachingSession]:
    sessions = CoachingSession.objects.filter(
        processing_finished_at__gte=period.start, processing_finished_at__lt=period.end
    )
    if status:
        sessions = sessions.filter(status=status)
    return scoped(sessions, "coach", coaches)


def finished_counts(coaches: QuerySet[User], period: Period) -> dict[str, int]:
    return finished(coaches, period).aggregate(
        failed=Count("id", filter=Q(status=CoachingSession.Status.FAILED)),
        completed=Count("id", filter=Q(status=CoachingSession.Status.COMPLETED)),
    )


def sessions_created(coaches: QuerySet[User], period: Period) -> QuerySet[CoachingSession]:
    """Sessions created in the period, soft-deleted ones included: the rows ``sessions_by_status`` counts."""
    sessions = CoachingSession.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
    return scoped(sessions, "coach", coaches)


def sessions_by_status(coaches: QuerySet[User], period: Period) -> dict[str, int]:
    counts = {status: 0 for status in CoachingSession.Status.values}
    rows = sessions_created(coaches, period).values("status").annotate(n=Count("id")).order_by()
    for row in rows:
        counts[row["status"]] = row["n"]
    return counts


def storage_at(coaches: QuerySet[User], cutoffs: list[datetime.datetime]) -> list[int]:
    return storage_bytes(coaches, cutoffs)


def peak(coaches: QuerySet[User], period: Period, *, now: datetime.datetime) -> int:
    return concurrent_peak(coaches, start=period.start, end=period.end, now=now)


def _bucket_label(value, granularity: str) -> str:
    if isinstance(value, datetime.datetime):
        value = value.date()
    return value.isoformat() if granularity == "day" else value.strftime("%Y-%m")


def _grouped(qs: QuerySet, field: str, period: Period, granularity: str, **aggregates) -> dict[str, dict]:
    trunc = TruncDate(field, tzinfo=period.tz) if granularity == "day" else TruncMonth(field, tzinfo=period.tz)
    rows = qs.annotate(bucket=trunc).values("bucket").annotate(**aggregates).order_by()
    return {_bucket_label(row.pop("bucket"), granularity): row for row in rows}


def series(coaches: QuerySet[User], period: Period, granularity: str) -> list[dict]:
    """One dict per local day or month of the period, each record in the bucket it falls in locally."""
    logs = _grouped(
        ledger(coaches, period.start, period.end),
        "created_at",
        period,
        granularity,
        minutes=Sum("minutes", filter=MINUTES_FILTER),
        sessions=Count("id", filter=SESSIONS_FILTER),
        transcriptions=Count("id", filter=TRANSCRIPTIONS_FILTER),
    )
    failed = _grouped(
        finished(coaches, period, CoachingSession.Status.FAILED), "processing_finished_at", period, granularity,
        n=Count("id"),
    )
    made = _grouped(exports(coaches, period), "created_at", period, granularity, n=Count("id"))
    out = []
    for bucket in period.buckets(granularity):
        row = logs.get(bucket.label, {})
        out.append(
            {
                "label": bucket.label,
                "minutes": float(Decimal(row.get("minutes") or 0).quantize(TWO_DP)),
                "sessions": row.get("sessions", 0),
                "transcriptions": row.get("transcriptions", 0),
                "failed": failed.get(bucket.label, {}).get("n", 0),
                "exports": made.get(bucket.label, {}).get("n", 0),
            }
        )
    return out
