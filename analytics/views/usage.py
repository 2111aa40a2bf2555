"""The coach's usage page, ``/dashboard/usage``: parse the period, scope to the coach, call, render.

Every number on the page comes from ``UsageAnalyticsApi.analytics`` (``analytics.usage`` and
``analytics.charts`` underneath): the very body the JSON API returns and the page then polls,
so the first render and every refresh agree.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.api.usage import UsageAnalyticsApi
from analytics.periods import Period, PeriodError, parse_period
from coaching.models import CoachingSession, Plan, UsageLog, User

TEMPLATE = "analytics/usage_dashboard.html"
HISTORY_PAGE_SIZE = 25
REFRESH_SECONDS = 30
EXPORT_FORMATS = (("csv", "CSV"), ("pdf", "PDF"), ("xlsx", "Excel"))
PERIOD_CHOICES = (
    ("7d", gettext_lazy("Last 7 days")),
    ("30d", gettext_lazy("Last 30 days")),
    ("90d", gettext_lazy("Last 90 days")),
    ("month", gettext_lazy("This month")),
    ("year", gettext_lazy("This year")),
    ("custom", gettext_lazy("Custom range")),
)
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
    except PeriodError as exc:
        context["error"] = str(exc)
        with timezone.override(user.tzinfo):
            return render(request, TEMPLATE, context, status=400)

    coaches = User.objects.filter(pk=user.pk)
    report = UsageAnalyticsApi.analytics(coaches, period, subject=user, now=now)
    query = _period_query(period)
    context.update(
        period=period,
        form=_form_values(request.GET, period=period),
        cards=_cards(report),
        charts=report["charts"],
        plan=report["plan"],
        exports=_export_links(user.plan, period),
        history=_history_page(user, period, page=request.GET.get("page")),
        has_sessions=CoachingSession.objects.filter(coach=user).exists(),
        period_query=query,
        api_url=f"{reverse('analytics:usage-analytics')}?{query}",
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


def _period_query(period: Period) -> str:
    """The canonical query string for ``period``: what the API poll and the shareable links use."""
    if period.key == "custom":
        return urlencode({"from": period.first_day.isoformat(), "to": period.last_day.isoformat()})
    return urlencode({"period": period.key})


def _form_values(query: QueryDict, *, period: Period | None = None) -> dict[str, str]:
    if period is None:  # an invalid request: echo what was asked, so it can be corrected
        return {"period": query.get("period", "custom"), "from": query.get("from", ""), "to": query.get("to", "")}
    return {
        "period": "custom" if period.key not in dict(PERIOD_CHOICES) else period.key,
        "from": period.first_day.isoformat(),
        "to": period.last_day.isoformat(),
    }


def _cards(report: dict) -> list[dict]:
    changes = report["changes"]
    return [
        {
            "metric": metric,
            "label": label,
            "unit": unit,
            "decimals": decimals,
            "note": note,
            "value": report[metric],
            "change": changes.get(metric),
        }
        for metric, label, unit, decimals, note in CARDS
    ]


def _export_links(plan: Plan, period: Period) -> list[dict]:
    """One button per format: a real download link when the plan allows it, else the reason it is off."""
    base = reverse("exports:usage-history-export")
    missing = [fmt for fmt, _label in EXPORT_FORMATS if not plan.allows_format(fmt)]
    upgrades = list(Plan.objects.filter(is_active=True).order_by("sort_order")) if missing else []
    links = []
    for fmt, label in EXPORT_FORMATS:
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


def _history_page(user: User, period: Period, *, page: str | None):
    """The coach's ledger rows in the period, newest first, one page of them."""
    rows = (
        UsageLog.objects.filter(user=user, created_at__gte=period.start, created_at__lt=period.end)
        .select_related("client", "session")
        .order_by("-created_at", "-pk")
    )
    return Paginator(rows, HISTORY_PAGE_SIZE).get_page(page)
