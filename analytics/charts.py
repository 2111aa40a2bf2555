"""Chart definitions: one plain-dict spec per chart, two renderers.

The same spec feeds Chart.js on the usage page (and the API's ``charts`` key, which the page
polls) and the SVG renderer in the PDF report (``exports/svg.py``), so screen and paper never
disagree. A spec is::

    {"id": str, "type": "bar" | "line" | "doughnut", "title": str, "unit": str,
     "labels": [str], "keys": [str],
     "datasets": [{"label": str, "data": [float | int], "type": "bar" | "line" | "doughnut",
                   "role": "limit" (only on the plan-limit line)}],
     "limit": float | None}

``type`` is the chart's main type; each dataset says how it is drawn (a bar chart may carry a
line dataset, e.g. the plan limit; a doughnut's one dataset is ``"doughnut"`` too, since
Chart.js draws a dataset by its own ``type``). ``keys`` name each label's bucket, untranslated:
a day or month (``YYYY-MM-DD`` / ``YYYY-MM``), a session status, an export format; the usage
page's drill-down asks for a bar's rows with it (``?chart=<id>&on=<key>``). ``limit`` is the
plan's monthly limit in the chart's unit (None: no limit or not applicable), for renderers that
annotate it.
"""

from __future__ import annotations

import calendar
import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.utils.translation import gettext as _

from coaching.models import CoachingSession, ExportRecord

STATUS_LABELS = {status.value: status.label for status in CoachingSession.Status}
FORMAT_LABELS = {fmt.value: fmt.label for fmt in ExportRecord.Format}


def _days_in_month(label: str) -> int:
    day = datetime.date.fromisoformat(label)
    return calendar.monthrange(day.year, day.month)[1]


def _limit_line(labels: list[str], limit: Decimal) -> dict:
    """The plan's limit as a line dataset, one value per bucket.

    Monthly buckets (``YYYY-MM``) get the monthly limit. Daily buckets (``YYYY-MM-DD``) get it
    pro-rated: limit / days in that bucket's month, the daily pace that uses exactly the plan
    in a month; a day above the line is a day spent faster than the plan allows.
    """
    if labels and len(labels[0]) == 10:
        data = [
            float((limit / _days_in_month(label)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) for label in labels
        ]
        label = _("Plan limit per day (monthly limit pro-rated)")
        return {"label": label, "data": data, "type": "line", "role": "limit"}
    return {"label": _("Plan limit"), "data": [float(limit)] * len(labels), "type": "line", "role": "limit"}


def minutes_chart(series: list[dict], *, limit: Decimal | None) -> dict:
    """Transcription minutes per bucket (bars), with the plan's limit as a line when there is one.

    ``series`` is ``analytics.usage.usage_series(...)``; ``limit`` the plan's minutes a month
    (None for an unlimited plan or platform totals: no line). Daily series show the limit
    pro-rated per day (see ``_limit_line``); ``spec["limit"]`` stays the monthly figure.
    """
    labels = [row["label"] for row in series]
    datasets = [{"label": _("Minutes used"), "data": [float(row["minutes"]) for row in series], "type": "bar"}]
    if limit is not None and labels:
        datasets.append(_limit_line(labels, Decimal(limit)))
    return {
        "id": "minutes",
        "type": "bar",
        "title": _("Transcription minutes"),
        "unit": "min",
        "labels": labels,
        "keys": labels,
        "datasets": datasets,
        "limit": None if limit is None else float(limit),
    }


def sessions_by_status_chart(counts: dict[str, int]) -> dict:
    """Sessions by status (doughnut), every status in the model's order, zeros included."""
    keys = [status for status in STATUS_LABELS if status in counts] + [k for k in counts if k not in STATUS_LABELS]
    return {
        "id": "sessions-by-status",
        "type": "doughnut",
        "title": _("Sessions by status"),
        "unit": "sessions",
        "labels": [_(STATUS_LABELS.get(key, key)) for key in keys],
        "keys": keys,
        "datasets": [{"label": _("Sessions"), "data": [int(counts[key]) for key in keys], "type": "doughnut"}],
        "limit": None,
    }


def exports_by_format_chart(counts: dict[str, int]) -> dict:
    """Succeeded exports by format (bars), every format, zeros included."""
    keys = [fmt for fmt in FORMAT_LABELS if fmt in counts] + [k for k in counts if k not in FORMAT_LABELS]
    return {
        "id": "exports-by-format",
        "type": "bar",
        "title": _("Exports by format"),
        "unit": "exports",
        "labels": [_(FORMAT_LABELS.get(key, key)) for key in keys],
        "keys": keys,
        "datasets": [{"label": _("Exports"), "data": [int(counts[key]) for key in keys], "type": "bar"}],
        "limit": None,
    }
