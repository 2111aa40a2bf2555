import contextlib
import datetime
import random
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from tqdm import tqdm

from coaching import billing_rollups, rollups_build
from coaching.billing_services import customer_history_derive, subscriptions_bulk_create
from coaching.demo import DEMO_MARKER_EMAIL, DEMO_PASSWORDS, counters_from_ledger, demo_world
from coaching.models import CoachingSession, Payment, Plan, Subscription, UsageLog, User, minutes_from_seconds


class Command(BaseCommand):
    help = "Seed the deterministic demo world (once); --users/--usage-logs/--payments add a bulk crowd for benchmarks."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=2026, help="Random seed (default 2026).")
        parser.add_argument("--users", type=int, default=0, help="Extra generated coaches (bulk).")
        parser.add_argument(
            "--usage-logs", type=int, default=0, help="Usage logs (each with its session) over the extra coaches."
        )
        parser.add_argument(
            "--payments", type=int, default=0, help="Payments (with subscriptions) over the extra coaches."
        )
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bars.")

    def handle(self, *args, **opts):
        for name in ("users", "usage_logs", "payments"):
            if opts[name] < 0:
                raise CommandError(f"--{name.replace('_', '-')} must be zero or more.")
        if (opts["usage_logs"] or opts["payments"]) and not opts["users"]:
            raise CommandError("--usage-logs and --payments need --users to spread them over.")
        self.quiet = opts["no_progress"]
        if User.objects.filter(email=DEMO_MARKER_EMAIL).exists():
            self.stdout.write("The demo world is already there: nothing added.")
        else:
            builder = demo_world(seed=opts["seed"])
            builder.write()
            rollups_build.rebuild()  # the demo writes its rows in bulk: count them into the roll-ups
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo world: {len(builder.users)} users, {len(builder.sessions)} sessions, "
                    f"{len(builder.logs)} usage logs, {len(builder.payments)} payments."
                )
            )
        if opts["users"]:
            self.crowd(opts["users"], opts["usage_logs"], opts["payments"], seed=opts["seed"])
        self.stdout.write("Demo logins:")
        for email, password in DEMO_PASSWORDS.items():
            self.stdout.write(f"  {email} / {password}")

    def bar(self, total: int, label: str, unit: str = "rows"):
        return tqdm(total=total, desc=label, unit=unit, disable=self.quiet, mininterval=1)

    def crowd(self, users: int, usage_logs: int, payments: int, *, seed: int) -> None:
        """Bulk-insert a crowd of coaches for benchmarks, step by step, streaming (memory stays flat)."""
        rng = random.Random(seed + 1)
        now = datetime.datetime.now(datetime.UTC)
        coaches = self.crowd_coaches(users, rng=rng, now=now)
        self.crowd_sessions_and_logs(coaches, usage_logs, rng=rng, now=now)
        self.crowd_payments([pk for pk, _ in coaches], payments, rng=rng, now=now)
        self.crowd_counters([pk for pk, _ in coaches], now=now)
        self.crowd_rollups(usage_logs, now=now)
        self.stdout.write(self.style.SUCCESS(f"Crowd: {users} coaches, {usage_logs} usage logs, {payments} payments."))

    def crowd_coaches(self, users: int, *, rng: random.Random, now: datetime.datetime) -> list[tuple]:
        """Step 1: the coaches (``bench…@example.com``), four in five in Taipei; returns ``(id, plan)`` pairs."""
        start_index = User.objects.filter(email__startswith="bench").count()
        password = make_password("demo-user-password")
        plans = list(Plan.objects.values_list("code", flat=True))
        coaches: list[tuple] = []
        with self.bar(users, "coaches") as bar:
            for first in range(0, users, CHUNK):
                rows = [
                    User(
                        email=f"bench{start_index + i:07d}@example.com",
                        name=f"Bench coach {start_index + i}",
                        plan_id=plans[i % len(plans)],
                        password=password,
                        date_joined=now - datetime.timedelta(days=rng.randint(1, 730)),
                        country="TW" if i % 5 else "HK",
                        timezone="Asia/Taipei" if i % 5 else "Asia/Hong_Kong",
                    )
                    for i in range(first, min(users, first + CHUNK))
                ]
                User.objects.bulk_create(rows, batch_size=CHUNK)
                coaches.extend((u.pk, u.plan_id) for u in rows)
                bar.update(len(rows))
        return coaches

    def crowd_sessions_and_logs(self, coaches: list[tuple], count: int, *, rng, now) -> None:
        """Step 2: ``count`` sessions over the last year, in time order as a live system appends them, each
        with its ledger row (3 % failed with a free retry; 5 % of audio deleted 20 days later).

        PostgreSQL generates them itself (``crowd_in_database``); other databases get them by ``bulk_create``.
        """
        if connection.vendor == "postgresql":
            if count:
                self.crowd_in_database(coaches, count, seed=rng.randrange(2**31), now=now)
            return
        year = datetime.timedelta(days=365)
        with self.bar(count, "sessions + usage logs") as bar:
            for first in range(0, count, CHUNK):
                n = min(CHUNK, count - first)
                # This chunk's slice of the year, its instants sorted: the whole crowd is in time order.
                begin = now - year + year * first / count
                width = (year * n / count).total_seconds()
                instants = sorted(begin + datetime.timedelta(seconds=rng.random() * width) for _ in range(n))
                rows = [crowd_row(rng, coaches, at, now) for at in instants]
                with transaction.atomic():
                    create_rows(rows)
                bar.update(n)

    def crowd_in_database(self, coaches: list[tuple], count: int, *, seed: int, now: datetime.datetime) -> None:
        """Step 2 on PostgreSQL: the same crowd (``crowd_row``'s rules), generated by the server itself.

        Formatting 10M rows in Python for ``COPY`` runs at ~14k rows/s; ``INSERT … SELECT
        generate_series`` runs at several times that. The coaches go over once by ``COPY`` (a temporary
        numbered table the rows pick from at random); each chunk seeds ``random()`` (``setseed``) from
        ``seed``, so a run is repeatable. One transaction, the tables' plain indexes dropped for the load
        and built again after it (``loading``).
        """
        first_id = self.reserve_session_ids(count)
        year = datetime.timedelta(days=365).total_seconds()
        with self.loading(("coaching_coachingsession", "coaching_usagelog"), label="indexes") as cursor:
            cursor.execute("SET LOCAL work_mem = '64MB'")
            cursor.execute(
                "CREATE TEMPORARY TABLE crowd_coach (n integer PRIMARY KEY, id uuid NOT NULL, plan text NOT NULL)"
                " ON COMMIT DROP"
            )
            with cursor.copy("COPY crowd_coach (n, id, plan) FROM STDIN") as copy:
                for n, (pk, plan) in enumerate(coaches):
                    copy.write_row((n, pk, plan))
            with self.bar(count, "sessions + usage logs") as bar:
                for number, first in enumerate(range(0, count, SQL_CHUNK)):
                    n = min(SQL_CHUNK, count - first)
                    cursor.execute("SELECT setseed(%s)", [((seed + number * 7919) % 2_000_000) / 1_000_000 - 1])
                    cursor.execute(
                        CROWD_SQL,
                        {
                            "first_id": first_id + first,
                            "first": first,
                            "n": n,
                            "start": now - datetime.timedelta(seconds=year),
                            "step": year / count,
                            "coaches": len(coaches),
                            "now": now,
                        },
                    )
                    bar.update(n)

    @contextlib.contextmanager
    def loading(self, tables: tuple[str, ...], *, unique: bool = False, label: str):
        """One transaction that bulk-loads ``tables`` (PostgreSQL): their indexes but the primary key (and,
        with ``unique``, their unique constraints) are dropped before the load and built again after it,
        one sort each instead of millions of random inserts with their WAL; a run killed half-way leaves
        neither rows nor missing indexes. The loaded rows point at rows the seeder just wrote: as a
        superuser their foreign-key checks are skipped, otherwise they run before the indexes come back
        (a table with pending checks can't be altered). Yields the transaction's cursor."""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
            if is_superuser():
                skip_row_triggers()
            rebuild = [definition for table in tables for definition in drop_indexes(cursor, table, unique=unique)]
            yield cursor
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            with self.bar(len(rebuild), label, unit="indexes") as bar:
                for definition in rebuild:
                    cursor.execute(definition)
                    bar.update(1)

    @staticmethod
    def reserve_session_ids(count: int) -> int:
        """Take ``count`` consecutive ids from the sessions' sequence; returns the first."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence('coaching_coachingsession', 'id')")
            sequence = cursor.fetchone()[0]
            cursor.execute("SELECT nextval(%s)", [sequence])
            first = cursor.fetchone()[0]
            cursor.execute("SELECT setval(%s, %s)", [sequence, first + max(count, 1) - 1])
        return first

    def crowd_payments(self, ids: list, payments: int, *, rng: random.Random, now: datetime.datetime) -> None:
        """Step 3: subscriptions, each with a payment (3 % partly refunded)."""
        chunk = CHUNK
        prices = {p.code: p.price_monthly for p in Plan.objects.all()}
        with self.bar(payments, "subscriptions + payments") as bar:
            ref = Payment.objects.count()
            for first in range(0, payments, chunk):
                n = min(chunk, payments - first)
                with transaction.atomic():
                    subs = []
                    for _ in range(n):
                        plan = rng.choice(["student", "pro", "coaching_school"])
                        started = now - datetime.timedelta(days=rng.randint(1, 700))
                        ended = started + datetime.timedelta(days=rng.randint(30, 400)) if rng.random() < 0.2 else None
                        if ended and ended > now:
                            ended = None
                        subs.append(
                            Subscription(
                                user_id=rng.choice(ids),
                                plan_id=plan,
                                status="cancelled" if ended else "active",
                                started_at=started,
                                ended_at=ended,
                                cancelled_at=ended,
                                price=prices[plan],
                            )
                        )
                    subscriptions_bulk_create(subs, batch_size=chunk, derive=False)  # with their histories
                    rows = []
                    for sub in subs:
                        ref += 1
                        paid = sub.started_at + datetime.timedelta(days=rng.randint(0, 25))
                        refunded = rng.random() < 0.03
                        rows.append(
                            Payment(
                                user_id=sub.user_id,
                                subscription=sub,
                                amount=sub.price,
                                status="partially_refunded" if refunded else "succeeded",
                                paid_at=paid,
                                refunded_amount=(sub.price / 2).quantize(Decimal("0.01")) if refunded else Decimal("0"),
                                refunded_at=paid + datetime.timedelta(days=3) if refunded else None,
                                provider_reference=f"BENCH{ref:010d}",
                                created_at=paid,
                            )
                        )
                    Payment.objects.bulk_create(rows, batch_size=chunk)
                bar.update(n)
        customer_history_derive(ids)
        billing_rollups.users_added(ids)  # the coaches, their histories and payments came in bulk

    def crowd_counters(self, ids: list, *, now: datetime.datetime) -> None:
        """Step 4: each coach's month counters, from the ledger just written."""
        counters_from_ledger(User.objects.filter(pk__in=ids), now=now)

    def crowd_rollups(self, usage_logs: int, *, now: datetime.datetime) -> None:
        """Step 5: the usage roll-ups of the crowd's year (the bulk rows bypassed the services' hooks)."""
        if not usage_logs:
            return
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for table in ("coaching_user", "coaching_coachingsession", "coaching_usagelog"):
                    cursor.execute(f"ANALYZE {table}")
        first = (now - datetime.timedelta(days=366)).date()
        last = now.date() + datetime.timedelta(days=1)
        if connection.vendor != "postgresql":
            with self.bar((last - first).days + 1, "roll-ups", unit="days") as bar:
                rollups_build.rebuild(first, last, chunk_days=31, progress=bar.update)
            return
        # Millions of coach-days: inserted without the table's key (each row into B-trees at random places,
        # with their WAL, was most of the time); a run killed here leaves the roll-ups as they were.
        with self.loading(("coaching_coachusageday",), unique=True, label="roll-up keys"):
            with self.bar((last - first).days + 1, "roll-ups", unit="days") as bar:
                rollups_build.rebuild(first, last, chunk_days=31, progress=bar.update)


