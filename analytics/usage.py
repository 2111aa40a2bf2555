"""Usage metrics: one function per number, over a scoped queryset of coaches and an explicit period.

Definitions are the contract in the shared DOMAIN.md. Every function takes ``coaches`` (a
``User`` queryset: one coach, or every coach for platform totals) and a ``Period``
(``[start, end)``, cut in the viewing user's time zone), never a request, so the page, the
API, the PDF and the tests all compute the same numbers. Nothing here is cached: a session
that finishes or an export that is written shows up in the next call.
"""

from __future__ import annotations

import dataclasses
import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate, TruncMonth
from django.utils import timezone

from analytics.periods import Period
from coaching.models import ApiUsage, CoachingSession, ExportRecord, UsageLog, User

from .concurrency import concurrent_peak
from .ledger import MINUTES_FILTER, SESSIONS_FILTER, TRANSCRIPTIONS_FILTER, TWO_DP, ZERO, scoped
from .quota import PlanUsage, plan_usage
from .storage import as_mb, balance_cutoff, storage_bytes

__all__ = [
    "DEFINITIONS",
    "PlanUsage",
    "UsageSummary",
    "api_calls_made",
    "completed_transcriptions",
    "concurrent_sessions_peak",
    "exports_by_format",
    "exports_generated",
    "failed_transcriptions",
    "failure_rate",
    "minutes_used",
    "plan_usage",
    "provider_cost_usd",
    "sessions_by_status",
    "sessions_count",
    "storage_used_mb",
    "transcriptions_count",
    "usage_series",
    "usage_summaries",
    "usage_summary",
]


# One line per metric, served with every API response so a reader knows what each number counts.
DEFINITIONS = {
    "minutes_used": "Ledger minutes of original and paid re-transcriptions (retry_success) created in the period.",
    "sessions": "Ledger rows of kind original created in the period: sessions transcribed for the first time.",
    "transcriptions": "Ledger rows of every kind but adjustment created in the period (first runs and retries).",
    "exports_generated": "Succeeded exports of the data created in the period.",
    "exports_by_format": "The same, by format; every format present, 0 where none.",
    "storage_used_mb": "A balance at the period's end (or now): audio of sessions not deleted by then plus export "
    "files still kept, / 1,048,576, one decimal.",
    "api_calls_made": "Authenticated API requests on the UTC days whose dates fall in the period.",
    "concurrent_sessions_peak": "Most sessions processing at one instant of the period, each over [started, "
    "finished) (still processing: up to now); back-to-back sessions do not overlap.",
    "failed_transcriptions": "Sessions that failed (processing ended with status failed) in the period.",
    "completed_transcriptions": "Sessions whose processing ended with status completed in the period.",
    "failure_rate": "failed / (completed + failed) in the period, 0-1; null when both are 0.",
    "provider_cost_usd": "Speech-to-text providers' cost (USD) of every ledger row created in the period.",
}


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return now or timezone.now()


def _ledger(coaches: QuerySet[User], period: Period) -> QuerySet[UsageLog]:
    return scoped(UsageLog.objects.filter(created_at__gte=period.start, created_at__lt=period.end), "user", coaches)


def _ledger_totals(coaches: QuerySet[User], period: Period) -> dict:
    """minutes, sessions, transcriptions and provider cost in one pass over the ledger."""
    return _ledger(coaches, period).aggregate(
        minutes=Coalesce(Sum("minutes", filter=MINUTES_FILTER), Value(ZERO)),
        sessions=Count("id", filter=SESSIONS_FILTER),
        transcriptions=Count("id", filter=TRANSCRIPTIONS_FILTER),
        cost=Coalesce(Sum("provider_cost_usd"), Value(Decimal("0.0000"))),
    )


def minutes_used(coaches: QuerySet[User], period: Period) -> Decimal:
    """Sum of ledger minutes of quota kinds (``original``, ``retry_success``) created in the period."""
    return Decimal(_ledger_totals(coaches, period)["minutes"]).quantize(TWO_DP)


def sessions_count(coaches: QuerySet[User], period: Period) -> int:
    """Ledger rows of kind ``original`` created in the period: each is one session's first transcription."""
    return _ledger(coaches, period).filter(SESSIONS_FILTER).count()


def transcriptions_count(coaches: QuerySet[User], period: Period) -> int:
    """Ledger rows of every kind but ``adjustment`` created in the period (first runs and retries)."""
    return _ledger(coaches, period).filter(TRANSCRIPTIONS_FILTER).count()


def provider_cost_usd(coaches: QuerySet[User], period: Period) -> Decimal:
    """Sum of the providers' cost (USD) of every ledger row created in the period, free retries included."""
    return Decimal(_ledger_totals(coaches, period)["cost"]).quantize(Decimal("0.0001"))


def _exports(coaches: QuerySet[User], period: Period) -> QuerySet[ExportRecord]:
    exports = ExportRecord.objects.filter(
        status=ExportRecord.Status.SUCCEEDED, created_at__gte=period.start, created_at__lt=period.end
    )
    return scoped(exports, "subject", coaches)


