"""Everything the PDF usage report shows, as plain data (the template only lays it out).

The numbers come from ``analytics.usage`` (the dashboard's own functions) and the charts from
``analytics.charts`` (the dashboard's own specs, drawn as SVG by ``exports.svg``), so paper and
screen never disagree. The coach's practice (sessions, hours, income they recorded) comes from
``analytics.practice``.

Row budget: WeasyPrint lays out roughly 125 table rows a second here, so a detail table of 10,000
ledger rows would take over a minute and a gigabyte. Up to ``ROW_BUDGET`` rows the report lists
every ledger row; past it, the table shows one line per local day (per month for periods longer
than 92 days, as the charts bucket them) and the full history travels inside the PDF as an attached CSV.
"""

from __future__ import annotations

import dataclasses
import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.utils import timezone, translation
from django.utils.safestring import mark_safe

from analytics import charts, practice
from analytics.periods import Period
from analytics.usage import PlanUsage, UsageSummary, plan_usage, usage_series, usage_summary
from coaching.models import User

from .rows import AggregateRow, usage_history_aggregates, usage_history_count, usage_history_rows
from .svg import chart_svg

ROW_BUDGET = 500
CLIENT_LINES = 15
CHART_SIZES = ((520, 170), (250, 140), (250, 140))


@dataclasses.dataclass(frozen=True)
class ReportContext:
    site_name: str
    subject: User
    period: Period
    generated_at: datetime.datetime
    summary: UsageSummary
    plan: PlanUsage
    charts: list[dict]
    practice_totals: practice.PracticeLine
    practice_months: list[practice.PracticeLine]
    practice_clients: list[practice.PracticeLine]
    clients_total: int
    row_count: int
    detail_mode: str  # "rows", "day" or "month"
    detail_rows: list[tuple]
    aggregate_rows: list[AggregateRow]
    attachment_name: str
    row_budget: int
    record_id: int | None = None  # the export record: printed as the report number
    language: str = "en"  # the reader's: numbers are grouped as they write them

    @property
    def report_number(self) -> str:
        return f"{self.record_id:06d}" if self.record_id is not None else "draft"

    @property
    def detail_minutes_total(self) -> Decimal:
        """Minutes of every listed row (all kinds), or of every day/month line: the table's own total."""
        if self.detail_mode == "rows":
            return sum((row[9] for row in self.detail_rows), Decimal("0.00"))
        return sum((line.all_minutes for line in self.aggregate_rows), Decimal("0.00"))

    @property
    def detail_failed_retries(self) -> int:
        return sum(line.failed_retries for line in self.aggregate_rows)

    @property
    def detail_has_missing(self) -> bool:
        """Some listed row's session or client no longer exists (its cells print as —)."""
        return any(row[3] is None or row[4] is None for row in self.detail_rows)

    @property
    def practice_has_missing_fee(self) -> bool:
        """Some income cell prints as — (a month without a fee in one of the currencies, a client without any)."""
        months = any(set(line.income) != set(self.currencies) for line in self.practice_months)
        return months or any(not line.income for line in self.practice_clients)

    @property
    def failure_percent(self) -> Decimal | None:
        """The failure rate as a percentage with one decimal (None when nothing finished)."""
        rate = self.summary.failure_rate
        return None if rate is None else (rate * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)

    @property
    def currencies(self) -> list[str]:
        return sorted(self.practice_totals.income)

    def as_template_context(self) -> dict:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)} | {
            "currencies": self.currencies,
            "failure_percent": self.failure_percent,
            "report_number": self.report_number,
            "detail_minutes_total": self.detail_minutes_total,
            "detail_failed_retries": self.detail_failed_retries,
            "detail_has_missing": self.detail_has_missing,
            "practice_has_missing_fee": self.practice_has_missing_fee,
            "clients_other": self.clients_total - len(self.practice_clients),
        }


def _chart_specs(subject: User, period: Period, summary, series: list[dict]) -> list[dict]:
    return [
        charts.minutes_chart(series, limit=subject.plan.minutes_per_month),
        # The sessions the summary counts (first transcribed in the period), so page 1 has one session count.
        {
            **charts.sessions_by_status_chart(practice.transcribed_sessions_by_status(subject, period)),
            "title": "Sessions transcribed in the period, by status now",
        },
        charts.exports_by_format_chart(summary.exports_by_format),
    ]


def report_context(
    subject: User,
    period: Period,
    *,
    attachment_name: str,
    row_budget: int | None = None,
    now: datetime.datetime | None = None,
    record_id: int | None = None,
    language: str = "en",
) -> ReportContext:
    """The report for ``subject`` over ``period``, as of ``now``; ``row_budget`` defaults to ``ROW_BUDGET``."""
    now = now or timezone.now()
    row_budget = ROW_BUDGET if row_budget is None else row_budget
    scope = User.objects.filter(pk=subject.pk)
    summary = usage_summary(scope, period, now=now)
    series = usage_series(scope, period, now=now)
    # The report's wording is English (only its numbers follow ``language``): its charts' titles, axes and
    # legends too, or a zh-Hant reader's page 1 would mix two languages.
    with translation.override("en"):
        specs = _chart_specs(subject, period, summary, series)
    row_count = usage_history_count(subject, period)
    if row_count <= row_budget:
        mode, detail, aggregates = "rows", list(usage_history_rows(subject, period)), []
    else:
        mode = period.granularity  # as the charts bucket: by day up to 92 days, else by month
        detail, aggregates = [], usage_history_aggregates(subject, period, granularity=mode)
    clients, clients_total = practice.practice_by_client(subject, period, limit=CLIENT_LINES)
    return ReportContext(
        site_name=settings.SITE_NAME,
        subject=subject,
        period=period,
        generated_at=now.astimezone(period.tz),
        summary=summary,
        plan=plan_usage(subject, now=now),
        charts=[
            # The minutes chart across the page, the other two side by side; svg.py escapes every text.
            {"spec": spec, "svg": mark_safe(chart_svg(spec, width=w, height=h))}
            for spec, (w, h) in zip(specs, CHART_SIZES, strict=True)
        ],
        practice_totals=practice.practice_totals(subject, period),
        practice_months=practice.practice_by_month(subject, period),
        practice_clients=clients,
        clients_total=clients_total,
        row_count=row_count,
        detail_mode=mode,
        detail_rows=detail,
        aggregate_rows=aggregates,
        attachment_name=attachment_name,
        row_budget=row_budget,
        record_id=record_id,
        language=language,
    )
