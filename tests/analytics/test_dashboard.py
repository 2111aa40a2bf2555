"""The usage page, ``/dashboard/usage``, through Django's test client: what a coach reads on it.

Time is frozen at 2026-03-20 12:00 in Asia/Taipei (04:00 UTC); "the last 30 days" are then
19 February to 20 March, local days, and the previous period 20 January to 18 February.
"""

import datetime
import json

import cssselect2
import pytest
import time_machine
import tinyhtml5
from django.urls import reverse

from coaching.models import Plan
from tests.factories import (
    ApiUsageFactory,
    ClientFactory,
    CoachingSessionFactory,
    ExportRecordFactory,
    UsageLogFactory,
    UserFactory,
)

UTC = datetime.UTC
NOW = datetime.datetime(2026, 3, 20, 4, 0, tzinfo=UTC)  # 12:00 in Taipei
URL = "/dashboard/usage"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_time():
    with time_machine.travel(NOW, tick=False):
        yield


def at(day: int, hour: int = 12, *, month: int = 3) -> datetime.datetime:
    """A local Taipei time in 2026 as an aware UTC datetime."""
    return datetime.datetime(2026, month, day, hour, tzinfo=UTC) - datetime.timedelta(hours=8)


class Page:
    """The parsed page: ``text(css)`` of the first match, ``all(css)`` of every match."""

    def __init__(self, response):
        self.response = response
        self.html = response.content.decode()
        self.root = cssselect2.ElementWrapper.from_html_root(tinyhtml5.parse(self.html))

    def all(self, css: str) -> list:
        return [element.etree_element for element in self.root.query_all(css)]

    def text(self, css: str) -> str:
        found = self.all(css)
        assert found, f"nothing matches {css!r}"
        return " ".join("".join(found[0].itertext()).split())

    def card(self, metric: str) -> str:
        return self.text(f'[data-metric="{metric}"] [data-value]')

    def change(self, metric: str) -> str:
        return self.text(f'[data-metric="{metric}"] [data-change-text]')


def get(client, user, url: str = URL, **headers) -> Page:
    client.force_login(user)
    return Page(client.get(url, **headers))


@pytest.fixture
def alice_world(coach, other_coach):
    """Alice (pro plan): three sessions and a free retry this period, 20 minutes the period before."""
    wang = ClientFactory(coach=coach, name="王美玲")
    carter = ClientFactory(coach=coach, name="Emily Carter")
    for day, seconds, client in ((2, 600, wang), (10, 1800, carter), (19, 90, wang)):
        session = CoachingSessionFactory(
            coach=coach, client=client, title=f"Session on {day}", created_at=at(day), processing_started_at=at(day)
        )
        UsageLogFactory(user=coach, session=session, client=client, seconds=seconds, created_at=at(day, 13))
    failed = CoachingSessionFactory(
        coach=coach,
        client=carter,
        status="failed",
        processing_started_at=at(15),
        processing_finished_at=at(15, 13),
        created_at=at(15),
    )
    UsageLogFactory(
        user=coach,
        session=failed,
        client=carter,
        kind="retry_failed",
        seconds=300,
        billable=False,
        created_at=at(15, 14),
    )
    # The previous period: 20 minutes on 1 February.
    UsageLogFactory(user=coach, seconds=1200, created_at=at(1, month=2))
    ExportRecordFactory(requested_by=coach, format="csv", created_at=at(5))
    ExportRecordFactory(requested_by=coach, format="pdf", created_at=at(6))
    ApiUsageFactory(user=coach, day=datetime.date(2026, 3, 3), count=42)
    # Bob's usage must never show on Alice's page.
    bob_client = ClientFactory(coach=other_coach, name="Bob's secret client")
    bob_session = CoachingSessionFactory(coach=other_coach, client=bob_client, created_at=at(12))
    UsageLogFactory(user=other_coach, session=bob_session, client=bob_client, seconds=46666, created_at=at(12, 13))
    return coach


def test_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={URL}"


