"""``GET /api/v1/billing-analytics/summary`` and ``…/movements.csv``: platform billing numbers for staff.

Parse the query (period in the viewer's time zone, optional user), call
``analytics.billing.summary.billing_summary`` (or ``movements_series``), serialize. The staff page
calls the same functions.
"""

from __future__ import annotations

import csv
import io

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import billing
from analytics.billing.history import one_reading
from analytics.billing.movements import PARTS, movements_series
from analytics.billing.summary import (
    DEFINITIONS,
    BillingSummary,
    UserProfile,
    billing_period,
    billing_summary,
    user_profile,
)
from analytics.periods import PeriodError
from coaching.models import Subscription, User

from .params import ErrorSerializer, PeriodQuerySerializer


def _money(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=16, decimal_places=2, **kwargs)


def _money_by_currency(help_text: str) -> serializers.DictField:
    return serializers.DictField(child=_money(), help_text=f"{help_text} Keyed by ISO 4217 currency code.")


class BillingSummaryApi(APIView):
    """Billing analytics for a period: sign-ups, churn, revenue, MRR, breakdowns, series, definitions."""

    permission_classes = [IsAdminUser]

    class InputSerializer(PeriodQuerySerializer):
        period_help = "A named period ending today in your time zone (default 30d). Not with from/to."
        dates_help = "A local date YYYY-MM-DD in your time zone, inclusive; from/to replace period."
        user_help = "A user's id: adds that user's billing profile as user_profile."

        class Meta:
            ref_name = "BillingSummaryQuery"

        def validate(self, attrs):
            params = {key: str(value) for key, value in attrs.items() if key in ("period", "from", "to")}
            try:
                attrs["_period"] = billing_period(params, tz=self.context["tz"], now=self.context["now"])
            except PeriodError as error:
                raise serializers.ValidationError({"period": [str(error)]}) from None
            if "user" in attrs:
                attrs["_user"] = User.objects.filter(pk=attrs["user"]).first()
                if attrs["_user"] is None:
                    raise serializers.ValidationError(
                        {"user": [f"No user has the id {attrs['user']}: check it, or leave it out."]}
                    )
            return attrs

    class OutputSerializer(serializers.Serializer):
        class PeriodSerializer(serializers.Serializer):
            key = serializers.CharField()
            start = serializers.DateTimeField(help_text="Inclusive.")
            end = serializers.DateTimeField(help_text="Exclusive.")
            first_day = serializers.DateField()
            last_day = serializers.DateField(help_text="Inclusive.")
            timezone = serializers.CharField(help_text="The viewer's time zone: days and months are cut in it.")
            close = serializers.DateTimeField(help_text="min(end, now): the instant the numbers are read at.")

            class Meta:
                ref_name = "BillingPeriod"

        class PlanSerializer(serializers.Serializer):
            plan = serializers.CharField()
            name = serializers.CharField()
            paying_users = serializers.IntegerField(min_value=0)
            active_subscriptions = serializers.IntegerField(min_value=0)
            mrr = _money()

            class Meta:
                ref_name = "BillingByPlan"

        class CountrySerializer(serializers.Serializer):
            country = serializers.CharField(help_text="ISO 3166-1 alpha-2, from the user's profile.")
            new_signups = serializers.IntegerField(min_value=0)
            paying_users = serializers.IntegerField(min_value=0)
            churned_users = serializers.IntegerField(min_value=0)
            mrr = _money()

            class Meta:
                ref_name = "BillingByCountry"

        class SeriesSerializer(serializers.Serializer):
            label = serializers.CharField(help_text="The local month, YYYY-MM.")
            start = serializers.DateTimeField()
            end = serializers.DateTimeField()
            new_signups = serializers.IntegerField(min_value=0)
            churned_users = serializers.IntegerField(min_value=0)
            revenue = _money()
            mrr = _money(allow_null=True, help_text="At the month's close; null for a month not yet begun.")

            class Meta:
                ref_name = "BillingSeriesPoint"

        class MovementsSerializer(serializers.Serializer):
            label = serializers.CharField(help_text="The local month YYYY-MM, or the period's key.")
            start = serializers.DateTimeField()
            end = serializers.DateTimeField(help_text="min(end, now).")
            mrr_start = _money()
            new = _money()
            expansion = _money()
            contraction = _money(help_text="Negative or zero.")
            churned = _money(help_text="Negative or zero.")
            reactivation = _money()
            mrr_end = _money(help_text="mrr_start + new + expansion + contraction + churned + reactivation, exactly.")

            class Meta:
                ref_name = "BillingMrrMovements"

        class ChurnSerializer(serializers.Serializer):
            lost = serializers.IntegerField(min_value=0, help_text="Customers lost in the period (churned_users).")
            base = serializers.IntegerField(min_value=0, help_text="Customers paying at the start.")
            rate = serializers.DecimalField(max_digits=9, decimal_places=4, coerce_to_string=False, allow_null=True)
            small_base = serializers.BooleanField(help_text="Fewer than 20 customers at the start: not a trend.")

            class Meta:
                ref_name = "BillingCustomerChurn"

        class RetentionSerializer(serializers.Serializer):
            mrr_start = _money()
            mrr_retained = _money(help_text="MRR at the close of the customers who paid at the start.")
            rate = serializers.DecimalField(max_digits=9, decimal_places=4, coerce_to_string=False, allow_null=True)

            class Meta:
                ref_name = "BillingRetention"

        class HeadlineSerializer(serializers.Serializer):
            new_signups = serializers.IntegerField()
            churned_users = serializers.IntegerField()
            churn_rate = serializers.DecimalField(
                max_digits=9, decimal_places=4, coerce_to_string=False, allow_null=True
            )
            paying_users = serializers.IntegerField()
            active_subscriptions = serializers.IntegerField()
            total_revenue = _money()
            mrr = _money()
            mrr_past_due = _money()
            arpu = _money(allow_null=True)
            net_revenue_retention = serializers.DecimalField(
                max_digits=9, decimal_places=4, coerce_to_string=False, allow_null=True
            )

            class Meta:
                ref_name = "BillingHeadline"

        class ProfileSerializer(serializers.Serializer):
            id = serializers.UUIDField()
            timezone = serializers.CharField()
            country = serializers.CharField()
            plan = serializers.CharField()
            subscription_status = serializers.ChoiceField(choices=[*Subscription.Status.values, "none"])
            paying = serializers.BooleanField()
            lifetime_revenue = _money_by_currency("Paid minus refunded, all time.")

            class Meta:
                ref_name = "BillingUserProfile"

        new_signups = serializers.IntegerField(min_value=0)
        churned_users = serializers.IntegerField(min_value=0)
        churn_rate = serializers.DecimalField(max_digits=9, decimal_places=4, coerce_to_string=False, allow_null=True)
        total_revenue = _money(help_text="Net revenue in the default currency (see currency).")
        currency = serializers.CharField(help_text="The currency of total_revenue, mrr, arpu, breakdowns and series.")
        revenue_by_currency = _money_by_currency("Net revenue per currency.")
        mrr = _money()
        mrr_by_currency = _money_by_currency("MRR per currency.")
        mrr_past_due = _money()
        arpu = _money(allow_null=True)
        paying_users = serializers.IntegerField(min_value=0)
        paying_users_at_start = serializers.IntegerField(min_value=0)
        active_subscriptions = serializers.IntegerField(min_value=0)
        by_plan = PlanSerializer(many=True)
        by_country = CountrySerializer(many=True)
        series = SeriesSerializer(many=True)
        churn = ChurnSerializer()
        net_revenue_retention = RetentionSerializer()
        mrr_movements = MovementsSerializer(help_text="The period's MRR bridge, default currency.")
        mrr_movements_series = MovementsSerializer(many=True, help_text="The same per local month.")
        previous = HeadlineSerializer(help_text="The headline numbers of the period of equal length just before.")
        changes = HeadlineSerializer(help_text="Each headline minus previous (null where either has none).")
        previous_period = PeriodSerializer()
        definitions = serializers.DictField(child=serializers.CharField(), help_text="Each number in plain words.")
        period = PeriodSerializer()
        user_profile = ProfileSerializer(allow_null=True, help_text="With ?user=<id>; otherwise null.")

        class Meta:
            ref_name = "BillingSummary"

    @extend_schema(
        operation_id="billing_analytics_summary",
        summary="Billing analytics summary (staff)",
        parameters=[InputSerializer],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(ErrorSerializer, description="A bad period, date range or user id."),
            403: OpenApiResponse(ErrorSerializer, description="Not logged in, or not staff."),
        },
        tags=["billing"],
    )
    def get(self, request: Request) -> Response:
        now = timezone.now()
        params = self.InputSerializer(data=request.query_params, context={"tz": request.user.tzinfo, "now": now})
        params.is_valid(raise_exception=True)
        summary = billing_summary(billing.billing_scope(), period=params.validated_data["_period"], now=now)
        user = params.validated_data.get("_user")
        profile = user_profile(user, now=now) if user else None
        with timezone.override(summary.period.tz):  # instants are written with the viewer's offset
            return Response(self.OutputSerializer(summary_data(summary, profile)).data)


