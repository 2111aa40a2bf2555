"""Output shapes of the usage analytics API, declared field by field so the OpenAPI schema is exact.

Every session status and export format is a field (built from the models' choices), so a
client can rely on each key being present.
"""

from __future__ import annotations

from rest_framework import serializers

from analytics.usage import DEFINITIONS, METRIC_KINDS, UsageSummary
from coaching.models import CoachingSession, ExportRecord

# Metrics compared with the previous period in "changes" (all numeric metrics of a summary).
COMPARED_METRICS = UsageSummary.METRICS


def _counts_serializer(name: str, keys: list[str], help_text: str) -> type[serializers.Serializer]:
    fields = {key: serializers.IntegerField(min_value=0) for key in keys}
    fields["Meta"] = type("Meta", (), {"ref_name": name})
    fields["__doc__"] = help_text
    return type(f"{name}Serializer", (serializers.Serializer,), fields)


ExportsByFormatSerializer = _counts_serializer(
    "UsageExportsByFormat", ExportRecord.Format.values, "Succeeded exports by format; every format, 0 if none."
)
SessionsByStatusSerializer = _counts_serializer(
    "UsageSessionsByStatus", CoachingSession.Status.values, "Sessions created in the period by status now."
)


class UsagePeriodSerializer(serializers.Serializer):
    key = serializers.CharField()
    start = serializers.DateTimeField(help_text="Inclusive.")
    end = serializers.DateTimeField(help_text="Exclusive.")
    first_day = serializers.DateField()
    last_day = serializers.DateField(help_text="Inclusive.")
    timezone = serializers.CharField()
    granularity = serializers.ChoiceField(choices=("day", "month"))

    class Meta:
        ref_name = "UsagePeriod"


def _metric_field(name: str, kind: str) -> serializers.Field:
    """The API field of one registered metric, by its kind (``analytics.usage.METRIC_KINDS``)."""
    help_text = DEFINITIONS.get(name, "")
    if kind == "counts_by_format":
        return ExportsByFormatSerializer(help_text=help_text)
    if kind == "count":
        return serializers.IntegerField(help_text=help_text)
    if kind == "number":
        return serializers.FloatField(help_text=help_text)
    if kind == "rate":
        return serializers.FloatField(allow_null=True, help_text=help_text)
    if kind == "money":
        return serializers.DecimalField(max_digits=14, decimal_places=4, help_text=help_text)
    raise ValueError(f"metric {name}: unknown kind {kind!r}")


# Every usage metric of one period, one field per registered metric (DOMAIN.md has each definition).
UsageMetricsSerializer = type(
    "UsageMetricsSerializer",
    (serializers.Serializer,),
    {
        "__doc__": "Every usage metric of one period (DOMAIN.md has each definition).",
        "period": UsagePeriodSerializer(),
        "data_through": serializers.DateTimeField(
            help_text="The data includes everything recorded up to this instant."
        ),
        **{name: _metric_field(name, kind) for name, kind in METRIC_KINDS.items()},
        "Meta": type("Meta", (), {"ref_name": "UsageMetrics"}),
    },
)


class UsageChangeSerializer(serializers.Serializer):
    delta = serializers.FloatField(allow_null=True, help_text="current − previous")
    percent = serializers.FloatField(allow_null=True, help_text="delta / previous × 100; null when previous is 0.")

    class Meta:
        ref_name = "UsageChange"


UsageChangesSerializer = type(
    "UsageChangesSerializer",
    (serializers.Serializer,),
    {
        **{name: UsageChangeSerializer() for name in COMPARED_METRICS},
        "Meta": type("Meta", (), {"ref_name": "UsageChanges"}),
    },
)


class UsagePlanSerializer(serializers.Serializer):
    plan_code = serializers.CharField()
    plan_name = serializers.CharField()
    limit_minutes = serializers.IntegerField(allow_null=True, help_text="null: unlimited.")
    used_minutes = serializers.FloatField()
    remaining_minutes = serializers.FloatField(allow_null=True)
    percent = serializers.FloatField(allow_null=True)
    projected_minutes = serializers.FloatField(help_text="used / elapsed fraction of the month.")
    projected_percent = serializers.FloatField(allow_null=True)
    month_first_day = serializers.DateField()
    month_last_day = serializers.DateField()
    level = serializers.ChoiceField(choices=("ok", "warning", "over", "unlimited"))

    class Meta:
        ref_name = "UsagePlan"


class UsageSeriesRowSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="Local day YYYY-MM-DD or month YYYY-MM.")
    minutes = serializers.FloatField()
    sessions = serializers.IntegerField()
    transcriptions = serializers.IntegerField()
    failed = serializers.IntegerField()
    exports = serializers.IntegerField()

    class Meta:
        ref_name = "UsageSeriesRow"


class ChartDatasetSerializer(serializers.Serializer):
    label = serializers.CharField()
    data = serializers.ListField(child=serializers.FloatField())
    type = serializers.ChoiceField(choices=("bar", "line", "doughnut"))
    role = serializers.ChoiceField(
        choices=("limit",), required=False, help_text="Present on the plan-limit line only: draw it as a reference."
    )

    class Meta:
        ref_name = "ChartDataset"


class ChartSerializer(serializers.Serializer):
    """A chart spec (analytics/charts.py): Chart.js on the page, SVG in the PDF."""

    id = serializers.CharField()
    type = serializers.ChoiceField(choices=("bar", "line", "doughnut"))
    title = serializers.CharField()
    unit = serializers.CharField()
    labels = serializers.ListField(child=serializers.CharField())
    keys = serializers.ListField(
        child=serializers.CharField(),
        help_text="Each label's bucket, untranslated: a day (YYYY-MM-DD) or month (YYYY-MM), a session status, "
        "an export format.",
    )
    datasets = ChartDatasetSerializer(many=True)
    limit = serializers.FloatField(allow_null=True)

    class Meta:
        ref_name = "Chart"


class UsageUserSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    name = serializers.CharField(allow_blank=True)
    timezone = serializers.CharField()

    class Meta:
        ref_name = "UsageUser"


class UsageAnalyticsOutputSerializer(UsageMetricsSerializer):
    """The current period's metrics at the top level (the keys existing clients read), and more."""

    scope = serializers.ChoiceField(choices=("user", "platform"))
    user = UsageUserSerializer(allow_null=True, help_text="Whose numbers; null for platform totals.")
    previous = UsageMetricsSerializer(help_text="The same metrics for the previous period of equal length.")
    changes = UsageChangesSerializer()
    plan = UsagePlanSerializer(allow_null=True, help_text="This month against the plan; null for platform totals.")
    sessions_by_status = SessionsByStatusSerializer()
    definitions = serializers.DictField(child=serializers.CharField(), help_text="What each metric counts.")
    series = UsageSeriesRowSerializer(many=True)
    charts = ChartSerializer(many=True)

    class Meta:
        ref_name = "UsageAnalytics"
