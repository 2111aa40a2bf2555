"""The admin user list's usage columns: this month's minutes against the plan, sortable and filterable.

"This month's minutes" is the user's usage counter (``MonthlyUsage``) when it is on the user's
current month, in the user's time zone, else 0: exactly what a monthly reset would archive and
zero, so an admin sees whom a reset touches before choosing. Computed in SQL for the whole list
(one annotation), so it sorts and filters over every user, not just one page.
"""

from __future__ import annotations

import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.contrib import admin
from django.db.models import Case, DecimalField, ExpressionWrapper, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from coaching.models import MonthlyUsage, User
from coaching.models.usage import month_start

NEAR_PERCENT = Decimal(80)
ZERO = Decimal("0.00")


def _current_month_by_zone(now) -> Case | Value:
    """The first day of each user's current month: at most two distinct months at any instant."""
    zones = User.objects.order_by().values_list("timezone", flat=True).distinct()
    months: dict = {}
    for name in zones:
        try:
            tz = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            tz = zoneinfo.ZoneInfo(settings.DEFAULT_USER_TIME_ZONE)
        months.setdefault(month_start(now, tz), []).append(name)
    if len(months) <= 1:
        return Value(next(iter(months), month_start(now, zoneinfo.ZoneInfo(settings.DEFAULT_USER_TIME_ZONE))))
    *others, (last_month, _zones) = sorted(months.items())
    return Case(*(When(timezone__in=names, then=Value(month)) for month, names in others), default=Value(last_month))


def with_month_usage(queryset, *, now=None):
    """``minutes_this_month`` and ``percent_of_plan`` (null on an unlimited plan) on every user."""
    now = now or timezone.now()
    counter = MonthlyUsage.objects.filter(user_id=OuterRef("pk"), period=OuterRef("current_month"))
    money = DecimalField(max_digits=14, decimal_places=2)
    return queryset.annotate(
        current_month=_current_month_by_zone(now),
        minutes_this_month=Coalesce(Subquery(counter.values("minutes")[:1]), Value(ZERO), output_field=money),
        percent_of_plan=Case(
            When(plan__minutes_per_month__isnull=True, then=Value(None)),
            When(plan__minutes_per_month=0, minutes_this_month__gt=0, then=Value(Decimal(100))),
            When(plan__minutes_per_month=0, then=Value(Decimal(0))),
            default=ExpressionWrapper(F("minutes_this_month") * 100 / F("plan__minutes_per_month"), output_field=money),
            output_field=money,
        ),
    )


class PlanUsageFilter(admin.SimpleListFilter):
    title = "this month's minutes"
    parameter_name = "usage"

    def lookups(self, request, model_admin):
        return (
            ("over", "Over plan (100 % or more)"),
            ("near", "Near plan (80–99 %)"),
            ("idle", "Idle (no minutes this month)"),
        )

    def queryset(self, request, queryset):
        limited = Q(plan__minutes_per_month__isnull=False)
        if self.value() == "over":
            return queryset.filter(limited, minutes_this_month__gt=0, percent_of_plan__gte=100)
        if self.value() == "near":
            return queryset.filter(limited, percent_of_plan__gte=NEAR_PERCENT, percent_of_plan__lt=100)
        if self.value() == "idle":
            return queryset.filter(minutes_this_month=0)
        return queryset


class MonthUsageColumnsMixin:
    """Adds the annotation; the columns are ``minutes_this_month`` and ``plan_share``."""

    def get_queryset(self, request):
        return with_month_usage(super().get_queryset(request))

    @admin.display(description="minutes this month", ordering="minutes_this_month")
    def minutes_this_month(self, user: User) -> str:
        limit = user.plan.minutes_per_month
        used = f"{user.minutes_this_month:,.2f}"
        return f"{used} / unlimited" if limit is None else f"{used} / {limit:,}"

    @admin.display(description="of plan", ordering="percent_of_plan")
    def plan_share(self, user: User) -> str:
        if user.percent_of_plan is None:
            return "—"
        return f"{user.percent_of_plan:.1f} %"
