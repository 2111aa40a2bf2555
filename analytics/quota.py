"""This calendar month's minutes against the plan's limit, with a projection (``plan_usage``).

Re-exported by ``analytics.usage``; kept apart so that module stays readable.
"""

from __future__ import annotations

import dataclasses
import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Max, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from analytics.periods import local_midnight
from coaching.models import MonthlyUsageArchive, UsageLog, User

from .ledger import MINUTES_FILTER, ONE_DP, TWO_DP, ZERO

WARNING_PERCENT = Decimal(80)


@dataclasses.dataclass(frozen=True)
class PlanUsage:
    """This calendar month's minutes against the plan's limit (None: unlimited, never a magic number)."""

    plan_code: str
    plan_name: str
    limit_minutes: int | None
    used_minutes: Decimal
    remaining_minutes: Decimal | None
    percent: Decimal | None
    projected_minutes: Decimal
    projected_percent: Decimal | None
    month_first_day: datetime.date
    month_last_day: datetime.date
    level: str  # "ok" | "warning" (>= 80 %) | "over" (>= 100 %) | "unlimited"

    def as_dict(self) -> dict:
        def num(value: Decimal | None) -> float | None:
            return None if value is None else float(value)

        return {
            "plan_code": self.plan_code,
            "plan_name": self.plan_name,
            "limit_minutes": self.limit_minutes,
            "used_minutes": float(self.used_minutes),
            "remaining_minutes": num(self.remaining_minutes),
            "percent": num(self.percent),
            "projected_minutes": float(self.projected_minutes),
            "projected_percent": num(self.projected_percent),
            "month_first_day": self.month_first_day.isoformat(),
            "month_last_day": self.month_last_day.isoformat(),
            "level": self.level,
        }


def _percent(used: Decimal, limit: int | None) -> Decimal | None:
    if limit is None:
        return None
    if limit == 0:
        return Decimal("100.0") if used > 0 else Decimal("0.0")
    return (used * 100 / Decimal(limit)).quantize(ONE_DP, rounding=ROUND_HALF_UP)


def last_reset(user: User, *, start: datetime.datetime, now: datetime.datetime) -> datetime.datetime | None:
    """When a bulk reset last archived the user's counters in ``[start, now]``, if it was not undone.

    Minutes logged up to that instant were archived by the reset; only later ones count again.
    """
    return MonthlyUsageArchive.objects.filter(
        user=user,
        bulk_operation__isnull=False,
        restored_at__isnull=True,
        archived_at__gte=start,
        archived_at__lte=now,
    ).aggregate(last=Max("archived_at"))["last"]


def plan_usage(user: User, *, now: datetime.datetime | None = None) -> PlanUsage:
    """The user's minutes this calendar month (in the user's time zone) against the plan's limit.

    used = ledger minutes of quota kinds from the month's first local midnight up to ``now`` or,
    when an admin reset this month's usage since then (and did not undo it), from that reset on:
    a reset is an explicit, archived override of the quota, while the ledger keeps every minute;
    percent = used / limit × 100 (one decimal); projected = used / elapsed fraction of the
    month (linear run rate); level: ``over`` at ≥ 100 %, ``warning`` at ≥ 80 %, else ``ok``;
    ``unlimited`` (no percentages) when the plan has no limit.
    """
    now = now or timezone.now()
    tz = user.tzinfo
    first = now.astimezone(tz).date().replace(day=1)
    following = (first + datetime.timedelta(days=32)).replace(day=1)
    start, end = local_midnight(first, tz), local_midnight(following, tz)
    since = last_reset(user, start=start, now=now) or start
    rows = UsageLog.objects.filter(user=user, created_at__lte=now)
    rows = rows.filter(created_at__gt=since) if since > start else rows.filter(created_at__gte=start)
    used = rows.aggregate(m=Coalesce(Sum("minutes", filter=MINUTES_FILTER), Value(ZERO)))["m"]
    used = Decimal(used).quantize(TWO_DP)
    # Subtract in UTC so a DST change inside the month does not skew the elapsed fraction.
    elapsed = (now - start).total_seconds() / (end - start).total_seconds()
    projected = used if elapsed <= 0 else (used / Decimal(str(elapsed))).quantize(TWO_DP, rounding=ROUND_HALF_UP)
    limit = user.plan.minutes_per_month
    percent = _percent(used, limit)
    if limit is None:
        level = "unlimited"
    elif percent >= 100:
        level = "over"
    elif percent >= WARNING_PERCENT:
        level = "warning"
    else:
        level = "ok"
    return PlanUsage(
        plan_code=user.plan.code,
        plan_name=user.plan.name,
        limit_minutes=limit,
        used_minutes=used,
        remaining_minutes=None if limit is None else max(Decimal(limit) - used, ZERO),
        percent=percent,
        projected_minutes=projected,
        projected_percent=_percent(projected, limit),
        month_first_day=first,
        month_last_day=following - datetime.timedelta(days=1),
        level=level,
    )
