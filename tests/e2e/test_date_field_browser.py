"""The usage page's date fields in a real browser (Debian's Chromium, headless): the user's language, not the browser's.

A native ``<input type="date">`` is drawn in the browser's language; ``static/js/date_field.js``
draws the dates, month and weekday names in the language the user chose (``User.language``),
and still sends ISO ``from``/``to``.
"""

import calendar
import datetime

import pytest

from analytics.periods import parse_period
from coaching.models import User

from .conftest import COACH_EMAIL, COACH_PASSWORD, collect_errors, log_in, wait_for_charts
from .test_dashboard_browser import docs_screenshot, expected_cards, shown_cards

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ZH_WEEKDAYS = ["週日", "週一", "週二", "週三", "週四", "週五", "週六"]
EN_WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
EN_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
ZH_WEEKDAYS_LONG = ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"]


def zh(day: datetime.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def en(day: datetime.date) -> str:
    return f"{EN_MONTHS[day.month - 1]} {day.day}, {day.year}"


def month_later(day: datetime.date) -> datetime.date:
    """The same day a month later, or that month's last day (31 October -> 30 November), as Page Down moves."""
    year, month = day.year + (day.month == 12), day.month % 12 + 1
    return datetime.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def calendar_of(page, field_id: str):
    page.locator(f".date-field:has(#{field_id}) .date-button").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    return dialog


def focused_date(page) -> str:
    return page.evaluate("() => document.activeElement.dataset.date")


def test_a_zh_hant_coach_in_an_english_browser_picks_dates_in_chinese(new_tab, live_server, demo_coach):
    User.objects.filter(pk=demo_coach.pk).update(language="zh-hant")
    page = new_tab()  # locale en-US
    errors = collect_errors(page)
    log_in(page, live_server)
    assert page.evaluate("() => navigator.language") == "en-US"
    assert page.locator("h1").inner_text() == "我的用量"

    thirty = parse_period({"period": "30d"}, tz=demo_coach.tzinfo)
    page.locator("#id_period").select_option("custom")
    start = page.locator("#id_from")
    assert start.input_value() == zh(thirty.first_day)  # not 2026-11-04, not 11/04/2026
    assert page.locator("#id_to").input_value() == zh(thirty.last_day)

    dialog = calendar_of(page, "id_from")
    assert dialog.locator("h2").inner_text() == f"{thirty.first_day.year}年{thirty.first_day.month}月"
    assert dialog.locator("[role=columnheader]").all_inner_texts() == ZH_WEEKDAYS
    assert focused_date(page) == thirty.first_day.isoformat()  # the calendar opens on the field's date
    label = page.evaluate("() => document.activeElement.getAttribute('aria-label')")
    assert label == f"{zh(thirty.first_day)} {ZH_WEEKDAYS_LONG[thirty.first_day.weekday()]}"
    form, popup = page.locator(".period-form").bounding_box(), dialog.bounding_box()
    bottom = max(form["y"] + form["height"], popup["y"] + popup["height"]) + 8
    clip = {"x": form["x"] - 8, "y": form["y"] - 8, "width": form["width"] + 16, "height": bottom - form["y"] + 8}
    docs_screenshot(page, "dashboard-date-field.png", clip=clip)

    # From the keyboard: three days on, a week back, a month on; Enter picks it.
    for key in ("ArrowRight", "ArrowRight", "ArrowRight", "ArrowUp", "PageDown"):
        page.keyboard.press(key)
    first = month_later(thirty.first_day - datetime.timedelta(days=4))
    assert focused_date(page) == first.isoformat()
    assert dialog.locator("h2").inner_text() == f"{first.year}年{first.month}月"
    page.keyboard.press("Enter")
    assert page.get_by_role("dialog").count() == 0
    assert start.input_value() == zh(first)
    assert page.evaluate("() => document.activeElement.classList.contains('date-button')")  # focus is back

    # Typed the Chinese way, as a person reading 2026年12月3日 would.
    last = thirty.last_day
    page.locator("#id_to").fill(zh(last))
    page.locator("#id_to").press("Tab")
    assert page.locator("[data-date-hint]").inner_text() == f"{zh(first)} – {zh(last)}"
    page.get_by_role("button", name="顯示").click()
    page.wait_for_url(f"**/dashboard/usage?period=custom&from={first.isoformat()}&to={last.isoformat()}")
    wait_for_charts(page)
    assert shown_cards(page) == expected_cards(demo_coach, {"from": first.isoformat(), "to": last.isoformat()})
    assert page.locator(".period-bounds time").all_inner_texts() == [first.isoformat(), last.isoformat()]
    assert page.locator("#id_from").input_value() == zh(first)
    assert errors == []


def test_an_english_coach_in_a_chinese_browser_picks_dates_in_english(new_tab, live_server, demo_coach):
    User.objects.filter(pk=demo_coach.pk).update(language="en")
    page = new_tab(locale="zh-TW")
    errors = collect_errors(page)
    page.goto(f"{live_server.url}/dashboard/usage")
    page.get_by_label("電子郵件").fill(COACH_EMAIL)  # the login page follows the browser: nobody is logged in yet
    page.get_by_label("密碼").fill(COACH_PASSWORD)
    page.get_by_role("button", name="登入").click()
    page.wait_for_url("**/dashboard/usage")
    wait_for_charts(page)
    assert page.evaluate("() => navigator.language") == "zh-TW"
    assert page.locator("h1").inner_text() == "Your usage"

    ninety = parse_period({"period": "90d"}, tz=demo_coach.tzinfo)
    page.get_by_label("Period", exact=True).select_option("custom")
    dialog = calendar_of(page, "id_from")
    month = parse_period({"period": "30d"}, tz=demo_coach.tzinfo).first_day  # the field holds the period's first day
    assert dialog.locator("h2").inner_text() == month.strftime("%B %Y")
    assert dialog.locator("[role=columnheader]").all_inner_texts() == EN_WEEKDAYS
    # The mouse: back to the month of the 90 days' first day, then that day.
    months_back = (month.year - ninety.first_day.year) * 12 + month.month - ninety.first_day.month
    for _ in range(months_back):
        dialog.get_by_role("button", name="Previous month").click()
    assert dialog.locator("h2").inner_text() == ninety.first_day.strftime("%B %Y")
    dialog.locator(f'[data-date="{ninety.first_day.isoformat()}"]').click()
    assert page.locator("#id_from").input_value() == en(ninety.first_day)
    # Tab stays inside the open calendar; Escape closes it without changing the date, focus back on its button.
    calendar_of(page, "id_from")
    for _ in range(5):
        page.keyboard.press("Tab")
        assert page.evaluate("() => Boolean(document.activeElement.closest('[role=dialog]'))")
    page.keyboard.press("Escape")
    assert page.get_by_role("dialog").count() == 0
    assert page.evaluate("() => document.activeElement.getAttribute('aria-expanded')") == "false"
    assert page.locator("#id_from").input_value() == en(ninety.first_day)

    # A typed date nobody can read is refused before sending, with what to type instead.
    page.locator("#id_to").fill("31/31/2026")
    page.get_by_role("button", name="Show").click()
    assert page.locator(".date-field:has(#id_to) .date-error").inner_text() == (
        "Enter a date such as Dec 3, 2026, or as YYYY-MM-DD."
    )
    assert page.locator("#id_to").get_attribute("aria-invalid") == "true"
    assert "from=" not in page.url
    # English words, or ISO, are fine.
    last = ninety.last_day - datetime.timedelta(days=1)
    page.locator("#id_to").fill(f"{last.day} {last.strftime('%B')} {last.year}")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(f"**/dashboard/usage?period=custom&from={ninety.first_day.isoformat()}&to={last.isoformat()}")
    wait_for_charts(page)
    assert page.locator("#id_to").input_value() == en(last)
    custom = {"from": ninety.first_day.isoformat(), "to": last.isoformat()}
    assert shown_cards(page) == expected_cards(demo_coach, custom)
    assert errors == []


def test_without_javascript_the_field_takes_iso_dates_and_a_bad_one_is_a_400(new_tab, live_server, demo_coach):
    page = new_tab(java_script_enabled=False)
    page.goto(f"{live_server.url}/accounts/login/?next=/dashboard/usage%3Fperiod%3Dcustom")
    page.get_by_label("Email").fill(COACH_EMAIL)
    page.get_by_label("Password").fill(COACH_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard/usage?period=custom")
    assert page.locator("#id_from").get_attribute("type") == "text"
    assert page.locator("#id_from").get_attribute("placeholder") == "YYYY-MM-DD"
    page.locator("#id_from").fill("2026-01-05")
    page.locator("#id_to").fill("5 Feb 2026")  # words need the script; the server says what it wants
    with page.expect_response(lambda response: "/dashboard/usage?" in response.url) as answer:
        page.get_by_role("button", name="Show").click()
    assert answer.value.status == 400
    assert "'to' must be a date as YYYY-MM-DD" in page.locator('[role="alert"] .error').inner_text()
    page.locator("#id_to").fill("2026-02-05")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/dashboard/usage?period=custom&from=2026-01-05&to=2026-02-05")
    assert page.locator(".period-bounds time").all_inner_texts() == ["2026-01-05", "2026-02-05"]


def test_the_billing_pages_date_fields_follow_the_staff_members_language(new_tab, live_server, demo_coach):
    User.objects.filter(email="staff@example.com").update(language="zh-hant")
    page = new_tab()
    errors = collect_errors(page)
    page.goto(f"{live_server.url}/accounts/login/?next=/dashboard/billing%3Ffrom%3D2026-01-01%26to%3D2026-03-31")
    page.get_by_label("Email").fill("staff@example.com")
    page.get_by_label("Password").fill("staff-demo-2026")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard/billing?from=2026-01-01&to=2026-03-31")
    assert page.locator("#period-from").input_value() == "2026年1月1日"
    dialog = calendar_of(page, "period-to")
    assert dialog.locator("h2").inner_text() == "2026年3月"
    dialog.locator('[data-date="2026-03-15"]').click()
    page.locator("#period-select").select_option("custom")
    page.locator(".period-form button[type=submit]").click()
    page.wait_for_url("**/dashboard/billing?period=custom&from=2026-01-01&to=2026-03-15")
    assert page.locator(".period-bounds time").all_inner_texts()[:2] == ["2026-01-01", "2026-03-15"]
    assert errors == []
