"""A deterministic demo world, and the bulk generator that scales it up for benchmarks.

Everything is built in memory from a seeded ``random.Random`` and written with
``bulk_create``; the month's counters are then derived from the ledger so that
they agree with it exactly.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from . import billing_rollups
from .billing_services import subscriptions_bulk_create
from .models import (
    ApiUsage,
    Client,
    CoachingSession,
    ExportRecord,
    MonthlyUsage,
    Payment,
    Plan,
    Subscription,
    UsageLog,
    User,
)
from .models.usage import month_start
from .services import usage_log_build
from .timezones import local_midnight

DEMO_PASSWORDS = {
    "coach@example.com": "coach-demo-2026",
    "staff@example.com": "staff-demo-2026",
    "admin@example.com": "admin-demo-2026",
}
DEMO_MARKER_EMAIL = "coach@example.com"

ZH_SURNAMES = "王李張劉陳楊黃趙吳周徐孫馬朱胡郭何林高羅"
ZH_GIVEN = ["小明", "美玲", "志豪", "淑芬", "家豪", "怡君", "俊傑", "雅婷", "建宏", "佩珊", "宗翰", "詩涵"]
EN_FIRST = ["Alice", "Ben", "Chloe", "Daniel", "Emma", "Felix", "Grace", "Henry", "Ivy", "Jack", "Kate", "Leo"]
EN_LAST = ["Chen", "Lin", "Smith", "Wang", "Taylor", "Huang", "Brown", "Wu", "Jones", "Tsai"]
TITLES = [
    "Goal setting",
    "Career review",
    "Leadership check-in",
    "Values work",
    "Follow-up",
    "Feedback practice",
    "職涯探索",
    "目標設定",
    "領導力教練",
]
ERRORS = ["Audio could not be decoded", "Provider timeout after 600 s", "Unsupported sample rate"]
COUNTRIES = ["TW", "TW", "TW", "TW", "HK", "SG", "US", "JP", "MY"]
TIMEZONES = {
    "TW": "Asia/Taipei",
    "HK": "Asia/Hong_Kong",
    "SG": "Asia/Singapore",
    "US": "America/Los_Angeles",
    "JP": "Asia/Tokyo",
    "MY": "Asia/Kuala_Lumpur",
}
BYTES_PER_SECOND = 16_000  # ~128 kbit/s audio


def _zh_name(rng: random.Random) -> str:
    return rng.choice(ZH_SURNAMES) + rng.choice(ZH_GIVEN)


def _en_name(rng: random.Random) -> str:
    return f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"


class WorldBuilder:
    """Collects rows in memory, then writes them in bulk."""

    def __init__(self, *, seed: int, now: datetime.datetime):
        self.rng = random.Random(seed)
        self.now = now
        self.plans = {p.code: p for p in Plan.objects.all()}
        self.password = make_password("demo-user-password")  # one hash for the generated crowd
        self.users: list[User] = []
        self.clients: list[Client] = []
        self.sessions: list[CoachingSession] = []
        self.logs: list[UsageLog] = []
        self.subscriptions: list[Subscription] = []
        self.payments: list[tuple[Payment, int]] = []  # (payment, index of its subscription)
        self.exports: list[ExportRecord] = []
        self.api_usage: list[ApiUsage] = []
        self._ref = 0

    # -- people ---------------------------------------------------------------------------
    def user(
        self, email: str, *, name: str, plan: str = "free", joined=None, password: str | None = None, **extra
    ) -> User:
        country = extra.pop("country", None) or self.rng.choice(COUNTRIES)
        user = User(
            email=email,
            name=name,
            plan_id=plan,
            country=country,
            timezone=extra.pop("timezone", TIMEZONES[country]),
            language=extra.pop("language", "zh-hant" if country in ("TW", "HK") else "en"),
            date_joined=joined or self.now - datetime.timedelta(days=self.rng.randint(1, 500)),
            password=make_password(password) if password else self.password,
            **extra,
        )
        self.users.append(user)
        return user

    def clients_for(self, coach: User, count: int) -> list[Client]:
        made = []
        for i in range(count):
            name = _zh_name(self.rng) if i % 2 == 0 else _en_name(self.rng)
            made.append(Client(coach=coach, name=name, created_at=coach.date_joined + datetime.timedelta(days=i)))
        self.clients.extend(made)
        return made

    # -- activity -------------------------------------------------------------------------
    def sessions_for(self, coach: User, clients: list[Client], *, months: int, per_month: tuple[int, int]) -> None:
        start = max(coach.date_joined, self.now - datetime.timedelta(days=30 * months))
        day = start
        while day < self.now - datetime.timedelta(hours=2):
            for _ in range(self.rng.randint(*per_month)):
                at = day + datetime.timedelta(days=self.rng.random() * 30, hours=self.rng.random() * 3)
                if at >= self.now - datetime.timedelta(hours=1):
                    continue
                self._session(coach, self.rng.choice(clients), at)
            day += datetime.timedelta(days=30)

    def _session(self, coach: User, client: Client, at: datetime.datetime) -> None:
        rng = self.rng
        seconds = rng.randint(15 * 60, 90 * 60)
        provider = rng.choice(["google", "google", "assemblyai"])
        cost = (Decimal(seconds) / 60 * Decimal("0.016")).quantize(Decimal("0.0001"))
        started = at + datetime.timedelta(seconds=rng.randint(5, 120))
        finished = started + datetime.timedelta(seconds=max(30, seconds // rng.randint(4, 8)))
        failed = rng.random() < 0.08
        with_fee = rng.random() < 0.6
        session = CoachingSession(
            coach=coach,
            client=client,
            title=rng.choice(TITLES),
            session_date=at.astimezone(coach.tzinfo).date(),
            audio_filename=f"session-{len(self.sessions) + 1}.m4a",
            audio_size_bytes=seconds * BYTES_PER_SECOND,
            duration_seconds=seconds,
            language="cmn-Hant-TW" if rng.random() < 0.7 else "en-US",
            stt_provider=provider,
            provider_cost_usd=cost,
            status="failed" if failed else "completed",
            processing_started_at=started,
            processing_finished_at=finished,
            error_message=rng.choice(ERRORS) if failed else "",
            fee_amount=Decimal(rng.choice([1500, 2000, 2500, 3000])) if with_fee else None,
            fee_currency="TWD" if with_fee else "",
            created_at=at,
            deleted_at=at + datetime.timedelta(days=20)
            if rng.random() < 0.05 and at < self.now - datetime.timedelta(days=30)
            else None,
        )
        self.sessions.append(session)
        if failed:
            if rng.random() < 0.6:  # a free retry after the failure, which succeeds
                retry_at = finished + datetime.timedelta(minutes=rng.randint(5, 60))
                if retry_at < self.now:
                    self._log(coach, session, UsageLog.Kind.RETRY_FAILED, seconds, retry_at)
            return
        self._log(coach, session, UsageLog.Kind.ORIGINAL, seconds, finished)
        if rng.random() < 0.03:  # a paid re-transcription
            again = finished + datetime.timedelta(days=1)
            if again < self.now:
                self._log(coach, session, UsageLog.Kind.RETRY_SUCCESS, seconds, again)

    def _log(self, user: User, session: CoachingSession | None, kind: str, seconds: int, at) -> None:
        self.logs.append(usage_log_build(user, session=session, kind=kind, seconds=seconds, at=at))

    def exports_for(self, user: User, count: int) -> None:
        formats = [f for f in ("csv", "pdf", "xlsx") if f in self.plans[user.plan_id].export_formats]
        for _ in range(count):
            at = self.now - datetime.timedelta(days=self.rng.randint(0, 360), hours=self.rng.randint(0, 23))
            ok = self.rng.random() > 0.1
            fmt = self.rng.choice(formats)
            self.exports.append(
                ExportRecord(
                    requested_by=user,
                    subject=user,
                    format=fmt,
                    period_start=(at - datetime.timedelta(days=30)).date(),
                    period_end=at.date(),
                    status="succeeded" if ok else "failed",
                    rows=self.rng.randint(10, 200) if ok else 0,
                    bytes=self.rng.randint(2_000, 90_000) if ok else 0,
                    created_at=at,
                    started_at=at,
                    finished_at=at + datetime.timedelta(seconds=2),
                    error="" if ok else "Renderer ran out of time",
                )
            )

    def api_usage_for(self, user: User, days: int) -> None:
        today = self.now.date()
        for offset in range(days):
            if self.rng.random() < 0.7:
                self.api_usage.append(
                    ApiUsage(user=user, day=today - datetime.timedelta(days=offset), count=self.rng.randint(1, 60))
                )

    # -- billing --------------------------------------------------------------------------
    def subscription(
        self,
        user: User,
        plan: str,
        *,
        cycle: str = "monthly",
        start,
        end=None,
        cancelled=None,
        status=None,
        refund_one: bool = False,
    ) -> Subscription:
        plan_obj = self.plans[plan]
        price = plan_obj.price_for(cycle)
        if status is None:
            status = "cancelled" if end else "active"
        sub = Subscription(
            user=user,
            plan=plan_obj,
            billing_cycle=cycle,
            status=status,
            started_at=start,
            current_period_end=None,
            cancelled_at=cancelled or end,
            ended_at=end,
            price=price,
            currency="TWD",
        )
        self.subscriptions.append(sub)
        index = len(self.subscriptions) - 1
        step = 365 if cycle == "annual" else 30
        paid = start
        last_paid = start
        stop = end or self.now
        while paid < stop:
            self._ref += 1
            fails = status == "past_due" and paid + datetime.timedelta(days=step) >= stop
            payment = Payment(
                user=user,
                amount=price,
                currency="TWD",
                status="failed" if fails else "succeeded",
                paid_at=None if fails else paid,
                failure_reason="Card declined" if fails else "",
                provider_reference=f"TXN{self._ref:09d}",
                created_at=paid,
            )
            if refund_one and not fails and self._ref % 5 == 0:
                payment.refunded_amount = (price / 2).quantize(Decimal("0.01"))
                payment.refunded_at = min(paid + datetime.timedelta(days=40), self.now)
                payment.status = "partially_refunded"
            self.payments.append((payment, index))
            last_paid = paid
            paid += datetime.timedelta(days=step)
        sub.current_period_end = last_paid + datetime.timedelta(days=step)
        return sub

    # -- writing --------------------------------------------------------------------------
    def write(self, progress: Callable[[str, int], None] = lambda label, n: None) -> None:
        batch = 5000
        with transaction.atomic():
            for label, rows in (
                ("users", self.users),
                ("clients", self.clients),
                ("sessions", self.sessions),
                ("usage logs", self.logs),
            ):
                for i in range(0, len(rows), batch):
                    type(rows[0]).objects.bulk_create(rows[i : i + batch])
                    progress(label, len(rows[i : i + batch]))
            subscriptions_bulk_create(self.subscriptions)  # with their histories
            progress("subscriptions", len(self.subscriptions))
            payments = []
            for payment, index in self.payments:
                payment.subscription = self.subscriptions[index]
                payments.append(payment)
            for label, rows in (("payments", payments), ("exports", self.exports), ("api usage", self.api_usage)):
                for i in range(0, len(rows), batch):
                    type(rows[0]).objects.bulk_create(rows[i : i + batch])
                    progress(label, len(rows[i : i + batch]))
            counters_from_ledger(User.objects.filter(pk__in=[u.pk for u in self.users]), now=self.now)
            # Users and payments came by bulk_create (no signals): count them into the billing roll-up.
            billing_rollups.users_added([u.pk for u in self.users], events=False)


def counters_from_ledger(users, *, now: datetime.datetime) -> int:
    """Set each user's counters to what the ledger says for their current local month."""
    made = 0
    by_tz: dict[str, list] = {}
    for pk, tz in users.values_list("pk", "timezone"):
        by_tz.setdefault(tz, []).append(pk)
    for tz_name, pks in by_tz.items():
        tz = User(timezone=tz_name).tzinfo
        period = month_start(now, tz)
        since = local_midnight(period, tz)
        for i in range(0, len(pks), 5000):
            chunk = pks[i : i + 5000]
            totals = (
                UsageLog.objects.filter(user_id__in=chunk, created_at__gte=since, created_at__lte=now)
                .values("user_id")
                .annotate(
                    minutes=Sum("minutes", filter=Q(kind__in=UsageLog.QUOTA_KINDS)),
                    sessions=Count("id", filter=Q(kind=UsageLog.Kind.ORIGINAL)),
                    transcriptions=Count("id", filter=~Q(kind=UsageLog.Kind.ADJUSTMENT)),
                )
            )
            rows = [
                MonthlyUsage(
                    user_id=t["user_id"],
                    period=period,
                    minutes=t["minutes"] or Decimal("0"),
                    sessions=t["sessions"],
                    transcriptions=t["transcriptions"],
                )
                for t in totals
            ]
            MonthlyUsage.objects.filter(user_id__in=chunk).delete()
            MonthlyUsage.objects.bulk_create(rows)
            made += len(rows)
    return made


