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

from analytics import usage_raw
from analytics.periods import parse_period
from analytics.templatetags.dashboard import number
from analytics.usage import usage_series, usage_summary
from coaching import services
from coaching.models import CoachingSession, ExportRecord, UsageLog, User
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


def docs_screenshot(page_or_element, name: str, **options) -> None:
    """Save ``output/<name>``; with ``UPDATE_DOCS_SCREENSHOT=1`` also ``docs/<name>`` (docs/dashboard.md shows them)."""
    OUTPUT.mkdir(exist_ok=True)
    page_or_element.screenshot(path=OUTPUT / name, **options)
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):
        shutil.copyfile(OUTPUT / name, ROOT / "docs" / name)


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
    # Headers are in the coach's language; the ledger entry's id is the last column.
    assert {int(list(row.values())[-1]) for row in rows} == set(ledger.values_list("id", flat=True))

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
    # The "To" date's calendar stays on the screen too.
    page.locator("#id_period").select_option("custom")
    page.locator(".date-field:has(#id_to) .date-button").click()
    box = page.get_by_role("dialog").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
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
    docs_screenshot(page.locator(".dash-head"), "dashboard-live.png")

    # The stream drops (the server closes it): the page polls meanwhile and reconnects by itself.
    page.evaluate("() => window.usageDashboard.stream().close() || window.usageDashboard.stream().onerror()")
    assert page.evaluate("() => window.usageDashboard.isLive()") is False
    page.wait_for_function("() => window.usageDashboard.isLive()", timeout=10_000)
    assert errors == []


def test_language_switch_is_remembered_and_translates_the_chart_axes(new_tab, live_server, demo_coach):
    page = new_tab()  # an English browser
    errors = collect_errors(page)
    log_in(page, live_server)
    assert page.locator("h1").inner_text() == "Your usage"
    page.get_by_label("Language").select_option("zh-hant")
    page.wait_for_function("() => document.documentElement.lang === 'zh-hant'")
    wait_for_charts(page)
    assert page.locator("h1").inner_text() == "我的用量"
    assert page.evaluate("() => Chart.getChart('chart-minutes').options.scales.y.title.text") == "分鐘"
    assert page.evaluate("() => Chart.getChart('chart-minutes').options.scales.x.title.text") == "日期"
    demo_coach.refresh_from_db()
    assert demo_coach.language == "zh-hant"
    docs_screenshot(page, "dashboard-zh-hant.png")

    # Another English browser, another day: the coach's choice, not Accept-Language, decides.
    other = new_tab()
    other.goto(f"{live_server.url}/accounts/login/")
    other.get_by_label("Email").fill(demo_coach.email)
    other.get_by_label("Password").fill("coach-demo-2026")
    other.get_by_role("button", name="Log in").click()
    other.wait_for_url("**/dashboard/usage")
    assert other.locator("h1").inner_text() == "我的用量"
    assert errors == []


