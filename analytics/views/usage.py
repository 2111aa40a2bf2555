"""The coach's usage page, ``/dashboard/usage``: parse the period, scope to the coach, call, render.

Every number on the page comes from ``UsageAnalyticsApi.analytics`` (``analytics.usage`` and
``analytics.charts`` underneath): the very body the JSON API returns and the page re-reads when
its event stream says usage was recorded (``analytics.views.live``) or, without a stream, polls;
so the first render and every refresh agree. The history table (search, one chart bar's rows)
is the view's own (``analytics.views.usage_history``): the coach's ledger rows, a page at a time, or
the rows behind one bar of a chart.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.api.usage import UsageAnalyticsApi
from analytics.periods import Period, PeriodError, local_midnight, parse_period
from coaching.models import CoachingSession, ExportRecord, Plan, UsageLog, User

from .usage_history import history_page, history_query, history_search

TEMPLATE = "analytics/usage_dashboard.html"
REFRESH_SECONDS = 30
PERIOD_CHOICES = (
    ("7d", gettext_lazy("Last 7 days")),
    ("30d", gettext_lazy("Last 30 days")),
    ("90d", gettext_lazy("Last 90 days")),
    ("month", gettext_lazy("This month")),
    ("year", gettext_lazy("This year")),
    ("all", gettext_lazy("All time")),
    ("custom", gettext_lazy("Custom range")),
)
# What a rise means, per metric: more failures is bad; more minutes, sessions, … is neither good nor bad.
POLARITY = {"failed_transcriptions": "bad"}
# (metric, label, unit, decimals, note): one headline card each, in this order.
CARDS = (
    ("minutes_used", gettext_lazy("Minutes used"), gettext_lazy("min"), 2, ""),
    ("sessions", gettext_lazy("Sessions"), "", 0, ""),
    ("transcriptions", gettext_lazy("Transcriptions"), "", 0, ""),
    ("failed_transcriptions", gettext_lazy("Failed transcriptions"), "", 0, gettext_lazy("Not billed")),
    ("exports_generated", gettext_lazy("Exports"), "", 0, ""),
    ("storage_used_mb", gettext_lazy("Storage"), "MB", 1, ""),
    ("api_calls_made", gettext_lazy("API calls"), "", 0, ""),
    ("concurrent_sessions_peak", gettext_lazy("Concurrent peak"), "", 0, gettext_lazy("sessions at once")),
)


@login_required
def usage_dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    now = timezone.now()
    context = {
        "period_choices": PERIOD_CHOICES,
        "form": _form_values(request.GET),
        "timezone_name": user.timezone,
        "now": now,
    }
    try:
        period = parse_period(_period_params(request.GET), tz=user.tzinfo, now=now)
        if period.key == "all":
            period = _all_time(user, period)
        search = history_search(request.GET, period)
    except PeriodError as exc:
        context["error"] = str(exc)
        with timezone.override(user.tzinfo):
            return render(request, TEMPLATE, context, status=400)

    coaches = User.objects.filter(pk=user.pk)
    report = UsageAnalyticsApi.analytics(coaches, period, subject=user, now=now)
    query = _period_query(period)
    all_time = period.key == "all"
    context.update(
        period=period,
        form=_form_values(request.GET, period=period),
        cards=_cards(report, with_changes=not all_time),
        all_time=all_time,
        charts=_with_axes(report["charts"], period),
        plan=report["plan"],
        exports=_export_links(user.plan, period),
        history=history_page(user, period, search=search, page=request.GET.get("page")),
        search=search,
        history_query=history_query(query, search),
        has_sessions=CoachingSession.objects.filter(coach=user).exists(),
        period_query=query,
        api_url=f"{reverse('analytics:usage-analytics')}?{_range_query(period) if all_time else query}",
        refresh_seconds=REFRESH_SECONDS,
    )
    with timezone.override(user.tzinfo):
        return render(request, TEMPLATE, context)


def _period_params(query: QueryDict) -> dict[str, str]:
    """What the period form means: a preset, or (``period=custom`` / no ``period``) the from/to dates.

    The form always carries the date fields, so a preset ignores them; a shared link with only
    ``from``/``to`` is a custom range.
    """
    key = query.get("period", "")
    dates = {name: query[name] for name in ("from", "to") if query.get(name)}
    if key == "custom":
        if not dates:
            raise PeriodError(_("Choose a start date, an end date or both for a custom range."))
        return dates
    return {"period": key} if key else dates


def _all_time(user: User, period: Period) -> Period:
    """"All time" of one coach starts on the day of their first record (or sign-up), not the product's epoch,
    so the chart is not years of empty months."""
    first = UsageLog.objects.filter(user=user).order_by("created_at").values_list("created_at", flat=True).first()
    start = min(first, user.date_joined) if first else user.date_joined
    day = max(start.astimezone(period.tz).date(), period.first_day)
    return dataclasses.replace(period, start=local_midnight(day, period.tz))


def _range_query(period: Period) -> str:
    return urlencode({"from": period.first_day.isoformat(), "to": period.last_day.isoformat()})


def _period_query(period: Period) -> str:
    """The canonical query string for ``period``: what the API poll and the shareable links use."""
    if period.key == "custom":
        return _range_query(period)
    return urlencode({"period": period.key})


def _form_values(query: QueryDict, *, period: Period | None = None) -> dict[str, str]:
    if period is None:  # an invalid request: echo what was asked, so it can be corrected
        return {"period": query.get("period", "custom"), "from": query.get("from", ""), "to": query.get("to", "")}
    return {
        "period": "custom" if period.key not in dict(PERIOD_CHOICES) else period.key,
        "from": period.first_day.isoformat(),
        "to": period.last_day.isoformat(),
    }


def _cards(report: dict, *, with_changes: bool = True) -> list[dict]:
    """One dict per card; ``tone`` says what the change means for this metric: good, bad, neutral, same."""
    changes = report["changes"] if with_changes else {}
    cards = []
    for metric, label, unit, decimals, note in CARDS:
        change = changes.get(metric)
        polarity = POLARITY.get(metric, "neutral")
        cards.append(
            {
                "metric": metric,
                "label": label,
                "unit": unit,
                "decimals": decimals,
                "note": note,
                "value": report[metric],
                "change": change,
                "polarity": polarity,
                "tone": _tone(change, polarity),
            }
        )
    return cards


def _tone(change: dict | None, polarity: str) -> str:
    delta = None if change is None else change.get("delta")
    if delta is None:
        return "none"
    if delta == 0:
        return "same"
    if polarity == "neutral":
        return "neutral"
    return "bad" if (delta > 0) == (polarity == "bad") else "good"


def _with_axes(specs: list[dict], period: Period) -> list[dict]:
    """The chart specs with translated axis titles (the API's specs carry only a unit code)."""
    x_titles = {"minutes": _("Day") if period.granularity == "day" else _("Month"), "exports-by-format": _("Format")}
    y_titles = {"minutes": _("Minutes"), "exports-by-format": _("Exports")}
    return [{**spec, "axes": {"x": x_titles.get(spec["id"], ""), "y": y_titles.get(spec["id"], "")}} for spec in specs]


def _export_links(plan: Plan, period: Period) -> list[dict]:
    """One button per format: a real download link when the plan allows it, else the reason it is off."""
    base = reverse("exports:usage-history-export")
    # Every format the product records (the exports registry's, which a test keeps equal to these choices).
    formats = ExportRecord.Format.choices
    missing = [fmt for fmt, _label in formats if not plan.allows_format(fmt)]
    upgrades = list(Plan.objects.filter(is_active=True).order_by("sort_order")) if missing else []
    links = []
    for fmt, label in formats:
        allowed = plan.allows_format(fmt)
        query = urlencode({"format": fmt, "from": period.first_day.isoformat(), "to": period.last_day.isoformat()})
        reason = ""
        if not allowed:
            upgrade = next((other for other in upgrades if other.allows_format(fmt)), None)
            reason = _("Not included in the %(plan)s plan.") % {"plan": plan.name}
            if upgrade is not None:
                reason += " " + _("Available from the %(plan)s plan.") % {"plan": upgrade.name}
        links.append({"format": fmt, "label": label, "allowed": allowed, "url": f"{base}?{query}", "reason": reason})
    return links