def test_coach_sees_exactly_their_own_numbers_with_changes(client, alice_world):
    page = get(client, alice_world)
    assert page.response.status_code == 200
    # 10 + 30 + 1.5 minutes of originals; the free retry after the failure is not billed.
    assert page.card("minutes_used") == "41.50"
    assert page.change("minutes_used") == "+21.50 (+107.5 %)"  # against 20.00 the period before
    assert page.card("sessions") == "3"
    assert page.change("sessions") == "+2 (+200.0 %)"
    assert page.card("transcriptions") == "4"
    assert page.card("failed_transcriptions") == "1"
    assert "Not billed" in page.text('[data-metric="failed_transcriptions"]')
    assert page.card("exports_generated") == "2"
    assert page.card("api_calls_made") == "42"
    assert page.card("storage_used_mb") == "4.0"  # four sessions of 1 MiB each
    assert page.card("concurrent_sessions_peak") == "1"
    assert "Bob's secret client" not in page.html
    assert "777.77" not in page.html and "46666" not in page.html


def test_plan_bar_shows_this_months_minutes_and_the_projection(client, alice_world):
    page = get(client, alice_world)
    bar = page.all("[data-plan-bar]")[0]
    # March so far: 10 + 30 + 1.5 = 41.50 of 3,000 minutes, 19.5 of 31 days gone.
    assert bar.get("aria-valuenow") == "41.5"
    assert bar.get("aria-valuemax") == "3000"
    assert page.text("[data-plan-percent]") == "1.4"
    assert page.text("[data-plan-projected]") == "65.97"  # 41.50 / (19.5 / 31), half up
    assert page.all("[data-plan]")[0].get("data-level") == "ok"
    assert page.all("[data-plan-warning]")[0].get("hidden") is not None


@pytest.mark.parametrize(
    ("minutes", "level", "message"),
    [
        (170, "warning", "You have used 80 % or more of this month's minutes."),
        (200, "over", "You have reached this month's minute limit."),
    ],
)
def test_plan_bar_warns_at_80_and_100_percent(client, minutes, level, message):
    coach = UserFactory(email="free@example.com", plan=Plan.objects.get(code="free"))
    UsageLogFactory(user=coach, seconds=minutes * 60, created_at=at(3))
    page = get(client, coach)
    assert page.all("[data-plan]")[0].get("data-level") == level
    assert page.text(f'[data-level-text="{level}"]') == message
    assert page.all("[data-plan-warning]")[0].get("hidden") is None


def test_unlimited_plan_says_unlimited_and_draws_no_bar(client):
    coach = UserFactory(email="school@example.com", plan=Plan.objects.get(code="coaching_school"))
    UsageLogFactory(user=coach, seconds=600_000, created_at=at(3))
    page = get(client, coach)
    assert "Unlimited" in page.text("[data-plan]")
    assert page.all("[data-plan-bar]") == []
    assert page.card("minutes_used") == "10,000.00"


def test_coach_without_sessions_sees_the_empty_state(client):
    newcomer = UserFactory(email="new@example.com", plan=Plan.objects.get(code="student"))
    page = get(client, newcomer)
    assert page.response.status_code == 200
    assert page.text("#empty-heading") == "No sessions yet"
    assert "Your Student plan includes 500 transcription minutes a month." in page.text(".empty-state")
    assert page.card("minutes_used") == "0.00"
    assert page.all("canvas") == []
    assert page.text(".history .empty") == "No usage in this period."


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?period=5d", "Unknown period '5d'"),
        ("?from=2026-03-10&to=2026-03-01", "'to' (2026-03-01) is before 'from' (2026-03-10)"),
        ("?from=10/03/2026", "'from' must be a date as YYYY-MM-DD"),
        ("?period=custom", "Choose a start date, an end date or both for a custom range."),
    ],
)
def test_an_invalid_period_is_a_400_that_says_what_to_fix(client, coach, query, message):
    page = get(client, coach, URL + query)
    assert page.response.status_code == 400
    assert message in page.text('[role="alert"] .error')
    assert page.all("[data-dashboard]") == []  # nothing to poll
    assert page.all("#id_period")  # the form is there to correct it


