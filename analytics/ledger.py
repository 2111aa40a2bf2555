"""Which usage-ledger rows count as what, shared by every usage metric.

The same rule as ``coaching.services.usage_record``, so the month's counters and the
analytics always agree: minutes from quota kinds (``original``, ``retry_success``) only,
a session per ``original`` row, a transcription per row of any kind but ``adjustment``.
"""

from decimal import Decimal

from django.db.models import Q

from coaching.models import UsageLog

MINUTES_FILTER = Q(kind__in=UsageLog.QUOTA_KINDS)
SESSIONS_FILTER = Q(kind=UsageLog.Kind.ORIGINAL)
TRANSCRIPTIONS_FILTER = ~Q(kind=UsageLog.Kind.ADJUSTMENT)

ZERO = Decimal("0.00")
ONE_DP = Decimal("0.1")
TWO_DP = Decimal("0.01")
