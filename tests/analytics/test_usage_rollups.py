"""The roll-ups agree with the raw rows: random ledgers written through the services, random periods and
viewer time zones (DST in New York and London, Taipei's month edges), every metric both ways.

Plus hand-made cases with a known answer, the rebuild (and a rebuild killed half-way), and the drift check.
"""

import datetime
import zoneinfo
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from analytics import usage_raw
from analytics.ledger import TWO_DP
from analytics.periods import range_period
from analytics.storage import as_mb, balance_cutoff
from analytics.usage import failure_rate, sessions_by_status, usage_series, usage_summary
from coaching import rollups_build
from coaching.models import ApiUsage, CoachingSession, CoachUsageDay, PlatformUsageBucket, User
from coaching.services import (
    session_create,
    session_processing_finish,
    session_processing_start,
    session_soft_delete,
    usage_record,
)
from tests.analytics.properties import on_a_database
from tests.factories import ExportRecordFactory, UserFactory

UTC = datetime.UTC
ZONES = ["Asia/Taipei", "America/New_York", "Europe/London", "UTC"]
# Instants around which things happen: Taipei's month edge (1 April 00:00 = 31 March 16:00 UTC),
# New York's spring-forward (8 March 2026 07:00 UTC) and London's fall-back (25 October 2026 01:00 UTC).
ANCHORS = [
    datetime.datetime(2026, 3, 31, 16, 0, tzinfo=UTC),
    datetime.datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
    datetime.datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
]


def raw_summary(coaches, period, now) -> dict:
    """Every metric of the API straight from the raw rows (``analytics.usage_raw``)."""
    ledger = usage_raw.ledger_totals(coaches, period)
    finished = usage_raw.finished_counts(coaches, period)
    by_format = usage_raw.exports_by_format(coaches, period)
    return {
        "minutes_used": float(Decimal(ledger["minutes"]).quantize(TWO_DP)),
        "sessions": ledger["sessions"],
        "transcriptions": ledger["transcriptions"],
        "exports_generated": sum(by_format.values()),
        "exports_by_format": by_format,
        "storage_used_mb": float(as_mb(usage_raw.storage_at(coaches, [balance_cutoff(period.end, now)])[0])),
        "api_calls_made": usage_raw.api_calls(coaches, period),
        "concurrent_sessions_peak": usage_raw.peak(coaches, period, now=now),
        "failed_transcriptions": finished["failed"],
        "completed_transcriptions": finished["completed"],
        "failure_rate": (lambda r: None if r is None else float(r))(
            failure_rate(finished["failed"], finished["completed"])
        ),
        "provider_cost_usd": str(Decimal(ledger["cost"]).quantize(Decimal("0.0001"))),
    }


def summary(coaches, period, now) -> dict:
    body = usage_summary(coaches, period, now=now).as_dict()
    return {key: value for key, value in body.items() if key not in ("period", "data_through")}


def snapshot() -> tuple[list, list]:
    """Every stored bucket, without ids (zero values as stored)."""
    coach = sorted(
        tuple(sorted((k, str(v)) for k, v in row.items() if k != "id")) for row in CoachUsageDay.objects.values()
    )
    platform = sorted(
        tuple(sorted((k, str(v)) for k, v in row.items() if k != "id")) for row in PlatformUsageBucket.objects.values()
    )
    return coach, platform


def _nonzero(snap):
    """Buckets as {key: non-zero fields}: how a rebuild (which writes no empty bucket) compares with hooks."""
    out = {}
    for rows, keys in ((snap[0], ("user_id", "day")), (snap[1], ("grain", "start"))):
        for row in rows:
            fields = dict(row)
            key = tuple(fields.pop(k) for k in keys)
            for name in ("tz", "day", "api_calls", "api_sealed"):  # API days: sealed on read, checked by check()
                fields.pop(name, None)
            kept = {k: v for k, v in fields.items() if v not in ("0", "0.00", "0.0000", "False")}
            if kept:
                out[key] = kept
    return out


# --- Random ledgers through the services ---------------------------------------------------------