def test_custom_range_drives_the_cards_exports_and_the_poll(client, alice_world):
    page = get(client, alice_world, URL + "?period=custom&from=2026-03-01&to=2026-03-12")
    assert page.response.status_code == 200
    assert page.card("minutes_used") == "40.00"  # 2 and 10 March
    assert (
        page.all("[data-dashboard]")[0].get("data-api-url") == "/api/v1/usage/analytics?from=2026-03-01&to=2026-03-12"
    )
    csv_link = page.all('a[data-export="csv"]')[0]
    assert csv_link.get("href").endswith("?format=csv&from=2026-03-01&to=2026-03-12")
    assert csv_link.get("download") is not None
    assert page.all('#id_period option[value="custom"]')[0].get("selected") is not None


def test_a_preset_ignores_the_date_fields_the_form_also_sends(client, alice_world):
    page = get(client, alice_world, URL + "?period=7d&from=2020-01-01&to=2020-01-02")
    assert page.response.status_code == 200
    assert page.text(".period-bounds") == "2026-03-14 – 2026-03-20 (Asia/Taipei)"
    assert page.card("minutes_used") == "1.50"  # only 19 March


def test_exports_the_plan_does_not_allow_are_disabled_with_the_reason(client):
    coach = UserFactory(email="free@example.com", plan=Plan.objects.get(code="free"))
    page = get(client, coach)
    assert page.all('a[data-export="csv"]')
    for fmt, upgrade in (("pdf", "Student"), ("xlsx", "Pro")):
        assert page.all(f'a[data-export="{fmt}"]') == []
        button = page.all(f'button[data-export="{fmt}"]')[0]
        assert button.get("disabled") is not None
        assert page.text(f"#why-{fmt}") == f"Not included in the Free plan. Available from the {upgrade} plan."


def test_charts_are_passed_as_json_with_table_fallbacks_equal_to_the_api(client, api_for, alice_world):
    page = get(client, alice_world)
    specs = json.loads(page.text("#chart-specs"))
    api = api_for(alice_world).get("/api/v1/usage/analytics?period=30d").json()
    # The page's specs are the API's, plus the axis titles translated for the page.
    assert [{k: v for k, v in spec.items() if k != "axes"} for spec in specs] == api["charts"]
    assert [spec["axes"] for spec in specs] == [
        {"x": "Day", "y": "Minutes"},
        {"x": "", "y": ""},
        {"x": "Format", "y": "Exports"},
    ]
    assert [spec["id"] for spec in specs] == ["minutes", "sessions-by-status", "exports-by-format"]
    minutes_rows = page.all('[data-chart="minutes"] [data-chart-rows] tr')
    assert len(minutes_rows) == 30
    march_10 = [row for row in minutes_rows if "".join(row.itertext()).startswith("2026-03-10")][0]
    assert [cell.text for cell in march_10.findall("{*}td")][0] == "30"


def test_history_is_paginated_newest_first_in_the_coachs_time_zone(client, coach):
    client_row = ClientFactory(coach=coach, name="陳美玲")
    CoachingSessionFactory(coach=coach, client=client_row, created_at=at(1))
    start = datetime.datetime(2026, 3, 1, 17, 30, tzinfo=UTC)  # 2 March 01:30 in Taipei
    for i in range(30):
        UsageLogFactory(
            user=coach, client=client_row, seconds=60 * (i + 1), created_at=start + datetime.timedelta(hours=i)
        )
    first = get(client, coach)
    rows = first.all(".history tbody tr")
    assert len(rows) == 25
    assert "".join(rows[0].itertext()).split()[:3] == ["2026-03-03", "06:30", "陳美玲"]  # the 30th log, newest
    assert first.text(".pagination [aria-current]") == "Page 1 of 2"
    older = first.all('.pagination a[rel="next"]')[0].get("href")
    assert older == "?period=30d&page=2#history"
    second = get(client, coach, URL + older)
    rows = second.all(".history tbody tr")
    assert len(rows) == 5
    assert "".join(rows[-1].itertext()).split()[:2] == ["2026-03-02", "01:30"]  # the first log, oldest
    assert second.text(".history tbody tr:last-child td.num") == "1.00"