def exports_by_format(coaches: QuerySet[User], period: Period) -> dict[str, int]:
    """Succeeded export records (of the coaches' data) created in the period, by format; every format, 0 if none."""
    counts = {fmt: 0 for fmt in ExportRecord.Format.values}
    for row in _exports(coaches, period).values("format").annotate(n=Count("id")).order_by():
        counts[row["format"]] = row["n"]
    return counts


def exports_generated(coaches: QuerySet[User], period: Period) -> int:
    """Succeeded export records (of the coaches' data) created in the period."""
    return _exports(coaches, period).count()


def storage_used_mb(coaches: QuerySet[User], period: Period, *, now: datetime.datetime | None = None) -> Decimal:
    """A balance at the period's end (or now, if that comes first), in MB: bytes / 1,048,576, one decimal.

    With ``cutoff`` = the period's end, or just after ``now`` for a period still running:
    bytes = audio of the coaches' sessions created before ``cutoff`` and not deleted before it
    + export files of their data kept then (a ``file_path``, written before ``cutoff``,
    ``file_deleted_at`` empty or not before it). A balance, never a sum of daily activity.
    """
    return as_mb(storage_bytes(coaches, [balance_cutoff(period.end, _now(now))])[0])


def api_calls_made(coaches: QuerySet[User], period: Period) -> int:
    """Sum of API usage counts whose (UTC) day falls on a local day of the period, first to last inclusive."""
    rows = scoped(ApiUsage.objects.filter(day__gte=period.first_day, day__lte=period.last_day), "user", coaches)
    return rows.aggregate(n=Sum("count"))["n"] or 0


def concurrent_sessions_peak(coaches: QuerySet[User], period: Period, *, now: datetime.datetime | None = None) -> int:
    """The most of these coaches' sessions processing at one instant of the period.

    Each session processes over ``[processing_started_at, processing_finished_at)``; one
    still processing counts up to ``now``. Back-to-back sessions (one finishes when the
    next starts) do not overlap. A sweep over the intervals clipped to the period, in the
    database (a running ``SUM`` window). For several coaches it is the peak of their
    sessions together (what the platform processed at once), not a sum of each one's
    peak (which may fall at different instants). 0 when nothing processed.
    """
    return concurrent_peak(coaches, start=period.start, end=period.end, now=_now(now))


def _finished(coaches: QuerySet[User], period: Period, status: str | None = None) -> QuerySet[CoachingSession]:
    sessions = CoachingSession.objects.filter(
        processing_finished_at__gte=period.start, processing_finished_at__lt=period.end
    )
    if status:
        sessions = sessions.filter(status=status)
    return scoped(sessions, "coach", coaches)


def _finished_counts(coaches: QuerySet[User], period: Period) -> dict[str, int]:
    """``failed`` and ``completed`` sessions whose processing ended in the period, in one query."""
    return _finished(coaches, period).aggregate(
        failed=Count("id", filter=Q(status=CoachingSession.Status.FAILED)),
        completed=Count("id", filter=Q(status=CoachingSession.Status.COMPLETED)),
    )


def failed_transcriptions(coaches: QuerySet[User], period: Period) -> int:
    """Sessions now ``failed`` whose processing ended (i.e. failed) in the period."""
    return _finished_counts(coaches, period)["failed"]


def completed_transcriptions(coaches: QuerySet[User], period: Period) -> int:
    """Sessions now ``completed`` whose processing ended in the period."""
    return _finished_counts(coaches, period)["completed"]


