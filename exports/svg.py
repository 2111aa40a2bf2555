"""Render a chart spec (``analytics/charts.py``) to inline SVG for the PDF report.

WeasyPrint runs no JavaScript, so the dashboard's Chart.js cannot draw on paper; this draws the
same spec (same labels, same numbers) as vector shapes. Every piece of text is escaped here;
the result is safe to mark safe in a template.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#6b7280")
LIMIT_COLOUR = "#dc2626"
GRID = "#e5e7eb"
INK = "#374151"
# Sessions by status: the colours a reader expects (green done, red failed, grey idle).
STATUS_COLOURS = {
    "completed": "#16a34a",
    "failed": "#dc2626",
    "processing": "#2563eb",
    "pending": "#f59e0b",
    "uploading": "#9ca3af",
    "cancelled": "#4b5563",
}
FONT = 'font-family="Noto Sans CJK TC, Noto Sans, DejaVu Sans, sans-serif"'


def _num(value: float) -> str:
    """A coordinate with at most two decimals, no trailing zeros (smaller, reproducible markup)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _label(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def nice_step(value: float, *, whole: bool = False) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^n at or above ``value``; ``whole``: at least 1 and never 2.5."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    steps = (1, 2, 5, 10) if whole and magnitude <= 1 else (1, 2, 2.5, 5, 10)
    for step in steps:
        if value <= step * magnitude:
            return max(step * magnitude, 1.0) if whole else step * magnitude
    return 10 * magnitude


def axis(values: list[float]) -> tuple[float, int]:
    """A readable value axis for ``values``: (top, number of intervals), 4 intervals or fewer for small counts."""
    top = max(values, default=0)
    whole = all(float(v).is_integer() for v in values)
    step = nice_step(top / 4, whole=whole)
    intervals = max(1, math.ceil(top / step - 1e-9)) if top > 0 else 1
    return step * intervals, intervals


def chart_svg(spec: dict, *, width: int = 520, height: int = 200) -> str:
    """The spec as an ``<svg>`` element: bars/lines on a value axis, or a doughnut with a legend."""
    if spec["type"] == "doughnut":
        return _doughnut(spec, width=width, height=height)
    return _cartesian(spec, width=width, height=height)


def _open(spec: dict, width: int, height: int) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(spec["id"])}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(spec["title"])}">'
    )