offsets = st.integers(min_value=-36 * 60, max_value=36 * 60).map(lambda m: datetime.timedelta(minutes=m))
events = st.lists(
    st.tuples(
        st.sampled_from(["session", "log", "export", "api"]),
        st.integers(0, 2),  # which coach
        offsets,  # when
        st.integers(0, 240),  # processing minutes (0: not processed, or still processing)
        st.sampled_from(["completed", "failed", "open", "deleted", "pending"]),
        st.integers(1, 5),  # size (MiB), seconds / 60, API count
    ),
    min_size=1,
    max_size=14,
)


class RollupsAgreeWithRawRows(TestCase):
    @on_a_database
    @given(
        anchor=st.sampled_from(ANCHORS),
        zones=st.lists(st.sampled_from(ZONES), min_size=3, max_size=3),
        history=events,
        viewer=st.sampled_from(ZONES),
        span=st.tuples(st.integers(-3, 2), st.integers(0, 40)),
        now_offset=st.sampled_from([datetime.timedelta(hours=h) for h in (-6, 2, 30, 24 * 60)]),
    )
    # Found by this test: London's 25-hour 25 October lost its day row (local end minus a day, wall-clock).
    @example(
        anchor=datetime.datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
        zones=["Asia/Taipei", "UTC", "Europe/London"],
        history=[
            ("log", 1, datetime.timedelta(seconds=8700), 170, "deleted", 4),
            ("export", 2, datetime.timedelta(seconds=4740), 238, "pending", 1),
        ],
        viewer="Europe/London",
        span=(1, 11),
        now_offset=datetime.timedelta(hours=30),
    )
    def test_every_metric_from_rollups_equals_the_raw_rows(self, anchor, zones, history, viewer, span, now_offset):
        coaches = [UserFactory(timezone=zone) for zone in zones]
        for kind, who, offset, minutes, outcome, size in history:
            coach, at = coaches[who], anchor + offset
            if kind == "session":
                session = session_create(
                    coach=coach,
                    title="s",
                    session_date=at.date(),
                    audio_size_bytes=size * 1_048_576,
                    duration_seconds=size * 60,
                    at=at,
                )
                if outcome == "pending":
                    continue
                session_processing_start(session, at=at)
                if outcome != "open":
                    session_processing_finish(
                        session,
                        error="stt failed" if outcome == "failed" else "",
                        at=at + datetime.timedelta(minutes=minutes),
                    )
                if outcome == "deleted":
                    session_soft_delete(session, at=at + datetime.timedelta(hours=size * 7))
            elif kind == "log":
                usage_record(
                    coach,
                    session=None,
                    kind=["original", "retry_success", "retry_failed", "adjustment"][minutes % 4],
                    seconds=size * 61,
                    at=at,
                )
            elif kind == "export":
                ExportRecordFactory(
                    requested_by=coach,
                    subject=coach,
                    format=["csv", "pdf", "xlsx"][minutes % 3],
                    status="succeeded" if outcome != "failed" else "failed",
                    bytes=size * 1000,
                    file_path="kept.pdf" if minutes % 2 else "",
                    created_at=at,
                    file_deleted_at=at + datetime.timedelta(hours=minutes) if outcome == "deleted" else None,
                )
            else:
                ApiUsage.objects.update_or_create(user=coach, day=at.date(), defaults={"count": size})
        tz = zoneinfo.ZoneInfo(viewer)
        first = anchor.astimezone(tz).date() + datetime.timedelta(days=span[0])
        period = range_period(first, first + datetime.timedelta(days=span[1]), tz=tz)
        now = anchor + now_offset
        for scope in [User.objects.all()] + [User.objects.filter(pk=c.pk) for c in coaches]:
            for p in (period, period.previous()):
                assert summary(scope, p, now) == raw_summary(scope, p, now)
                assert usage_series(scope, p, now=now) == usage_raw.series(scope, p, p.granularity)
                assert sessions_by_status(scope, p) == usage_raw.sessions_by_status(scope, p)
        # A rebuild from the raw rows gives the buckets the services kept.
        kept = _nonzero(snapshot())
        rollups_build.rebuild()
        assert _nonzero(snapshot()) == kept
        assert rollups_build.check(*rollups_build.record_span()) == []


# --- Hand-made cases --------------------------------------------------------------------------------

TAIPEI = zoneinfo.ZoneInfo("Asia/Taipei")
LONDON = zoneinfo.ZoneInfo("Europe/London")


