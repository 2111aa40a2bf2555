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

from analytics import billing
from analytics.billing import charts as billing_charts
from analytics.billing.movements import PARTS, SMALL_BASE
from analytics.billing.summary import DEFINITIONS, BillingSummary, billing_period, billing_summary
from analytics.periods import PeriodError

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


PLAIN_NAMES = {
    "new_signups": _("New sign-ups"),
    "paying_users": _("Paying users"),
    "paying_users_at_start": _("Paying users at the start"),
    "churned_users": _("Churned users"),
    "churn_rate": _("Customer churn rate"),
    "total_revenue": _("Net revenue"),
    "revenue_by_currency": _("Net revenue by currency"),
    "mrr": _("MRR (monthly recurring revenue)"),
    "mrr_past_due": _("MRR past due"),
    "arpu": _("ARPU (average revenue per paying user)"),
    "active_subscriptions": _("Subscriptions"),
    "net_revenue_retention": _("Net revenue retention"),
    "mrr_movements": _("MRR movements"),
    "changes": _("Change"),
    "close": _("As of"),
    "scope": _("Who counts"),
}


def signed(value, fmt) -> str:
    """A change with its sign: ``+1,234.00``, ``-3``, ``±0``; an em dash when there is none."""
    if value is None:
        return "—"
    if value == 0:
        return "±" + fmt(abs(value))
    return ("+" if value > 0 else "-") + fmt(abs(value))


def count(value) -> str:
    return f"{value:,}"


def points(rate) -> str:
    """A change of a rate, in percentage points."""
    return f"{rate * 100:.2f} pp"


def _cards(summary: BillingSummary) -> list[dict]:
    currency, changes = summary.currency, summary.changes
    churn = summary.churn
    rows = [
        ("new_signups", count(summary.new_signups), None, count),
        ("churned_users", count(summary.churned_users), None, count),
        ("churn_rate", percent(churn.rate), None, points),
        ("net_revenue_retention", percent(summary.retention.rate), None, points),
        ("total_revenue", money(summary.total_revenue), currency, money),
        ("mrr", money(summary.mrr), currency, money),
        ("arpu", money(summary.arpu), currency, money),
        ("paying_users", count(summary.paying_users), None, count),
        ("active_subscriptions", count(summary.active_subscriptions), None, count),
        ("mrr_past_due", money(summary.mrr_past_due), currency, money),
    ]
    cards = [
        {
            "key": key,
            "label": PLAIN_NAMES[key],
            "value": value,
            "unit": unit,
            "change": signed(changes[key], fmt),
        }
        for key, value, unit, fmt in rows
    ]
    by_key = {card["key"]: card for card in cards}
    by_key["churn_rate"]["detail"] = _("%(lost)s of %(base)s customers paying at the start") % {
        "lost": f"{churn.lost:,}",
        "base": f"{churn.base:,}",
    }
    if churn.base and churn.small_base:
        by_key["churn_rate"]["warning"] = _(
            "Only %(base)s customers were paying at the start (fewer than %(small)s): one customer more or less "
            "moves this rate a lot, so read the counts, not the percentage."
        ) % {"base": churn.base, "small": SMALL_BASE}
    retention = summary.retention
    by_key["net_revenue_retention"]["detail"] = _("%(retained)s of %(start)s %(currency)s") % {
        "retained": money(retention.mrr_retained),
        "start": money(retention.mrr_start),
        "currency": currency,
    }
    return cards


def _movement_rows(summary: BillingSummary) -> list[dict]:
    return [
        {
            "label": month.label,
            "mrr_start": money(month.mrr_start),
            "parts": [money(getattr(month, part)) for part in PARTS],
            "mrr_end": money(month.mrr_end),
        }
        for month in (*summary.movement_series, summary.movements)
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
        period = billing_period(_period_params(request.GET), tz=tz, now=now)
    except PeriodError as error:
        context["error"] = str(error)
        return render(request, TEMPLATE, context, status=400)
    summary = billing_summary(billing.billing_scope(), period=period, now=now)
    charts = [
        billing_charts.revenue_chart(summary.series, currency=summary.currency),
        billing_charts.signups_churn_chart(summary.series),
        billing_charts.movements_chart(summary.movement_series, currency=summary.currency),
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
        movement_rows=_movement_rows(summary),
        movement_parts=[_(billing_charts.MOVEMENT_LABELS[part]) for part in PARTS],
        previous_period=summary.previous_period,
        definitions=[(PLAIN_NAMES[key], text) for key, text in DEFINITIONS.items() if key in PLAIN_NAMES],
    )
    with timezone.override(tz):
        return render(request, TEMPLATE, context)