def _cartesian(spec: dict, *, width: int, height: int) -> str:
    labels, datasets = spec["labels"], spec["datasets"]
    left, right, top, bottom = 44, 8, 8, 44 if len(datasets) > 1 else 28
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [float(v) for ds in datasets for v in ds["data"] if v is not None]
    y_max, intervals = axis(values)
    parts = [_open(spec, width, height)]

    def y(value: float) -> float:
        return top + plot_h - (float(value) / y_max) * plot_h

    for i in range(intervals + 1):  # gridlines and value labels at each step of the axis
        tick = y_max * i / intervals
        parts.append(
            f'<line x1="{left}" y1="{_num(y(tick))}" x2="{width - right}" y2="{_num(y(tick))}" '
            f'stroke="{GRID}" stroke-width="0.8"/>'
            f'<text x="{left - 4}" y="{_num(y(tick) + 3)}" text-anchor="end" font-size="8" fill="{INK}" {FONT}>'
            f"{_label(tick)}</text>"
        )
    n = max(len(labels), 1)
    slot = plot_w / n
    bar_sets = [ds for ds in datasets if ds.get("type", spec["type"]) == "bar"]
    bar_w = slot * 0.8 / max(len(bar_sets), 1)
    for k, ds in enumerate(datasets):
        colour = LIMIT_COLOUR if ds.get("role") == "limit" else PALETTE[k % 8]
        if ds.get("type", spec["type"]) == "bar":
            j = bar_sets.index(ds)
            for i, value in enumerate(ds["data"]):
                if not value:
                    continue
                x0 = left + i * slot + slot * 0.1 + j * bar_w
                parts.append(
                    f'<rect x="{_num(x0)}" y="{_num(y(value))}" width="{_num(max(bar_w - 0.6, 0.6))}" '
                    f'height="{_num(top + plot_h - y(value))}" fill="{colour}"/>'
                )
        else:
            points = " ".join(
                f"{_num(left + (i + 0.5) * slot)},{_num(y(v))}" for i, v in enumerate(ds["data"]) if v is not None
            )
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="{INK}" '
        f'stroke-width="0.8"/>'
    )
    # As many category labels as fit side by side (~4.6 units a character at size 8): never overlapping.
    longest = max((len(str(label)) for label in labels), default=1)
    fitting = max(1, int(plot_w // (longest * 4.6 + 8)))
    every = max(1, math.ceil(n / fitting))
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(
                f'<text x="{_num(left + (i + 0.5) * slot)}" y="{top + plot_h + 11}" text-anchor="middle" '
                f'font-size="8" fill="{INK}" {FONT}>{escape(str(label))}</text>'
            )
    if len(datasets) > 1:
        parts.append(_legend(datasets, x=left, y=height - 10))
    parts.append(
        f'<text x="4" y="{top + 6}" font-size="7" fill="{INK}" {FONT}>{escape(spec.get("unit", ""))}</text></svg>'
    )
    return "".join(parts)


def _legend(datasets: list[dict], *, x: float, y: float) -> str:
    parts = []
    for k, ds in enumerate(datasets):
        colour = LIMIT_COLOUR if ds.get("role") == "limit" else PALETTE[k % 8]
        parts.append(
            f'<rect x="{_num(x)}" y="{_num(y - 7)}" width="8" height="8" fill="{colour}"/>'
            f'<text x="{_num(x + 11)}" y="{_num(y)}" font-size="8" fill="{INK}" {FONT}>{escape(ds["label"])}</text>'
        )
        x += 16 + 4.6 * len(ds["label"])
    return "".join(parts)


def _doughnut(spec: dict, *, width: int, height: int) -> str:
    labels, data = spec["labels"], [float(v) for v in spec["datasets"][0]["data"]]
    colours = [STATUS_COLOURS.get(str(label).lower(), PALETTE[k % 8]) for k, label in enumerate(labels)]
    total = sum(data)
    cx, cy = height / 2, height / 2
    outer, inner = height / 2 - 8, height / 4
    parts = [_open(spec, width, height)]
    if total <= 0:
        parts.append(
            f'<circle cx="{_num(cx)}" cy="{_num(cy)}" r="{_num((outer + inner) / 2)}" fill="none" stroke="{GRID}" '
            f'stroke-width="{_num(outer - inner)}"/>'
        )
    angle = -math.pi / 2
    for k, value in enumerate(data):
        if value <= 0:
            continue
        sweep = 2 * math.pi * value / total
        parts.append(_ring_segment(cx, cy, outer, inner, angle, min(sweep, 2 * math.pi - 1e-4), colours[k]))
        angle += sweep
    parts.append(
        f'<text x="{_num(cx)}" y="{_num(cy + 4)}" text-anchor="middle" font-size="12" fill="{INK}" {FONT}>'
        f"{_label(total)}</text>"
    )
    for k, (label, value) in enumerate(zip(labels, data, strict=True)):
        ly = 14 + k * 14
        parts.append(
            f'<rect x="{_num(height + 10)}" y="{ly - 8}" width="9" height="9" fill="{colours[k]}"/>'
            f'<text x="{_num(height + 24)}" y="{ly}" font-size="9" fill="{INK}" {FONT}>'
            f"{escape(str(label))}: {_label(value)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _ring_segment(cx: float, cy: float, outer: float, inner: float, start: float, sweep: float, colour: str) -> str:
    end = start + sweep
    large = 1 if sweep > math.pi else 0

    def point(radius: float, angle: float) -> str:
        return f"{_num(cx + radius * math.cos(angle))} {_num(cy + radius * math.sin(angle))}"

    return (
        f'<path d="M {point(outer, start)} A {_num(outer)} {_num(outer)} 0 {large} 1 {point(outer, end)} '
        f'L {point(inner, end)} A {_num(inner)} {_num(inner)} 0 {large} 0 {point(inner, start)} Z" '
        f'fill="{colour}"/>'
    )
