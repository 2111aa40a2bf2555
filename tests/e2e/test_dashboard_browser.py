"""The usage page in a real browser (Debian's Chromium, headless) against the demo world.

Each test logs in through the form as the demo coach and reads what a person would see;
the expected figures come from the analytics functions on the same data.
"""

import csv
import datetime
import io
import os
import shutil
import time
from pathlib import Path

import pypdf
import pytest

from analytics.periods import parse_period
from analytics.templatetags.dashboard import number
from analytics.usage import usage_series, usage_summary
from coaching import services
from coaching.models import CoachingSession, UsageLog, User
from tests.analytics.live_server import AsgiServer

from .conftest import collect_errors, log_in, wait_for_charts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "output"
CARDS = {
    "minutes_used": 2,
    "sessions": 0,
    "transcriptions": 0,
    "failed_transcriptions": 0,
    "exports_generated": 0,
    "storage_used_mb": 1,
    "api_calls_made": 0,
    "concurrent_sessions_peak": 0,
}


def expected_cards(coach: User, params: dict) -> dict[str, str]:
    period = parse_period(params, tz=coach.tzinfo)
    summary = usage_summary(User.objects.filter(pk=coach.pk), period)
    return {metric: number(getattr(summary, metric), places) for metric, places in CARDS.items()}


def shown_cards(page) -> dict[str, str]:
    return {metric: page.locator(f'[data-metric="{metric}"] [data-value]').inner_text() for metric in CARDS}


def chart_data(page, chart_id: str, dataset: int = 0) -> list:
    return page.evaluate(f"() => Chart.getChart('chart-{chart_id}').data.datasets[{dataset}].data")


def test_coach_reads_the_numbers_changes_the_period_and_downloads_csv_and_pdf(tab, live_server, demo_coach):
    page = tab
    errors = collect_errors(page)
    log_in(page, live_server)
    coaches = User.objects.filter(pk=demo_coach.pk)

    # The cards and charts show the demo numbers, as the analytics functions compute them.
    assert shown_cards(page) == expected_cards(demo_coach, {"period": "30d"})
    thirty = parse_period({"period": "30d"}, tz=demo_coach.tzinfo)
    assert chart_data(page, "minutes") == [row["minutes"] for row in usage_series(coaches, thirty)]
    assert page.locator("[data-plan] .plan-heading").inner_text() == "This month on the Pro plan"
    assert page.get_by_role("progressbar").count() == 1
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=OUTPUT / "dashboard.png", full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):
        shutil.copyfile(OUTPUT / "dashboard.png", ROOT / "docs" / "dashboard.png")

    # A preset: the form sends only the period (the date fields are off), so the URL is shareable.
    page.get_by_label("Period", exact=True).select_option("90d")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/dashboard/usage?period=90d")
    wait_for_charts(page)
    assert shown_cards(page) == expected_cards(demo_coach, {"period": "90d"})

    # A custom range.
    ninety = parse_period({"period": "90d"}, tz=demo_coach.tzinfo)
    first, last = ninety.first_day.isoformat(), (ninety.last_day - datetime.timedelta(days=10)).isoformat()
    page.get_by_label("Period", exact=True).select_option("custom")
    page.get_by_label("From", exact=True).fill(first)
    page.get_by_label("To", exact=True).fill(last)
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(f"**/dashboard/usage?period=custom&from={first}&to={last}")
    wait_for_charts(page)
    assert shown_cards(page) == expected_cards(demo_coach, {"from": first, "to": last})

    # CSV: one row per ledger row of the coach in the range.
    custom = parse_period({"from": first, "to": last}, tz=demo_coach.tzinfo)
    ledger = UsageLog.objects.filter(user=demo_coach, created_at__gte=custom.start, created_at__lt=custom.end)
    with page.expect_download() as csv_download:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(csv_download.value.path()).read_text(encoding="utf-8-sig"))))
    assert csv_download.value.suggested_filename.endswith(".csv")
    assert len(rows) == ledger.count() > 0
    assert {int(row["usage_log_id"]) for row in rows} == set(ledger.values_list("id", flat=True))

    # PDF: a real PDF with the coach's name in it.
    with page.expect_download() as pdf_download:
        page.get_by_role("link", name="Download PDF").click()
    assert pdf_download.value.suggested_filename.endswith(".pdf")
    reader = pypdf.PdfReader(pdf_download.value.path())
    text = "".join(page_.extract_text() for page_ in reader.pages)
    assert demo_coach.name in text

    assert errors == []


