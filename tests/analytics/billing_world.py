"""A hand-made billing history with known answers, in Asia/Taipei (UTC+8, no DST).

Reporting month: March 2026 in Taipei = [2026-02-28 16:00 UTC, 2026-03-31 16:00 UTC); "now" is
15 April 2026. Who is who (every figure in the tests follows from this list):

  A  joined 3 Mar; pro monthly 899 from 3 Mar, cancelled and ended 20 Mar; paid 899 on 3 Mar.
     -> a March sign-up who also churned in March.
  B  joined Dec 2025; pro monthly 899 since 10 Jan (running); student 299 from 1 Feb, ended 10 Mar;
     paid 299 on 1 Feb and 899 on 10 Mar.  -> cancelled one of two subscriptions: not churned.
  C  joined 1 Feb; student 299 from 1 Feb, ended exactly at 1 Mar 00:00 Taipei (the period's start);
     paid 299 on 20 Feb, refunded in full on 5 Mar.  -> churn of March (and in March's opening base);
     the refund lands in March, the payment stays in February.
  D  Japan; pro annual 7,641.50 since June 2025.  -> MRR 636.79…
  E  Hong Kong; pro monthly 899, past_due since 1 Jan; paid 1 Jan; a failed charge on 1 Mar.
  H  joined 28 Feb 23:59:59 Taipei (15:59:59 UTC): a February sign-up, one second before March;
     student 299 from then until exactly 1 Apr 00:00 Taipei (the period's end): paying at March's close,
     not March churn; paid 299 at 1 Mar 00:30 Taipei (28 Feb 16:30 UTC: March revenue) and 299 at
     1 Apr 00:00 Taipei (April revenue).
  I  joined 31 Mar 23:59:59 Taipei: the last March sign-up; never paid.
  J  a trial of pro since 10 Mar and a free-plan subscription: never paying.
  F  a test account, G staff, K a superuser: each with a running pro subscription and a March payment;
     none of them ever counts.
"""

from __future__ import annotations

import datetime
import zoneinfo
from decimal import Decimal

from analytics.periods import Period, range_period
from coaching.models import Payment, Plan, Subscription, User
from tests.factories import PaymentFactory, SubscriptionFactory

TAIPEI = zoneinfo.ZoneInfo("Asia/Taipei")
NOW = datetime.datetime(2026, 4, 15, 12, 0, tzinfo=TAIPEI)


def tpe(*args) -> datetime.datetime:
    """A Taipei wall-clock time."""
    return datetime.datetime(*args, tzinfo=TAIPEI)


def month(first: datetime.date, last: datetime.date) -> Period:
    return range_period(first, last, tz=TAIPEI)


MARCH = month(datetime.date(2026, 3, 1), datetime.date(2026, 3, 31))
FEBRUARY = month(datetime.date(2026, 2, 1), datetime.date(2026, 2, 28))
APRIL = month(datetime.date(2026, 4, 1), datetime.date(2026, 4, 30))
FEB_AND_MARCH = month(datetime.date(2026, 2, 1), datetime.date(2026, 3, 31))

PRICES = {
    ("pro", "monthly"): Decimal("899.00"),
    ("pro", "annual"): Decimal("7641.50"),
    ("student", "monthly"): Decimal("299.00"),
    ("free", "monthly"): Decimal("0.00"),
}


def user(email: str, *, joined: datetime.datetime, **extra) -> User:
    """A user who never logs in (an unusable password: no hashing, so the world builds fast)."""
    extra.setdefault("plan", Plan.objects.get(code="pro"))
    return User.objects.create(email=email, name=email.split("@")[0], date_joined=joined, password="!", **extra)


def sub(who: User, plan: str, *, start, end=None, cycle: str = "monthly", status: str | None = None) -> Subscription:
    if status is None:
        status = Subscription.Status.CANCELLED if end else Subscription.Status.ACTIVE
    return SubscriptionFactory(
        user=who,
        plan=Plan.objects.get(code=plan),
        billing_cycle=cycle,
        status=status,
        started_at=start,
        cancelled_at=end,
        ended_at=end,
        price=PRICES[(plan, cycle)],
    )


