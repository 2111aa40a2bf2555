"""The staff billing overview, ``/dashboard/billing``: parse the period, call the summary, render.

The numbers, tables and chart data all come from ``billing_summary`` (the function behind
``/api/v1/billing-analytics/summary``); this view only formats them.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from analytics import billing, billing_charts
from analytics.billing_summary import DEFINITIONS, BillingSummary, billing_summary
from analytics.periods import PeriodError, parse_period

TEMPLATE = "analytics/billing_overview.html"
DEFAULT_PERIOD = "12m"  # a year of months: enough for a trend
PERIOD_CHOICES = (
    ("30d", _("Last 30 days")),
    ("90d", _("Last 90 days")),
    ("month", _("This month")),
    ("3m", _("Last 3 months")),
    ("12m", _("Last 12 months")),
    ("year", _("This year")),
    ("all", _("All time")),
    ("custom", _("Custom range")),
)


def money(amount: Decimal | None) -> str:
    """``1234.5`` -> ``"1,234.50"``; ``None`` -> an em dash (no value, e.g. ARPU with nobody paying)."""
    return "—" if amount is None else f"{billing.cents(amount):,.2f}"


def percent(rate: Decimal | None) -> str:
    return "—" if rate is None else f"{rate * 100:.2f} %"


def _cards(summary: BillingSummary) -> list[dict]:
    currency = summary.currency
    return [
        {"key": "new_signups", "label": _("New sign-ups"), "value": f"{summary.new_signups:,}"},
        {"key": "churned_users", "label": _("Churned users"), "value": f"{summary.churned_users:,}"},
        {"key": "churn_rate", "label": _("Churn rate"), "value": percent(summary.churn_rate)},
        {"key": "total_revenue", "label": _("Net revenue"), "value": money(summary.total_revenue), "unit": currency},
        {"key": "mrr", "label": _("MRR"), "value": money(summary.mrr), "unit": currency},
        {"key": "arpu", "label": _("ARPU"), "value": money(summary.arpu), "unit": currency},
        {"key": "paying_users", "label": _("Paying users"), "value": f"{summary.paying_users:,}"},
        {"key": "active_subscriptions", "label": _("Subscriptions"), "value": f"{summary.active_subscriptions:,}"},
        {"key": "mrr_past_due", "label": _("MRR past due"), "value": money(summary.mrr_past_due), "unit": currency},
    ]


def _form(params, *, period=None) -> dict:
    custom = bool(params.get("from") or params.get("to"))
    key = "custom" if custom else params.get("period") or DEFAULT_PERIOD
    return {
        "period": key,
        "from": params.get("from") or (period.first_day.isoformat() if period else ""),
        "to": params.get("to") or (period.last_day.isoformat() if period else ""),
    }


def _period_params(params) -> dict:
    """The query the page was asked with; the "Custom range" choice means: use from/to."""
    wanted = {key: params[key] for key in ("period", "from", "to") if params.get(key)}
    if wanted.get("period") == "custom":
        wanted.pop("period")
    if not wanted:
        wanted["period"] = DEFAULT_PERIOD
    return wanted


@login_required
def billing_overview(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("The billing overview is for staff.")
    now = timezone.now()
    tz = request.user.tzinfo
    context = {"period_choices": PERIOD_CHOICES, "form": _form(request.GET), "timezone_name": str(tz)}
    try:
        period = parse_period(_period_params(request.GET), tz=tz, now=now)
    except PeriodError as error:
        context["error"] = str(error)
        return render(request, TEMPLATE, context, status=400)
    summary = billing_summary(billing.billing_scope(), period=period, now=now)
    charts = [
        billing_charts.revenue_chart(summary.series, currency=summary.currency),
        billing_charts.signups_churn_chart(summary.series),
    ]
    context.update(
        form=_form(request.GET, period=period),
        period=period,
        summary=summary,
        cards=_cards(summary),
        charts=charts,
        series_rows=[
            {
                "label": p.label,
                "new_signups": p.new_signups,
                "churned_users": p.churned_users,
                "revenue": money(p.revenue),
                "mrr": money(p.mrr),
            }
            for p in summary.series
        ],
        plan_rows=[{**vars(row), "mrr": money(row.mrr)} for row in summary.by_plan],
        country_rows=[{**vars(row), "mrr": money(row.mrr)} for row in summary.by_country],
        other_currencies=[
            (code, money(amount))
            for code, amount in summary.revenue_by_currency.items()
            if code != summary.currency and amount
        ],
        definitions=DEFINITIONS,
    )
    with timezone.override(tz):
        return render(request, TEMPLATE, context)