def test_clicking_a_bar_shows_the_rows_behind_it(tab, live_server, demo_coach):
    page = tab
    errors = collect_errors(page)
    log_in(page, live_server)
    thirty = parse_period({"period": "30d"}, tz=demo_coach.tzinfo)
    series = usage_series(User.objects.filter(pk=demo_coach.pk), thirty)
    busiest = max(range(len(series)), key=lambda i: series[i]["minutes"])
    label = series[busiest]["label"]
    point = page.evaluate(
        "i => { const bar = Chart.getChart('chart-minutes').getDatasetMeta(0).data[i];"
        " return {x: bar.x, y: (bar.y + bar.base) / 2}; }",
        busiest,
    )
    url_before = page.url
    page.locator("#chart-minutes").click(position=point)
    page.wait_for_selector(f'[data-history][data-on="{label}"]')
    day = datetime.date.fromisoformat(label)
    shown = page.locator("[data-history-rows] tr td:first-child").all_inner_texts()
    tz = demo_coach.tzinfo
    expected = UsageLog.objects.filter(
        user=demo_coach,
        created_at__gte=datetime.datetime.combine(day, datetime.time(), tz),
        created_at__lt=datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time(), tz),
    ).order_by("-created_at", "-pk")[:25]
    assert shown == [row.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") for row in expected]
    assert len(shown) > 0
    assert page.locator("[data-history-filter]").inner_text().startswith(f"Rows of {label} (the bar you chose).")
    assert page.url == url_before  # no reload: the section was replaced in place
    docs_screenshot(page.locator("[data-history]"), "dashboard-drilldown.png")

    # A coach who follows a link to a staff page: a page of the site saying so, not Django's bare 403.
    refused = page.goto(f"{live_server.url}/dashboard/billing")
    assert refused.status == 403
    assert page.locator("h1").inner_text() == "This page is not available to you"
    docs_screenshot(page, "forbidden.png")
    assert [e for e in errors if "403 (Forbidden)" not in e] == []


def test_clicking_a_sessions_part_or_an_exports_bar_shows_the_rows_behind_it(tab, live_server, demo_coach):
    page = tab
    errors = collect_errors(page)
    log_in(page, live_server, next_path="?period=year")
    year = parse_period({"period": "year"}, tz=demo_coach.tzinfo)
    coaches = User.objects.filter(pk=demo_coach.pk)
    tz = demo_coach.tzinfo

    def shown_times() -> list[str]:
        return page.locator("[data-history-rows] tr td:first-child").all_inner_texts()

    def local(rows) -> list[str]:
        return [row.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") for row in rows]

    # The sessions chart is a doughnut: click the middle of its biggest part.
    keys = page.evaluate("() => Chart.getChart('chart-sessions-by-status').$keys")
    counts = chart_data(page, "sessions-by-status")
    biggest = max(range(len(counts)), key=counts.__getitem__)
    status = keys[biggest]
    point = page.evaluate(
        "i => Chart.getChart('chart-sessions-by-status').getDatasetMeta(0).data[i].tooltipPosition()", biggest
    )
    url_before = page.url
    page.locator("#chart-sessions-by-status").click(position=point)
    page.wait_for_selector(f'[data-history][data-chart="sessions-by-status"][data-on="{status}"]')
    sessions = usage_raw.sessions_created(coaches, year).filter(status=status).order_by("-created_at", "-pk")
    assert sessions.count() == counts[biggest] > 0  # the part and the rows behind it are the same sessions
    assert shown_times() == local(sessions[:25])
    assert page.locator("#history-heading").inner_text() == "Sessions"
    assert f"{counts[biggest]} rows" in page.locator("[data-history-filter]").inner_text()
    assert page.evaluate("() => document.activeElement.id") == "history-heading"  # focus follows
    assert page.url == url_before
    docs_screenshot(page.locator("[data-history]"), "dashboard-drilldown-sessions.png")

    # The exports chart: a bar.
    formats = page.evaluate("() => Chart.getChart('chart-exports-by-format').$keys")
    made = chart_data(page, "exports-by-format")
    tallest = max(range(len(made)), key=made.__getitem__)
    point = page.evaluate(
        "i => { const bar = Chart.getChart('chart-exports-by-format').getDatasetMeta(0).data[i];"
        " return {x: bar.x, y: (bar.y + bar.base) / 2}; }",
        tallest,
    )
    page.locator("#chart-exports-by-format").click(position=point)
    page.wait_for_selector(f'[data-history][data-chart="exports-by-format"][data-on="{formats[tallest]}"]')
    exports = usage_raw.exports(coaches, year).filter(format=formats[tallest]).order_by("-created_at", "-pk")
    assert exports.count() == made[tallest] > 0
    assert shown_times() == local(exports[:25])
    assert page.locator("[data-history-rows] tr td:nth-child(4)").all_inner_texts() == [
        f"{row.rows:,}" for row in exports[:25]
    ]
    assert ExportRecord.objects.exclude(subject=demo_coach).filter(format=formats[tallest]).exists()  # others' exist

    # From the keyboard: the label in the chart's table is a link to the same rows.
    other = next(i for i in range(len(made)) if i != tallest)
    page.locator('[data-chart="exports-by-format"] summary').click()
    link = page.locator(f'[data-chart="exports-by-format"] a[data-drill="{formats[other]}"]')
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f'[data-history][data-chart="exports-by-format"][data-on="{formats[other]}"]')
    others = usage_raw.exports(coaches, year).filter(format=formats[other]).order_by("-created_at", "-pk")
    assert shown_times() == local(others[:25])
    assert page.url == url_before
    assert errors == []


def test_undo_asks_first_then_runs_with_the_progress_page(tab, live_server, demo_coach):
    from coaching import bulk
    from coaching.models import BulkOperation, MonthlyUsage

    User.objects.filter(email="admin@example.com").update(language="en")  # the demo admin (TW) chose English
    admin = User.objects.get(email="admin@example.com")
    counter = MonthlyUsage.objects.get(user=demo_coach)
    minutes_before = counter.minutes
    assert minutes_before > 0
    op, _ = bulk.operation_create(
        kind="reset_usage", user_ids=[str(demo_coach.pk)], parameters={"reset_type": "all"}, requested_by=admin
    )  # transaction=True test: on commit is at once, and tasks run eagerly on the embedded default
    assert MonthlyUsage.objects.get(user=demo_coach).minutes == 0

    page = tab
    errors = collect_errors(page)
    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/coaching/bulkoperation/{op.pk}/change/")
    page.get_by_label("Email").fill("admin@example.com")
    page.get_by_label("Password").fill("admin-demo-2026")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**/admin/coaching/bulkoperation/{op.pk}/change/")
    assert "(100%)" in page.locator(".bulk-counts").inner_text()
    # …and it looks like it: no gap drawn between "100" and "%" (it once read "(100    %)").
    gap = page.evaluate(
        """() => { const number = document.getElementById('bulk-percent'); const range = document.createRange();
                   range.selectNodeContents(number.nextSibling);
                   return range.getBoundingClientRect().left - number.getBoundingClientRect().right; }"""
    )
    assert abs(gap) < 1

    page.get_by_role("link", name="Undo this reset…").click()
    page.wait_for_url(f"**/admin/coaching/bulkoperation/{op.pk}/undo/")
    intro = " ".join(page.locator("#undo-intro").inner_text().split())
    assert "this restores 1 user's counters for" in intro
    assert page.locator("#undo-minutes").inner_text() == f"{minutes_before:.2f}"
    assert MonthlyUsage.objects.get(user=demo_coach).minutes == 0  # asking changed nothing
    page.evaluate("() => localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page.reload()
    docs_screenshot(page, "admin-undo-confirm.png")

    page.evaluate("() => localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page.get_by_role("button", name="Yes, I’m sure").click()
    page.wait_for_url(f"**/admin/coaching/bulkoperation/{op.pk}/change/")
    assert "Undo started: restoring 1 user's counters." in page.locator(".messagelist").inner_text()
    assert page.locator("#bulk-status").inner_text() == "Reverted"
    assert MonthlyUsage.objects.get(user=demo_coach).minutes == minutes_before
    assert BulkOperation.objects.get(pk=op.pk).status == "reverted"
    assert page.get_by_role("link", name="Undo this reset…").count() == 0
    # The user list: this month's minutes against the plan, filterable by how close to it each user is.
    page.evaluate("() => localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")  # room for the columns
    page.goto(f"{live_server.url}/admin/coaching/user/?o=-4")
    assert page.locator("th.column-minutes_this_month").count() == 1
    docs_screenshot(page, "admin-users.png")
    # Django's admin pages name no icon, so Chromium asks for /favicon.ico: the one 404 allowed.
    assert {url.removeprefix(live_server.url) for url in missing} <= {"/favicon.ico"}
    assert [e for e in errors if "404 (Not Found)" not in e] == []


def test_the_billing_page_refreshes_itself_for_staff_when_usage_is_recorded(asgi_server, tab, demo_coach):
    page = tab
    errors = collect_errors(page)
    User.objects.filter(email="staff@example.com").update(language="en")
    page.goto(f"{asgi_server.url}/accounts/login/?next=/dashboard/billing")
    page.get_by_label("Email").fill("staff@example.com")
    page.get_by_label("Password").fill("staff-demo-2026")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard/billing")
    page.wait_for_function("() => document.documentElement.dataset.billingLive === '1'")
    page.evaluate("() => { window.stillTheSamePage = true; }")
    services.usage_record(demo_coach, session=None, kind="adjustment", seconds=60)
    page.wait_for_function("() => document.documentElement.dataset.billingRefreshed", timeout=5000)
    assert page.evaluate("() => window.stillTheSamePage === true")
    assert errors == []