def utc(month, day, hour=12, minute=0):
    return datetime.datetime(2026, month, day, hour, minute, tzinfo=UTC)


def processed(coach, start, minutes, *, error=""):
    session = session_create(
        coach=coach, title="s", session_date=start.date(), audio_size_bytes=1_048_576, duration_seconds=600, at=start
    )
    session_processing_start(session, at=start)
    session_processing_finish(session, error=error, at=start + datetime.timedelta(minutes=minutes))
    return session


@pytest.mark.django_db
def test_a_coach_day_holds_what_happened_on_the_coachs_local_day(coach):
    # 31 March 23:30 UTC is 1 April 07:30 in Taipei.
    usage_record(coach, session=None, kind="original", seconds=600, at=utc(3, 31, 23, 30))
    usage_record(coach, session=None, kind="retry_failed", seconds=120, at=utc(4, 1, 2))
    day = CoachUsageDay.objects.get(user=coach)
    assert (day.day, day.tz) == (datetime.date(2026, 4, 1), "Asia/Taipei")
    assert (day.minutes, day.billable_minutes, day.sessions, day.transcriptions) == (
        Decimal("12.00"),
        Decimal("10.00"),
        1,
        2,
    )
    quarter = PlatformUsageBucket.objects.get(grain="q15", start=utc(3, 31, 23, 30))
    assert quarter.billable_minutes == Decimal("10.00")
    assert PlatformUsageBucket.objects.get(grain="day", start=utc(3, 31, 0)).transcriptions == 1


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "not-prepared"])
@pytest.mark.django_db
def test_the_hook_counts_the_same_whether_its_statement_is_kept_prepared_or_not(coach, settings, prepared):
    """``DB_PREPARED_ROLLUPS`` (off behind a pooler without prepared statements) changes no number."""
    settings.DB_PREPARED_ROLLUPS = prepared
    for seconds in (600, 900, 61):  # the same statement text again and again: prepared after its first use
        usage_record(coach, session=None, kind="original", seconds=seconds, at=utc(3, 31, 23, 30))
    usage_record(coach, session=None, kind="adjustment", seconds=-300, at=utc(4, 1, 1, 5))
    day = CoachUsageDay.objects.get(user=coach, day=datetime.date(2026, 4, 1))
    assert (day.minutes, day.billable_minutes, day.sessions, day.transcriptions) == (
        Decimal("21.02"),
        Decimal("26.02"),
        3,
        3,
    )
    quarters = PlatformUsageBucket.objects.filter(grain="q15").order_by("start")
    assert [(q.start.hour, q.start.minute, q.sessions, q.minutes) for q in quarters] == [
        (23, 30, 3, Decimal("26.02")),
        (1, 0, 0, Decimal("-5.00")),
    ]


@pytest.mark.django_db
def test_peak_spans_midnight_and_is_not_a_sum_of_daily_peaks(coach, other_coach):
    # Taipei midnight 1 April = 31 March 16:00 UTC. A session from 15:30 to 16:30 UTC spans it.
    processed(coach, utc(3, 31, 15, 30), 60)
    processed(other_coach, utc(3, 31, 16, 10), 5)  # overlaps the first after midnight: 2 at once
    processed(coach, utc(4, 1, 9), 30)  # alone, the next morning
    april = range_period(datetime.date(2026, 4, 1), datetime.date(2026, 4, 30), tz=TAIPEI)
    assert usage_summary(User.objects.all(), april, now=utc(5, 2)).concurrent_sessions_peak == 2
    assert usage_summary(User.objects.filter(pk=coach.pk), april, now=utc(5, 2)).concurrent_sessions_peak == 1
    days = dict(CoachUsageDay.objects.filter(user=coach).values_list("day", "processing_peak"))
    assert days == {datetime.date(2026, 3, 31): 1, datetime.date(2026, 4, 1): 1}


