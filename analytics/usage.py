"""Usage metrics: one function per number, over a scoped queryset of coaches and an explicit period.

Definitions are the contract in the shared DOMAIN.md. Every function takes ``coaches`` (a
``User`` queryset: one coach, or every coach for platform totals) and a ``Period``
(``[start, end)``, cut in the viewing user's time zone), never a request, so the page, the
API, the PDF and the tests all compute the same numbers.

The numbers come from the daily roll-ups (``analytics.rollups``), kept in the same transaction
as every write, so nothing here is cached or late: a session that finishes or an export that is
written shows up in the next call. What no roll-up fits (several coaches, the hours of a period
that are not whole buckets) is read from the raw rows (``analytics.usage_raw``), by the same rule.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import QuerySet
from django.utils import timezone

from analytics.periods import Period
from coaching.models import CoachingSession, ExportRecord, User

from . import rollups, usage_raw
from .ledger import TWO_DP
from .quota import PlanUsage, plan_usage
from .storage import as_mb, balance_cutoff

__all__ = [
    "DEFINITIONS",
    "METRIC_FUNCTIONS",
    "PlanUsage",
    "UsageFacts",
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
    "usage_facts",
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


@dataclasses.dataclass(frozen=True)
class UsageFacts:
    """The counts every metric of one scope and period is computed from (read once, then shared)."""

    minutes: Decimal  # quota kinds only
    sessions: int
    transcriptions: int
    provider_cost_usd: Decimal
    exports_by_format: dict[str, int]
    storage_bytes: int
    api_calls: int
    processing_peak: int
    failed: int
    completed: int


def usage_facts(
    coaches: QuerySet[User], period: Period, *, now: datetime.datetime | None = None
) -> UsageFacts:
    """What the metrics of ``coaches`` over ``period`` are made of: from roll-ups, or raw rows if none fits."""
    now = _now(now)
    cutoff = balance_cutoff(period.end, now)
    scope = rollups.scope_of(coaches)
    if scope is None:
        ledger = usage_raw.ledger_totals(coaches, period)
        finished = usage_raw.finished_counts(coaches, period)
        return UsageFacts(
            minutes=Decimal(ledger["minutes"]),
            sessions=ledger["sessions"],
            transcriptions=ledger["transcriptions"],
            provider_cost_usd=Decimal(ledger["cost"]),
            exports_by_format=usage_raw.exports_by_format(coaches, period),
            storage_bytes=usage_raw.storage_at(coaches, [cutoff])[0],
            api_calls=usage_raw.api_calls(coaches, period),
            processing_peak=usage_raw.peak(coaches, period, now=now),
            failed=finished["failed"],
            completed=finished["completed"],
        )
    got = rollups.totals(scope, coaches, period, now=now, cutoff=cutoff)
    return UsageFacts(
        minutes=Decimal(got["billable_minutes"]),
        sessions=int(got["sessions"]),
        transcriptions=int(got["transcriptions"]),
        provider_cost_usd=Decimal(got["provider_cost_usd"]),
        exports_by_format={fmt: int(got[f"exports_{fmt}"]) for fmt in ExportRecord.Format.values},
        storage_bytes=int(got["storage_bytes"]),
        api_calls=int(got["api_calls"]),
        processing_peak=int(got["processing_peak"]),
        failed=int(got["failed"]),
        completed=int(got["completed"]),
    )


def _facts(coaches, period, now, facts: UsageFacts | None) -> UsageFacts:
    return facts if facts is not None else usage_facts(coaches, period, now=now)


def minutes_used(coaches: QuerySet[User], period: Period, *, now=None, facts: UsageFacts | None = None) -> Decimal:
    """Sum of ledger minutes of quota kinds (``original``, ``retry_success``) created in the period."""
    return Decimal(_facts(coaches, period, now, facts).minutes).quantize(TWO_DP)


def sessions_count(coaches: QuerySet[User], period: Period, *, now=None, facts: UsageFacts | None = None) -> int:
    """Ledger rows of kind ``original`` created in the period: each is one session's first transcription."""
    return _facts(coaches, period, now, facts).sessions


