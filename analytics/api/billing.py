"""``GET /api/v1/billing-analytics/summary``: platform billing numbers for staff.

Parse the query (period in the viewer's time zone, optional user), call
``analytics.billing_summary``, serialize. The staff page calls the same function.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import billing
from analytics.billing_summary import DEFINITIONS, BillingSummary, UserProfile, billing_summary, user_profile
from analytics.periods import PeriodError, parse_period
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
                attrs["_period"] = parse_period(params, tz=self.context["tz"], now=self.context["now"])
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
        definitions = serializers.DictField(child=serializers.CharField(), help_text="One-line formula per metric.")
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
        "definitions": DEFINITIONS,
        "period": {
            "key": period.key,
            "start": period.start,
            "end": period.end,
            "first_day": period.first_day,
            "last_day": period.last_day,
            "timezone": str(period.tz),
            "close": summary.close,
        },
        "user_profile": profile,
    }