def demo_world(*, seed: int = 2026, now: datetime.datetime | None = None) -> WorldBuilder:
    """The documented demo world: three logins and a small, varied practice around them.

    The steps run in this order and draw from one seeded generator: reordering them changes the data.
    """
    now = now or timezone.now()
    b = WorldBuilder(seed=seed, now=now)
    year_ago = now - datetime.timedelta(days=400)
    coach = demo_logins(b, joined=year_ago)
    coach_clients = demo_coach_practice(b, coach)
    demo_processing_burst(b, coach, coach_clients)
    demo_live_session(b, coach, coach_clients)
    b.exports_for(coach, 24)
    b.api_usage_for(coach, 120)
    demo_coach_subscriptions(b, coach, since=year_ago)
    for i in range(24):
        demo_crowd_coach(b, i)
    return b


def demo_logins(b: WorldBuilder, *, joined: datetime.datetime) -> User:
    """The three documented logins (coach, staff, admin); returns the coach."""
    coach = b.user(
        "coach@example.com",
        name="王小明",
        plan="pro",
        joined=joined,
        password=DEMO_PASSWORDS["coach@example.com"],
        country="TW",
    )
    b.user(
        "staff@example.com",
        name="Staff Member",
        plan="free",
        joined=joined,
        password=DEMO_PASSWORDS["staff@example.com"],
        country="TW",
        is_staff=True,
    )
    b.user(
        "admin@example.com",
        name="Admin",
        plan="free",
        joined=joined,
        password=DEMO_PASSWORDS["admin@example.com"],
        country="TW",
        is_staff=True,
        is_superuser=True,
    )
    return coach


