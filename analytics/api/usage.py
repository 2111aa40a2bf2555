"""``GET /api/v1/usage/analytics``: usage metrics for the caller, one coach (staff) or the platform (staff).

Parse the query, scope the coaches, call ``analytics.usage``, serialize. Nothing is cached:
a finished session or a new export shows up in the next response, which says the instant
its data runs through (``data_through``). The dashboard polls this to refresh its charts.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import charts
from analytics.periods import Period, PeriodError, parse_period
from analytics.usage import DEFINITIONS, batched, plan_usage, sessions_by_status, usage_series, usage_summaries
from coaching.models import User

from .params import ErrorSerializer, PeriodQuerySerializer
from .usage_serializers import COMPARED_METRICS, UsageAnalyticsOutputSerializer

# The response's serializer, its fields bound once (DRF deep-copies ~150 fields per new instance):
# ``to_representation`` keeps no state between calls, as a ListSerializer's child does for each item.
OUTPUT = UsageAnalyticsOutputSerializer()


def metric_changes(current: dict, previous: dict) -> dict:
    """Per metric: ``delta`` = current − previous; ``percent`` = delta / previous × 100 (one decimal).

    ``percent`` is null when the previous value is 0 or either value is null (no rate).
    """
    changes = {}
    for name in COMPARED_METRICS:
        now_value, then_value = current[name], previous[name]
        if now_value is None or then_value is None:
            changes[name] = {"delta": None, "percent": None}
            continue
        now_value, then_value = Decimal(str(now_value)), Decimal(str(then_value))
        delta = now_value - then_value
        percent = None if not then_value else round(float(delta * 100 / then_value), 1)
        changes[name] = {"delta": float(delta), "percent": percent}
    return changes


class UsageAnalyticsApi(APIView):
    """Usage analytics for a period, with the previous period, changes, plan usage, series and charts."""

    class InputSerializer(PeriodQuerySerializer):
        period_help = "A named period ending today in the viewer's time zone (default 30d). Not with from/to."
        dates_help = "A local date YYYY-MM-DD in the viewer's time zone, inclusive; replaces period."
        user_help = "Staff only: one coach's numbers. Without it staff get platform totals, coaches their own."

        granularity = serializers.ChoiceField(
            choices=("day", "month"),
            required=False,
            help_text="Buckets of the series and charts; by default day up to 92 days, else month.",
        )

        class Meta:
            ref_name = "UsageAnalyticsQuery"

    @extend_schema(
        operation_id="usage_analytics",
        summary="Usage analytics",
        parameters=[InputSerializer],
        responses={
            200: UsageAnalyticsOutputSerializer,
            400: OpenApiResponse(ErrorSerializer, description="A bad period, date range or user id."),
            403: OpenApiResponse(ErrorSerializer, description="Not logged in, or another coach's numbers."),
        },
        tags=["usage"],
    )
    def get(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        now = timezone.now()
        subject = self._subject(request.user, params.validated_data.get("user"))
        period = self._period(request, now=now)
        coaches = User.objects.filter(pk=subject.pk) if subject else User.objects.all()
        data = self.analytics(
            coaches, period, subject=subject, now=now, granularity=params.validated_data.get("granularity")
        )
        return Response(OUTPUT.to_representation(data))

    @staticmethod
    def _subject(viewer: User, user_id) -> User | None:
        """Whose numbers: a coach's own; staff name one with ``user`` or get the platform (None)."""
        if user_id is None:
            return None if viewer.is_staff else viewer
        if user_id == viewer.pk:
            return viewer
        if not viewer.is_staff:
            raise PermissionDenied("You can only see your own usage: leave out 'user'.")
        subject = User.objects.select_related("plan").filter(pk=user_id).first()
        if subject is None:
            raise ValidationError({"user": [f"No user has the id {user_id}: check it, or leave it out."]})
        return subject

    @staticmethod
    def _period(request: Request, *, now: datetime.datetime) -> Period:
        """The period from the raw query, in the viewing user's time zone (DOMAIN: viewer's zone)."""
        try:
            return parse_period(request.query_params, tz=request.user.tzinfo, now=now)
        except PeriodError as error:
            raise ValidationError({"period": [str(error)]}) from None

    @staticmethod
    def analytics(
        coaches, period: Period, *, subject: User | None, now: datetime.datetime, granularity: str | None = None
    ) -> dict:
        """The whole response body, as plain data (shared with the page's first render)."""
        periods = [period, period.previous()]
        with batched(coaches, periods, now=now):  # one coach: the roll-up reads of both periods in one query
            current, previous = (s.as_dict() for s in usage_summaries(coaches, periods, now=now))
            series = usage_series(coaches, period, granularity=granularity, now=now)
            plan = plan_usage(subject, now=now) if subject else None
            statuses = sessions_by_status(coaches, period)
        return {
            **current,
            "scope": "user" if subject else "platform",
            "user": _user_info(subject),
            "previous": previous,
            "changes": metric_changes(current, previous),
            "plan": plan.as_dict() if plan else None,
            "sessions_by_status": statuses,
            "definitions": DEFINITIONS,
            "series": series,
            "charts": [
                charts.minutes_chart(series, limit=plan.limit_minutes if plan else None),
                charts.sessions_by_status_chart(statuses),
                charts.exports_by_format_chart(current["exports_by_format"]),
            ],
        }


def _user_info(user: User | None) -> dict | None:
    if user is None:
        return None
    return {"id": str(user.pk), "email": user.email, "name": user.name, "timezone": user.timezone}