def transcriptions_count(coaches: QuerySet[User], period: Period, *, now=None, facts: UsageFacts | None = None) -> int:
    """Ledger rows of every kind but ``adjustment`` created in the period (first runs and retries)."""
    return _facts(coaches, period, now, facts).transcriptions


def provider_cost_usd(coaches: QuerySet[User], period: Period, *, now=None, facts: UsageFacts | None = None) -> Decimal:
    """Sum of the providers' cost (USD) of every ledger row created in the period, free retries included."""
    return Decimal(_facts(coaches, period, now, facts).provider_cost_usd).quantize(Decimal("0.0001"))


def exports_by_format(
    coaches: QuerySet[User], period: Period, *, now=None, facts: UsageFacts | None = None
) -> dict[str, int]:
    """Succeeded export records (of the coaches' data) created in the period, by format; every format, 0 if none."""
    return dict(_facts(coaches, period, now, facts).exports_by_format)


def exports_generated(coaches: QuerySet[User], period: Period, *, now=None, facts: UsageFacts | None = None) -> int:
    """Succeeded export records (of the coaches' data) created in the period."""
    return sum(exports_by_format(coaches, period, now=now, facts=facts).values())


def storage_used_mb(coaches: QuerySet[User], period: Period, *, now=None, facts: UsageFacts | None = None) -> Decimal:
    """A balance at the period's end (or now, if that comes first), in MB: bytes / 1,048,576, one decimal.

    With ``cutoff`` = the period's end, or just after ``now`` for a period still running:
    bytes = audio of the coaches' sessions created before ``cutoff`` and not deleted before it
    + export files of their data kept then (a ``file_path``, written before ``cutoff``,
    ``file_deleted_at`` empty or not before it). A balance, never a sum of daily activity.
    """
    return as_mb(_facts(coaches, period, now, facts).storage_bytes)


def api_calls_made(coaches: QuerySet[User], period: Period, *, now=None, facts: UsageFacts | None = None) -> int:
    """Sum of API usage counts whose (UTC) day falls on a local day of the period, first to last inclusive."""
    return _facts(coaches, period, now, facts).api_calls


def concurrent_sessions_peak(
    coaches: QuerySet[User], period: Period, *, now=None, facts: UsageFacts | None = None
) -> int:
    """The most of these coaches' sessions processing at one instant of the period.

    Each session processes over ``[processing_started_at, processing_finished_at)``; one
    still processing counts up to ``now``. Back-to-back sessions (one finishes when the
    next starts) do not overlap. For several coaches it is the peak of their sessions
    together (what the platform processed at once), not a sum of each one's peak (which
    may fall at different instants). 0 when nothing processed. From the roll-ups' daily
    peaks where no session is still processing (``analytics.rollups.processing_peak``).
    """
    return _facts(coaches, period, now, facts).processing_peak


def failed_transcriptions(coaches: QuerySet[User], period: Period, *, now=None, facts: UsageFacts | None = None) -> int:
    """Sessions now ``failed`` whose processing ended (i.e. failed) in the period."""
    return _facts(coaches, period, now, facts).failed


def completed_transcriptions(
    coaches: QuerySet[User], period: Period, *, now=None, facts: UsageFacts | None = None
) -> int:
    """Sessions now ``completed`` whose processing ended in the period."""
    return _facts(coaches, period, now, facts).completed