def demo_coach_practice(b: WorldBuilder, coach: User) -> list[Client]:
    """The coach's eight clients (two with names the docs use) and 13 months of sessions."""
    coach_clients = b.clients_for(coach, 8)
    coach_clients[1].name = "Emily Carter"
    coach_clients[0].name = "陳美玲"
    b.sessions_for(coach, coach_clients, months=13, per_month=(12, 22))
    return coach_clients


def demo_processing_burst(b: WorldBuilder, coach: User, coach_clients: list[Client]) -> None:
    """Three uploads processed side by side a few days ago: the concurrency peak of 3."""
    now = b.now
    burst = now - datetime.timedelta(days=3, hours=5)
    for offset in (0, 4, 9):
        b._session(coach, coach_clients[offset % 3], burst + datetime.timedelta(minutes=offset))
    for session in b.sessions[-3:]:
        session.status, session.error_message = "completed", ""
        session.processing_started_at = burst + datetime.timedelta(minutes=10)
        session.processing_finished_at = burst + datetime.timedelta(minutes=40)
    b.logs = [log for log in b.logs if log.session not in b.sessions[-3:]]
    for session in b.sessions[-3:]:
        b._log(coach, session, UsageLog.Kind.ORIGINAL, session.duration_seconds, session.processing_finished_at)


