"""Presentation filters for the usage dashboard.

Numbers are written the same way here and in ``static/js/dashboard.js`` (comma grouping,
a fixed number of decimals) so a refreshed card never changes shape. Both UI languages
(English, zh-Hant) group digits with commas; Django's zh_Hant format file groups by four
without a separator, which reads oddly next to the charts, hence a filter of our own.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template

register = template.Library()


@register.filter
def number(value, decimals: int = 0) -> str:
    """``1234.5`` -> ``"1,234.50"`` with ``decimals`` places; ``None`` -> an em dash."""
    if value is None or value == "":
        return "—"
    places = int(decimals)
    amount = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{amount:,.{places}f}"


@register.filter
def signed(value, decimals: int = 0) -> str:
    """A change with its sign: ``+12``, ``−3.5`` (a true minus sign), ``0``."""
    if value is None:
        return "—"
    amount = Decimal(str(value))
    text = number(abs(amount), decimals)
    if text == number(0, decimals):
        return text
    if amount > 0:
        return f"+{text}"
    if amount < 0:
        return f"\u2212{text}"
    return text


@register.filter
def bar_width(percent) -> str:
    """A progress-bar width in CSS percent, clamped to 0–100 (the label still says 130 %)."""
    if percent is None:
        return "0"
    return f"{max(Decimal(0), min(Decimal(100), Decimal(str(percent)))):.1f}"


@register.filter
def chart_rows(spec: dict) -> list[tuple[str, str, list]]:
    """The rows of a chart spec's table fallback: (key, label, one cell per dataset) per label."""
    datasets = spec.get("datasets", [])
    labels = spec.get("labels", [])
    keys = spec.get("keys") or labels
    return [
        (keys[i], label, [ds["data"][i] if i < len(ds["data"]) else None for ds in datasets])
        for i, label in enumerate(labels)
    ]


@register.filter
def minutes_of(seconds) -> str:
    """A length in seconds as minutes with two decimals: ``90`` -> ``"1.50"``."""
    if seconds is None:
        return "—"
    return number(Decimal(int(seconds)) / 60, 2)


@register.filter
def chart_number(value) -> str:
    """A chart value in its table fallback: whole numbers plain, others with two decimals."""
    if value is None:
        return "—"
    return number(value, 0 if float(value).is_integer() else 2)
