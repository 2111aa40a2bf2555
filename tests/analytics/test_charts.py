"""Chart specs (analytics/charts.py): the plain dicts Chart.js and the PDF's SVG both draw."""

import json
from decimal import Decimal

from analytics.charts import exports_by_format_chart, minutes_chart, sessions_by_status_chart


def row(label, minutes):
    return {"label": label, "minutes": minutes, "sessions": 1, "transcriptions": 1, "failed": 0, "exports": 0}


def test_monthly_minutes_with_the_plan_limit_as_a_line():
    spec = minutes_chart([row("2026-03", 812.5), row("2026-04", 3100.0)], limit=Decimal(3000))
    assert spec == {
        "id": "minutes",
        "type": "bar",
        "title": "Transcription minutes",
        "unit": "min",
        "labels": ["2026-03", "2026-04"],
        "keys": ["2026-03", "2026-04"],
        "datasets": [
            {"label": "Minutes used", "data": [812.5, 3100.0], "type": "bar"},
            {"label": "Plan limit", "data": [3000.0, 3000.0], "type": "line", "role": "limit"},
        ],
        "limit": 3000.0,
    }
    json.dumps(spec)  # plain data: no Decimal left for the page's JSON


def test_daily_minutes_show_the_limit_pro_rated_by_the_days_of_each_month():
    spec = minutes_chart([row("2026-02-28", 10.0), row("2026-03-01", 20.0)], limit=Decimal(3000))
    line = spec["datasets"][1]
    assert line["type"] == "line"
    assert line["data"] == [107.14, 96.77]  # 3000 / 28 and 3000 / 31
    assert spec["limit"] == 3000.0


def test_unlimited_plan_or_platform_has_no_limit_line():
    spec = minutes_chart([row("2026-04", 5.0)], limit=None)
    assert [d["label"] for d in spec["datasets"]] == ["Minutes used"]
    assert spec["limit"] is None


def test_sessions_by_status_every_status_in_order():
    spec = sessions_by_status_chart(
        {"uploading": 0, "pending": 1, "processing": 2, "completed": 30, "failed": 3, "cancelled": 0}
    )
    assert spec["type"] == "doughnut"
    assert spec["labels"] == ["Uploading", "Pending", "Processing", "Completed", "Failed", "Cancelled"]
    assert spec["keys"] == ["uploading", "pending", "processing", "completed", "failed", "cancelled"]
    assert spec["datasets"] == [{"label": "Sessions", "data": [0, 1, 2, 30, 3, 0], "type": "doughnut"}]


def test_exports_by_format_keeps_zero_formats():
    spec = exports_by_format_chart({"csv": 8, "pdf": 7, "xlsx": 0})
    assert spec["labels"] == ["CSV", "PDF", "Excel (XLSX)"]
    assert spec["keys"] == ["csv", "pdf", "xlsx"]
    assert spec["datasets"][0]["data"] == [8, 7, 0]
    assert spec["unit"] == "exports"


def test_chart_text_follows_the_active_language():
    from django.utils import translation

    from analytics.charts import sessions_by_status_chart

    with translation.override("zh-hant"):
        spec = sessions_by_status_chart({"completed": 3, "failed": 1})
    assert spec["title"] == "各狀態的會談"
    assert spec["labels"] == ["已完成", "失敗"]
    assert spec["keys"] == ["completed", "failed"]  # a drill-down asks for the status, whatever the language
    with translation.override("en"):
        assert sessions_by_status_chart({"completed": 3})["title"] == "Sessions by status"
