"""Chart specs for the billing overview, in the shape of ``analytics.charts`` (one spec, any renderer).

    {"id", "type", "title", "unit", "labels", "datasets": [{"label", "data", "type"}], "limit"}

Built from the summary's series: the page's charts and tables show the very numbers the API
returns. Chart data are floats for plotting only; the tables next to them print the exact decimals.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .movements import Movements
from .summary import SeriesPoint

MOVEMENT_LABELS = {  # translated where shown (gettext_noop marks them for makemessages)
    "new": gettext_noop("New"),
    "expansion": gettext_noop("Expansion"),
    "contraction": gettext_noop("Contraction"),
    "churned": gettext_noop("Churned"),
    "reactivation": gettext_noop("Reactivation"),
}


def revenue_chart(series: Sequence[SeriesPoint], *, currency: str) -> dict:
    """Net revenue per month (bars) and MRR at each month's close (line), in ``currency``."""
    return {
        "id": "billing-revenue-mrr",
        "type": "bar",
        "title": f"Net revenue and MRR ({currency})",
        "unit": currency,
        "labels": [point.label for point in series],
        "datasets": [
            {"label": "Net revenue", "data": [float(point.revenue) for point in series], "type": "bar"},
            {
                "label": "MRR at month end",
                "data": [None if point.mrr is None else float(point.mrr) for point in series],
                "type": "line",
            },
        ],
        "limit": None,
    }


def signups_churn_chart(series: Sequence[SeriesPoint]) -> dict:
    """New sign-ups and churned users per month (bars side by side)."""
    return {
        "id": "billing-signups-churn",
        "type": "bar",
        "title": "Sign-ups and churned users",
        "unit": "users",
        "labels": [point.label for point in series],
        "datasets": [
            {"label": "New sign-ups", "data": [point.new_signups for point in series], "type": "bar"},
            {"label": "Churned users", "data": [point.churned_users for point in series], "type": "bar"},
        ],
        "limit": None,
    }


def movements_chart(series: Sequence[Movements], *, currency: str) -> dict:
    """MRR movements per month: one bar per movement (churned and contraction below zero), net change as a line.

    ``stacked`` asks renderers to stack the bars, so each month's bar reads as its bridge: what was
    added above the axis, what was lost below, the line the net of both.
    """
    return {
        "id": "billing-mrr-movements",
        "type": "bar",
        "title": _("MRR movements (%(currency)s)") % {"currency": currency},
        "unit": currency,
        "labels": [month.label for month in series],
        "datasets": [
            *(
                {"label": _(label), "data": [float(getattr(month, part)) for month in series], "type": "bar"}
                for part, label in MOVEMENT_LABELS.items()
            ),
            {"label": _("Net change"), "data": [float(month.net) for month in series], "type": "line"},
        ],
        "stacked": True,
        "limit": None,
    }