def failure_rate(failed: int, completed: int) -> Decimal | None:
    """failed / (completed + failed) as a fraction with four places; None when both are zero."""
    if failed + completed == 0:
        return None
    return (Decimal(failed) / Decimal(failed + completed)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def sessions_by_status(coaches: QuerySet[User], period: Period) -> dict[str, int]:
    """Sessions created in the period by their status now (soft-deleted ones included); every status, 0 if none."""
    counts = {status: 0 for status in CoachingSession.Status.values}
    rows = (
        scoped(
            CoachingSession.objects.filter(created_at__gte=period.start, created_at__lt=period.end), "coach", coaches
        )
        .values("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["status"]] = row["n"]
    return counts


@dataclasses.dataclass(frozen=True)
class UsageSummary:
    """Every usage metric for one scope and period (see DOMAIN.md for each definition)."""

    period: Period
    data_through: datetime.datetime
    minutes_used: Decimal
    sessions: int
    transcriptions: int
    exports_generated: int
    exports_by_format: dict[str, int]
    storage_used_mb: Decimal
    api_calls_made: int
    concurrent_sessions_peak: int
    failed_transcriptions: int
    completed_transcriptions: int
    failure_rate: Decimal | None
    provider_cost_usd: Decimal

    METRICS = (
        "minutes_used",
        "sessions",
        "transcriptions",
        "exports_generated",
        "storage_used_mb",
        "api_calls_made",
        "concurrent_sessions_peak",
        "failed_transcriptions",
        "completed_transcriptions",
        "failure_rate",
        "provider_cost_usd",
    )

    def as_dict(self) -> dict:
        """JSON-ready: counts as ints, minutes/MB/rate as numbers, money (USD) as a decimal string."""
        return {
            "period": self.period.as_dict(),
            "data_through": self.data_through.isoformat(),
            "minutes_used": float(self.minutes_used),
            "sessions": self.sessions,
            "transcriptions": self.transcriptions,
            "exports_generated": self.exports_generated,
            "exports_by_format": dict(self.exports_by_format),
            "storage_used_mb": float(self.storage_used_mb),
            "api_calls_made": self.api_calls_made,
            "concurrent_sessions_peak": self.concurrent_sessions_peak,
            "failed_transcriptions": self.failed_transcriptions,
            "completed_transcriptions": self.completed_transcriptions,
            "failure_rate": None if self.failure_rate is None else float(self.failure_rate),
            "provider_cost_usd": str(self.provider_cost_usd),
        }


def usage_summary(coaches: QuerySet[User], period: Period, *, now: datetime.datetime | None = None) -> UsageSummary:
    """All usage metrics of ``coaches`` over ``period``, as of ``now`` (``data_through``)."""
    return usage_summaries(coaches, [period], now=now)[0]


def usage_summaries(
    coaches: QuerySet[User], periods: list[Period], *, now: datetime.datetime | None = None
) -> list[UsageSummary]:
    """``usage_summary`` for several periods (e.g. this one and the previous), storage read in one scan."""
    now = _now(now)
    storage = storage_bytes(coaches, [balance_cutoff(period.end, now) for period in periods])
    return [_summary(coaches, period, now=now, storage=size) for period, size in zip(periods, storage, strict=True)]


def _summary(coaches: QuerySet[User], period: Period, *, now: datetime.datetime, storage: int) -> UsageSummary:
    ledger = _ledger_totals(coaches, period)
    finished = _finished_counts(coaches, period)
    failed, completed = finished["failed"], finished["completed"]
    by_format = exports_by_format(coaches, period)
    return UsageSummary(
        period=period,
        data_through=now,
        minutes_used=Decimal(ledger["minutes"]).quantize(TWO_DP),
        sessions=ledger["sessions"],
        transcriptions=ledger["transcriptions"],
        exports_generated=sum(by_format.values()),
        exports_by_format=by_format,
        storage_used_mb=as_mb(storage),
        api_calls_made=api_calls_made(coaches, period),
        concurrent_sessions_peak=concurrent_sessions_peak(coaches, period, now=now),
        failed_transcriptions=failed,
        completed_transcriptions=completed,
        failure_rate=failure_rate(failed, completed),
        provider_cost_usd=Decimal(ledger["cost"]).quantize(Decimal("0.0001")),
    )


def _bucket_label(value, granularity: str) -> str:
    if isinstance(value, datetime.datetime):
        value = value.date()
    return value.isoformat() if granularity == "day" else value.strftime("%Y-%m")


def _grouped(qs: QuerySet, field: str, period: Period, granularity: str, **aggregates) -> dict[str, dict]:
    trunc = TruncDate(field, tzinfo=period.tz) if granularity == "day" else TruncMonth(field, tzinfo=period.tz)
    rows = qs.annotate(bucket=trunc).values("bucket").annotate(**aggregates).order_by()
    return {_bucket_label(row.pop("bucket"), granularity): row for row in rows}


def usage_series(
    coaches: QuerySet[User],
    period: Period,
    *,
    granularity: str | None = None,
    now: datetime.datetime | None = None,
) -> list[dict]:
    """One dict per bucket of ``period.buckets(granularity)`` (local days or months of the period's zone).

    ``{"label", "minutes", "sessions", "transcriptions", "failed", "exports"}``: the same
    definitions as the summary, counted in the bucket its record falls in locally, so the
    buckets add up to the period's totals. ``now`` is accepted for symmetry; nothing in a
    bucket depends on it.
    """
    granularity = granularity or period.granularity
    ledger = _grouped(
        _ledger(coaches, period),
        "created_at",
        period,
        granularity,
        minutes=Sum("minutes", filter=MINUTES_FILTER),
        sessions=Count("id", filter=SESSIONS_FILTER),
        transcriptions=Count("id", filter=TRANSCRIPTIONS_FILTER),
    )
    failed = _grouped(
        _finished(coaches, period, CoachingSession.Status.FAILED),
        "processing_finished_at",
        period,
        granularity,
        n=Count("id"),
    )
    exports = _grouped(_exports(coaches, period), "created_at", period, granularity, n=Count("id"))
    series = []
    for bucket in period.buckets(granularity):
        row = ledger.get(bucket.label, {})
        series.append(
            {
                "label": bucket.label,
                "minutes": float(Decimal(row.get("minutes") or 0).quantize(TWO_DP)),
                "sessions": row.get("sessions", 0),
                "transcriptions": row.get("transcriptions", 0),
                "failed": failed.get(bucket.label, {}).get("n", 0),
                "exports": exports.get(bucket.label, {}).get("n", 0),
            }
        )
    return series