def test_numbers_refresh_on_their_own_without_reloading(tab, live_server, demo_coach):
    page = tab
    errors = collect_errors(page)
    page.clock.install()  # the 30-second poll, without waiting 30 seconds
    log_in(page, live_server)
    page.evaluate("() => { window.stillTheSamePage = true; window.minutesChart = Chart.getChart('chart-minutes'); }")
    before = page.locator("#last-updated").inner_text()
    assert (
        page.locator('[data-metric="sessions"] [data-value]').inner_text()
        == expected_cards(demo_coach, {"period": "30d"})["sessions"]
    )

    # The session the demo coach has processing finishes: its minutes land in the ledger.
    live = CoachingSession.objects.get(coach=demo_coach, status="processing")
    services.session_processing_finish(live)
    expected = expected_cards(demo_coach, {"period": "30d"})

    page.clock.run_for(31_000)
    page.wait_for_function(
        "want => document.querySelector('[data-metric=\"minutes_used\"] [data-value]').textContent === want",
        arg=expected["minutes_used"],
    )
    assert shown_cards(page) == expected
    assert page.evaluate("() => window.stillTheSamePage && Chart.getChart('chart-minutes') === window.minutesChart")
    thirty = parse_period({"period": "30d"}, tz=demo_coach.tzinfo)
    series = usage_series(User.objects.filter(pk=demo_coach.pk), thirty)
    assert chart_data(page, "minutes") == [row["minutes"] for row in series]
    assert page.locator("#last-updated").inner_text() != before
    assert errors == []


def test_phone_sized_screen_in_traditional_chinese(new_tab, live_server, demo_coach):
    page = new_tab(locale="zh-TW", viewport={"width": 390, "height": 844}, is_mobile=True)
    errors = collect_errors(page)
    page.goto(f"{live_server.url}/dashboard/usage")
    page.get_by_label("電子郵件").fill("coach@example.com")
    page.get_by_label("密碼").fill("coach-demo-2026")
    page.get_by_role("button", name="登入").click()
    page.wait_for_url("**/dashboard/usage")
    wait_for_charts(page)

    assert page.locator("h1").inner_text() == "我的用量"
    assert page.locator("#label-failed_transcriptions").inner_text() == "轉錄失敗"
    assert shown_cards(page) == expected_cards(demo_coach, {"period": "30d"})
    # Nothing wider than the phone: no sideways scrolling of the page (wide tables scroll inside).
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=OUTPUT / "dashboard-phone.png", full_page=True)
    assert errors == []


@pytest.fixture
def asgi_server(demo_coach, settings):
    """uvicorn (ASGI) in a thread on the test database: the page's event stream stays open there."""
    settings.WHITENOISE_USE_FINDERS = True  # static files from the app directories, as under DEBUG
    settings.LIVE_CHANNEL_PREFIX = f"i14e2e:{time.monotonic_ns()}:"
    with AsgiServer() as server:
        yield server


def test_new_usage_shows_within_two_seconds_through_the_event_stream(asgi_server, tab, demo_coach):
    page = tab
    errors = collect_errors(page)
    log_in(page, asgi_server)
    page.wait_for_function("() => window.usageDashboard.isLive()")
    # The read the stream's "ready" starts has finished (the in-memory SQLite test database locks a
    # table while the test writes to it; in production readers and writers do not collide like this).
    page.wait_for_function("() => window.usageDashboard.refreshes() >= 1")
    assert page.locator("#live-status").is_visible()
    page.evaluate("() => { window.stillTheSamePage = true; }")
    before = page.locator('[data-metric="minutes_used"] [data-value]').inner_text()

    finished = CoachingSession.objects.get(coach=demo_coach, status="processing")
    started = time.monotonic()
    services.session_processing_finish(finished)  # records the usage; the stream hears it on commit
    expected = expected_cards(demo_coach, {"period": "30d"})
    assert expected["minutes_used"] != before
    page.wait_for_function(
        "want => document.querySelector('[data-metric=\"minutes_used\"] [data-value]').textContent === want",
        arg=expected["minutes_used"],
        timeout=2000,
    )
    assert time.monotonic() - started < 2
    assert shown_cards(page) == expected
    assert page.evaluate("() => window.stillTheSamePage === true")  # no reload

    # The stream drops (the server closes it): the page polls meanwhile and reconnects by itself.
    page.evaluate("() => window.usageDashboard.stream().close() || window.usageDashboard.stream().onerror()")
    assert page.evaluate("() => window.usageDashboard.isLive()") is False
    page.wait_for_function("() => window.usageDashboard.isLive()", timeout=10_000)
    assert errors == []