def summary_data(summary: BillingSummary, profile: UserProfile | None = None) -> dict:
    """The response body as plain data (the staff page reads the same dict)."""
    period = summary.period
    return {
        "new_signups": summary.new_signups,
        "churned_users": summary.churned_users,
        "churn_rate": summary.churn_rate,
        "total_revenue": summary.total_revenue,
        "currency": summary.currency,
        "revenue_by_currency": summary.revenue_by_currency,
        "mrr": summary.mrr,
        "mrr_by_currency": summary.mrr_by_currency,
        "mrr_past_due": summary.mrr_past_due,
        "arpu": summary.arpu,
        "paying_users": summary.paying_users,
        "paying_users_at_start": summary.paying_users_at_start,
        "active_subscriptions": summary.active_subscriptions,
        "by_plan": summary.by_plan,
        "by_country": summary.by_country,
        "series": summary.series,
        "churn": {**vars(summary.churn), "small_base": summary.churn.small_base},
        "net_revenue_retention": summary.retention,
        "mrr_movements": summary.movements,
        "mrr_movements_series": summary.movement_series,
        "previous": summary.previous,
        "changes": summary.changes,
        "previous_period": _period(summary.previous_period, close=summary.period.start),
        "definitions": DEFINITIONS,
        "period": _period(period, close=summary.close),
        "user_profile": profile,
    }