def test_interface_text_follows_the_browsers_language(client, alice_world):
    page = get(client, alice_world, HTTP_ACCEPT_LANGUAGE="zh-Hant-TW,zh;q=0.9,en;q=0.5")
    assert page.all("html")[0].get("lang") == "zh-hant"
    assert page.text("h1") == "我的用量"
    assert page.text("#label-failed_transcriptions") == "轉錄失敗"
    assert page.card("minutes_used") == "41.50"
    english = get(client, alice_world, HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert english.text("h1") == "Your usage"


def test_render_cost_does_not_grow_with_the_ledger(client, coach, django_assert_max_num_queries):
    session = CoachingSessionFactory(coach=coach, created_at=at(1))
    UsageLogFactory.create_batch(120, user=coach, session=session, created_at=at(2))
    client.force_login(coach)
    with django_assert_max_num_queries(30):
        assert client.get(URL).status_code == 200


def test_no_change_reads_as_such_and_colours_follow_each_metrics_meaning(client, alice_world):
    page = get(client, alice_world)
    # Failures went up (1 against 0): bad. Minutes went up: neither good nor bad.
    failed = page.all('[data-metric="failed_transcriptions"] [data-change]')[0]
    minutes = page.all('[data-metric="minutes_used"] [data-change]')[0]
    assert "tone-bad" in failed.get("class")
    assert "tone-neutral" in minutes.get("class")

    steady = UserFactory(email="erin@example.com", timezone="Asia/Taipei")
    UsageLogFactory(user=steady, seconds=600, created_at=at(10))
    UsageLogFactory(user=steady, seconds=600, created_at=at(1, month=2))
    same = get(client, steady)
    assert same.change("minutes_used") == "No change"
    assert "tone-same" in same.all('[data-metric="minutes_used"] [data-change]')[0].get("class")
    assert same.text('[data-metric="minutes_used"] [data-change-arrow]') == ""


def test_all_time_runs_from_the_coachs_first_record(client, alice_world):
    page = get(client, alice_world, f"{URL}?period=all")
    assert page.response.status_code == 200
    assert page.text(".period-bounds") == "2026-02-01 – 2026-03-20 (Asia/Taipei)"
    assert page.all('#id_period option[value="all"]')[0].get("selected") is not None
    assert page.card("minutes_used") == "61.50"  # 41.50 this period + 20.00 on 1 February
    root = page.all("[data-dashboard]")[0]
    assert root.get("data-api-url") == "/api/v1/usage/analytics?from=2026-02-01&to=2026-03-20"
    assert root.get("data-all-time") == "1"
    specs = json.loads(page.text("#chart-specs"))
    assert specs[0]["labels"][0] == "2026-02-01"  # days from the first record, not from the product's epoch


def test_history_is_searchable_by_client_and_title_and_by_a_chart_bar(client, alice_world):
    def rows(query: str) -> list[str]:
        page = get(client, alice_world, f"{URL}?period=30d&{query}")
        assert page.response.status_code == 200
        return [" ".join("".join(tr.itertext()).split()) for tr in page.all("[data-history-rows] tr")]

    assert [row.split(" ")[0] for row in rows("q=美玲")] == ["2026-03-19", "2026-03-02"]
    assert rows("q=session+on+10") == ["2026-03-10 13:00 Emily Carter Session on 10 Transcription 30.00 Yes"]
    assert rows("on=2026-03-15") == [
        "2026-03-15 14:00 Emily Carter Coaching session Free retry after a failure 5.00 No"
    ]
    assert len(rows("on=2026-03")) == 4
    assert rows("q=nobody") == []
    page = get(client, alice_world, f"{URL}?period=30d&on=2026-03-15&q=carter")
    assert page.text("[data-history-filter]").startswith(
        "Rows of 2026-03-15 (the bar you chose). Matching “carter”. 1 row"
    )

    bad = get(client, alice_world, f"{URL}?period=30d&on=March")
    assert bad.response.status_code == 400
    assert bad.text(".error-box .error") == (
        "March is not a day (YYYY-MM-DD) or a month (YYYY-MM): pick a bar of the chart again."
    )


def test_the_chosen_range_is_written_in_the_users_language(client, alice_world):
    alice_world.language = "zh-hant"
    alice_world.save(update_fields=["language"])
    page = get(client, alice_world, f"{URL}?from=2026-03-01&to=2026-03-20")
    assert page.all("#id_from")[0].get("lang") == "zh-hant"
    assert page.text("[data-date-hint]") == "2026年3月1日 – 2026年3月20日"
    alice_world.language = "en"
    alice_world.save(update_fields=["language"])
    assert get(client, alice_world, f"{URL}?from=2026-03-01&to=2026-03-20").text("[data-date-hint]") == (
        "March 1, 2026 – March 20, 2026"
    )


def history_rows(page: Page) -> list[str]:
    return [" ".join("".join(tr.itertext()).split()) for tr in page.all("[data-history-rows] tr")]


def test_a_part_of_the_sessions_chart_shows_the_sessions_behind_it(client, alice_world, other_coach):
    # One more of Alice's: failed, then deleted; one of Bob's failed in the period; one of Alice's before it.
    deleted = CoachingSessionFactory(
        coach=alice_world, client=None, title="Deleted one", status="failed", created_at=at(17, 9), duration_seconds=90
    )
    deleted.deleted_at = at(18)
    deleted.save(update_fields=["deleted_at"])
    CoachingSessionFactory(coach=other_coach, title="Bob's failure", status="failed", created_at=at(16))
    CoachingSessionFactory(coach=alice_world, title="Too early", status="failed", created_at=at(10, month=2))

    page = get(client, alice_world, f"{URL}?period=30d&chart=sessions-by-status&on=failed")
    assert page.response.status_code == 200
    specs = json.loads(page.text("#chart-specs"))
    slice_of_failed = specs[1]["datasets"][0]["data"][specs[1]["keys"].index("failed")]
    assert slice_of_failed == 2 == len(history_rows(page))  # the part of the chart and its rows agree
    assert history_rows(page) == [
        "2026-03-17 09:00 — Deleted one Failed · deleted 1.50",
        "2026-03-15 12:00 Emily Carter Coaching session Failed 60.00",
    ]
    assert page.text("#history-heading") == "Sessions"
    assert page.text("[data-history-filter]").startswith(
        "Sessions created in the period with the status “Failed” (the part of the chart you chose). 2 rows"
    )
    assert page.all("[data-history]")[0].get("data-chart") == "sessions-by-status"
    completed = history_rows(get(client, alice_world, f"{URL}?period=30d&chart=sessions-by-status&on=completed"))
    assert [row.split(" ")[0] for row in completed] == ["2026-03-19", "2026-03-10", "2026-03-02"]
    # The search box narrows a part's sessions too; its form keeps the chart and the part.
    carter = get(client, alice_world, f"{URL}?period=30d&chart=sessions-by-status&on=completed&q=carter")
    assert history_rows(carter) == ["2026-03-10 12:00 Emily Carter Session on 10 Completed 60.00"]
    assert [(i.get("name"), i.get("value")) for i in carter.all(".history-search input[type=hidden]")] == [
        ("period", "30d"),
        ("chart", "sessions-by-status"),
        ("on", "completed"),
    ]


def test_a_bar_of_the_exports_chart_shows_the_exports_behind_it(client, alice_world, other_coach, staff):
    ExportRecordFactory(requested_by=alice_world, format="csv", created_at=at(7, 15), rows=1234, bytes=5 * 1024 * 1024)
    ExportRecordFactory(requested_by=alice_world, format="csv", status="failed", created_at=at(8))  # not made
    ExportRecordFactory(requested_by=other_coach, format="csv", created_at=at(9))  # Bob's
    ExportRecordFactory(requested_by=staff, subject=alice_world, format="csv", created_at=at(11))  # of Alice's usage
    ExportRecordFactory(requested_by=alice_world, subject=other_coach, format="csv", created_at=at(12))  # not hers

    page = get(client, alice_world, f"{URL}?period=30d&chart=exports-by-format&on=csv")
    assert page.response.status_code == 200
    specs = json.loads(page.text("#chart-specs"))
    assert specs[2]["keys"] == ["csv", "pdf", "xlsx"]
    assert specs[2]["datasets"][0]["data"][0] == 3 == len(history_rows(page))
    assert history_rows(page) == [
        "2026-03-11 12:00 CSV — 10 2.0 KB",
        "2026-03-07 15:00 CSV — 1,234 5.0 MB",
        "2026-03-05 12:00 CSV — 10 2.0 KB",
    ]
    assert page.text("[data-history-filter]").startswith(
        "Exports of your usage made in the period as CSV (the bar you chose). 3 rows"
    )
    assert page.all(".history-search") == []  # nothing to search in an export
    assert history_rows(get(client, alice_world, f"{URL}?period=30d&chart=exports-by-format&on=xlsx")) == []
    # Bob clicks the same bar: the exports of his usage (one Alice asked for), never Alice's.
    assert history_rows(get(client, other_coach, f"{URL}?period=30d&chart=exports-by-format&on=csv")) == [
        "2026-03-12 12:00 CSV — 10 2.0 KB",
        "2026-03-09 12:00 CSV — 10 2.0 KB",
    ]


def test_each_charts_table_links_its_labels_to_the_rows_behind_them(client, alice_world):
    page = get(client, alice_world, f"{URL}?from=2026-03-01&to=2026-03-20")
    links = {
        chart: [a.get("href") for a in page.all(f'[data-chart="{chart}"] [data-chart-rows] a')]
        for chart in ("minutes", "sessions-by-status", "exports-by-format")
    }
    assert links["minutes"][0] == "?from=2026-03-01&to=2026-03-20&on=2026-03-01#history"
    assert links["sessions-by-status"][3] == (
        "?from=2026-03-01&to=2026-03-20&chart=sessions-by-status&on=completed#history"
    )
    assert links["exports-by-format"] == [
        f"?from=2026-03-01&to=2026-03-20&chart=exports-by-format&on={fmt}#history" for fmt in ("csv", "pdf", "xlsx")
    ]
    pdf_rows = get(client, alice_world, URL + links["exports-by-format"][1].split("#")[0])
    assert history_rows(pdf_rows) == ["2026-03-06 12:00 PDF — 10 2.0 KB"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("chart=pie&on=csv", "Unknown chart 'pie': choose one of minutes, sessions-by-status, exports-by-format."),
        (
            "chart=exports-by-format&on=docx",
            "'docx' is not a bar of that chart: choose one of csv, pdf, xlsx, or pick a bar of the chart again.",
        ),
        (
            "chart=sessions-by-status",
            "'' is not a bar of that chart: choose one of uploading, pending, processing, completed, failed, "
            "cancelled, or pick a bar of the chart again.",
        ),
        ("chart=minutes&on=2026-02-30", "2026-02-30 is not a day (YYYY-MM-DD) or a month (YYYY-MM)"),
    ],
)
def test_a_bar_that_is_not_one_is_a_400_that_says_what_to_fix(client, alice_world, query, message):
    page = get(client, alice_world, f"{URL}?period=30d&{query}")
    assert page.response.status_code == 400
    assert message in page.text(".error-box .error")


