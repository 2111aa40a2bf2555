"""The pure parts: the spreadsheet-safety rule, typed rows, and the SVG renderer."""

import datetime
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from analytics import charts
from analytics.periods import parse_period
from exports.rows import HEADER, neutralise, usage_history_aggregates, usage_history_rows
from exports.svg import axis, chart_svg

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+886 912", "'+886 912"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("\rCR", "'\rCR"),
        ("王小明", "王小明"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_neutralise_prefixes_formula_triggers_only(value, expected):
    assert neutralise(value) == expected


@pytest.mark.django_db
def test_rows_are_typed_and_in_the_subjects_zone(coach, history):
    period = parse_period({"from": "2026-04-01", "to": "2026-04-30"}, tz=coach.tzinfo)
    rows = [dict(zip(HEADER, r, strict=True)) for r in usage_history_rows(coach, period)]

    assert len(rows) == 4
    assert rows[0]["created_at"] == datetime.datetime(2026, 4, 1, 1, 30, tzinfo=coach.tzinfo)
    assert rows[2]["seconds"] == -120 and rows[2]["minutes"] == Decimal("-2.00")
    assert rows[2]["counts_toward_quota"] is False and rows[0]["counts_toward_quota"] is True
    assert rows[1]["session_title"] == "@SUM(1+1)"  # as typed: each writer makes it safe its own way
    assert rows[0]["time_zone"] == "Asia/Taipei"


@pytest.mark.django_db
def test_daily_aggregates_bucket_by_local_day(coach, history):
    period = parse_period({"from": "2026-03-31", "to": "2026-04-30"}, tz=coach.tzinfo)
    lines = usage_history_aggregates(coach, period, granularity="day")

    # 15:59 UTC on 31 March is 23:59 local (31 March); 17:30 UTC is 01:30 on 1 April.
    assert [(a.label, a.entries, a.quota_minutes, a.all_minutes) for a in lines] == [
        ("2026-03-31", 1, Decimal("1.00"), Decimal("1.00")),
        ("2026-04-01", 1, Decimal("60.00"), Decimal("60.00")),
        ("2026-04-02", 1, Decimal("30.00"), Decimal("30.00")),
        ("2026-04-03", 1, Decimal("0.00"), Decimal("-2.00")),
        ("2026-04-05", 1, Decimal("0.00"), Decimal("10.00")),
    ]


def test_axis_is_readable():
    assert axis([60, 30, 100]) == (100, 4)
    assert axis([1, 0, 0]) == (1, 1)
    assert axis([3, 1]) == (3, 3)
    assert axis([0.4]) == (0.4, 4)
    assert axis([]) == (1, 1)


def test_bar_chart_draws_one_rect_per_nonzero_value_and_the_limit_as_a_line():
    series = [{"label": f"2026-04-0{d}", "minutes": m} for d, m in [(1, 60), (2, 0), (3, 30)]]
    spec = charts.minutes_chart(series, limit=Decimal(3000))

    root = ET.fromstring(chart_svg(spec))

    bars = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == "#2563eb" and float(r.get("height")) > 8.5]
    assert len(bars) == 2
    heights = sorted(float(b.get("height")) for b in bars)
    assert heights[1] == pytest.approx(2 * heights[0], rel=0.01)  # 60 is twice 30
    assert len(list(root.iter(f"{SVG}polyline"))) == 1  # the pro-rated limit
    assert root.get("aria-label") == "Transcription minutes"


def test_doughnut_has_one_segment_per_nonzero_status_and_escapes_labels():
    spec = charts.sessions_by_status_chart({"completed": 3, "failed": 1, "pending": 0, "<script>": 2})

    markup = chart_svg(spec, width=250, height=140)
    root = ET.fromstring(markup)

    assert len(list(root.iter(f"{SVG}path"))) == 3
    assert "<script>" not in markup and "&lt;script&gt;: 2" in markup


def test_empty_doughnut_is_a_grey_ring():
    root = ET.fromstring(chart_svg(charts.sessions_by_status_chart({"completed": 0}), width=250, height=140))
    assert len(list(root.iter(f"{SVG}circle"))) == 1 and not list(root.iter(f"{SVG}path"))


def test_the_limit_line_is_drawn_in_its_colour_in_any_language_and_date_labels_never_crowd():
    from django.utils import translation

    from analytics.charts import minutes_chart
    from exports import svg

    series = [{"label": f"2026-03-{d:02d}", "minutes": d} for d in range(1, 32)]
    with translation.override("zh-hant"):
        spec = minutes_chart(series, limit=Decimal("3000"))
    drawing = svg.chart_svg(spec)
    assert f'stroke="{svg.LIMIT_COLOUR}"' in drawing
    shown = [day for day in range(1, 32) if f">2026-03-{day:02d}<" in drawing]
    assert 2 <= len(shown) <= 10  # 31 labels of 10 characters do not fit side by side on an A4 half-width chart