@pytest.mark.django_db
def test_a_retry_moves_the_finish_out_of_its_old_bucket(coach):
    session = processed(coach, utc(4, 2), 10, error="stt failed")
    april = range_period(datetime.date(2026, 4, 1), datetime.date(2026, 4, 30), tz=TAIPEI)
    scope = User.objects.filter(pk=coach.pk)
    assert usage_summary(scope, april, now=utc(5, 2)).failed_transcriptions == 1
    session_processing_start(session, at=utc(4, 20))
    session_processing_finish(session, kind="retry_failed", at=utc(4, 20, 12, 5))
    result = usage_summary(scope, april, now=utc(5, 2))
    assert (result.failed_transcriptions, result.completed_transcriptions) == (0, 1)
    assert sessions_by_status(scope, april)["completed"] == 1


@pytest.mark.django_db
def test_staff_in_london_see_taipei_coaches_in_london_days(coach):
    # 1 April 23:30 London (BST, UTC+1) = 1 April 22:30 UTC = 2 April 06:30 in Taipei.
    usage_record(coach, session=None, kind="original", seconds=600, at=utc(4, 1, 22, 30))
    london_first = range_period(datetime.date(2026, 4, 1), datetime.date(2026, 4, 1), tz=LONDON)
    taipei_first = range_period(datetime.date(2026, 4, 1), datetime.date(2026, 4, 1), tz=TAIPEI)
    for scope in (User.objects.all(), User.objects.filter(pk=coach.pk)):
        assert usage_summary(scope, london_first, now=utc(5, 1)).minutes_used == Decimal("10.00")
        assert usage_summary(scope, taipei_first, now=utc(5, 1)).minutes_used == Decimal("0.00")


@pytest.mark.django_db
def test_a_killed_rebuild_run_again_gives_identical_buckets(coach, other_coach):
    for day in range(1, 20):
        processed(coach if day % 2 else other_coach, utc(4, day, day % 24), day)
        usage_record(coach, session=None, kind="original", seconds=60 * day, at=utc(4, day, 3))
    kept = snapshot()
    CoachUsageDay.objects.all().delete()
    PlatformUsageBucket.objects.all().delete()
    stopped = []

    def killed(days):
        stopped.append(days)
        if len(stopped) == 2:
            raise KeyboardInterrupt  # the worker dies between two chunks

    with pytest.raises(KeyboardInterrupt):
        rollups_build.rebuild(datetime.date(2026, 3, 30), datetime.date(2026, 4, 25), chunk_days=3, progress=killed)
    assert CoachUsageDay.objects.exists()  # two chunks landed, the rest did not
    call_command("rollups_rebuild", "--from", "2026-03-30", "--to", "2026-04-25", "--no-progress", verbosity=0)
    assert _nonzero(snapshot()) == _nonzero(kept)
    call_command("rollups_rebuild", "--from", "2026-03-30", "--to", "2026-04-25", "--no-progress", verbosity=0)
    assert _nonzero(snapshot()) == _nonzero(kept)


@pytest.mark.django_db
def test_rollups_check_reports_drift_and_a_rebuild_clears_it(coach, capsys):
    processed(coach, utc(4, 2), 10)
    call_command("rollups_check")
    assert "No drift" in capsys.readouterr().out
    CoachingSession.objects.update(audio_size_bytes=5)  # a write that bypassed the services
    with pytest.raises(CommandError, match="differ from the raw rows"):
        call_command("rollups_check")
    assert "storage_delta_bytes is 1048576, the raw rows say 5" in capsys.readouterr().out
    call_command("rollups_rebuild", "--no-progress", verbosity=0)
    call_command("rollups_check")
    assert "No drift" in capsys.readouterr().out


@pytest.mark.django_db
def test_rollups_commands_refuse_bad_dates(coach):
    with pytest.raises(CommandError, match="--from must be a date as YYYY-MM-DD"):
        call_command("rollups_rebuild", "--from", "April", "--to", "2026-04-02")
    with pytest.raises(CommandError, match="is before --from"):
        call_command("rollups_check", "--from", "2026-04-02", "--to", "2026-04-01")


