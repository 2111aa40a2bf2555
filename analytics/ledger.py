"""Which usage-ledger rows count as what, shared by every usage metric.

The same rule as ``coaching.services.usage_record``, so the month's counters and the
analytics always agree: minutes from quota kinds (``original``, ``retry_success``) only,
a session per ``original`` row, a transcription per row of any kind but ``adjustment``.
"""

from decimal import Decimal

from django.db.models import Q, QuerySet

from coaching.models import UsageLog, User

MINUTES_FILTER = Q(kind__in=UsageLog.QUOTA_KINDS)
SESSIONS_FILTER = Q(kind=UsageLog.Kind.ORIGINAL)
TRANSCRIPTIONS_FILTER = ~Q(kind=UsageLog.Kind.ADJUSTMENT)

ZERO = Decimal("0.00")
ONE_DP = Decimal("0.1")
TWO_DP = Decimal("0.01")


def everyone(coaches: QuerySet) -> bool:
    """True for an unfiltered queryset of every user (platform totals): then no filter is needed."""
    return coaches.model is User and not coaches.query.where and not coaches.query.is_sliced


def scoped(queryset: QuerySet, field: str, coaches: QuerySet) -> QuerySet:
    """``queryset`` limited to rows whose ``field`` is one of ``coaches``.

    Platform totals skip the ``IN (SELECT id FROM users)`` semi-join: every row belongs to some user.
    """
    return queryset if everyone(coaches) else queryset.filter(**{f"{field}__in": coaches})