def test_the_date_fields_send_iso_dates_and_carry_their_words_in_the_users_language(client, alice_world):
    alice_world.language = "zh-hant"
    alice_world.save(update_fields=["language"])
    page = get(client, alice_world, f"{URL}?from=2026-03-01&to=2026-03-20")
    start = page.all("#id_from")[0]
    # A text field taking YYYY-MM-DD without JavaScript; static/js/date_field.js shows it in the user's words.
    assert (start.get("type"), start.get("name"), start.get("value"), start.get("placeholder")) == (
        "text",
        "from",
        "2026-03-01",
        "YYYY-MM-DD",
    )
    assert start.get("data-date-field") is not None
    assert start.get("data-text-previous") == "上個月"
    assert start.get("data-text-invalid") == "請輸入日期，例如 {example}，或以 YYYY-MM-DD 格式輸入。"
    assert page.all('input[type="date"]') == []
    drilled = get(client, alice_world, f"{URL}?period=30d&chart=sessions-by-status&on=failed")
    assert drilled.text("#history-heading") == "會談"
    assert drilled.text("[data-history-filter]").startswith("此期間建立、狀態為「失敗」的會談（您點選的圖表區塊）。")
    assert drilled.text("[data-history-rows] tr") == "2026-03-15 12:00 Emily Carter Coaching session 失敗 60.00"
