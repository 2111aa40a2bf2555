"""The concurrency sweep behind ``concurrent_sessions_peak``, in the database where it can be.

Each session processes over ``[started, finished)`` (still processing: up to ``now``),
clipped to the period. Only a session whose status is ``processing`` is still processing: one
left without a finish time in another status (cancelled or failed by hand, say) stopped at an
unknown instant, and counting it "up to now" would inflate every later period's peak.
Every interval becomes two events, ``+1`` at its start and ``-1`` at its end; a running ``SUM``
over the events in time order, ends before starts at the same instant (so back-to-back
sessions do not overlap), peaks at the answer. PostgreSQL and
SQLite ≥ 3.25 run it as one window query; other databases get the same sweep in Python.
"""

from __future__ import annotations

import datetime

from django.db import connection, transaction
from django.db.models import DateTimeField, F, Q, QuerySet, Value
from django.db.models.functions import Coalesce, Greatest, Least

from coaching.models import CoachingSession, User

from .ledger import scoped


def clipped_intervals(
    coaches: QuerySet[User], *, start: datetime.datetime, end: datetime.datetime, now: datetime.datetime
) -> QuerySet:
    """The coaches' processing intervals that meet ``[start, end)``, clipped to it, as ``values("s", "f")``."""
    moment = DateTimeField()
    # Met the period: started before its end, and finished after its start or still processing
    # (if ``now`` is after the start). No COALESCE in the WHERE, so indexes on either column serve.
    meets = Q(processing_finished_at__gt=start)
    if now > start:
        meets |= Q(processing_finished_at__isnull=True, status=CoachingSession.Status.PROCESSING)
    sessions = CoachingSession.objects.filter(meets, processing_started_at__lt=end)
    return (
        scoped(sessions, "coach", coaches)
        .annotate(
            s=Greatest("processing_started_at", Value(start, output_field=moment)),
            f=Least(
                Coalesce("processing_finished_at", Value(now, output_field=moment)), Value(end, output_field=moment)
            ),
        )
        .filter(f__gt=F("s"))  # an empty interval is never processing
        .order_by()
        .values("s", "f")
    )


SWEEP_WORK_MEM = "64MB"
SWEEP_SQL = """
WITH iv AS ({intervals}),
events AS (SELECT s AS t, 1 AS delta FROM iv UNION ALL SELECT f AS t, -1 AS delta FROM iv)
SELECT COALESCE(MAX(running), 0) FROM (
    SELECT SUM(delta) OVER (ORDER BY t, delta ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running
    FROM events
) sweep
"""


def sweep_in_python(intervals: list[tuple[datetime.datetime, datetime.datetime]]) -> int:
    """The same sweep over ``(start, finish)`` pairs: ends sort before starts at the same instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(f, -1) for _, f in intervals], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def concurrent_peak(
    coaches: QuerySet[User], *, start: datetime.datetime, end: datetime.datetime, now: datetime.datetime
) -> int:
    """The largest number of the coaches' sessions processing at one instant of ``[start, end)``."""
    intervals = clipped_intervals(coaches, start=start, end=end, now=now)
    if not connection.features.supports_over_clause:
        return sweep_in_python(list(intervals.values_list("s", "f")))
    sql, params = intervals.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Sort the events in memory rather than spill to disk (platform-wide: ~2 per session).
            cursor.execute(f"SET LOCAL work_mem = '{SWEEP_WORK_MEM}'")
        cursor.execute(SWEEP_SQL.format(intervals=sql), params)
        return int(cursor.fetchone()[0] or 0)