def failure_rate(failed: int, completed: int) -> Decimal | None:
    """failed / (completed + failed) as a fraction with four places; None when both are zero."""
    if failed + completed == 0:
        return None
    return (Decimal(failed) / Decimal(failed + completed)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def failure_rate_of(coaches: QuerySet[User], period: Period, *, now=None, facts: UsageFacts | None = None):
    """``failure_rate`` of the period's failed and completed transcriptions."""
    facts = _facts(coaches, period, now, facts)
    return failure_rate(facts.failed, facts.completed)


# The registry: each metric of a summary (and of the API) and the one function that computes it.
METRIC_FUNCTIONS: dict[str, Callable[..., object]] = {
    "minutes_used": minutes_used,
    "sessions": sessions_count,
    "transcriptions": transcriptions_count,
    "exports_generated": exports_generated,
    "exports_by_format": exports_by_format,
    "storage_used_mb": storage_used_mb,
    "api_calls_made": api_calls_made,
    "concurrent_sessions_peak": concurrent_sessions_peak,
    "failed_transcriptions": failed_transcriptions,
    "completed_transcriptions": completed_transcriptions,
    "failure_rate": failure_rate_of,
    "provider_cost_usd": provider_cost_usd,
}



def sessions_by_status(coaches: QuerySet[User], period: Period) -> dict[str, int]:
    """Sessions created in the period by their status now (soft-deleted ones included); every status, 0 if none."""
    scope = rollups.scope_of(coaches)
    if scope is None:
        return usage_raw.sessions_by_status(coaches, period)
    got = rollups.additive(scope, period.start, period.end)
    return {status: int(got[f"uploaded_{status}"]) for status in CoachingSession.Status.values}


# How each metric is served (the API's field type and its JSON form), in the API's order. A new metric
# is its function and METRIC_FUNCTIONS entry, its lines here and in DEFINITIONS, and its field on
# UsageSummary: this module only (the API's serializer is built from METRIC_KINDS).
METRIC_KINDS: dict[str, str] = {
    "minutes_used": "number",
    "sessions": "count",
    "transcriptions": "count",
    "exports_generated": "count",
    "exports_by_format": "counts_by_format",
    "storage_used_mb": "number",
    "api_calls_made": "count",
    "concurrent_sessions_peak": "count",
    "failed_transcriptions": "count",
    "completed_transcriptions": "count",
    "failure_rate": "rate",
    "provider_cost_usd": "money",
}
JSON_OF_KIND: dict[str, Callable[[object], object]] = {
    "count": int,
    "number": float,
    "rate": lambda value: None if value is None else float(value),
    "money": str,
    "counts_by_format": dict,
}


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

    # The numeric metrics (compared with the previous period): every registered one but the per-format counts.
    METRICS = tuple(name for name, kind in METRIC_KINDS.items() if kind != "counts_by_format")

    def as_dict(self) -> dict:
        """JSON-ready, each metric by its kind (``METRIC_KINDS``): counts as ints, minutes/MB/rate as
        numbers, money (USD) as a decimal string, per-format counts as a dict."""
        return {
            "period": self.period.as_dict(),
            "data_through": self.data_through.isoformat(),
            **{name: JSON_OF_KIND[kind](getattr(self, name)) for name, kind in METRIC_KINDS.items()},
        }


def usage_summary(coaches: QuerySet[User], period: Period, *, now: datetime.datetime | None = None) -> UsageSummary:
    """All usage metrics of ``coaches`` over ``period``, as of ``now`` (``data_through``)."""
    return usage_summaries(coaches, [period], now=now)[0]


def usage_summaries(
    coaches: QuerySet[User], periods: list[Period], *, now: datetime.datetime | None = None
) -> list[UsageSummary]:
    """``usage_summary`` for several periods (e.g. this one and the previous)."""
    now = _now(now)
    with batched(coaches, periods, now=now):
        return [_summary(coaches, period, now=now) for period in periods]


def batched(coaches: QuerySet[User], periods: list[Period], *, now: datetime.datetime):
    """Within: one coach's roll-up reads for ``periods`` (totals, balances, peaks) are made in one query."""
    return rollups.batched(coaches, [(period, balance_cutoff(period.end, now)) for period in periods], now=now)


def _summary(coaches: QuerySet[User], period: Period, *, now: datetime.datetime) -> UsageSummary:
    """Every metric by its registered function, over one read of the facts."""
    facts = usage_facts(coaches, period, now=now)
    values = {name: fn(coaches, period, now=now, facts=facts) for name, fn in METRIC_FUNCTIONS.items()}
    return UsageSummary(period=period, data_through=now, **values)


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
    scope = rollups.scope_of(coaches)
    series = rollups.series(scope, period, granularity) if scope is not None else None
    return series if series is not None else usage_raw.series(coaches, period, granularity)