def demo_live_session(b: WorldBuilder, coach: User, coach_clients: list[Client]) -> None:
    """One upload still processing now (no usage yet)."""
    now = b.now
    b._session(coach, coach_clients[2], now - datetime.timedelta(minutes=20))
    live = b.sessions[-1]
    live.status, live.error_message, live.processing_finished_at = "processing", "", None
    b.logs = [log for log in b.logs if log.session is not live]


def demo_coach_subscriptions(b: WorldBuilder, coach: User, *, since: datetime.datetime) -> None:
    """The coach paid for student, then upgraded to pro seven months ago."""
    now, year_ago = b.now, since
    upgrade = now - datetime.timedelta(days=210)
    b.subscription(coach, "student", start=year_ago, end=upgrade, cancelled=upgrade, status="cancelled")
    b.subscription(coach, "pro", start=upgrade, refund_one=True)


def demo_crowd_coach(b: WorldBuilder, i: int) -> None:
    """Coach ``i`` of the 24 others: every plan in turn, their practice, and their billing
    (a churned customer, annual and monthly payers, one past due, one test account)."""
    now = b.now
    zh = i % 2 == 0
    plan = ["free", "student", "pro", "coaching_school"][i % 4]
    joined = now - datetime.timedelta(days=b.rng.randint(20, 420))
    person = b.user(
        f"coach{i + 1:02d}@example.com",
        name=_zh_name(b.rng) if zh else _en_name(b.rng),
        plan=plan,
        joined=joined,
        is_test_account=(i == 23),
    )
    b.sessions_for(person, b.clients_for(person, b.rng.randint(2, 6)), months=13, per_month=(2, 8))
    b.exports_for(person, b.rng.randint(0, 6))
    b.api_usage_for(person, 60)
    if plan == "free":
        if i % 8 == 0:  # a churned customer: paid for a while, then left
            end = now - datetime.timedelta(days=b.rng.randint(5, 90))
            b.subscription(person, "student", start=joined, end=end, cancelled=end - datetime.timedelta(days=10))
        return
    cycle = "annual" if i % 3 == 0 else "monthly"
    status = "past_due" if i % 7 == 0 else None
    b.subscription(person, plan, cycle=cycle, start=joined, status=status, refund_one=(i % 5 == 0))