def _period(period, *, close) -> dict:
    return {
        "key": period.key,
        "start": period.start,
        "end": period.end,
        "first_day": period.first_day,
        "last_day": period.last_day,
        "timezone": str(period.tz),
        "close": close,
    }


CSV_COLUMNS = ("month", "start", "end", "currency", "mrr_start", *PARTS, "mrr_end")


class BillingMovementsCsvApi(APIView):
    """The MRR movements of a period, one row per local month, as CSV (staff)."""

    permission_classes = [IsAdminUser]
    InputSerializer = BillingSummaryApi.InputSerializer

    @extend_schema(
        operation_id="billing_analytics_movements_csv",
        summary="MRR movements per month as CSV (staff)",
        parameters=[InputSerializer],
        responses={
            (200, "text/csv"): OpenApiResponse(description="month,start,end,currency,mrr_start,new,…,mrr_end"),
            400: OpenApiResponse(ErrorSerializer, description="A bad period or date range."),
            403: OpenApiResponse(ErrorSerializer, description="Not logged in, or not staff."),
        },
        tags=["billing"],
    )
    def get(self, request: Request) -> HttpResponse:
        now = timezone.now()
        params = self.InputSerializer(data=request.query_params, context={"tz": request.user.tzinfo, "now": now})
        params.is_valid(raise_exception=True)
        period = params.validated_data["_period"]
        events, currency = billing.billing_scope().events, billing.default_currency()
        with one_reading():
            series = movements_series(events, buckets=period.buckets("month"), now=now, currency=currency)
        return HttpResponse(
            movements_csv(series, tz=period.tz),
            content_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="mrr-movements-{period.first_day}-{period.last_day}.csv"'
            },
        )


def movements_csv(series, *, tz) -> str:
    """One row per month: the bridge in cents; each row's movements add up to its ``mrr_end``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for month in series:
        writer.writerow(
            [
                month.label,
                month.start.astimezone(tz).isoformat(),
                month.end.astimezone(tz).isoformat(),
                month.currency,
                month.mrr_start,
                *(getattr(month, part) for part in PARTS),
                month.mrr_end,
            ]
        )
    return out.getvalue()
