"""PostgreSQL: a usage reset of one chunk as ONE statement, nothing per user passing through Python (and its undo).

The rules are the ones ``kinds.reset_apply`` and ``chunks`` implement in Python (which remain the
path on other databases, and the fallback here): lock the counters, skip users that already have
a result for the operation, decide per user in their own time zone's month, archive then zero,
one result per user, one admin-log entry per user changed. The test suite runs on both databases
and asserts the same reasons, values and messages, so the two stay the same rules.

Data-modifying CTEs all see the rows as they were when the statement started, so the archive
gets the values from before the zeroing, and the result rows the values from before too.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import uuid
from collections.abc import Sequence

from django.contrib.admin.models import CHANGE
from django.db import connection

from coaching.models import BulkOperation

RESET_CHUNK = """
WITH chunk AS (
    SELECT u.id, u.email, u.timezone FROM coaching_user u WHERE u.id IN (SELECT unnest(%(ids)s::uuid[]))
),
todo AS (
    SELECT c.id, c.email, date_trunc('month', %(asked_at)s::timestamptz AT TIME ZONE c.timezone)::date AS month
    FROM chunk c
    WHERE NOT EXISTS (
        SELECT 1 FROM coaching_bulkoperationresult r WHERE r.operation_id = %(op)s AND r.user_id = c.id
    )
    ORDER BY c.id
),
counters AS (
    SELECT m.user_id, m.period, m.minutes, m.sessions, m.transcriptions,
           CASE
               WHEN %(reset_type)s = 'monthly' AND m.period < t.month
                   THEN 'counters are for ' || to_char(m.period, 'YYYY-MM')
                        || ', an earlier month: they already read as zero'
               WHEN %(reset_type)s = 'monthly' AND m.period > t.month
                   THEN 'counters are for ' || to_char(m.period, 'YYYY-MM') || ', after '
                        || to_char(t.month, 'YYYY-MM') || ', the month this reset was asked for'
               WHEN m.minutes = 0 AND m.sessions = 0 AND m.transcriptions = 0
                   THEN 'counters are already zero: nothing to reset'
               ELSE ''
           END AS reason
    FROM todo t
    -- A locking subquery is not flattened: one index probe (and row lock) per user, in id order.
    CROSS JOIN LATERAL (
        SELECT * FROM coaching_monthlyusage m WHERE m.user_id = t.id FOR UPDATE
    ) m
),
archived AS (
    INSERT INTO coaching_monthlyusagearchive
        (user_id, period, minutes, sessions, transcriptions, archived_at, bulk_operation_id)
    SELECT user_id, period, minutes, sessions, transcriptions, %(now)s, %(op)s FROM counters WHERE reason = ''
),
zeroed AS (
    UPDATE coaching_monthlyusage m
    SET minutes = 0, sessions = 0, transcriptions = 0, updated_at = %(now)s
    FROM counters c
    WHERE m.user_id = c.user_id AND c.reason = ''
),
results AS (
    INSERT INTO coaching_bulkoperationresult (operation_id, user_id, status, reason, before, created_at)
    SELECT %(op)s, t.id,
           CASE WHEN c.reason = '' THEN 'succeeded' ELSE 'skipped' END,
           COALESCE(c.reason, 'no usage counters yet: nothing to reset'),
           CASE WHEN c.user_id IS NULL THEN '{}'::jsonb ELSE jsonb_build_object(
               'period', c.period::text, 'minutes', c.minutes::text,
               'sessions', c.sessions, 'transcriptions', c.transcriptions) END,
           %(now)s
    FROM todo t LEFT JOIN counters c ON c.user_id = t.id
    RETURNING status
),
logged AS (
    INSERT INTO django_admin_log
        (action_time, user_id, content_type_id, object_id, object_repr, action_flag, change_message)
    SELECT %(now)s, %(by)s, %(user_type)s, t.id::text, left(t.email, 200), %(flag)s,
           'Bulk operation ' || %(op)s::text || ': reset ' || %(reset_type)s || ' usage: archived '
           || to_char(c.period, 'YYYY-MM') || ' (' || c.minutes::text || ' min, ' || c.sessions || ' sessions, '
           || c.transcriptions || ' transcriptions) and zeroed the counters'
    FROM todo t JOIN counters c ON c.user_id = t.id
    WHERE c.reason = '' AND %(by)s::uuid IS NOT NULL
)
SELECT count(*) FILTER (WHERE status = 'succeeded'),
       count(*) FILTER (WHERE status = 'skipped'),
       (SELECT count(*) FROM chunk)