def pay(
    who: User, amount: str, *, at, subscription=None, status: str = "succeeded", refunded=None, currency: str = "TWD"
) -> Payment:
    extra = {"currency": currency}
    if refunded:
        refund_amount, refund_at = refunded
        extra.update(refunded_amount=Decimal(refund_amount), refunded_at=refund_at)
    return PaymentFactory(
        user=who, subscription=subscription, amount=Decimal(amount), status=status, paid_at=at, **extra
    )


def build() -> dict[str, User]:
    """The history above; returns the users by letter."""
    a = user("a@example.com", joined=tpe(2026, 3, 3, 10))
    a1 = sub(a, "pro", start=tpe(2026, 3, 3, 10), end=tpe(2026, 3, 20, 9))
    pay(a, "899.00", at=tpe(2026, 3, 3, 10), subscription=a1)

    b = user("b@example.com", joined=tpe(2025, 12, 1, 9))
    b1 = sub(b, "pro", start=tpe(2026, 1, 10, 9))
    b2 = sub(b, "student", start=tpe(2026, 2, 1, 10), end=tpe(2026, 3, 10, 10))
    pay(b, "299.00", at=tpe(2026, 2, 1, 10), subscription=b2)
    pay(b, "899.00", at=tpe(2026, 3, 10, 9), subscription=b1)

    c = user("c@example.com", joined=tpe(2026, 2, 1, 8))
    c1 = sub(c, "student", start=tpe(2026, 2, 1, 8), end=MARCH.start)
    pay(c, "299.00", at=tpe(2026, 2, 20, 12), subscription=c1, status="refunded", refunded=("299.00", tpe(2026, 3, 5)))

    d = user("d@example.com", joined=tpe(2025, 5, 20), country="JP", timezone="Asia/Tokyo")
    d1 = sub(d, "pro", cycle="annual", start=tpe(2025, 6, 1))
    pay(d, "7641.50", at=tpe(2025, 6, 1), subscription=d1)

    e = user("e@example.com", joined=tpe(2025, 10, 1), country="HK", timezone="Asia/Hong_Kong")
    e1 = sub(e, "pro", start=tpe(2026, 1, 1), status=Subscription.Status.PAST_DUE)
    pay(e, "899.00", at=tpe(2026, 1, 1), subscription=e1)
    pay(e, "899.00", at=None, subscription=e1, status="failed")

    h = user("h@example.com", joined=datetime.datetime(2026, 2, 28, 15, 59, 59, tzinfo=datetime.UTC))
    h1 = sub(h, "student", start=h.date_joined, end=MARCH.end)
    pay(h, "299.00", at=datetime.datetime(2026, 2, 28, 16, 30, tzinfo=datetime.UTC), subscription=h1)
    pay(h, "299.00", at=tpe(2026, 4, 1), subscription=h1)

    i = user("i@example.com", joined=tpe(2026, 3, 31, 23, 59, 59))

    j = user("j@example.com", joined=tpe(2025, 1, 1), plan=Plan.objects.get(code="free"))
    sub(j, "free", start=tpe(2025, 1, 1))
    sub(j, "pro", start=tpe(2026, 3, 10), status=Subscription.Status.TRIALING)

    hidden = {
        "f": {"is_test_account": True},
        "g": {"is_staff": True},
        "k": {"is_staff": True, "is_superuser": True},
    }
    for letter, flags in hidden.items():
        who = user(f"{letter}@example.com", joined=tpe(2026, 3, 5), **flags)
        running = sub(who, "pro", start=tpe(2026, 3, 5))
        pay(who, "899.00", at=tpe(2026, 3, 5), subscription=running)
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "h": h, "i": i, "j": j}