CHUNK = 5000
SQL_CHUNK = 250_000
# One chunk of the crowd, by crowd_row's rules: instant i of the chunk in its own slice of the year
# (so the rows come in time order), a random coach, 600-5400 s, 3 % failed (a free retry), 5 % of the
# audio deleted 20 days later (if that is past). Sessions and their ledger rows from one pass.
CROWD_SQL = """
    WITH crowd AS MATERIALIZED (
        SELECT g.sid, g.at, g.seconds, g.failed, c.id AS coach, c.plan,
               g.at + make_interval(secs => g.seconds / 5) AS fin,
               CASE WHEN g.gone AND g.at + interval '20 days' < %(now)s THEN g.at + interval '20 days' END AS deleted
        FROM (
            SELECT %(first_id)s + i AS sid,
                   %(start)s::timestamptz + make_interval(secs => (%(first)s + i + random()) * %(step)s) AS at,
                   floor(random() * %(coaches)s)::int AS pick,
                   600 + floor(random() * 4801)::int AS seconds,
                   random() < 0.03 AS failed,
                   random() < 0.05 AS gone
            FROM generate_series(0, %(n)s - 1) AS i
        ) g
        JOIN crowd_coach c ON c.n = g.pick
    ),
    sessions AS (
        INSERT INTO coaching_coachingsession (id, coach_id, title, session_date, audio_filename, audio_size_bytes,
            duration_seconds, language, stt_provider, provider_cost_usd, status, processing_started_at,
            processing_finished_at, error_message, fee_currency, created_at, deleted_at)
        SELECT sid, coach, 'Benchmark session', (at AT TIME ZONE 'UTC')::date, 'bench.m4a', seconds * 16000::bigint,
               seconds, 'cmn-Hant-TW', 'google', 0.5000, CASE WHEN failed THEN 'failed' ELSE 'completed' END,
               at, fin, CASE WHEN failed THEN 'Provider timeout' ELSE '' END, '', at, deleted
        FROM crowd ORDER BY sid
    )
    INSERT INTO coaching_usagelog (user_id, session_id, kind, seconds, minutes, provider, provider_cost_usd, billable,
        plan_code, created_at)
    SELECT coach, sid, CASE WHEN failed THEN 'retry_failed' ELSE 'original' END, seconds,
           round(seconds::numeric / 60, 2), 'google', 0.5000, NOT failed, plan, fin
    FROM crowd ORDER BY sid
"""