FROM results
"""


# Undo: lock the counters first (in id order), so the month each is on cannot change under us.
UNDO_LOCK = """
SELECT 1 FROM coaching_monthlyusage
WHERE user_id IN (SELECT user_id FROM coaching_monthlyusagearchive WHERE bulk_operation_id = %(op)s)
ORDER BY user_id
FOR UPDATE
"""
UNDO_RESTORE = """
WITH restored AS (
    UPDATE coaching_monthlyusagearchive a SET restored_at = %(now)s
    FROM coaching_monthlyusage m
    WHERE a.bulk_operation_id = %(op)s AND a.restored_at IS NULL AND m.user_id = a.user_id AND m.period = a.period
    RETURNING a.user_id, a.period, a.minutes, a.sessions, a.transcriptions
),
counters AS (
    UPDATE coaching_monthlyusage m
    SET minutes = m.minutes + r.minutes, sessions = m.sessions + r.sessions,
        transcriptions = m.transcriptions + r.transcriptions, updated_at = %(now)s
    FROM restored r
    WHERE m.user_id = r.user_id AND m.period = r.period
),
logged AS (
    INSERT INTO django_admin_log
        (action_time, user_id, content_type_id, object_id, object_repr, action_flag, change_message)
    SELECT %(now)s, %(by)s, %(user_type)s, r.user_id::text, left(u.email, 200), %(flag)s,
           'Undo of bulk operation ' || %(op)s::text || ': restored ' || to_char(r.period, 'YYYY-MM') || ' usage ('
           || r.minutes::text || ' min, ' || r.sessions || ' sessions, ' || r.transcriptions || ' transcriptions)'
    FROM restored r JOIN coaching_user u ON u.id = r.user_id
)
SELECT count(*) FROM restored
"""


@dataclasses.dataclass(frozen=True)
class ChunkCounts:
    succeeded: int
    skipped: int
    users_found: int  # of the chunk's ids, how many users still exist


def chunk_lock(operation_id: uuid.UUID, user_ids: Sequence[uuid.UUID]) -> None:
    """Serialise deliveries of the same chunk (a redelivery racing the original) until commit.

    One advisory lock per chunk instead of a row lock on each of its users: no tuple writes.
    """
    key = hashlib.blake2b(f"{operation_id}:{min(user_ids)}".encode(), digest_size=8).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(key, "big", signed=True)])


def reset_chunk(
    operation: BulkOperation, user_ids: Sequence[uuid.UUID], *, user_type: int, now: datetime.datetime
) -> ChunkCounts:
    """Reset one chunk in one statement; raises (and changes nothing) if any row of it fails."""
    params = {
        "ids": "{" + ",".join(str(i) for i in user_ids) + "}",
        "op": operation.id,
        "asked_at": operation.created_at,
        "reset_type": operation.parameters["reset_type"],
        "now": now,
        "by": operation.requested_by_id,
        "user_type": user_type,
        "flag": CHANGE,
    }
    with connection.cursor() as cursor:
        cursor.execute(RESET_CHUNK, params)
        return ChunkCounts(*cursor.fetchone())


def undo_restore(operation: BulkOperation, *, by_id: uuid.UUID, user_type: int, now: datetime.datetime) -> int:
    """Add a reset's archived values back into counters still on the archived month; log each user. Returns how many."""
    params = {"op": operation.id, "now": now, "by": by_id, "user_type": user_type, "flag": CHANGE}
    with connection.cursor() as cursor:
        cursor.execute(UNDO_LOCK, params)
        cursor.execute(UNDO_RESTORE, params)
        return cursor.fetchone()[0]
