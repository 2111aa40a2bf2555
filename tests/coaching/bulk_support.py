"""Helpers for the bulk-operation tests: many users fast, and a database-level failure for one user."""

from __future__ import annotations

import contextlib
import datetime
import uuid
from decimal import Decimal

from django.db import connection

from coaching.models import MonthlyUsage, User

# 15 March 2026, 10:00 in Taipei: "this month" is March for Asia/Taipei users.
NOW = datetime.datetime(2026, 3, 15, 2, 0, tzinfo=datetime.UTC)
MARCH = datetime.date(2026, 3, 1)
FEBRUARY = datetime.date(2026, 2, 1)


def make_users(n: int, *, prefix: str = "bulk", plan: str = "pro", tz: str = "Asia/Taipei") -> list[User]:
    """``n`` users in one INSERT (no password hashing: these users never log in)."""
    users = [
        User(id=uuid.uuid4(), email=f"{prefix}{i:06d}@example.com", name=f"使用者 {i}", plan_id=plan, timezone=tz)
        for i in range(n)
    ]
    for u in users:
        u.set_unusable_password()
    return User.objects.bulk_create(users, batch_size=2000)


def give_usage(users, *, period: datetime.date = MARCH, base_minutes: str = "10.25") -> dict:
    """Counters for each user: user i gets base + i minutes, i % 7 + 1 sessions, i % 5 + 2 transcriptions."""
    counters = [
        MonthlyUsage(
            user=u,
            period=period,
            minutes=Decimal(base_minutes) + i,
            sessions=i % 7 + 1,
            transcriptions=i % 5 + 2,
        )
        for i, u in enumerate(users)
    ]
    MonthlyUsage.objects.bulk_create(counters, batch_size=2000)
    return {c.user_id: c for c in counters}


def _sql_id(user_id: uuid.UUID) -> str:
    return str(user_id) if connection.vendor == "postgresql" else user_id.hex


@contextlib.contextmanager
def counter_write_fails(user: User, *, message: str = "counter frozen for audit"):
    """Make the database refuse any UPDATE of this user's usage counter (a trigger), as a real fault would."""
    uid = _sql_id(user.pk)
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                "CREATE OR REPLACE FUNCTION bulk_test_freeze() RETURNS trigger AS $$ BEGIN "
                f"IF OLD.user_id = '{uid}' THEN RAISE EXCEPTION '{message}'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"
            )
            cur.execute(
                "CREATE TRIGGER bulk_test_freeze BEFORE UPDATE ON coaching_monthlyusage "
                "FOR EACH ROW EXECUTE FUNCTION bulk_test_freeze()"
            )
        else:
            cur.execute(
                "CREATE TRIGGER bulk_test_freeze BEFORE UPDATE ON coaching_monthlyusage "
                f"WHEN OLD.user_id = '{uid}' BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
    try:
        yield
    finally:
        with connection.cursor() as cur:
            cur.execute(
                "DROP TRIGGER IF EXISTS bulk_test_freeze"
                + (" ON coaching_monthlyusage" if connection.vendor == "postgresql" else "")
            )
            if connection.vendor == "postgresql":
                cur.execute("DROP FUNCTION IF EXISTS bulk_test_freeze()")


@contextlib.contextmanager
def counter_writes_slow(seconds_per_row: float):
    """PostgreSQL only: every counter UPDATE sleeps, so a chunk takes long enough to be killed mid-way."""
    with connection.cursor() as cur:
        cur.execute(
            "CREATE OR REPLACE FUNCTION bulk_test_slow() RETURNS trigger AS $$ BEGIN "
            f"PERFORM pg_sleep({seconds_per_row}); RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        cur.execute(
            "CREATE TRIGGER bulk_test_slow BEFORE UPDATE ON coaching_monthlyusage "
            "FOR EACH ROW EXECUTE FUNCTION bulk_test_slow()"
        )
    try:
        yield
    finally:
        with connection.cursor() as cur:
            cur.execute("DROP TRIGGER IF EXISTS bulk_test_slow ON coaching_monthlyusage")
            cur.execute("DROP FUNCTION IF EXISTS bulk_test_slow()")


@contextlib.contextmanager
def eager_celery():
    """Run tasks in-process even when the suite runs against a real broker (only the worker tests use one)."""
    from coaching import celery_app

    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = before
