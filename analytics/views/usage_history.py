"""The usage page's rows section: the coach's ledger rows, searchable, or the rows behind one chart bar.

A bar of a chart on the page is ``?chart=<chart id>&on=<key>`` (the spec's ``keys``,
``analytics/charts.py``); the rows behind it are the very rows the chart counts, from the same
queryset functions (``analytics.usage_raw``), so a bar of 3 shows 3 rows:

- ``minutes`` (the default chart): a local day (``YYYY-MM-DD``) or month (``YYYY-MM``) of the
  coach's ledger (``UsageLog``), in the coach's time zone, within the period;
- ``sessions-by-status``: the sessions created in the period with that status now (soft-deleted
  ones included, marked so);
- ``exports-by-format``: the succeeded exports of the coach's usage made in the period in that format.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from urllib.parse import urlencode

from django.core.paginator import Page, Paginator
from django.db.models import Q
from django.http import QueryDict
from django.utils.translation import gettext as _

from analytics import usage_raw
from analytics.periods import Period, PeriodError, local_midnight
from coaching.models import CoachingSession, ExportRecord, UsageLog, User

PAGE_SIZE = 25
ON_PATTERN = re.compile(r"\A(\d{4})-(\d{2})(?:-(\d{2}))?\Z")
MINUTES = "minutes"
SESSIONS = "sessions-by-status"
EXPORTS = "exports-by-format"
# What each chart's bar keys are (besides the minutes chart's days and months).
CHART_KEYS = {SESSIONS: CoachingSession.Status, EXPORTS: ExportRecord.Format}


@dataclasses.dataclass(frozen=True)
class HistorySearch:
    """The rows section's filters: words in the client's name or the session's title; one chart bar."""

    text: str = ""
    chart: str = MINUTES  # whose rows: the ledger's (minutes), the sessions' or the exports'
    on: str = ""  # the bar's key: a local day or month (minutes), a status (sessions), a format (exports)
    start: datetime.datetime | None = None
    end: datetime.datetime | None = None
    label: str = ""  # the bar's label as the chart shows it (translated)


def history_search(query: QueryDict, period: Period) -> HistorySearch:
    """The filters of ``query``; PeriodError (a 400 on the page) when a bar cannot be one of the charts."""
    text = " ".join(query.get("q", "").split())[:100]
    chart = query.get("chart", "") or MINUTES
    on = query.get("on", "")
    if chart not in (MINUTES, *CHART_KEYS):
        raise PeriodError(
            _("Unknown chart '%(chart)s': choose one of %(choices)s.")
            % {"chart": chart, "choices": ", ".join((MINUTES, *CHART_KEYS))}
        )
    if chart in CHART_KEYS:
        choices = CHART_KEYS[chart]
        if on not in choices.values:
            raise PeriodError(
                _("'%(on)s' is not a bar of that chart: choose one of %(choices)s, or pick a bar of the chart again.")
                % {"on": on, "choices": ", ".join(choices.values)}
            )
        return HistorySearch(text=text, chart=chart, on=on, label=_(choices(on).label))
    if not on:
        return HistorySearch(text=text)
    match = ON_PATTERN.match(on)
    try:
        year, month, day = int(match[1]), int(match[2]), int(match[3] or 1)
        first = datetime.date(year, month, day)
    except (TypeError, ValueError):
        raise PeriodError(
            _("%(on)s is not a day (YYYY-MM-DD) or a month (YYYY-MM): pick a bar of the chart again.") % {"on": on}
        ) from None
    following = first + datetime.timedelta(days=1) if match[3] else (first + datetime.timedelta(days=32)).replace(day=1)
    start = max(local_midnight(first, period.tz), period.start)
    end = min(local_midnight(following, period.tz), period.end)
    return HistorySearch(text=text, on=on, start=start, end=end, label=on)


def history_query(period_query: str, search: HistorySearch) -> str:
    """The query string of a rows page link: the period and the filters in force."""
    pairs = (("q", search.text), ("chart", "" if search.chart == MINUTES else search.chart), ("on", search.on))
    extra = {key: value for key, value in pairs if value}
    return f"{period_query}&{urlencode(extra)}" if extra else period_query


def history_page(user: User, period: Period, *, search: HistorySearch | None = None, page: str | None) -> Page:
    """One page of the rows ``search`` asks for, the coach's own only, newest first."""
    search = search or HistorySearch()
    coaches = User.objects.filter(pk=user.pk)
    if search.chart == SESSIONS:
        rows = usage_raw.sessions_created(coaches, period).filter(status=search.on)
        rows = _matching(rows, search.text, client="client__name", title="title").select_related("client")
    elif search.chart == EXPORTS:
        rows = usage_raw.exports(coaches, period).filter(format=search.on)  # no client or title to search
    else:
        rows = UsageLog.objects.filter(
            user=user, created_at__gte=search.start or period.start, created_at__lt=search.end or period.end
        )
        rows = _matching(rows, search.text, client="client__name", title="session__title")
        rows = rows.select_related("client", "session")
    return Paginator(rows.order_by("-created_at", "-pk"), PAGE_SIZE).get_page(page)


def _matching(rows, text: str, *, client: str, title: str):
    for word in text.split():
        rows = rows.filter(Q(**{f"{client}__icontains": word}) | Q(**{f"{title}__icontains": word}))
    return rows
