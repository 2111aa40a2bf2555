import datetime
import random
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from coaching import rollups_build
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

    def bar(self, total: int, label: str):
        return tqdm(total=total, desc=label, unit="rows", disable=self.quiet, mininterval=1)

    def crowd(self, users: int, usage_logs: int, payments: int, *, seed: int) -> None:
        """Bulk-insert a crowd of coaches for benchmarks, in chunks, streaming (memory stays flat)."""
        rng = random.Random(seed + 1)
        now = datetime.datetime.now(datetime.UTC)
        start_index = User.objects.filter(email__startswith="bench").count()
        password = make_password("demo-user-password")
        plans = list(Plan.objects.values_list("code", flat=True))
        prices = {p.code: p.price_monthly for p in Plan.objects.all()}
        chunk = 5000
        ids: list = []
        with self.bar(users, "users") as bar:
            for first in range(0, users, chunk):
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
                    for i in range(first, min(users, first + chunk))
                ]
                User.objects.bulk_create(rows, batch_size=chunk)
                ids.extend(u.pk for u in rows)
                bar.update(len(rows))
        with self.bar(usage_logs, "sessions + usage logs") as bar:
            for first in range(0, usage_logs, chunk):
                n = min(chunk, usage_logs - first)
                with transaction.atomic():
                    sessions = []
                    for _ in range(n):
                        at = now - datetime.timedelta(seconds=rng.randint(3600, 365 * 86400))
                        seconds = rng.randint(600, 5400)
                        sessions.append(
                            CoachingSession(
                                coach_id=rng.choice(ids),
                                title="Benchmark session",
                                session_date=at.date(),
                                audio_size_bytes=seconds * 16000,
                                duration_seconds=seconds,
                                status="completed",
                                processing_started_at=at,
                                processing_finished_at=at + datetime.timedelta(seconds=seconds // 5),
                                provider_cost_usd=Decimal("0.5000"),
                                created_at=at,
                            )
                        )
                    CoachingSession.objects.bulk_create(sessions, batch_size=chunk)
                    UsageLog.objects.bulk_create(
                        [
                            UsageLog(
                                user_id=s.coach_id,
                                session=s,
                                kind="original",
                                seconds=s.duration_seconds,
                                minutes=minutes_from_seconds(s.duration_seconds),
                                provider="google",
                                provider_cost_usd=s.provider_cost_usd,
                                billable=True,
                                plan_code="pro",
                                created_at=s.processing_finished_at,
                            )
                            for s in sessions
                        ],
                        batch_size=chunk,
                    )
                bar.update(n)
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
                    Subscription.objects.bulk_create(subs, batch_size=chunk)
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
        counters_from_ledger(User.objects.filter(pk__in=ids), now=now)
        self.stdout.write(self.style.SUCCESS(f"Crowd: {users} coaches, {usage_logs} usage logs, {payments} payments."))