def crowd_row(rng: random.Random, coaches: list[tuple], at: datetime.datetime, now: datetime.datetime) -> tuple:
    """One session and its ledger row: ``(coach, plan, at, seconds, failed, finished, deleted)``."""
    coach, plan = coaches[rng.randrange(len(coaches))]
    seconds = rng.randint(600, 5400)
    failed = rng.random() < 0.03
    finished = at + datetime.timedelta(seconds=seconds // 5)
    deleted = at + datetime.timedelta(days=20) if rng.random() < 0.05 else None
    return coach, plan, at, seconds, failed, finished, deleted if deleted and deleted < now else None


def _session_values(row: tuple) -> dict:
    coach, plan, at, seconds, failed, finished, deleted = row
    return {
        "coach_id": coach,
        "title": "Benchmark session",
        "session_date": at.date(),
        "audio_filename": "bench.m4a",
        "audio_size_bytes": seconds * 16000,
        "duration_seconds": seconds,
        "language": "cmn-Hant-TW",
        "stt_provider": "google",
        "provider_cost_usd": Decimal("0.5000"),
        "status": "failed" if failed else "completed",
        "processing_started_at": at,
        "processing_finished_at": finished,
        "error_message": "Provider timeout" if failed else "",
        "fee_currency": "",
        "created_at": at,
        "deleted_at": deleted,
    }


def _log_values(row: tuple) -> dict:
    coach, plan, at, seconds, failed, finished, deleted = row
    return {
        "user_id": coach,
        "kind": "retry_failed" if failed else "original",
        "seconds": seconds,
        "minutes": minutes_from_seconds(seconds),
        "provider": "google",
        "provider_cost_usd": Decimal("0.5000"),
        "billable": not failed,
        "plan_code": plan,
        "created_at": finished,
    }


def create_rows(rows: list[tuple]) -> None:
    sessions = [CoachingSession(**_session_values(row)) for row in rows]
    CoachingSession.objects.bulk_create(sessions, batch_size=CHUNK)
    UsageLog.objects.bulk_create(
        [UsageLog(session=s, **_log_values(row)) for s, row in zip(sessions, rows, strict=True)], batch_size=CHUNK
    )


def is_superuser() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        return bool(cursor.fetchone()[0])


def drop_indexes(cursor, table: str, *, unique: bool = False) -> list[str]:
    """Drop ``table``'s indexes but its primary key: the plain ones, and with ``unique`` its unique
    constraints too. Returns the statements that build them again (foreign keys need no index here)."""
    cursor.execute(
        """
        SELECT i.relname, c.conname, pg_get_indexdef(i.oid), pg_get_constraintdef(c.oid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
        LEFT JOIN pg_constraint c ON c.conindid = i.oid AND c.conrelid = t.oid
        WHERE t.relname = %s AND NOT x.indisprimary AND (%s OR NOT x.indisunique)
        """,
        [table, unique],
    )
    rebuild = []
    for index, constraint, index_definition, constraint_definition in cursor.fetchall():
        if constraint:
            cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}"')
            rebuild.append(f'ALTER TABLE "{table}" ADD CONSTRAINT "{constraint}" {constraint_definition}')
        else:
            cursor.execute(f'DROP INDEX "{index}"')
            rebuild.append(index_definition)
    return rebuild


def skip_row_triggers() -> None:
    """For this transaction, skip the foreign-key check of every copied row (the seeder writes ids it
    just created or reserved): ``session_replication_role = replica``, which needs a superuser."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
