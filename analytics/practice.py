"""The coach's practice at a glance: sessions, hours and income they recorded (the PDF report shows it).

This is the coach's own business (what they charged their clients, ``CoachingSession.fee_amount``
in ``fee_currency``), never the product's revenue: nothing here reads payments or subscriptions.

A session belongs to the period by its ``session_date`` (the day it took place, a local date),
first to last day inclusive; soft-deleted sessions are left out. Hours are the recorded audio,
``duration_seconds / 3600``. Income is summed per currency and never converted.
"""

from __future__ import annotations

import dataclasses
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncMonth

from analytics.periods import Period
from coaching.models import CoachingSession, UsageLog, User

from .ledger import SESSIONS_FILTER

HOUR = Decimal(3600)
ONE_DP = Decimal("0.1")


def _hours(seconds: int | None) -> Decimal:
    return (Decimal(seconds or 0) / HOUR).quantize(ONE_DP, rounding=ROUND_HALF_UP)


def practice_sessions(coach: User, period: Period) -> QuerySet[CoachingSession]:
    """The coach's sessions not deleted whose ``session_date`` is a local day of the period."""
    return CoachingSession.objects.alive().filter(
        coach=coach, session_date__gte=period.first_day, session_date__lte=period.last_day
    )


@dataclasses.dataclass(frozen=True)
class PracticeLine:
    """Sessions, hours and income (currency -> amount) for one month or one client."""

    label: str
    sessions: int
    hours: Decimal
    income: dict[str, Decimal]


def _income(qs: QuerySet[CoachingSession], key: str | None = None) -> dict:
    """Fees summed per currency, optionally per ``key`` too: {key: {currency: amount}} or {currency: amount}."""
    fields = ([key] if key else []) + ["fee_currency"]
    rows = qs.filter(fee_amount__isnull=False).values(*fields).annotate(total=Sum("fee_amount")).order_by(*fields)
    out: dict = {}
    for row in rows:
        target = out.setdefault(row[key], {}) if key else out
        target[row["fee_currency"]] = Decimal(row["total"]).quantize(Decimal("0.01"))
    return out


def income_by_currency(coach: User, period: Period) -> dict[str, Decimal]:
    """Sum of ``fee_amount`` per ``fee_currency`` over the period's sessions that have a fee."""
    return _income(practice_sessions(coach, period))


def practice_by_month(coach: User, period: Period) -> list[PracticeLine]:
    """Per calendar month of ``session_date``, oldest first: sessions, hours, income per currency."""
    qs = practice_sessions(coach, period).annotate(month=TruncMonth("session_date"))
    totals = qs.values("month").annotate(n=Count("id"), seconds=Sum("duration_seconds")).order_by("month")
    income = _income(qs, "month")
    return [
        PracticeLine(
            label=row["month"].strftime("%Y-%m"),
            sessions=row["n"],
            hours=_hours(row["seconds"]),
            income=income.get(row["month"], {}),
        )
        for row in totals
    ]


def practice_by_client(coach: User, period: Period, *, limit: int = 20) -> tuple[list[PracticeLine], int]:
    """Per client, most sessions first (then name), at most ``limit`` lines; and how many clients in all.

    Sessions without a client are grouped under an empty label.
    """
    qs = practice_sessions(coach, period)
    totals = (
        qs.values("client_id", "client__name")
        .annotate(n=Count("id"), seconds=Sum("duration_seconds"))
        .order_by("-n", "client__name")
    )
    income = _income(qs, "client_id")
    lines = [
        PracticeLine(
            label=row["client__name"] or "",
            sessions=row["n"],
            hours=_hours(row["seconds"]),
            income=income.get(row["client_id"], {}),
        )
        for row in totals[:limit]
    ]
    return lines, totals.count()


def practice_totals(coach: User, period: Period) -> PracticeLine:
    """All the period's sessions: count, hours, income per currency."""
    qs = practice_sessions(coach, period)
    agg = qs.aggregate(n=Count("id"), seconds=Sum("duration_seconds"))
    return PracticeLine(label="", sessions=agg["n"], hours=_hours(agg["seconds"]), income=_income(qs))


def transcribed_sessions_by_status(coach: User, period: Period) -> dict[str, int]:
    """Sessions whose first transcription (an ``original`` ledger row) was recorded in the period, by status now.

    Every status, 0 if none, plus ``deleted`` for rows whose session no longer exists. The values
    add up to ``analytics.usage.sessions_count`` for the same coach and period (the report's one
    session count).
    """
    counts = {status: 0 for status in CoachingSession.Status.values}
    rows = (
        UsageLog.objects.filter(SESSIONS_FILTER, user=coach, created_at__gte=period.start, created_at__lt=period.end)
        .values("session__status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        key = row["session__status"] or "deleted"
        counts[key] = counts.get(key, 0) + row["n"]
    return counts