@pytest.mark.real_worker
@pytest.mark.django_db(transaction=True)
def test_a_rebuild_process_killed_inside_a_chunk_leaves_it_whole_and_a_rerun_equals_a_clean_rebuild(coach, other_coach):
    """PostgreSQL, a real process: ``rollups_rebuild`` is SIGKILLed while a chunk's transaction is open (its
    coaches' days already deleted in it, blocked on a platform row this test holds). The chunks before it
    are rebuilt, the killed one and those after it are exactly as before; a rerun gives the clean buckets."""
    import signal
    import subprocess
    import sys

    import psycopg
    from django.db import connection

    from tests.faults import procs

    for day in range(1, 9):
        processed(coach if day % 2 else other_coach, utc(4, day, day % 24), 30 + day)
        usage_record(coach, session=None, kind="original", seconds=60 * day, at=utc(4, day, 3))
    span = ["--from", "2026-04-01", "--to", "2026-04-08"]
    call_command("rollups_rebuild", *span, "--no-progress", verbosity=0)
    clean = snapshot()
    # Stale buckets everywhere (as after writes that bypassed the services).
    CoachUsageDay.objects.update(minutes=Decimal("999"))
    PlatformUsageBucket.objects.update(minutes=Decimal("999"))
    stale = snapshot()
    blocked_day = datetime.date(2026, 4, 5)
    holder = psycopg.connect(procs.database_url())  # a transaction of our own, holding one platform row
    proc = None
    try:
        holder.execute("SELECT id FROM coaching_platformusagebucket WHERE day = %s FOR UPDATE", [blocked_day])
        log = procs.log_file("rollups-killed").open("w")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "rollups_rebuild", *span, "--chunk-days", "1", "--no-progress"],
            cwd=procs.ROOT,
            env=procs.app_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def waiting_pid():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = "
                    "'Lock' AND query LIKE 'DELETE FROM \"coaching_platformusagebucket\"%%'"
                )
                row = cursor.fetchone()
            return row and row[0]

        pid = procs.wait_until(waiting_pid, timeout=60, what="the rebuild blocked inside the 5 April chunk")
        # Inside that chunk's transaction the coaches' 5 April days are already deleted: kill it there.
        procs.stop(proc, sig=signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL
    finally:
        holder.rollback()
        holder.close()
        procs.stop(proc)

    def gone():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            return cursor.fetchone()[0] == 0

    procs.wait_until(gone, timeout=30, what="the killed rebuild's backend to end")
    after = _nonzero(snapshot())
    before, want = _nonzero(stale), _nonzero(clean)
    assert after != want and after != before
    for key, fields in after.items():  # the chunks before the killed one landed, no part of it did
        expected = want if key[1][:10] < "2026-04-05" else before
        assert fields == expected[key], key
    assert CoachUsageDay.objects.filter(day=blocked_day).exists()  # the deletes of the killed chunk rolled back
    call_command("rollups_rebuild", *span, "--no-progress", verbosity=0)
    assert _nonzero(snapshot()) == want
    assert snapshot() == clean


@pytest.mark.parametrize("superuser", [True, False], ids=["superuser", "owner"])
@pytest.mark.django_db(transaction=True)
def test_a_seeded_crowd_lands_in_the_rollups_and_keeps_the_one_day_per_coach_key(superuser, monkeypatch, capsys):
    """``seed_demo --users --usage-logs`` writes its rows in bulk (on PostgreSQL with the roll-up's keys
    dropped for the load, its foreign-key checks skipped only as a superuser): every row counts in the
    roll-ups, no drift, and a coach still has one row a day."""
    from coaching.management.commands import seed_demo

    monkeypatch.setattr(seed_demo, "is_superuser", lambda: superuser)
    call_command("seed_demo", "--users", "40", "--usage-logs", "600", "--payments", "30", "--no-progress", verbosity=0)
    crowd = User.objects.filter(email__startswith="bench")
    assert crowd.count() == 40
    from coaching.models import Payment, UsageLog

    assert Payment.objects.filter(user__in=crowd).count() == 30
    logs = UsageLog.objects.filter(user__in=crowd)
    assert logs.count() == 600
    days = CoachUsageDay.objects.filter(user__in=crowd)
    assert sum(day.transcriptions for day in days) == 600
    assert sum(day.minutes for day in days) == sum(log.minutes for log in logs)
    capsys.readouterr()
    call_command("rollups_check")
    assert "No drift" in capsys.readouterr().out
    day = days.first()
    with pytest.raises(IntegrityError):
        CoachUsageDay.objects.create(user_id=day.user_id, day=day.day, tz=day.tz)
